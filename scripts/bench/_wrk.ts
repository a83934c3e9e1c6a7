/**
 * wrk runs: keep-alive HTTP/1.1 load with a fixed number of connections,
 * summarised by a Lua `done` hook that prints the exact totals and latency
 * percentiles as one JSON line (no parsing of wrk's rounded text).
 *
 * @module
 */

import { join } from "node:path";
import { run } from "./_procs.ts";

/** One wrk run. */
export interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  /** Response bytes (headers included) per request. */
  bytesPerRequest: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /**
   * Requests in flight on average (rate × mean latency, Little's law). wrk's
   * latencies count completed requests only: well below `connections`, most
   * connections sat waiting for an answer that never came within the run.
   */
  inFlight: number;
  /** wrk's error counters; `status` counts responses other than 2xx/3xx. */
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
}

/** Options of {@linkcode runWrk}. */
export interface WrkOptions {
  /** `-d`, seconds. */
  seconds: number;
  /** `-t`. Default 2. */
  threads?: number;
  /** `-c`. Default 50. */
  connections?: number;
  /** `Host` header to send instead of the URL's. */
  host?: string;
  /** Responses must carry at least this many body bytes (a relay's short answers fail the run). */
  minBodyBytes?: number;
}

const MARK = "WRK_JSON ";

const SCRIPT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n${MARK}{"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"connect":%.0f,"read":%.0f,' ..
    '"write":%.0f,"status":%.0f,"timeout":%.0f,"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
`;

/** Writes the `done` hook into `dir` and returns its path (once per directory). */
export async function wrkScript(dir: string): Promise<string> {
  const path = join(dir, "summary.lua");
  await Deno.writeTextFile(path, SCRIPT);
  return path;
}

/**
 * Runs `wrk --latency -t2 -c50 -d<seconds>` against `url` with the summary
 * script `script` (see {@linkcode wrkScript}). Throws when no request
 * completed, or when more than 1% of them failed or came back short.
 */
export async function runWrk(url: string, script: string, options: WrkOptions): Promise<WrkResult> {
  const args = [
    "--latency",
    "-t",
    String(options.threads ?? 2),
    "-c",
    String(options.connections ?? 50),
    "-d",
    `${options.seconds}s`,
    "--timeout",
    "5s",
    "-s",
    script,
    ...(options.host ? ["-H", `Host: ${options.host}`] : []),
    url,
  ];
  const text = await run("wrk", args, (options.seconds + 30) * 1000);
  const line = text.split("\n").find((l) => l.startsWith(MARK));
  if (!line) throw new Error(`wrk ${url}: no summary in its output:\n${text.slice(0, 400)}`);
  const s = JSON.parse(line.slice(MARK.length)) as Record<string, number>;
  const n = s.requests ?? 0;
  const errors = {
    connect: s.connect ?? 0,
    read: s.read ?? 0,
    write: s.write ?? 0,
    status: s.status ?? 0,
    timeout: s.timeout ?? 0,
  };
  const failed = errors.connect + errors.read + errors.write + errors.status + errors.timeout;
  if (n === 0) {
    throw new Error(`wrk ${url}: no request completed (errors ${JSON.stringify(errors)})`);
  }
  // wrk counts a read error when a kept-alive connection ends without
  // "Connection: close"; about one per response means no keep-alive at all.
  if (errors.read >= n * 0.9) {
    throw new Error(
      `wrk ${url}: the relay closes each kept-alive connection (${errors.read} read errors ` +
        `in ${n} responses)`,
    );
  }
  if (failed > n / 100) {
    throw new Error(
      `wrk ${url}: ${failed} errors in ${n} responses, more than 1% (${JSON.stringify(errors)})`,
    );
  }
  const bytesPerRequest = (s.bytes ?? 0) / n;
  if (options.minBodyBytes !== undefined && bytesPerRequest < options.minBodyBytes) {
    throw new Error(
      `wrk ${url}: ${bytesPerRequest.toFixed(0)} bytes per response, expected at least ` +
        `${options.minBodyBytes}`,
    );
  }
  const requestsPerSecond = n / ((s.duration_us ?? 1) / 1e6);
  const meanMs = (s.mean_us ?? NaN) / 1000;
  return {
    requestsPerSecond,
    requests: n,
    bytesPerRequest,
    p50Ms: (s.p50_us ?? NaN) / 1000,
    p99Ms: (s.p99_us ?? NaN) / 1000,
    maxMs: (s.max_us ?? NaN) / 1000,
    meanMs,
    inFlight: requestsPerSecond * meanMs / 1000,
    errors,
  };
}

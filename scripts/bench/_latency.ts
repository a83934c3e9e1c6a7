/**
 * Latency measurements over TCP: request/response round trips on one
 * connection, and connect-to-first-byte of new connections.
 *
 * @module
 */

/** Percentiles of a sample, in microseconds. */
export interface LatencySummary {
  samples: number;
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Median of an unsorted array. */
export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/** Latency of one route over several runs: the medians of the runs' percentiles, and the runs. */
export interface LatencyRuns extends LatencySummary {
  runs: LatencySummary[];
}

/** One route's latency runs summed up: p50 and p99 are the medians of the runs'. */
export function latencyMedians(runs: LatencySummary[]): LatencyRuns {
  return {
    samples: runs.reduce((sum, r) => sum + r.samples, 0),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    max: Math.max(...runs.map((r) => r.max)),
    runs,
  };
}

function summarize(micros: number[]): LatencySummary {
  micros.sort((a, b) => a - b);
  return {
    samples: micros.length,
    p50: percentile(micros, 50),
    p99: percentile(micros, 99),
    max: micros[micros.length - 1] ?? NaN,
  };
}

/** Reads exactly `buf.length` bytes or throws on EOF. */
export async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const n = await conn.read(buf.subarray(off));
    if (n === null) throw new Error(`Connection closed after ${off} of ${buf.length} bytes`);
    off += n;
  }
}

/** Writes all of `data`. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Options of {@linkcode pingPong}. */
export interface PingPongOptions {
  /** Measured round trips. */
  count: number;
  /** Bytes per message. Default 32. */
  size?: number;
  /** Untimed round trips first. Default 500. */
  warmup?: number;
  /** Stop early after this long, keeping the samples so far. */
  budgetMs: number;
  /** Address of the echo service. Default `127.0.0.1` (the cluster rows use 127.0.0.2 too). */
  hostname?: string;
}

/**
 * Sequential request/response round trips over one connection to an echo
 * service, with TCP_NODELAY on the client socket.
 */
export async function pingPong(port: number, options: PingPongOptions): Promise<LatencySummary> {
  const conn = await Deno.connect({ hostname: options.hostname ?? "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    return await roundTrips(conn, options);
  } finally {
    conn.close();
  }
}

/**
 * {@linkcode pingPong}'s round trips over a connection the caller opened
 * (a TLS one, say), which stays open.
 */
export async function roundTrips(
  conn: Deno.Conn,
  options: Omit<PingPongOptions, "hostname">,
): Promise<LatencySummary> {
  const request = new Uint8Array(options.size ?? 32).fill(0x61);
  const response = new Uint8Array(request.length);
  for (let i = 0; i < (options.warmup ?? 500); i++) {
    await writeAll(conn, request);
    await readFull(conn, response);
  }
  const micros: number[] = [];
  const deadline = performance.now() + options.budgetMs;
  for (let i = 0; i < options.count; i++) {
    const start = performance.now();
    await writeAll(conn, request);
    await readFull(conn, response);
    const end = performance.now();
    micros.push((end - start) * 1000);
    if (end > deadline) break;
  }
  return summarize(micros);
}

/** Options of {@linkcode connectToFirstByte}. */
export interface FirstByteOptions {
  /** Measured connections. */
  count: number;
  /** Untimed connections first. Default 50. */
  warmup?: number;
  /** Stop early after this long, keeping the samples so far. */
  budgetMs: number;
  /** Give up on one connection after this long. Default 5000. */
  perConnectionTimeoutMs?: number;
  /** Address of the service. Default `127.0.0.1`. */
  hostname?: string;
}

/** Connects, reads one byte, closes; returns microseconds or throws. */
async function connectOnce(
  to: Deno.ConnectOptions,
  buf: Uint8Array,
  timeoutMs: number,
): Promise<number> {
  const start = performance.now();
  const conn = await Deno.connect(to);
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    await readFull(conn, buf);
    return (performance.now() - start) * 1000;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/**
 * Sequential new connections to a service that writes one byte on accept:
 * time from `connect()` to that byte.
 */
export async function connectToFirstByte(
  port: number,
  options: FirstByteOptions,
): Promise<LatencySummary> {
  const buf = new Uint8Array(1);
  const timeout = options.perConnectionTimeoutMs ?? 5000;
  const to = { hostname: options.hostname ?? "127.0.0.1", port };
  for (let i = 0; i < (options.warmup ?? 50); i++) await connectOnce(to, buf, timeout);
  const micros: number[] = [];
  const deadline = performance.now() + options.budgetMs;
  for (let i = 0; i < options.count && performance.now() < deadline; i++) {
    micros.push(await connectOnce(to, buf, timeout));
  }
  return summarize(micros);
}

/** Result of {@linkcode connectionRate}. */
export interface RateResult {
  perSecond: number;
  completed: number;
  failed: number;
  seconds: number;
}

/**
 * `workers` concurrent loops, each: connect to `hostname` (default
 * `127.0.0.1`), read one byte, close; for `seconds`. Counts completed
 * connections per second.
 */
export async function connectionRate(
  port: number,
  workers: number,
  seconds: number,
  hostname = "127.0.0.1",
): Promise<RateResult> {
  const to = { hostname, port };
  const buf = () => new Uint8Array(1);
  let completed = 0;
  let failed = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const worker = async () => {
    const b = buf();
    while (performance.now() < deadline) {
      try {
        await connectOnce(to, b, 5000);
        completed++;
      } catch {
        failed++;
        if (failed > 1000) return;
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  const elapsed = (performance.now() - start) / 1000;
  return { perSecond: completed / elapsed, completed, failed, seconds: elapsed };
}

/** New connections per second through one route: the median of its runs, and the runs. */
export interface RateRuns extends RateResult {
  runs: RateResult[];
}

/** One route's connection-rate runs summed up: the rate is the median of the runs'. */
export function rateMedian(runs: RateResult[]): RateRuns {
  const sum = (f: (r: RateResult) => number) => runs.reduce((total, r) => total + f(r), 0);
  return {
    perSecond: median(runs.map((r) => r.perSecond)),
    completed: sum((r) => r.completed),
    failed: sum((r) => r.failed),
    seconds: sum((r) => r.seconds),
    runs,
  };
}

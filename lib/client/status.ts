/**
 * What `burrow status` reads: each running client serves its state as JSON
 * on a local endpoint (`client.status`, 127.0.0.1 and a free port by
 * default) and records the address in a small file in the run directory
 * (`$BURROW_RUN_DIR`, `$XDG_RUNTIME_DIR/burrow` or `~/.cache/burrow/run`).
 * Also the live status line a client shows on a terminal.
 *
 * @module
 */

import { join } from "node:path";
import type { Logger } from "../util/mod.ts";
import type { BurrowClient } from "./client.ts";
import type { ClientStatus } from "./state.ts";

/** Where running clients record their status endpoints. */
export function runDir(): string {
  const env = (k: string) => Deno.env.get(k);
  if (env("BURROW_RUN_DIR")) return env("BURROW_RUN_DIR")!;
  if (env("XDG_RUNTIME_DIR")) return join(env("XDG_RUNTIME_DIR")!, "burrow");
  return join(env("HOME") ?? ".", ".cache", "burrow", "run");
}

/** A running status endpoint. */
export interface StatusEndpoint {
  /** `http://host:port/status`. */
  readonly url: string;
  /** Stops serving and removes the record. */
  close(): Promise<void>;
}

/** Serves `client.status()` and records where, for `burrow status`. */
export async function startStatusEndpoint(
  client: BurrowClient,
  bind: { bind_addr: string; bind_port: number },
  logger: Logger,
): Promise<StatusEndpoint> {
  const ready = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: bind.bind_addr,
    port: bind.bind_port,
    onListen: (addr) => ready.resolve(addr),
  }, (request) => {
    const path = new URL(request.url).pathname;
    if (path !== "/status") return new Response("Not found: try /status\n", { status: 404 });
    return Response.json(client.status());
  });
  const addr = await ready.promise;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}/status`;
  const dir = runDir();
  const record = join(dir, `burrow-${Deno.pid}.json`);
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(record, JSON.stringify({ pid: Deno.pid, url }) + "\n");
  } catch (error) {
    logger.warn("could not record the status endpoint; burrow status needs --url", {
      file: record,
      error,
    });
  }
  logger.debug("status endpoint listening", { url });
  return {
    url,
    async close() {
      await server.shutdown();
      await Deno.remove(record).catch(() => {});
    },
  };
}

/** The status of every client recorded in the run directory (stale records are removed). */
export async function readStatuses(): Promise<Array<{ url: string; status: ClientStatus }>> {
  const dir = runDir();
  const out: Array<{ url: string; status: ClientStatus }> = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^burrow-\d+\.json$/.test(entry.name)) continue;
    const path = join(dir, entry.name);
    try {
      const { url } = JSON.parse(await Deno.readTextFile(path)) as { url: string };
      out.push({ url, status: await fetchStatus(url) });
    } catch {
      await Deno.remove(path).catch(() => {});
    }
  }
  return out;
}

/** Fetches one client's status. */
export async function fetchStatus(url: string): Promise<ClientStatus> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return await response.json() as ClientStatus;
}

/** Bytes in people's units. */
export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** `burrow status` output for one client. */
export function formatStatus(s: ClientStatus): string {
  const rtt = (ms: number | null) => ms !== null ? `, rtt ${ms} ms` : "";
  const sessions = s.sessions ?? [];
  // Several sessions (`ha_connections`): a line each, as each has its own server.
  const head = sessions.length > 1
    ? [
      `client ${s.client_id}: ${sessions.filter((x) => x.connected).length} of ` +
      `${sessions.length} sessions connected`,
      ...sessions.map((x, i) =>
        `  session ${i + 1} → ${x.server ?? "(no free server address)"}: ` +
        `${x.connected ? "connected" : "reconnecting"}${rtt(x.rtt_ms)}`
      ),
    ].join("\n")
    : `client ${s.client_id} → ${s.server}: ${s.connected ? "connected" : "reconnecting"}` +
      rtt(s.rtt_ms);
  const rows = s.tunnels.map((t) => [
    t.name,
    t.type,
    t.status,
    t.public_addr ?? "-",
    t.local ?? "-",
    `${t.active_connections}/${t.connections}`,
    formatBytes(t.bytes_in),
    formatBytes(t.bytes_out),
    t.error ?? "",
  ]);
  const header = ["TUNNEL", "TYPE", "STATE", "PUBLIC", "LOCAL", "CONNS", "IN", "OUT", "ERROR"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [head, line(header), ...rows.map(line)].join("\n");
}

/**
 * Redraws one status line on `out` (a terminal) every second with tunnel
 * counts and traffic rates. Returns a function that stops it.
 */
export function liveStatusLine(client: BurrowClient, out = Deno.stdout): () => void {
  const encoder = new TextEncoder();
  let last = { at: performance.now(), bytesIn: 0, bytesOut: 0 };
  const timer = setInterval(() => {
    const s = client.status();
    const now = performance.now();
    const bytesIn = s.tunnels.reduce((n, t) => n + t.bytes_in, 0);
    const bytesOut = s.tunnels.reduce((n, t) => n + t.bytes_out, 0);
    const secs = Math.max(0.001, (now - last.at) / 1000);
    const active = s.tunnels.filter((t) => t.status === "active").length;
    const conns = s.tunnels.reduce((n, t) => n + t.active_connections, 0);
    const sessions = s.sessions && s.sessions.length > 1
      ? `${s.sessions.filter((x) => x.connected).length}/${s.sessions.length} sessions · `
      : "";
    const text = `${s.connected ? "●" : "○"} ${sessions}${active}/${s.tunnels.length} tunnels · ` +
      `${conns} conns · in ${formatBytes((bytesIn - last.bytesIn) / secs)}/s · ` +
      `out ${formatBytes((bytesOut - last.bytesOut) / secs)}/s` +
      (s.rtt_ms !== null ? ` · rtt ${s.rtt_ms} ms` : "");
    last = { at: now, bytesIn, bytesOut };
    out.writeSync(encoder.encode(`\r\x1b[K${text}`));
  }, 1000);
  return () => {
    clearInterval(timer);
    out.writeSync(encoder.encode("\r\x1b[K"));
  };
}

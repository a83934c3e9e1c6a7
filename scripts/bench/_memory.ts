/**
 * Resident memory per idle relayed connection: the slope of the relay's RSS
 * as echoed connections are opened through it in steps and held open.
 *
 * @module
 */

import { median, readFull, writeAll } from "./_latency.ts";
import { delay, treeRssKiB } from "./_procs.ts";

/** Closes every connection, ignoring ones already closed. */
export function closeAll(conns: Iterable<Deno.Conn>): void {
  for (const conn of conns) {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

/**
 * Opens `count` connections to an echo service, each proven end to end by one
 * echoed byte, `concurrency` at a time. Closes them all and throws if that
 * takes longer than `timeoutMs`.
 */
export async function openEchoed(
  port: number,
  count: number,
  timeoutMs: number,
  concurrency = 50,
): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  let started = 0;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeAll(conns);
  }, timeoutMs);
  const worker = async () => {
    const byte = new Uint8Array([0x62]);
    const back = new Uint8Array(1);
    while (started < count && !timedOut) {
      started++;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      if (timedOut) conn.close();
      await writeAll(conn, byte);
      await readFull(conn, back);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
    if (timedOut) throw new Error("timed out");
  } catch (error) {
    closeAll(conns);
    throw new Error(
      `Opening ${count} echoed connections to port ${port} failed after ${conns.length}: ${
        timedOut ? `timed out after ${timeoutMs} ms` : (error as Error).message
      }`,
    );
  } finally {
    clearTimeout(timer);
  }
  return conns;
}

/** Processes whose memory is attributed to the relay. */
export interface RelayPids {
  /** The public side (burrowd, sshd). */
  server: number;
  /** The side that dials the local service (burrow, ssh). */
  client: number;
}

/** Result of {@linkcode memoryPerConnection}, in KiB. */
export interface MemoryResult {
  connections: number;
  serverBeforeKiB: number;
  serverAfterKiB: number;
  clientBeforeKiB: number;
  clientAfterKiB: number;
  /** Slope of RSS over the steps (median of the slopes between every two reads). */
  serverPerConnKiB: number;
  clientPerConnKiB: number;
  /** RSS read after each step, the first before any connection. */
  serverStepsKiB: number[];
  clientStepsKiB: number[];
}

/** Steps in which the connections are opened (RSS is read after each). */
const STEPS = 5;

/**
 * The slope of `ys` over `xs` as the median of the slopes between every
 * two reads (Theil–Sen): one lumpy read moves it little. A least-squares
 * line did not hold: the server giving 26 MB back between the first two of
 * six reads made it -13.9 KiB per connection (2026-12-01), and a heap
 * growing its young generation by megabytes moves a difference of two reads
 * even more.
 */
export function slope(xs: number[], ys: number[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    for (let j = i + 1; j < xs.length; j++) {
      const dx = xs[j]! - xs[i]!;
      if (dx !== 0) slopes.push((ys[j]! - ys[i]!) / dx);
    }
  }
  return slopes.length === 0 ? 0 : median(slopes);
}

/** Options of {@linkcode memoryPerConnection}. */
export interface MemoryOptions {
  connections: number;
  /** Wait after opening (or warming up) before reading RSS. Default 1000. */
  settleMs?: number;
  /** Bound on opening all connections. Default 60 s. */
  timeoutMs?: number;
}

/**
 * Waits until `pid`'s RSS stops falling: two reads 500 ms apart within 1 MiB,
 * or 15 s at most.
 */
async function steadyRss(pid: number): Promise<void> {
  let last = treeRssKiB(pid);
  for (let i = 0; i < 30; i++) {
    await delay(500);
    const now = treeRssKiB(pid);
    if (Math.abs(now - last) < 1024) return;
    last = now;
  }
}

/**
 * Warms the relay up with a few connections, reads RSS, then opens
 * `connections` echoed connections in {@linkcode STEPS} steps, reading RSS
 * after each, and closes them. The figure per connection is the slope.
 */
export async function memoryPerConnection(
  port: number,
  pids: RelayPids,
  options: MemoryOptions,
): Promise<MemoryResult> {
  const settle = options.settleMs ?? 1000;
  const timeout = options.timeoutMs ?? 60_000;
  closeAll(await openEchoed(port, 50, timeout));
  await delay(settle);
  // After throughput runs a process may still be giving memory back (heap shrinking, malloc
  // trimming): a "before" read then would make the per-connection figure negative.
  await steadyRss(pids.server);
  await steadyRss(pids.client);
  const n = options.connections;
  const held: number[] = [0];
  const server = [treeRssKiB(pids.server)];
  const client = [treeRssKiB(pids.client)];
  const conns: Deno.TcpConn[] = [];
  try {
    for (let step = 1; step <= STEPS; step++) {
      const target = Math.round((n * step) / STEPS);
      conns.push(...await openEchoed(port, target - conns.length, timeout));
      await delay(settle);
      held.push(conns.length);
      server.push(treeRssKiB(pids.server));
      client.push(treeRssKiB(pids.client));
    }
    return {
      connections: n,
      serverBeforeKiB: server[0]!,
      serverAfterKiB: server[STEPS]!,
      clientBeforeKiB: client[0]!,
      clientAfterKiB: client[STEPS]!,
      serverPerConnKiB: slope(held, server),
      clientPerConnKiB: slope(held, client),
      serverStepsKiB: server,
      clientStepsKiB: client,
    };
  } finally {
    closeAll(conns);
    // Let the relay tear the streams down before the next measurement.
    await delay(settle);
  }
}

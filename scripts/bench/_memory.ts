/**
 * Resident memory per idle relayed connection: RSS of the relay's processes
 * before and after holding many echoed connections open through it.
 *
 * @module
 */

import { readFull, writeAll } from "./_latency.ts";
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
  serverPerConnKiB: number;
  clientPerConnKiB: number;
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
 * Warms the relay up with a few connections, reads RSS, holds
 * `connections` echoed connections open, reads RSS again, and closes them.
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
  const serverBeforeKiB = treeRssKiB(pids.server);
  const clientBeforeKiB = treeRssKiB(pids.client);
  const conns = await openEchoed(port, options.connections, timeout);
  try {
    await delay(settle);
    const serverAfterKiB = treeRssKiB(pids.server);
    const clientAfterKiB = treeRssKiB(pids.client);
    const n = options.connections;
    return {
      connections: n,
      serverBeforeKiB,
      serverAfterKiB,
      clientBeforeKiB,
      clientAfterKiB,
      serverPerConnKiB: (serverAfterKiB - serverBeforeKiB) / n,
      clientPerConnKiB: (clientAfterKiB - clientBeforeKiB) / n,
    };
  } finally {
    closeAll(conns);
    // Let the relay tear the streams down before the next measurement.
    await delay(settle);
  }
}

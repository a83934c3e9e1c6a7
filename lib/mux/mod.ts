/**
 * Streams over one duplex connection: open/accept, credit flow control with
 * a window that grows with measured throughput, ping/RTT and go-away.
 *
 * @example
 * ```ts
 * import { Mux } from "./mod.ts";
 * import { memoryPipe } from "../transport/memory.ts";
 * const [a, b] = memoryPipe();
 * const mux = new Mux(a, { role: "client", pingInterval: 0 });
 * mux.close();
 * b.close();
 * ```
 *
 * @module
 */

export * from "./mux.ts";
export * from "./stream.ts";
export * from "./relay.ts";
export * from "./splice.ts";
export * from "./compress.ts";
export type { BufferPool } from "./_pool.ts";
export * from "./datagram.ts";

/**
 * Copies bytes both ways between a connection and a mux stream, keeping
 * half-close: EOF on one side becomes FIN on the other, and a reset aborts
 * both. Reads use a manual loop over reused buffers that start small and
 * grow only while reads fill them, so an idle connection costs little.
 *
 * @module
 */

import { HEADER_SIZE } from "../protocol/mod.ts";
import type { MuxStream } from "./stream.ts";

/** The connection side of a relay (`Deno.TcpConn` fits). */
export interface RelayConn {
  /** Reads into `p`; resolves with the count, or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p`; resolves with the count written. */
  write(p: Uint8Array): Promise<number>;
  /** Ends writing; the peer reads end of stream. */
  closeWrite(): Promise<void> | void;
  /** Closes both directions. */
  close(): void;
}

/** Options of {@linkcode relay}. */
export interface RelayOptions {
  /** First read buffer in bytes. Default 1 KiB. */
  initialBuffer?: number;
  /** Largest read buffer in bytes (keep ≤ the mux's frame size). Default 64 KiB. */
  maxBuffer?: number;
  /**
   * The result object to fill in; its `sent` and `received` grow while the
   * relay runs, so callers can read live totals.
   */
  result?: RelayResult;
  /** Called once, when the first byte from the stream has been written to the connection. */
  onFirstByte?: () => void;
  /** Paces bytes read from the connection (bandwidth limit). */
  throttleUp?: { take(n: number): Promise<void> } | undefined;
  /** Paces bytes written to the connection (bandwidth limit). */
  throttleDown?: { take(n: number): Promise<void> } | undefined;
}

/** What a finished relay moved, and why it ended if not cleanly. */
export interface RelayResult {
  /** Bytes read from the connection and sent on the stream. */
  sent: number;
  /** Bytes received on the stream and written to the connection. */
  received: number;
  /** The first error on either side, if any. */
  error?: Error;
  /**
   * Where it came from: `stream` (the peer reset the stream, e.g. its local
   * service refused) or `conn` (this side's connection failed, e.g. the
   * visitor went away mid-transfer).
   */
  errorSide?: "stream" | "conn";
}

function safeClose(conn: RelayConn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/**
 * Relays until both directions are finished or one side fails.
 *
 * @example
 * ```ts ignore
 * const result = await relay(tcpConn, stream);
 * console.log(result.sent, result.received);
 * ```
 */
export async function relay(
  conn: RelayConn,
  stream: MuxStream,
  options: RelayOptions = {},
): Promise<RelayResult> {
  const result: RelayResult = options.result ?? { sent: 0, received: 0 };
  let closed = false;
  const fail = (error: unknown, resetStream: boolean) => {
    if (!result.error) {
      result.error = error instanceof Error ? error : new Error(String(error));
      result.errorSide = resetStream ? "conn" : "stream";
    }
    if (resetStream) stream.reset(result.error.message);
    if (!closed) {
      closed = true;
      safeClose(conn);
    }
  };

  const up = async () => {
    const max = options.maxBuffer ?? 64 * 1024;
    let size = Math.min(options.initialBuffer ?? 1024, max);
    const slots: Array<Uint8Array | null> = [null, null];
    // Each slot's payload area, made once per buffer rather than at every read.
    const payloads: Array<Uint8Array | null> = [null, null];
    const inflight: Array<Promise<void> | null> = [null, null];
    let i = 0;
    try {
      for (;;) {
        if (inflight[i]) await inflight[i];
        let buf = slots[i];
        if (!buf || buf.length < HEADER_SIZE + size) {
          buf = slots[i] = new Uint8Array(HEADER_SIZE + size);
          payloads[i] = buf.subarray(HEADER_SIZE);
        }
        const n = await conn.read(payloads[i]!);
        if (n === null) break;
        if (n === 0) continue;
        if (options.throttleUp) await options.throttleUp.take(n);
        result.sent += n;
        const p = stream.writeFrame(buf, n);
        p.catch(() => {});
        inflight[i] = p;
        if (n === size && size < max) size = Math.min(size * 2, max);
        i ^= 1;
      }
      for (const p of inflight) if (p) await p;
      stream.closeWrite();
    } catch (error) {
      if (!closed) fail(error, !stream.isReset);
    }
  };

  const down = async () => {
    try {
      for (;;) {
        const chunk = await stream.readBorrowed();
        if (chunk === null) break;
        if (options.throttleDown) await options.throttleDown.take(chunk.length);
        let off = chunk.length > 0 ? await conn.write(chunk) : 0;
        while (off < chunk.length) off += await conn.write(chunk.subarray(off));
        if (result.received === 0 && options.onFirstByte) options.onFirstByte();
        result.received += chunk.length;
      }
      if (!closed) await conn.closeWrite();
    } catch (error) {
      if (!closed) fail(error, !stream.isReset);
    }
  };

  await Promise.all([up(), down()]);
  if (!closed) {
    closed = true;
    safeClose(conn);
  }
  return result;
}

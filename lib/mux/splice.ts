/**
 * Joins two mux streams of different connections, so that each one's bytes
 * go to the other: what a node of a cluster does with a visitor's stream
 * that another node relays to the client this node holds. An end (FIN) is
 * passed on as an end, a reset as a reset with its reason.
 *
 * @module
 */

import type { Throttle } from "../util/mod.ts";
import { HEADER_SIZE } from "../protocol/mod.ts";
import type { MuxStream } from "./stream.ts";
import { StreamResetError } from "./stream.ts";

/** What a finished splice moved: `forward` from `a` to `b`, `back` from `b` to `a`. */
export interface SpliceResult {
  /** Bytes read from `a` and written to `b`. */
  forward: number;
  /** Bytes read from `b` and written to `a`. */
  back: number;
  /** Why it ended if not by both ends (a reset's reason, or an error). */
  error?: string;
}

/**
 * Copies `a` → `b` and `b` → `a` until both directions end or one side is
 * reset (the other is then reset with the same reason), each direction
 * paced by its throttle in `pace`, if any.
 *
 * @example
 * ```ts ignore
 * const result = await spliceStreams(fromOtherNode, clientMux.open(meta));
 * ```
 */
export async function spliceStreams(
  a: MuxStream,
  b: MuxStream,
  pace: { forward?: Throttle | undefined; back?: Throttle | undefined } = {},
): Promise<SpliceResult> {
  const result: SpliceResult = { forward: 0, back: 0 };
  const fail = (error: unknown) => {
    const reason = error instanceof StreamResetError
      ? error.message
      : error instanceof Error
      ? error.message
      : String(error);
    result.error ??= reason;
    a.reset(reason);
    b.reset(reason);
  };
  const pump = async (from: MuxStream, to: MuxStream, count: "forward" | "back") => {
    const throttle = pace[count];
    // Two frames in turn, as the relay does: the next chunk is read while the last is written,
    // and no frame is allocated per chunk.
    const slots: Array<Uint8Array | null> = [null, null];
    const inflight: Array<Promise<void> | null> = [null, null];
    let i = 0;
    try {
      for (;;) {
        const chunk = await from.readBorrowed();
        if (chunk === null) break;
        // Waiting here holds the borrowed chunk, and with it the sender's credit: backpressure.
        if (throttle) await throttle.take(chunk.length);
        if (inflight[i]) await inflight[i];
        let frame = slots[i];
        if (!frame || frame.length < HEADER_SIZE + chunk.length) {
          frame = slots[i] = new Uint8Array(HEADER_SIZE + Math.max(chunk.length, 16 * 1024));
        }
        // Copied before the next read reuses the borrowed bytes.
        frame.set(chunk, HEADER_SIZE);
        result[count] += chunk.length;
        const written = to.writeFrame(frame, chunk.length);
        written.catch(() => {});
        inflight[i] = written;
        i ^= 1;
      }
      for (const written of inflight) if (written) await written;
      to.closeWrite();
    } catch (error) {
      fail(error);
    }
  };
  await Promise.all([pump(a, b, "forward"), pump(b, a, "back")]);
  return result;
}

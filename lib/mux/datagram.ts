/**
 * Datagrams over a mux stream: each one travels as a 4-byte big-endian
 * length and its bytes, so boundaries survive exactly. The sender drops
 * (and counts) datagrams rather than queueing without bound when the stream
 * is backed up, which is what UDP's users expect.
 *
 * @module
 */

import { HEADER_SIZE, ProtocolError } from "../protocol/mod.ts";
import type { MuxStream } from "./stream.ts";

/** Largest datagram carried (the UDP maximum). */
export const MAX_DATAGRAM = 65_535;

/** Sends datagrams on a stream. */
export class DatagramWriter {
  /** Datagrams dropped because the stream was backed up. */
  dropped = 0;
  /** Datagrams sent. */
  sent = 0;
  /** Payload bytes sent. */
  bytes = 0;
  #stream: MuxStream;
  #pending = 0;
  #maxPending: number;

  /** Writes to `stream`, holding at most `maxPending` bytes not yet on the wire. */
  constructor(stream: MuxStream, maxPending = 512 * 1024) {
    this.#stream = stream;
    this.#maxPending = maxPending;
  }

  /** Queues one datagram; false when it was dropped (backed up, or too large). */
  send(payload: Uint8Array): boolean {
    if (payload.length > MAX_DATAGRAM || this.#pending + payload.length > this.#maxPending) {
      this.dropped++;
      return false;
    }
    const frame = new Uint8Array(HEADER_SIZE + 4 + payload.length);
    new DataView(frame.buffer).setUint32(HEADER_SIZE, payload.length);
    frame.set(payload, HEADER_SIZE + 4);
    const size = frame.length;
    this.#pending += size;
    this.sent++;
    this.bytes += payload.length;
    this.#stream.writeFrame(frame, 4 + payload.length).catch(() => {}).finally(() => {
      this.#pending -= size;
    });
    return true;
  }
}

/**
 * Yields the datagrams arriving on `stream` until its FIN.
 *
 * @throws {ProtocolError} on a length over {@linkcode MAX_DATAGRAM}.
 */
export async function* readDatagrams(stream: MuxStream): AsyncGenerator<Uint8Array> {
  let buf: Uint8Array = new Uint8Array(0);
  for (;;) {
    const chunk = await stream.read();
    if (chunk === null) {
      if (buf.length) {
        throw new ProtocolError(`Stream ended inside a datagram (${buf.length} bytes)`);
      }
      return;
    }
    buf = buf.length ? concat(buf, chunk) : chunk;
    let off = 0;
    while (buf.length - off >= 4) {
      const len = new DataView(buf.buffer, buf.byteOffset + off, 4).getUint32(0);
      if (len > MAX_DATAGRAM) {
        throw new ProtocolError(`Datagram of ${len} bytes exceeds ${MAX_DATAGRAM}`);
      }
      if (buf.length - off - 4 < len) break;
      yield buf.subarray(off + 4, off + 4 + len);
      off += 4 + len;
    }
    buf = off === buf.length ? new Uint8Array(0) : buf.slice(off);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

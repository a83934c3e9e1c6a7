/**
 * Datagrams over a mux stream: each one travels as a 4-byte big-endian
 * length and its bytes, so boundaries survive exactly, and datagrams that
 * queue up travel several to a frame.
 *
 * The writer never waits inside the stream and never buffers without
 * bound: while the stream is busy or out of credit, datagrams wait in a
 * bounded queue that drops the oldest (and counts them), which is what UDP's
 * users expect: under overload the newest datagrams get through and latency
 * stays low.
 *
 * @module
 */

import { HEADER_SIZE, ProtocolError } from "../protocol/mod.ts";
import { DatagramQueue } from "../util/mod.ts";
import type { MuxStream } from "./stream.ts";

/** Largest datagram carried (the UDP maximum). */
export const MAX_DATAGRAM = 65_535;

/** Frames handed to the stream and not yet written; more datagrams wait and coalesce. */
const IN_FLIGHT = 2;
/** Payload room of the largest reused frame buffers: at least one largest datagram. */
const FRAME_ROOM = 4 + MAX_DATAGRAM;

/** Options of {@linkcode DatagramWriter}. */
export interface DatagramWriterOptions {
  /**
   * Payload bytes queued while the stream is busy or out of credit; beyond
   * it the oldest datagrams are dropped. At least {@linkcode MAX_DATAGRAM}.
   * Default 1 MiB (9 ms at 900 Mbit/s).
   */
  maxQueued?: number;
  /** Bytes of length-prefixed datagrams per frame (one larger datagram goes alone). Default 64 KiB. */
  maxFrame?: number;
}

/**
 * Sends datagrams on a stream.
 *
 * @example
 * ```ts
 * import { DatagramWriter, Mux, readDatagrams } from "./mod.ts";
 * import { memoryPipe } from "../transport/memory.ts";
 * const [a, b] = memoryPipe();
 * const got = Promise.withResolvers<number[]>();
 * const server = new Mux(a, {
 *   role: "server",
 *   pingInterval: 0,
 *   onStream: async (stream) => {
 *     const sizes: number[] = [];
 *     for await (const datagram of readDatagrams(stream)) sizes.push(datagram.length);
 *     got.resolve(sizes);
 *   },
 * });
 * const client = new Mux(b, { role: "client", pingInterval: 0 });
 * const writer = new DatagramWriter(client.open({ udp: true }));
 * writer.send(new Uint8Array(3));
 * writer.send(new Uint8Array(0));
 * writer.close();
 * console.assert(String(await got.promise) === "3,0");
 * client.close();
 * server.close();
 * ```
 */
export class DatagramWriter {
  /** Datagrams sent (handed to the stream). */
  sent = 0;
  /** Payload bytes sent. */
  bytes = 0;
  /** Frames written; fewer than `sent` when datagrams shared frames. */
  frames = 0;
  #stream: MuxStream;
  #queue: DatagramQueue;
  #maxFrame: number;
  #inFlight = 0;
  #waiting = false;
  #closing = false;
  #oversize = 0;
  #free: Uint8Array[] = [];

  /** Writes to `stream`. */
  constructor(stream: MuxStream, options: DatagramWriterOptions = {}) {
    this.#stream = stream;
    this.#queue = new DatagramQueue({
      maxBytes: Math.max(options.maxQueued ?? 1024 * 1024, MAX_DATAGRAM),
    });
    this.#maxFrame = options.maxFrame ?? 64 * 1024;
  }

  /** Datagrams dropped: the oldest when the queue was full, and any over {@linkcode MAX_DATAGRAM}. */
  get dropped(): number {
    return this.#queue.dropped + this.#oversize;
  }

  /** Datagrams waiting for the stream. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Queues a copy of `payload` and sends what the stream takes now; false
   * when it is too large or the stream is closed. A full queue drops its
   * oldest datagram instead (see {@linkcode DatagramWriter.dropped}).
   */
  send(payload: Uint8Array): boolean {
    if (payload.length > MAX_DATAGRAM) {
      this.#oversize++;
      return false;
    }
    if (this.#closing || !this.#stream.writable) return false;
    this.#queue.push(payload);
    this.#pump();
    return true;
  }

  /** Sends FIN once the queued datagrams are out. Safe to call twice. */
  close(): void {
    this.#closing = true;
    this.#pump();
  }

  #pump(): void {
    const stream = this.#stream;
    while (this.#inFlight < IN_FLIGHT && !this.#waiting) {
      if (!stream.writable) {
        this.#queue.clear(); // reset: the session is over
        return;
      }
      const head = this.#queue.peek();
      if (head === undefined) {
        if (this.#closing && this.#inFlight === 0) stream.closeWrite();
        return;
      }
      const credit = stream.credit;
      if (4 + head.length > credit) {
        this.#waiting = true;
        stream.creditChanged().then(() => {
          this.#waiting = false;
          this.#pump();
        });
        return;
      }
      // As many queued datagrams as the frame and the credit hold.
      const limit = Math.min(credit, Math.max(this.#maxFrame, 4 + head.length));
      let size = 0;
      let count = 0;
      const items: Uint8Array[] = [];
      for (
        let next: Uint8Array | undefined = head;
        next !== undefined && size + 4 + next.length <= limit;
      ) {
        items.push(this.#queue.shift()!);
        size += 4 + next.length;
        count++;
        next = this.#queue.peek();
      }
      // Frame buffers are reused once written (at most IN_FLIGHT are out), in three sizes
      // so that a quiet session (DNS) keeps small ones.
      const want = HEADER_SIZE + size;
      let frame = this.#free.pop();
      if (!frame || frame.length < want) {
        const room = Math.max(this.#maxFrame, FRAME_ROOM);
        frame = new Uint8Array(
          want <= 2048 ? 2048 : want <= 16_384 ? 16_384 : HEADER_SIZE + Math.max(room, size),
        );
      }
      const buffer = frame;
      const view = new DataView(frame.buffer);
      let off = HEADER_SIZE;
      for (const item of items) {
        view.setUint32(off, item.length);
        frame.set(item, off + 4);
        off += 4 + item.length;
      }
      this.sent += count;
      this.bytes += size - 4 * count;
      this.frames++;
      this.#inFlight++;
      const written = () => {
        this.#free.push(buffer);
        this.#inFlight--;
        this.#pump();
      };
      stream.writeFrame(frame, size).then(written, written);
    }
  }
}

/**
 * Yields the datagrams arriving on `stream` until its FIN, a batch at a
 * time: all those that arrived together (one frame's worth). Handling a
 * batch without awaiting lets what it sends on go out together. The
 * datagrams are valid until the next batch is asked for (they view the
 * stream's receive buffer): copy them to keep them.
 *
 * @throws {ProtocolError} on a length over {@linkcode MAX_DATAGRAM}.
 */
export async function* readDatagramBatches(
  stream: MuxStream,
): AsyncGenerator<readonly Uint8Array[]> {
  // Bytes of a datagram split across frames (a large write may be split by credit).
  let partial: Uint8Array | null = null;
  const batch: Uint8Array[] = [];
  for (;;) {
    const chunk = await stream.readBorrowed();
    if (chunk === null) {
      if (partial) {
        throw new ProtocolError(`Stream ended inside a datagram (${partial.length} bytes)`);
      }
      return;
    }
    const buf: Uint8Array = partial ? concat(partial, chunk) : chunk;
    partial = null;
    batch.length = 0;
    let off = 0;
    while (buf.length - off >= 4) {
      const len = new DataView(buf.buffer, buf.byteOffset + off, 4).getUint32(0);
      if (len > MAX_DATAGRAM) {
        throw new ProtocolError(`Datagram of ${len} bytes exceeds ${MAX_DATAGRAM}`);
      }
      if (buf.length - off - 4 < len) break;
      batch.push(buf.subarray(off + 4, off + 4 + len));
      off += 4 + len;
    }
    if (off < buf.length) partial = buf.slice(off);
    if (batch.length) yield batch;
  }
}

/**
 * Yields the datagrams arriving on `stream` until its FIN, one at a time;
 * each is valid until the next is asked for.
 *
 * @throws {ProtocolError} on a length over {@linkcode MAX_DATAGRAM}.
 */
export async function* readDatagrams(stream: MuxStream): AsyncGenerator<Uint8Array> {
  for await (const batch of readDatagramBatches(stream)) yield* batch;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

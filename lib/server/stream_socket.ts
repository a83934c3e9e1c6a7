/**
 * A mux stream as a `node:net`-style socket, so `node:http` can send
 * requests over it (through an `http.Agent`'s `createConnection`) and raw
 * upgraded or passed-through connections can be piped into it.
 *
 * @module
 */

import { Duplex } from "node:stream";
import type { MuxStream } from "../mux/mod.ts";
import { HEADER_SIZE } from "../protocol/mod.ts";

/** Byte counts of a {@linkcode StreamSocket}, live while it runs. */
export interface SocketTotals {
  /** Bytes written into the stream (towards the client). */
  sent: number;
  /** Bytes read from the stream (from the client). */
  received: number;
}

/**
 * A `Duplex` over one mux stream: writes go out as data frames, the
 * stream's data is pushed as it arrives (with backpressure: nothing more is
 * read from the stream, so no more credit is granted, until the consumer
 * drains), `end()` is a FIN, and `destroy()` before a clean end resets the
 * stream.
 *
 * @example
 * ```ts ignore
 * const socket = new StreamSocket(mux.open({ tunnel: "web" }));
 * socket.end("GET / HTTP/1.1\r\nHost: app\r\n\r\n");
 * ```
 */
export class StreamSocket extends Duplex {
  /** The stream underneath. */
  readonly stream: MuxStream;
  /** Bytes moved so far. */
  readonly totals: SocketTotals = { sent: 0, received: 0 };
  /** Why the peer reset the stream, if it did. */
  resetReason: string | null = null;
  #pumping = false;
  #wanted = false;
  #finished = false;

  /** Wraps `stream`. */
  constructor(stream: MuxStream) {
    super({ allowHalfOpen: true });
    this.stream = stream;
  }

  /** Starts pulling from the stream (node's `Readable` hook). */
  override _read(): void {
    this.#wanted = true;
    if (!this.#pumping) this.#pump();
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#wanted) {
        const chunk = await this.stream.read();
        if (chunk === null) {
          this.#finished = true;
          this.push(null);
          return;
        }
        this.totals.received += chunk.length;
        this.#wanted = this.push(chunk);
      }
    } catch (error) {
      this.resetReason = (error as Error).message;
      this.destroy(error as Error);
    } finally {
      this.#pumping = false;
    }
  }

  /** Sends a chunk as data frames (node's `Writable` hook). */
  override _write(
    chunk: Uint8Array,
    _encoding: string,
    callback: (error?: Error | null) => void,
  ): void {
    this.totals.sent += chunk.length;
    this.stream.write(chunk).then(() => callback(), callback);
  }

  /** Sends queued chunks as one frame (node's `Writable` hook: a request head and body go together). */
  override _writev(
    chunks: Array<{ chunk: Uint8Array }>,
    callback: (error?: Error | null) => void,
  ): void {
    let length = 0;
    for (const { chunk } of chunks) length += chunk.length;
    // Gathered straight into the frame: one copy, as for a single write.
    const frame = new Uint8Array(HEADER_SIZE + length);
    let at = HEADER_SIZE;
    for (const { chunk } of chunks) {
      frame.set(chunk, at);
      at += chunk.length;
    }
    this.totals.sent += length;
    this.stream.writeFrame(frame, length).then(() => callback(), callback);
  }

  /** Half-closes: a FIN to the peer (node's `Writable` hook). */
  override _final(callback: (error?: Error | null) => void): void {
    this.stream.closeWrite();
    callback();
  }

  /** Resets the stream unless it ended cleanly both ways (node's hook). */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A stream that ended cleanly both ways needs no reset; anything else tells the client.
    if (!(this.#finished && this.writableFinished)) {
      this.stream.reset(error?.message ?? "closed");
    }
    callback(error);
  }

  // What node:http's client and agent call on sockets; a mux stream has no such knobs.
  /** No-op (the control connection underneath has its own settings). */
  setKeepAlive(): this {
    return this;
  }
  /** No-op. */
  setNoDelay(): this {
    return this;
  }
  /** No-op: idle limits are kept by the server's HTTP front, not per stream. */
  setTimeout(): this {
    return this;
  }
  /** No-op. */
  ref(): this {
    return this;
  }
  /** No-op. */
  unref(): this {
    return this;
  }
}

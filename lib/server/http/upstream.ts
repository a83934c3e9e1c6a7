/**
 * The service's side of a visitor's requests to one tunnel: a kept-alive
 * mux stream that the next request to the same tunnel reuses, read as
 * borrowed chunks, with what was read past the last response head or body
 * kept for the next read ({@linkcode Upstream.unread}). Reading a response
 * head accumulates chunks only when a head spans more than one.
 *
 * @module
 */

import type { MuxStream } from "../../mux/mod.ts";
import { HttpHeadError, MAX_HEAD_SIZE, parseResponseHead } from "./head.ts";
import type { ResponseHead } from "./parsed_head.ts";
import type { SpliceTunnel } from "./splice_tunnel.ts";

/** A kept-alive stream to one tunnel's service, with bytes read past the last response. */
export class Upstream {
  /** The stream to the service. */
  readonly stream: MuxStream;
  /** Read but not yet used (owned copy, or a view on the last borrowed chunk). */
  #rest: Uint8Array | null = null;
  #tunnel: SpliceTunnel;
  /** The stream ended (or failed): nothing more comes after what is left over. */
  ended = false;
  /** Why the stream failed, when it did. */
  failure: string | null = null;

  /** Reads `stream`, a stream that `tunnel` opened. */
  constructor(tunnel: SpliceTunnel, stream: MuxStream) {
    this.#tunnel = tunnel;
    this.stream = stream;
  }

  /** Next bytes: what is left over first, then the stream's (borrowed until the next call). */
  async next(): Promise<Uint8Array | null> {
    const rest = this.takeRest();
    if (rest) return rest;
    if (this.ended) return null;
    try {
      return this.#got(await this.stream.readBorrowed());
    } catch (error) {
      return this.#lost(error);
    }
  }

  /** A chunk read from the stream; `null` (its end) ends this upstream. */
  #got(chunk: Uint8Array | null): Uint8Array | null {
    if (chunk === null) this.ended = true;
    return chunk;
  }

  /** The stream failed: this upstream ends, and `failure` says why. */
  #lost(error: unknown): null {
    this.ended = true;
    this.failure = (error as Error).message;
    return null;
  }

  /** What was read past the last head or body, without waiting for more. */
  takeRest(): Uint8Array | null {
    const rest = this.#rest;
    this.#rest = null;
    return rest;
  }

  /** Puts back `bytes` (not yet used); `own` copies them so the next read cannot overwrite them. */
  unread(bytes: Uint8Array, own: boolean): void {
    if (bytes.length === 0) return;
    this.#rest = own ? bytes.slice() : bytes;
  }

  /** Reads a response head; `null` when the stream ends first. Its bytes are valid until the next read. */
  async readHead(): Promise<ResponseHead | null> {
    let acc: Uint8Array | null = null;
    for (;;) {
      let chunk = this.takeRest();
      if (chunk === null && !this.ended) {
        // Read here rather than through next(): one async frame fewer per response.
        try {
          chunk = this.#got(await this.stream.readBorrowed());
        } catch (error) {
          chunk = this.#lost(error);
        }
      }
      if (chunk === null) {
        if (acc?.length) {
          this.failure ??= "The service closed the connection inside a response head";
        }
        return null;
      }
      const bytes: Uint8Array = acc ? concat(acc, chunk) : chunk;
      const head = parseResponseHead(bytes);
      if (head) {
        // The head is used before the next read; what follows may be a borrowed view.
        this.unread(bytes.subarray(head.size), false);
        return head;
      }
      if (bytes.length >= MAX_HEAD_SIZE) {
        throw new HttpHeadError(`Response head longer than ${MAX_HEAD_SIZE} bytes`, 502);
      }
      acc = acc ? bytes : chunk.slice();
    }
  }

  /** Gives the stream up: no further request goes over it. */
  discard(reason: string): void {
    if (!this.stream.isReset) this.stream.reset(reason);
    this.#tunnel.forget(this.stream);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

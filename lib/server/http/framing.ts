/**
 * Follows an HTTP/1.1 body through its framing (a length, chunked, or until
 * close) as its bytes pass, without copying or decoding them, so a relay
 * knows where one message ends and the next head starts on a kept-alive
 * connection. Chunk sizes and line ends are checked strictly: a body that
 * could be read two ways is an error, never a guess.
 *
 * @module
 */

import { type BodyFraming, HttpHeadError } from "./head.ts";

const CR = 13;
const LF = 10;
/** Longest chunk-size line (size, extensions) accepted. */
const MAX_CHUNK_LINE = 4096;
/** Largest chunk size accepted (2^53 - 1 would be exact, 2^48 is plenty). */
const MAX_CHUNK = 2 ** 48;

const enum State {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerLine,
  TrailerLf,
  FinalLf,
  Done,
}

/**
 * Tracks one message body. Feed it the bytes that follow the head; it says
 * how many of them belong to the body and when the body is complete.
 *
 * @example
 * ```ts
 * import { BodyTracker } from "./framing.ts";
 * const body = new BodyTracker({ kind: "chunked" });
 * const bytes = new TextEncoder().encode("3\r\nabc\r\n0\r\n\r\nGET /next");
 * console.assert(body.feed(bytes) === 15 && body.done);
 * ```
 */
export class BodyTracker {
  #kind: BodyFraming["kind"];
  #left: number;
  #state = State.Size;
  #size = 0;
  #digits = 0;
  #lineLength = 0;
  #done: boolean;

  /** A tracker for a body framed as `framing`. */
  constructor(framing: BodyFraming) {
    this.#kind = framing.kind;
    this.#left = framing.kind === "length" ? framing.length : 0;
    this.#done = framing.kind === "none" || (framing.kind === "length" && framing.length === 0);
  }

  /** Whether the whole body has passed. A `close` body is done only at the connection's end. */
  get done(): boolean {
    return this.#done;
  }

  /** Whether this body ends only when the connection does. */
  get untilClose(): boolean {
    return this.#kind === "close";
  }

  /**
   * Takes bytes from `bytes[from..]`; returns how many belong to this body
   * (the rest, if any, follow it).
   *
   * @throws {HttpHeadError} on an invalid chunk size or line end.
   */
  feed(bytes: Uint8Array, from = 0): number {
    if (this.#done) return 0;
    const available = bytes.length - from;
    switch (this.#kind) {
      case "close":
        return available;
      case "length": {
        const n = Math.min(available, this.#left);
        this.#left -= n;
        if (this.#left === 0) this.#done = true;
        return n;
      }
      case "chunked":
        return this.#chunked(bytes, from);
      default:
        return 0;
    }
  }

  #chunked(bytes: Uint8Array, from: number): number {
    let i = from;
    const end = bytes.length;
    while (i < end && !this.#done) {
      const c = bytes[i]!;
      switch (this.#state) {
        case State.Size: {
          const digit = hex(c);
          if (digit >= 0) {
            if (++this.#digits > 12) throw new HttpHeadError("Chunk size too large");
            this.#size = this.#size * 16 + digit;
            i++;
          } else if (this.#digits === 0) {
            throw new HttpHeadError("Invalid chunk size");
          } else if (c === CR) {
            this.#state = State.SizeLf;
            i++;
          } else if (c === 59 /* ; */ || c === 32 || c === 9) {
            this.#state = State.Ext;
            this.#lineLength = this.#digits;
            i++;
          } else {
            throw new HttpHeadError("Invalid chunk size");
          }
          break;
        }
        case State.Ext:
          if (c === CR) this.#state = State.SizeLf;
          else if ((c < 32 && c !== 9) || c === 127 || c === LF) {
            throw new HttpHeadError("Invalid character in a chunk extension");
          } else if (++this.#lineLength > MAX_CHUNK_LINE) {
            throw new HttpHeadError("Chunk extension too long");
          }
          i++;
          break;
        case State.SizeLf:
          if (c !== LF) throw new HttpHeadError("Chunk size line not ended by CRLF");
          i++;
          if (this.#size > MAX_CHUNK) throw new HttpHeadError("Chunk size too large");
          this.#state = this.#size === 0 ? State.TrailerStart : State.Data;
          this.#left = this.#size;
          this.#size = 0;
          this.#digits = 0;
          break;
        case State.Data: {
          const n = Math.min(end - i, this.#left);
          this.#left -= n;
          i += n;
          if (this.#left === 0) this.#state = State.DataCr;
          break;
        }
        case State.DataCr:
          if (c !== CR) throw new HttpHeadError("Chunk data not followed by CRLF");
          this.#state = State.DataLf;
          i++;
          break;
        case State.DataLf:
          if (c !== LF) throw new HttpHeadError("Chunk data not followed by CRLF");
          this.#state = State.Size;
          i++;
          break;
        case State.TrailerStart:
          // Either the final CRLF, or a trailer field line.
          if (c === CR) this.#state = State.FinalLf;
          else if (c === LF) throw new HttpHeadError("Bare LF in the chunked trailer");
          else {
            this.#state = State.TrailerLine;
            this.#lineLength = 1;
          }
          i++;
          break;
        case State.TrailerLine:
          if (c === CR) this.#state = State.TrailerLf;
          else if (c === LF) throw new HttpHeadError("Bare LF in the chunked trailer");
          else if (++this.#lineLength > MAX_CHUNK_LINE) {
            throw new HttpHeadError("Trailer line too long");
          }
          i++;
          break;
        case State.TrailerLf:
          if (c !== LF) throw new HttpHeadError("Bare CR in the chunked trailer");
          this.#state = State.TrailerStart;
          i++;
          break;
        case State.FinalLf:
          if (c !== LF) throw new HttpHeadError("Chunked body not ended by CRLF");
          this.#state = State.Done;
          this.#done = true;
          i++;
          break;
        default:
          return i - from;
      }
    }
    return i - from;
  }
}

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

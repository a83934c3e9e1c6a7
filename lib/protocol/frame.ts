/**
 * The frame codec: the seed's data frame `Magic 4 | Type 1 | Length 4 | Data`
 * with a 4-byte stream id after the length. All integers are big-endian.
 *
 * ```
 * +---------+--------+-----------+-----------+-------------+
 * | "BURW"  | type   | length    | stream id | payload     |
 * | 4 bytes | 1 byte | u32       | u32       | length bytes|
 * +---------+--------+-----------+-----------+-------------+
 * ```
 *
 * Pure code: no I/O. {@linkcode FrameDecoder} parses a byte stream
 * incrementally and rejects bad magic, unknown types and oversize lengths
 * with a {@linkcode ProtocolError}.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder, FrameType } from "./frame.ts";
 * const bytes = encodeFrame(FrameType.Data, 1, new Uint8Array([1, 2, 3]));
 * const decoder = new FrameDecoder();
 * const frames = [...decoder.push(bytes)];
 * console.assert(frames[0]?.type === FrameType.Data);
 * ```
 *
 * @module
 */

/** `"BURW"`: the first four bytes of every frame. */
export const MAGIC = 0x42555257;

/** Bytes before the payload. */
export const HEADER_SIZE = 13;

/** Largest payload accepted by default (1 MiB): data frames are far smaller. */
export const DEFAULT_MAX_PAYLOAD = 1 << 20;

/** Frame types: a stable catalog; numbers never change meaning. */
export enum FrameType {
  /** JSON control message on stream 0 (see messages.ts). */
  Control = 1,
  /** Opens a data stream; payload is JSON metadata. */
  Open = 2,
  /** Stream bytes. */
  Data = 3,
  /** Credit: payload u32 bytes the sender may additionally send. */
  Window = 4,
  /** Half-close: the sender will send no more data on the stream. */
  Fin = 5,
  /** Abort both directions; payload is a UTF-8 reason. */
  Reset = 6,
  /** Liveness and RTT: payload 8 opaque bytes, echoed by Pong. */
  Ping = 7,
  /** Answer to Ping with the same payload. */
  Pong = 8,
  /** Graceful shutdown: no new streams; payload is a UTF-8 reason. */
  GoAway = 9,
}

const MAX_TYPE = FrameType.GoAway;

/** A wire-level violation; the connection that sent it is closed. */
export class ProtocolError extends Error {
  /**
   * The first bytes (up to 64) where a frame should have started, when the
   * violation is a bad magic: what the peer speaks instead.
   */
  readonly received: Uint8Array | undefined;
  /** Creates the error. */
  constructor(message: string, received?: Uint8Array) {
    super(message);
    this.name = "ProtocolError";
    this.received = received;
  }
}

/** One decoded frame. `payload` is a view valid until the next `push`. */
export interface Frame {
  /** Frame type. */
  type: FrameType;
  /** Stream the frame belongs to (0: connection-level). */
  streamId: number;
  /** Frame payload (a view). */
  payload: Uint8Array;
}

/** Writes a header for `type`/`streamId`/`length` into `target` at `offset`. */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  /** Frame type. */
  type: FrameType,
  /** Stream the frame belongs to (0: connection-level). */
  streamId: number,
  length: number,
): void {
  // Byte by byte: a DataView per frame would be an allocation on every write.
  const o = offset;
  target[o] = MAGIC >>> 24;
  target[o + 1] = (MAGIC >>> 16) & 0xff;
  target[o + 2] = (MAGIC >>> 8) & 0xff;
  target[o + 3] = MAGIC & 0xff;
  target[o + 4] = type;
  target[o + 5] = length >>> 24;
  target[o + 6] = (length >>> 16) & 0xff;
  target[o + 7] = (length >>> 8) & 0xff;
  target[o + 8] = length & 0xff;
  target[o + 9] = streamId >>> 24;
  target[o + 10] = (streamId >>> 16) & 0xff;
  target[o + 11] = (streamId >>> 8) & 0xff;
  target[o + 12] = streamId & 0xff;
}

/** Encodes a whole frame into a new buffer. */
export function encodeFrame(
  type: FrameType,
  /** Stream the frame belongs to (0: connection-level). */
  streamId: number,
  /** Frame payload (a view). */
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  writeHeader(out, 0, type, streamId, payload.length);
  out.set(payload, HEADER_SIZE);
  return out;
}

function describeMagic(bytes: Uint8Array): string {
  const text = String.fromCharCode(...bytes);
  if (text === "GET " || text === "POST" || text === "HEAD" || text === "PUT ") {
    return `an HTTP request ("${text.trim()}"): the control port speaks the Burrow protocol, not HTTP`;
  }
  if (bytes[0] === 0x16 && bytes[1] === 0x03) {
    return "a TLS handshake inside TLS: check that client and server agree on TLS";
  }
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `0x${hex}: the peer is not a Burrow endpoint`;
}

/** Options of {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest accepted payload in bytes. Default {@linkcode DEFAULT_MAX_PAYLOAD}. */
  maxPayload?: number;
}

/**
 * Incremental decoder. `push` takes bytes as they arrive and yields every
 * complete frame; a partial frame is kept for the next call.
 */
export class FrameDecoder {
  #maxPayload: number;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;

  /** Creates a decoder. */
  constructor(options: FrameDecoderOptions = {}) {
    this.#maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.#buf = new Uint8Array(64 * 1024);
  }

  /** Bytes buffered that do not yet make a whole frame. */
  get pending(): number {
    return this.#end - this.#start;
  }

  /**
   * The free tail of the internal buffer, for reading straight into it;
   * call {@linkcode FrameDecoder.commit} with the count read, then `frames()`.
   */
  writable(min = 16 * 1024): Uint8Array {
    this.#reserve(min);
    return this.#buf.subarray(this.#end);
  }

  /** Marks `n` bytes of {@linkcode FrameDecoder.writable} as filled. */
  commit(n: number): void {
    this.#end += n;
  }

  /** Appends `bytes` and yields the complete frames. */
  *push(bytes: Uint8Array): Generator<Frame> {
    this.#reserve(bytes.length);
    this.#buf.set(bytes, this.#end);
    this.#end += bytes.length;
    yield* this.frames();
  }

  /** Yields complete frames from what was committed. Payloads are views. */
  *frames(): Generator<Frame> {
    while (this.#end - this.#start >= HEADER_SIZE) {
      const buf = this.#buf;
      const s = this.#start;
      const magic = ((buf[s]! << 24) | (buf[s + 1]! << 16) | (buf[s + 2]! << 8) | buf[s + 3]!) >>>
        0;
      if (magic !== MAGIC) {
        throw new ProtocolError(
          `Bad magic ${describeMagic(buf.subarray(s, s + 4))}`,
          buf.slice(s, Math.min(this.#end, s + 64)),
        );
      }
      const type = buf[s + 4]!;
      if (type < 1 || type > MAX_TYPE) {
        throw new ProtocolError(`Unknown frame type ${type}: the peer may be a newer version`);
      }
      const length =
        ((buf[s + 5]! << 24) | (buf[s + 6]! << 16) | (buf[s + 7]! << 8) | buf[s + 8]!) >>> 0;
      if (length > this.#maxPayload) {
        throw new ProtocolError(
          `Frame length ${length} exceeds the maximum of ${this.#maxPayload} bytes`,
        );
      }
      if (this.#end - s < HEADER_SIZE + length) {
        this.#reserve(HEADER_SIZE + length - (this.#end - s));
        return;
      }
      const streamId =
        ((buf[s + 9]! << 24) | (buf[s + 10]! << 16) | (buf[s + 11]! << 8) | buf[s + 12]!) >>> 0;
      const payload = this.#buf.subarray(s + HEADER_SIZE, s + HEADER_SIZE + length);
      this.#start = s + HEADER_SIZE + length;
      yield { type, streamId, payload };
    }
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  /** Makes room for `more` bytes after what is buffered. */
  #reserve(more: number): void {
    if (this.#buf.length - this.#end >= more) return;
    const used = this.#end - this.#start;
    // Compact only when the bytes to move are few next to the space won;
    // otherwise grow, so a large frame arriving in small reads is not
    // copied again on every read.
    if (this.#buf.length - used >= more && this.#start >= used) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(this.#buf.length * 2, used + more));
      grown.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = grown;
    }
    this.#start = 0;
    this.#end = used;
  }
}

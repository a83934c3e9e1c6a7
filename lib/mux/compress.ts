/**
 * Per-tunnel gzip compression of data streams that never holds back
 * interactive traffic. Every chunk is compressed and flushed at once
 * (zlib `Z_SYNC_FLUSH`), so a 10-byte keystroke goes out as soon as it is
 * read; yet bulk text still shrinks, because each direction keeps one
 * streaming gzip context for the life of the connection instead of
 * compressing chunk by chunk.
 *
 * Memory per compressed connection: zlib's deflate state (about 256 KiB at
 * the default settings) and inflate state (about 44 KiB), a 16 KiB read
 * buffer, and decompressed output of at most a few tens of KiB at a time:
 * inflate output is pulled with back-pressure, so a decompression bomb is
 * written out piece by piece and never buffered whole.
 *
 * @module
 */

import { constants, createGunzip, createGzip, type Gunzip, type Gzip } from "node:zlib";
import type { RelayConn } from "./relay.ts";

/** Default of {@linkcode GzipDecoderOptions.maxOutput}: 16 MiB. */
const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;
/** Smallest read from the plain connection, so bulk data is not compressed in 1 KiB slivers. */
const MIN_RAW_READ = 16 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * Drives one node:zlib stream in paused mode: a call writes its input with a
 * sync flush (or ends the stream) and yields the output as zlib produces it.
 * Pulling with `read()` keeps zlib's back-pressure, so output waits in zlib
 * (bounded by the stream's high-water mark) until the caller asks for it.
 */
class Pump {
  readonly #z: Gzip | Gunzip;
  readonly #name: string;
  readonly #wrap: (error: Error) => Error;
  #error: Error | null = null;
  #ending = false;
  #ended = false;
  #closed = false;
  #busy = false;
  #signaled = false;
  #waiter: (() => void) | null = null;

  constructor(z: Gzip | Gunzip, name: string, wrap: (error: Error) => Error) {
    this.#z = z;
    this.#name = name;
    this.#wrap = wrap;
    z.on("readable", this.#wake);
    z.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    z.on("error", (error: Error) => this.#fail(error));
  }

  #wake = (): void => {
    this.#signaled = true;
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  };

  async #wait(): Promise<void> {
    if (!this.#signaled) await new Promise<void>((resolve) => (this.#waiter = resolve));
    this.#signaled = false;
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#error ??= this.#wrap(error);
    this.#wake();
  }

  #check(): void {
    if (this.#error) throw this.#error;
    if (this.#closed) throw new Error(`${this.#name} is closed`);
    if (this.#ending) throw new Error(`${this.#name} has already ended`);
    if (this.#busy) throw new Error(`${this.#name} is busy: calls must not overlap`);
  }

  /**
   * Writes `input` and flushes, or ends the stream when `input` is `null`;
   * yields the output until the flush (or end) is complete. Abandoning the
   * generator early closes the stream, as its state is then unknown.
   */
  async *run(input: Uint8Array | null): AsyncGenerator<Uint8Array> {
    this.#check();
    if (input !== null && input.length === 0) return;
    this.#busy = true;
    let flushed = false;
    let complete = false;
    try {
      if (input === null) {
        this.#ending = true;
        this.#z.end();
      } else {
        this.#z.write(input);
        // The flush callback, not the write callback, carries a data error
        // (under Deno the write callback sees `null` even for bad input).
        this.#z.flush(constants.Z_SYNC_FLUSH, (error?: Error | null) => {
          if (error) this.#fail(error);
          flushed = true;
          this.#wake();
        });
      }
      for (;;) {
        for (let chunk: Uint8Array | null; (chunk = this.#z.read()) !== null;) yield chunk;
        if (this.#error) throw this.#error;
        if (this.#closed) throw new Error(`${this.#name} is closed`);
        if (input === null ? this.#ended : flushed) break;
        await this.#wait();
      }
      complete = true;
    } finally {
      this.#busy = false;
      if (!complete) this.close();
    }
  }

  /** Releases zlib's memory; pending calls reject. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#z.destroy();
    this.#wake();
  }
}

/** Concatenates the pieces of `source`, failing once they exceed `max` bytes. */
async function collect(
  source: AsyncIterable<Uint8Array>,
  max: number,
  name: string,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const part of source) {
    total += part.length;
    if (total > max) {
      throw new RangeError(
        `${name} output exceeds "maxOutput" (${max} bytes): use pushEach to take it in pieces`,
      );
    }
    parts.push(part);
  }
  if (parts.length === 1) return new Uint8Array(parts[0]!);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Options of {@linkcode GzipEncoder}. */
export interface GzipEncoderOptions {
  /** zlib compression level, 0 (store) to 9 (smallest). Default 6. */
  level?: number;
}

/**
 * A streaming gzip compressor whose every {@linkcode GzipEncoder.push}
 * returns output that decodes to all input so far (sync flush), while the
 * compression context carries over from chunk to chunk.
 *
 * Calls must not overlap: await each before the next.
 *
 * @example
 * ```ts
 * import { GzipDecoder, GzipEncoder } from "./mod.ts";
 * using encoder = new GzipEncoder();
 * using decoder = new GzipDecoder();
 * const line = new TextEncoder().encode("ls -l\n");
 * // The peer can decode the line at once, before any further input.
 * const plain = await decoder.push(await encoder.push(line));
 * console.assert(new TextDecoder().decode(plain) === "ls -l\n");
 * await decoder.push(await encoder.end());
 * await decoder.end();
 * ```
 */
export class GzipEncoder {
  readonly #pump: Pump;

  /** Creates an encoder; its gzip header comes out with the first push. */
  constructor(options: GzipEncoderOptions = {}) {
    const gzip = createGzip({ level: options.level ?? constants.Z_DEFAULT_COMPRESSION });
    this.#pump = new Pump(
      gzip,
      "GzipEncoder",
      (error) => new Error(`Compression failed: ${error.message}`, { cause: error }),
    );
  }

  /**
   * Compresses `chunk` and flushes; resolves with all output produced by
   * this call (at most a little more than `chunk.length`). An empty chunk
   * yields empty output.
   */
  push(chunk: Uint8Array): Promise<Uint8Array> {
    return collect(this.#pump.run(chunk), Infinity, "GzipEncoder");
  }

  /** Finishes the gzip stream; resolves with its last bytes (the trailer). */
  end(): Promise<Uint8Array> {
    return collect(this.#pump.run(null), Infinity, "GzipEncoder");
  }

  /** Releases zlib's memory. Safe to call twice. */
  close(): void {
    this.#pump.close();
  }

  /** Same as {@linkcode GzipEncoder.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options of {@linkcode GzipDecoder}. */
export interface GzipDecoderOptions {
  /**
   * Most bytes a single {@linkcode GzipDecoder.push} or
   * {@linkcode GzipDecoder.end} may return; more is a `RangeError` and closes
   * the decoder. {@linkcode GzipDecoder.pushEach} has no such limit, as it
   * hands out the output in pieces. Default 16 MiB.
   */
  maxOutput?: number;
}

/**
 * A streaming gzip decompressor, the counterpart of
 * {@linkcode GzipEncoder}: each push returns everything the compressed bytes
 * so far decode to.
 *
 * Corrupt or truncated input rejects with an `Error` whose message starts
 * with `Compressed stream is corrupt: ` (zlib's reason follows, and the zlib
 * error is the `cause`); the decoder is unusable afterwards. Calls must not
 * overlap: await each before the next.
 *
 * @example
 * ```ts
 * import { GzipDecoder } from "./mod.ts";
 * import { gzipSync } from "node:zlib";
 * using decoder = new GzipDecoder();
 * const plain = await decoder.push(gzipSync(new TextEncoder().encode("hello")));
 * await decoder.end();
 * console.assert(new TextDecoder().decode(plain) === "hello");
 * ```
 */
export class GzipDecoder {
  readonly #pump: Pump;
  readonly #maxOutput: number;

  /** Creates a decoder. */
  constructor(options: GzipDecoderOptions = {}) {
    this.#maxOutput = options.maxOutput ?? DEFAULT_MAX_OUTPUT;
    this.#pump = new Pump(
      createGunzip(),
      "GzipDecoder",
      (error) => new Error(`Compressed stream is corrupt: ${error.message}`, { cause: error }),
    );
  }

  /**
   * Decompresses `chunk`; resolves with all output it completes.
   *
   * @throws {RangeError} when the output exceeds `maxOutput`.
   */
  push(chunk: Uint8Array): Promise<Uint8Array> {
    return collect(this.#pump.run(chunk), this.#maxOutput, "GzipDecoder");
  }

  /**
   * Decompresses `chunk`, yielding the output in pieces (of tens of KiB) as
   * zlib produces them; the next piece is only decompressed once the caller
   * asks for it, so even a decompression bomb needs little memory.
   * Breaking out of the loop early closes the decoder.
   *
   * @example
   * ```ts
   * import { GzipDecoder } from "./mod.ts";
   * import { gzipSync } from "node:zlib";
   * using decoder = new GzipDecoder();
   * const zeros = gzipSync(new Uint8Array(1 << 20)); // 1 KiB that inflates to 1 MiB
   * let total = 0;
   * for await (const piece of decoder.pushEach(zeros)) total += piece.length;
   * console.assert(total === 1 << 20);
   * ```
   */
  pushEach(chunk: Uint8Array): AsyncGenerator<Uint8Array> {
    return this.#pump.run(chunk);
  }

  /**
   * Ends the input and checks that the gzip stream was complete (trailer,
   * CRC and length); resolves with any output still pending.
   */
  end(): Promise<Uint8Array> {
    return collect(this.#pump.run(null), this.#maxOutput, "GzipDecoder");
  }

  /** Releases zlib's memory. Safe to call twice. */
  close(): void {
    this.#pump.close();
  }

  /** Same as {@linkcode GzipDecoder.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options of {@linkcode compressedConn}. */
export interface CompressedConnOptions {
  /** zlib compression level of the outgoing direction, 0 to 9. Default 6. */
  level?: number;
}

async function writeAll(conn: RelayConn, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) offset += await conn.write(data.subarray(offset));
}

class CompressedConn implements RelayConn {
  readonly #conn: RelayConn;
  readonly #encoder: GzipEncoder;
  readonly #decoder = new GzipDecoder();
  #raw: Uint8Array = EMPTY;
  #pending: Uint8Array = EMPTY;
  #eof = false;
  #closeWrite: Promise<void> | null = null;
  #closed = false;

  constructor(conn: RelayConn, options: CompressedConnOptions) {
    this.#conn = conn;
    this.#encoder = new GzipEncoder(options.level === undefined ? {} : { level: options.level });
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (p.length === 0) return 0;
    while (this.#pending.length === 0) {
      if (this.#eof) return null;
      const size = Math.max(p.length, MIN_RAW_READ);
      if (this.#raw.length < size) this.#raw = new Uint8Array(size);
      const n = await this.#conn.read(this.#raw);
      if (n === null) {
        this.#eof = true;
        this.#pending = await this.#encoder.end();
      } else if (n > 0) {
        this.#pending = await this.#encoder.push(this.#raw.subarray(0, n));
      }
    }
    const n = Math.min(p.length, this.#pending.length);
    p.set(this.#pending.subarray(0, n));
    this.#pending = this.#pending.subarray(n);
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    for await (const piece of this.#decoder.pushEach(p)) await writeAll(this.#conn, piece);
    return p.length;
  }

  closeWrite(): Promise<void> {
    return this.#closeWrite ??= (async () => {
      await writeAll(this.#conn, await this.#decoder.end());
      await this.#conn.closeWrite();
    })();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } finally {
      this.#encoder.close();
      this.#decoder.close();
    }
  }
}

/**
 * Wraps the plain connection side of a {@linkcode relay} so that the
 * stream side carries gzip: bytes read from `conn` come out compressed (each
 * read flushed at once, so interactive traffic never waits), and compressed
 * bytes written in are decompressed onto `conn`. Use it on both ends of a
 * tunnel (the server wraps the visitor's connection, the client the local
 * service's), so the data stream between them is gzip both ways.
 *
 * `read` returns `null` after the gzip trailer; `closeWrite` verifies the
 * incoming gzip stream first and rejects with `Compressed stream is corrupt:
 * ...` when it was truncated or damaged, as does `write` for damaged data.
 * `close` closes `conn` and releases zlib's memory; it is safe to call twice.
 *
 * @example
 * ```ts
 * import { compressedConn } from "./mod.ts";
 * import { memoryPipe } from "../transport/memory.ts";
 * const [visitor, near] = memoryPipe();
 * const conn = compressedConn(near);
 * await visitor.write(new TextEncoder().encode("GET / HTTP/1.1\r\n"));
 * const gzip = new Uint8Array(1024);
 * const n = await conn.read(gzip); // gzip header and the flushed line
 * console.assert(n !== null && gzip[0] === 0x1f && gzip[1] === 0x8b);
 * conn.close();
 * ```
 */
export function compressedConn(conn: RelayConn, options: CompressedConnOptions = {}): RelayConn {
  return new CompressedConn(conn, options);
}

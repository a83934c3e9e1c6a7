/**
 * One data stream of a {@linkcode Mux}: ordered bytes each way with its own
 * credit-based flow control, half-close (FIN) and reset.
 *
 * @module
 */

import { HEADER_SIZE } from "../protocol/mod.ts";
import type { BufferPool } from "./_pool.ts";

/** The part of the multiplexer a stream talks to. */
export interface StreamHost {
  /** Enqueues a data frame built in place in `frame`; resolves once written. */
  sendData(stream: MuxStream, frame: Uint8Array, length: number): Promise<void>;
  /** Grants the peer `increment` more bytes on `stream`. */
  sendWindow(stream: MuxStream, increment: number): void;
  /** Queues a FIN after the stream's data. */
  sendFin(stream: MuxStream): void;
  /** Queues a reset with its reason. */
  sendReset(stream: MuxStream, reason: string): void;
  /** Called once both directions are finished. */
  release(stream: MuxStream): void;
  /** Smoothed round-trip time in ms, 0 when not yet measured. */
  readonly rtt: number;
  /** Largest data payload per frame in bytes. */
  readonly maxFrameData: number;
  /** Largest receive window per stream in bytes. */
  readonly maxWindow: number;
  /** Receive buffers shared by the streams of one connection. */
  readonly pool: BufferPool;
}

/** Raised by `read`/`write` once the stream was reset by either side. */
export class StreamResetError extends Error {
  /** Creates the error. */
  constructor(reason: string) {
    super(reason);
    this.name = "StreamResetError";
  }
}

/**
 * A bidirectional stream. Obtain one from `Mux.open` or the mux's `onStream`.
 *
 * @example
 * ```ts ignore
 * const stream = mux.open({ tunnel: "ssh" });
 * await stream.write(new TextEncoder().encode("hello"));
 * await stream.closeWrite();
 * for (let chunk; (chunk = await stream.read()) !== null;) console.log(chunk.length);
 * ```
 */
export class MuxStream {
  /** Stream id: odd when opened by the client side, even by the server side. */
  readonly id: number;
  /** Metadata sent with the open (JSON). */
  readonly meta: Record<string, unknown>;

  #host: StreamHost;
  // Receive side.
  #chunks: Uint8Array[] = [];
  #borrowed: Uint8Array | null = null;
  #head = 0;
  #buffered = 0;
  /** The reader waiting for data: handed its chunk (or end, or reset) as soon as there is one. */
  #reader: { resolve: (chunk: Uint8Array | null) => void; reject: (error: Error) => void } | null =
    null;
  #remoteFin = false;
  #window: number;
  #granted: number;
  #consumed = 0;
  #received = 0;
  #lastGrantAt = 0;
  // Send side.
  #credit: number;
  #creditWaiter: (() => void) | null = null;
  #creditListeners: Array<() => void> = [];
  #writeTail: Promise<void> = Promise.resolve();
  #queuedWrites = 0;
  #localFin = false;
  #reset: StreamResetError | null = null;
  #readDone = false;
  #released = false;

  /** Used by the multiplexer only. */
  constructor(id: number, meta: Record<string, unknown>, host: StreamHost, window: number) {
    this.id = id;
    this.meta = meta;
    this.#host = host;
    this.#window = window;
    this.#granted = window;
    this.#credit = window;
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.#buffered;
  }

  /** The current receive window (grows with measured throughput). */
  get window(): number {
    return this.#window;
  }

  /** Whether the stream was reset. */
  get isReset(): boolean {
    return this.#reset !== null;
  }

  /** Whether writes are still possible (not reset, no FIN sent). */
  get writable(): boolean {
    return !this.#reset && !this.#localFin;
  }

  /**
   * Bytes the peer lets us send now. A write within it and with no earlier
   * write still waiting goes out at once; a larger one waits for the peer.
   */
  get credit(): number {
    return this.#queuedWrites === 0 && !this.#reset && !this.#localFin ? this.#credit : 0;
  }

  /**
   * Resolves at the peer's next window update, or at once after a reset or
   * FIN: for writers that would rather drop than wait inside `write` (UDP).
   */
  creditChanged(): Promise<void> {
    if (this.#reset || this.#localFin) return Promise.resolve();
    return new Promise((resolve) => this.#creditListeners.push(resolve));
  }

  /**
   * Next chunk of data, or `null` after the peer's FIN. The chunk is the
   * caller's to keep.
   *
   * @throws {StreamResetError} when the stream was reset.
   */
  async read(): Promise<Uint8Array | null> {
    const chunk = await this.readBorrowed();
    if (chunk === null) return chunk;
    this.#borrowed = null;
    const owned = chunk.slice();
    this.#host.pool.release(chunk);
    return owned;
  }

  /**
   * Like {@linkcode MuxStream.read}, without a copy: the chunk is valid only
   * until the next `read` or `readBorrowed` call, when its buffer is reused.
   * Not `async`: a reader that waits is handed its chunk by the frame that
   * brings it, one promise hop sooner.
   */
  readBorrowed(): Promise<Uint8Array | null> {
    if (this.#borrowed) {
      this.#host.pool.release(this.#borrowed);
      this.#borrowed = null;
    }
    try {
      const now = this.#take();
      if (now !== undefined) return Promise.resolve(now);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => (this.#reader = { resolve, reject }));
  }

  /**
   * The next chunk, now borrowed; `null` at the end; `undefined` when none
   * has arrived yet.
   *
   * @throws {StreamResetError} when the stream was reset.
   */
  #take(): Uint8Array | null | undefined {
    if (this.#reset) throw this.#reset;
    if (this.#head === this.#chunks.length) {
      if (!this.#remoteFin) return undefined;
      if (!this.#readDone) {
        this.#readDone = true;
        this.#maybeRelease();
      }
      return null;
    }
    const chunk = this.#chunks[this.#head]!;
    this.#chunks[this.#head++] = EMPTY;
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#head = 0;
    }
    this.#buffered -= chunk.length;
    this.#consumed += chunk.length;
    this.#grant();
    this.#borrowed = chunk;
    return chunk;
  }

  /**
   * Sends a frame prepared in place: `frame` holds {@linkcode HEADER_SIZE}
   * free bytes followed by `length` bytes of payload. Resolves once the
   * bytes are on the wire, so the caller may reuse `frame`. Calls may
   * overlap; their bytes go out in call order.
   */
  writeFrame(frame: Uint8Array, length: number): Promise<void> {
    if (
      this.#queuedWrites === 0 && this.#credit >= length && length <= this.#host.maxFrameData &&
      !this.#reset && !this.#localFin
    ) {
      this.#credit -= length;
      return this.#host.sendData(this, frame, length);
    }
    // Wait for credit behind any earlier write, so order is kept.
    this.#queuedWrites++;
    let written: Promise<void> = Promise.resolve();
    const queued = this.#writeTail.then(async () => {
      try {
        written = (await this.#sendPieces(frame, length)).written;
      } finally {
        this.#queuedWrites--;
      }
    });
    this.#writeTail = queued.catch(() => {});
    return queued.then(() => written);
  }

  /** Sends `data` (copied into frames); resolves once written. */
  write(data: Uint8Array): Promise<void> {
    const frame = new Uint8Array(HEADER_SIZE + data.length);
    frame.set(data, HEADER_SIZE);
    return this.writeFrame(frame, data.length);
  }

  /** Enqueues `length` bytes as frames as credit allows; `written` settles with the last one. */
  async #sendPieces(frame: Uint8Array, length: number): Promise<{ written: Promise<void> }> {
    let offset = 0;
    let last: Promise<void> = Promise.resolve();
    while (offset < length) {
      const n = await this.#takeCredit(length - offset);
      if (offset === 0 && n === length) {
        return { written: this.#host.sendData(this, frame, length) };
      }
      const piece = new Uint8Array(HEADER_SIZE + n);
      piece.set(frame.subarray(HEADER_SIZE + offset, HEADER_SIZE + offset + n), HEADER_SIZE);
      last = this.#host.sendData(this, piece, n);
      last.catch(() => {});
      offset += n;
    }
    return { written: last };
  }

  /** Half-closes: the peer reads `null` after the data already sent. Safe to call twice. */
  closeWrite(): void {
    if (this.#localFin || this.#reset) return;
    this.#localFin = true;
    this.#notifyCredit();
    this.#host.sendFin(this);
    this.#maybeRelease();
  }

  /** Aborts both directions and tells the peer why. Safe to call twice. */
  reset(reason = "reset"): void {
    if (this.#reset) return;
    this.#host.sendReset(this, reason);
    this.#abort(new StreamResetError(reason));
  }

  // ---- called by the multiplexer ----

  /** @internal Data arrived; `false` when it exceeds the granted window. */
  onData(payload: Uint8Array): boolean {
    if (this.#reset || this.#remoteFin) return true; // late data after our reset: drop
    this.#received += payload.length;
    if (this.#received > this.#granted) return false;
    const copy = this.#host.pool.acquire(payload.length).subarray(0, payload.length);
    copy.set(payload);
    this.#chunks.push(copy);
    this.#buffered += payload.length;
    this.#wakeReader();
    return true;
  }

  /** @internal */
  onWindow(increment: number): void {
    this.#credit += increment;
    const waiter = this.#creditWaiter;
    this.#creditWaiter = null;
    waiter?.();
    this.#notifyCredit();
  }

  #notifyCredit(): void {
    if (this.#creditListeners.length === 0) return;
    const listeners = this.#creditListeners;
    this.#creditListeners = [];
    for (const listener of listeners) listener();
  }

  /** @internal */
  onFin(): void {
    this.#remoteFin = true;
    this.#wakeReader();
  }

  /** @internal The peer reset the stream, or the connection ended. */
  onReset(reason: string): void {
    this.#abort(new StreamResetError(reason));
  }

  #abort(error: StreamResetError): void {
    if (this.#reset) return;
    this.#reset = error;
    for (let i = this.#head; i < this.#chunks.length; i++) {
      this.#host.pool.release(this.#chunks[i]!);
    }
    this.#chunks.length = 0;
    this.#head = 0;
    this.#buffered = 0;
    this.#wakeReader();
    const waiter = this.#creditWaiter;
    this.#creditWaiter = null;
    waiter?.();
    this.#notifyCredit();
    this.#release();
  }

  #wakeReader(): void {
    const reader = this.#reader;
    if (reader === null) return;
    let now: Uint8Array | null | undefined;
    try {
      now = this.#take();
    } catch (error) {
      this.#reader = null;
      reader.reject(error as Error);
      return;
    }
    if (now === undefined) return;
    this.#reader = null;
    reader.resolve(now);
  }

  async #takeCredit(wanted: number): Promise<number> {
    for (;;) {
      if (this.#reset) throw this.#reset;
      if (this.#localFin) throw new StreamResetError("Write after closeWrite");
      if (this.#credit > 0) {
        const n = Math.min(wanted, this.#credit, this.#host.maxFrameData);
        this.#credit -= n;
        return n;
      }
      await new Promise<void>((resolve) => (this.#creditWaiter = resolve));
    }
  }

  /**
   * Sends a window update once half the window is consumed. When updates
   * follow each other faster than two round trips, the window limits the
   * throughput: double it (up to the host's maximum).
   */
  #grant(): void {
    if (this.#remoteFin) return;
    const unannounced = this.#consumed + this.#window - this.#granted;
    if (unannounced < this.#window / 2) return;
    const now = performance.now();
    const rtt = this.#host.rtt;
    if (
      rtt > 0 && this.#lastGrantAt > 0 && now - this.#lastGrantAt < 2 * rtt &&
      this.#window < this.#host.maxWindow
    ) {
      this.#window = Math.min(this.#window * 2, this.#host.maxWindow);
    }
    this.#lastGrantAt = now;
    const increment = this.#consumed + this.#window - this.#granted;
    this.#granted += increment;
    this.#host.sendWindow(this, increment);
  }

  #maybeRelease(): void {
    if (this.#localFin && this.#readDone) this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#host.release(this);
  }
}

const EMPTY = new Uint8Array(0);

/**
 * The multiplexer: many {@linkcode MuxStream}s and a control channel over one
 * duplex connection, with per-stream credit flow control, ping/RTT and
 * graceful go-away.
 *
 * @module
 */

import {
  DEFAULT_MAX_PAYLOAD,
  FrameDecoder,
  FrameType,
  HEADER_SIZE,
  ProtocolError,
  writeHeader,
} from "../protocol/mod.ts";
import type { Duplex } from "../transport/mod.ts";
import { MuxStream, type StreamHost } from "./stream.ts";
import { BufferPool } from "./_pool.ts";

/** Options of {@linkcode Mux}. */
export interface MuxOptions {
  /** Which side: decides stream id parity. */
  role: "client" | "server";
  /** Called for every stream the peer opens. */
  onStream?: (stream: MuxStream) => void;
  /** Called when the peer announces a graceful shutdown. */
  onGoAway?: (reason: string) => void;
  /** First receive window per stream in bytes. Default 256 KiB. */
  initialWindow?: number;
  /** Largest receive window per stream in bytes. Default 16 MiB. */
  maxWindow?: number;
  /** Largest data payload per frame. Default 64 KiB. */
  maxFrameData?: number;
  /** Largest frame accepted from the peer. Default 1 MiB. */
  maxPayload?: number;
  /** Milliseconds between pings measuring the RTT; 0 disables. Default 10000. */
  pingInterval?: number;
  /** Most control messages queued unread before the peer is cut off. Default 1024. */
  maxQueuedControl?: number;
}

/**
 * What opens the streams that carry a tunnel's visitors: the client's own
 * connection (a {@linkcode Mux}), or, in a cluster, a relay to the node that
 * holds the client.
 */
export interface StreamOpener {
  /** Opens a stream whose far end receives `meta`. */
  open(meta: Record<string, unknown>): MuxStream;
  /** Whether no stream can be opened any more. */
  readonly isClosed: boolean;
  /** Whether the far end announced a graceful shutdown (no new streams). */
  readonly peerGoingAway: boolean;
  /** Largest data payload per frame in bytes. */
  readonly maxFrameData: number;
  /**
   * Resolves `true` once a stream can be opened, `false` when `ms` pass
   * first. Only openers that can become ready later have it (a relay whose
   * link is being dialled); a client's mux is ready or closed.
   */
  ready?(ms: number): Promise<boolean>;
}

/** The peer ended the connection cleanly (EOF between frames). */
export class PeerClosedError extends Error {
  /** Creates the error. */
  constructor() {
    super("Connection closed by peer");
    this.name = "PeerClosedError";
  }
}

interface Pending {
  bytes: Uint8Array;
  done: (() => void) | null;
  fail: ((e: Error) => void) | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const COALESCE_LIMIT = 64 * 1024;
const LARGE_FRAME = 16 * 1024;

/**
 * A multiplexed connection.
 *
 * @example
 * ```ts
 * import { Mux } from "./mux.ts";
 * import { memoryPipe } from "../transport/memory.ts";
 * const [a, b] = memoryPipe();
 * const server = new Mux(a, {
 *   role: "server",
 *   pingInterval: 0,
 *   onStream: async (s) => {
 *     for (let c; (c = await s.read()) !== null;) await s.write(c);
 *     s.closeWrite();
 *   },
 * });
 * const client = new Mux(b, { role: "client", pingInterval: 0 });
 * const stream = client.open({ hello: 1 });
 * await stream.write(new Uint8Array([1, 2, 3]));
 * stream.closeWrite();
 * console.assert((await stream.read())?.length === 3);
 * client.close();
 * server.close();
 * ```
 */
export class Mux implements StreamHost, StreamOpener {
  /** Largest data payload per frame in bytes. */
  readonly maxFrameData: number;
  /** Largest receive window per stream in bytes. */
  readonly maxWindow: number;
  /** @internal */
  readonly pool: BufferPool = new BufferPool();

  #conn: Duplex;
  #options: MuxOptions;
  #initialWindow: number;
  #streams = new Map<number, MuxStream>();
  #nextId: number;
  #lastPeerId = 0;
  #urgent: Pending[] = [];
  #data: Pending[] = [];
  #writing = false;
  #scratch = new Uint8Array(COALESCE_LIMIT + HEADER_SIZE);
  #control: Uint8Array[] = [];
  #controlWaiter: (() => void) | null = null;
  #closedError: Error | null = null;
  #closed: Promise<Error | null>;
  #resolveClosed!: (e: Error | null) => void;
  #goingAway = false;
  #peerGoingAway = false;
  #rtt = 0;
  #pings = new Map<bigint, { sent: number; resolve: (rtt: number) => void }>();
  #pingSeq = 0n;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #bytesIn = 0;
  #bytesOut = 0;

  /** Starts reading `conn` at once. */
  constructor(conn: Duplex, options: MuxOptions) {
    this.#conn = conn;
    this.#options = options;
    this.#initialWindow = options.initialWindow ?? 256 * 1024;
    this.maxWindow = options.maxWindow ?? 16 * 1024 * 1024;
    this.maxFrameData = options.maxFrameData ?? 128 * 1024;
    this.#nextId = options.role === "client" ? 1 : 2;
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#readLoop();
    const interval = options.pingInterval ?? 10_000;
    if (interval > 0) {
      this.ping().catch(() => {});
      this.#pingTimer = setInterval(() => this.ping().catch(() => {}), interval);
    }
  }

  /** Smoothed round-trip time in ms; 0 until the first pong. */
  get rtt(): number {
    return this.#rtt;
  }

  /** Open streams. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Bytes read from and written to the connection. */
  get bytes(): { in: number; out: number } {
    return { in: this.#bytesIn, out: this.#bytesOut };
  }

  /** Whether the mux is closed. */
  get isClosed(): boolean {
    return this.#closedError !== null;
  }

  /** Resolves when the connection ends, with its error (`null` after `close()`). */
  get closed(): Promise<Error | null> {
    return this.#closed;
  }

  /** Whether the peer announced a graceful shutdown. */
  get peerGoingAway(): boolean {
    return this.#peerGoingAway;
  }

  /** Opens a stream whose peer receives `meta`. */
  open(meta: Record<string, unknown>): MuxStream {
    if (this.#closedError) throw this.#closedError;
    if (this.#peerGoingAway) throw new Error("Peer is going away: no new streams");
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = new MuxStream(id, meta, this, this.#initialWindow);
    this.#streams.set(id, stream);
    this.#enqueue(
      this.#data,
      this.#frame(FrameType.Open, id, encoder.encode(JSON.stringify(meta))),
    );
    return stream;
  }

  /** Sends one control message payload on stream 0. */
  sendControl(payload: Uint8Array): void {
    if (this.#closedError) return;
    this.#enqueue(this.#urgent, this.#frame(FrameType.Control, 0, payload));
  }

  /** Next control message payload; `null` once the connection ended. */
  async recvControl(): Promise<Uint8Array | null> {
    while (this.#control.length === 0) {
      if (this.#closedError) return null;
      await new Promise<void>((resolve) => (this.#controlWaiter = resolve));
    }
    return this.#control.shift()!;
  }

  /** Measures one round trip in ms. */
  ping(): Promise<number> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const seq = ++this.#pingSeq;
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setBigUint64(0, seq);
    return new Promise((resolve) => {
      this.#pings.set(seq, { sent: performance.now(), resolve });
      this.#enqueue(this.#urgent, this.#frame(FrameType.Ping, 0, payload));
    });
  }

  /** Announces a graceful shutdown: the peer opens no new streams. */
  goAway(reason: string): void {
    if (this.#goingAway || this.#closedError) return;
    this.#goingAway = true;
    this.#enqueue(this.#urgent, this.#frame(FrameType.GoAway, 0, encoder.encode(reason)));
  }

  /** Resolves once every queued frame is written (or the mux closed). */
  async flush(): Promise<void> {
    if (this.#closedError || (!this.#writing && !this.#urgent.length && !this.#data.length)) {
      return;
    }
    await new Promise<void>((resolve) => {
      this.#enqueue(this.#data, { bytes: new Uint8Array(0), done: resolve, fail: () => resolve() });
    });
  }

  /** Closes the connection and resets every stream. Safe to call twice. */
  close(error: Error | null = null): void {
    if (this.#closedError) return;
    this.#closedError = error ?? new Error("Connection closed");
    clearInterval(this.#pingTimer);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    for (const stream of this.#streams.values()) stream.onReset(this.#closedError.message);
    this.#streams.clear();
    for (const p of [...this.#urgent, ...this.#data]) p.fail?.(this.#closedError);
    this.#urgent.length = 0;
    this.#data.length = 0;
    this.#pings.clear();
    const waiter = this.#controlWaiter;
    this.#controlWaiter = null;
    waiter?.();
    this.#resolveClosed(error);
  }

  // ---- StreamHost ----

  /** @internal */
  sendData(stream: MuxStream, frame: Uint8Array, length: number): Promise<void> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    writeHeader(frame, 0, FrameType.Data, stream.id, length);
    return new Promise((done, fail) => {
      this.#enqueue(this.#data, { bytes: frame.subarray(0, HEADER_SIZE + length), done, fail });
    });
  }

  /** @internal */
  sendWindow(stream: MuxStream, increment: number): void {
    const payload = new Uint8Array(4);
    new DataView(payload.buffer).setUint32(0, increment);
    this.#enqueue(this.#urgent, this.#frame(FrameType.Window, stream.id, payload));
  }

  /** @internal */
  sendFin(stream: MuxStream): void {
    // After the data already queued for this stream.
    this.#enqueue(this.#data, this.#frame(FrameType.Fin, stream.id));
  }

  /** @internal */
  sendReset(stream: MuxStream, reason: string): void {
    this.#enqueue(this.#urgent, this.#frame(FrameType.Reset, stream.id, encoder.encode(reason)));
  }

  /** @internal */
  release(stream: MuxStream): void {
    this.#streams.delete(stream.id);
  }

  // ---- writing ----

  #frame(type: FrameType, streamId: number, payload?: Uint8Array): Pending {
    const length = payload?.length ?? 0;
    const bytes = new Uint8Array(HEADER_SIZE + length);
    writeHeader(bytes, 0, type, streamId, length);
    if (payload) bytes.set(payload, HEADER_SIZE);
    return { bytes, done: null, fail: null };
  }

  #enqueue(queue: Pending[], item: Pending): void {
    if (this.#closedError) {
      item.fail?.(this.#closedError);
      return;
    }
    queue.push(item);
    if (!this.#writing) {
      // Started after the current microtasks: the frames other streams queue in the same turn
      // of the event loop (one per ready visitor) then go out in one write.
      this.#writing = true;
      queueMicrotask(this.#startWriting);
    }
  }

  #startWriting = () => void this.#writeLoop();

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    const batch: Pending[] = [];
    try {
      while (!this.#closedError && (this.#urgent.length || this.#data.length)) {
        // Take urgent frames first, then data, coalescing small frames.
        let size = 0;
        for (;;) {
          const queue = this.#urgent.length ? this.#urgent : this.#data;
          const next = queue[0];
          if (!next) break;
          // Large frames go out alone, straight from their buffer.
          const large = next.bytes.length > LARGE_FRAME;
          if (batch.length && (large || size + next.bytes.length > COALESCE_LIMIT)) break;
          queue.shift();
          batch.push(next);
          size += next.bytes.length;
          if (large) break;
        }
        let out: Uint8Array;
        if (batch.length === 1) {
          out = batch[0]!.bytes;
        } else {
          let off = 0;
          for (const p of batch) {
            this.#scratch.set(p.bytes, off);
            off += p.bytes.length;
          }
          out = this.#scratch.subarray(0, off);
        }
        await this.#writeAll(out);
        this.#bytesOut += out.length;
        for (const p of batch) p.done?.();
        batch.length = 0;
      }
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      for (const p of batch) p.fail?.(e);
      this.close(e);
    } finally {
      this.#writing = false;
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  // ---- reading ----

  async #readLoop(): Promise<void> {
    const frames = new FrameDecoder({
      maxPayload: this.#options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
    });
    try {
      for (;;) {
        const n = await this.#conn.read(frames.writable(32 * 1024));
        if (n === null) {
          if (frames.pending > 0) {
            throw new ProtocolError(`Connection ended inside a frame (${frames.pending} bytes)`);
          }
          this.close(new PeerClosedError());
          return;
        }
        this.#bytesIn += n;
        frames.commit(n);
        for (const frame of frames.frames()) {
          this.#handle(frame.type, frame.streamId, frame.payload);
        }
      }
    } catch (error) {
      this.close(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #handle(type: FrameType, id: number, payload: Uint8Array): void {
    switch (type) {
      case FrameType.Data: {
        const stream = this.#streams.get(id);
        if (stream && !stream.onData(payload)) {
          throw new ProtocolError(`Stream ${id} exceeded its flow-control window`);
        }
        return;
      }
      case FrameType.Window: {
        if (payload.length !== 4) throw new ProtocolError("Window frame must carry 4 bytes");
        const increment = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
        this.#streams.get(id)?.onWindow(increment);
        return;
      }
      case FrameType.Open:
        return this.#handleOpen(id, payload);
      case FrameType.Fin:
        this.#streams.get(id)?.onFin();
        return;
      case FrameType.Reset: {
        const stream = this.#streams.get(id);
        if (stream) {
          this.#streams.delete(id);
          stream.onReset(decoder.decode(payload) || "Reset by peer");
        }
        return;
      }
      case FrameType.Control: {
        if (id !== 0) throw new ProtocolError(`Control frame on stream ${id}; expected 0`);
        if (this.#control.length >= (this.#options.maxQueuedControl ?? 1024)) {
          throw new ProtocolError("Too many unread control messages");
        }
        this.#control.push(payload.slice());
        const waiter = this.#controlWaiter;
        this.#controlWaiter = null;
        waiter?.();
        return;
      }
      case FrameType.Ping:
        if (payload.length !== 8) throw new ProtocolError("Ping frame must carry 8 bytes");
        this.#enqueue(this.#urgent, this.#frame(FrameType.Pong, 0, payload));
        return;
      case FrameType.Pong: {
        if (payload.length !== 8) throw new ProtocolError("Pong frame must carry 8 bytes");
        const seq = new DataView(payload.buffer, payload.byteOffset, 8).getBigUint64(0);
        const ping = this.#pings.get(seq);
        if (!ping) return;
        this.#pings.delete(seq);
        const sample = performance.now() - ping.sent;
        this.#rtt = this.#rtt === 0 ? sample : this.#rtt * 0.875 + sample * 0.125;
        ping.resolve(sample);
        return;
      }
      case FrameType.GoAway:
        this.#peerGoingAway = true;
        this.#options.onGoAway?.(decoder.decode(payload));
        return;
    }
  }

  #handleOpen(id: number, payload: Uint8Array): void {
    const peerParity = this.#options.role === "client" ? 0 : 1;
    if (id === 0 || id % 2 !== peerParity || id <= this.#lastPeerId) {
      throw new ProtocolError(`Stream id ${id} is not a valid new stream of the peer`);
    }
    this.#lastPeerId = id;
    let meta: unknown;
    try {
      meta = JSON.parse(decoder.decode(payload));
    } catch {
      throw new ProtocolError(`Open frame of stream ${id} has no valid JSON metadata`);
    }
    if (typeof meta !== "object" || meta === null || Array.isArray(meta)) {
      throw new ProtocolError(`Open frame of stream ${id} must carry a JSON object`);
    }
    const stream = new MuxStream(id, meta as Record<string, unknown>, this, this.#initialWindow);
    if (this.#goingAway || !this.#options.onStream) {
      this.sendReset(stream, this.#goingAway ? "Going away" : "Streams not accepted");
      return;
    }
    this.#streams.set(id, stream);
    this.#options.onStream(stream);
  }
}

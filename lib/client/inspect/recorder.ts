/**
 * The inspector's memory: a bounded ring of recorded exchanges, and the
 * recorder that the local side hands copies of an HTTP tunnel's bytes to.
 *
 * The relay never waits on the recorder: a copy of each chunk goes into a
 * bounded queue (a synchronous push), drained through each connection's
 * {@linkcode HttpTap} once the relay's current callback has returned (a
 * microtask: the relay's read or write is under way by then, and the bytes
 * just copied are still in the CPU's cache; a timer instead costs tens of
 * µs of wake-ups each time on a VM, and parses bytes gone cold). When the
 * queue is full (more than `queueBytes` queued within one task), the chunk is
 * dropped and its connection stops being recorded (counted in `dropped`);
 * the exchanges it had under way are reported then, marked `incomplete`.
 *
 * Memory bound: the ring holds at most `maxRequests` entries of at most
 * `2 × (maxBody + MAX_HEAD)` bytes each (plus small fields); the queue at
 * most `queueBytes`; each open connection's tap at most `MAX_HEAD` + two
 * bodies of `maxBody` + `MAX_PENDING` requests in flight. With the defaults
 * (200 entries, 64 KiB bodies, 32 KiB heads, 4 MiB queue) the ring stays
 * under 200 × 192 KiB = 37.5 MiB even for the largest heads, and typically
 * holds far less.
 *
 * @example
 * ```ts
 * import { ExchangeRing } from "./recorder.ts";
 * const ring = new ExchangeRing({ maxRequests: 2 });
 * console.assert(ring.list().length === 0);
 * ```
 *
 * @module
 */

import { BodyArena, HttpTap, type RecordedExchange, releaseMessage } from "./http_tap.ts";

/** Where a recorded exchange went, for replays. */
export interface LocalTarget {
  /** Local service host. */
  hostname: string;
  /** Local service port. */
  port: number;
}

/** One exchange in the ring. */
export interface InspectedExchange extends RecordedExchange {
  /** Increasing from 1 for the life of the client. */
  id: number;
  /** Tunnel name. */
  tunnel: string;
  /** The visitor's address as the server saw it (`replay` for replays). */
  remote: string;
  /** The local service it went to. */
  local: LocalTarget;
  /** Wall-clock time of the request's first byte, ms since the epoch. */
  time: number;
  /** The id of the exchange this one replays. */
  replayOf?: number;
  /**
   * Why the exchange is partial, when it is: `queue_full` when the
   * recorder's queue was full and the rest of its connection's bytes went
   * unrecorded (what it shows stands as far as it was read).
   */
  incomplete?: "queue_full";
}

/** What a ring's listeners hear: an entry added, or every entry forgotten. */
export type RingEvent = { type: "add"; entry: InspectedExchange } | { type: "clear" };

/** Options of {@linkcode ExchangeRing}. */
export interface ExchangeRingOptions {
  /** Entries kept; the oldest goes first. Default 200. */
  maxRequests?: number;
  /** Called with each entry the ring drops (the oldest beyond the bound, or all on `clear`). */
  onEvict?: (entry: InspectedExchange) => void;
}

/** The last `maxRequests` exchanges, with listeners for new ones. */
export class ExchangeRing {
  #max: number;
  #onEvict: ((entry: InspectedExchange) => void) | undefined;
  #entries: InspectedExchange[] = [];
  #nextId = 1;
  #listeners = new Set<(event: RingEvent) => void>();

  /** A ring of `options.maxRequests` entries. */
  constructor(options: ExchangeRingOptions = {}) {
    this.#max = Math.max(1, options.maxRequests ?? 200);
    this.#onEvict = options.onEvict;
  }

  /** Adds an exchange (its `id` is set here), dropping the oldest beyond the bound. */
  add(entry: Omit<InspectedExchange, "id"> & { id?: number }): InspectedExchange {
    entry.id = this.#nextId++;
    const added = entry as InspectedExchange;
    this.#entries.push(added);
    if (this.#entries.length > this.#max) {
      const dropped = this.#entries.shift()!;
      this.#onEvict?.(dropped);
    }
    this.#tell({ type: "add", entry: added });
    return added;
  }

  /** Entries, newest first. */
  list(): InspectedExchange[] {
    return this.#entries.slice().reverse();
  }

  /** The entry with `id`, if still kept. */
  get(id: number): InspectedExchange | undefined {
    return this.#entries.find((e) => e.id === id);
  }

  /** Forgets every entry (ids keep increasing). */
  clear(): void {
    const dropped = this.#entries;
    this.#entries = [];
    if (this.#onEvict) { for (const entry of dropped) this.#onEvict(entry); }
    this.#tell({ type: "clear" });
  }

  #tell(event: RingEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch { /* a listener's failure is its own */ }
    }
  }

  /** Listeners subscribed now (open event streams of the API). */
  get listeners(): number {
    return this.#listeners.size;
  }

  /** Calls `listener` with each new entry and each clearing until the returned function is called. */
  subscribe(listener: (event: RingEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** Options of {@linkcode Recorder}. */
export interface RecorderOptions {
  /** Entries kept. Default 200. */
  maxRequests?: number;
  /** Body bytes kept per message. Default 64 KiB. */
  maxBody?: number;
  /** Bytes waiting to be parsed at most; beyond, connections stop being recorded. Default 4 MiB. */
  queueBytes?: number;
}

/** What a connection of a tunnel is. */
export interface ConnInfo {
  /** Tunnel name. */
  tunnel: string;
  /** Visitor address. */
  remote: string;
  /** Local service. */
  local: LocalTarget;
}

/** 0: visitor → service, 1: service → visitor, 2: end, 3: cut (bytes dropped from here on). */
type Dir = 0 | 1 | 2 | 3;

interface Queued {
  conn: ConnRecording;
  dir: Dir;
  /** Where its copy starts in the slab. */
  offset: number;
  length: number;
}

const EMPTY = new Uint8Array(0);

/** One connection's recording: what the relay side calls, synchronously and cheaply. */
export class ConnRecording {
  #recorder: Recorder;
  /** Set once the connection stops being recorded (queue full, or not HTTP any more). */
  off = false;
  /** The parser, used by the recorder's drain only. */
  readonly tap: HttpTap;

  /** A recording of one connection into `recorder`. */
  constructor(recorder: Recorder, tap: HttpTap) {
    this.#recorder = recorder;
    this.tap = tap;
  }

  /** Bytes from the visitor (copied). */
  request(bytes: Uint8Array): void {
    if (!this.off) this.#recorder.enqueue(this, 0, bytes);
  }

  /** Bytes from the service (copied). */
  response(bytes: Uint8Array): void {
    if (!this.off) this.#recorder.enqueue(this, 1, bytes);
  }

  /** The connection ended. */
  end(): void {
    this.#recorder.enqueue(this, 2, EMPTY, true);
  }
}

/** Records the exchanges of HTTP tunnel connections into a ring, off the relay's path. */
export class Recorder {
  /** The recorded exchanges. */
  readonly ring: ExchangeRing;
  /** Body bytes kept per message. */
  readonly maxBody: number;
  /** Chunks dropped because the queue was full. */
  dropped = 0;
  #queue: Queued[] = [];
  /** The copies of queued chunks, one after the other (no allocation per chunk). */
  #slab: Uint8Array;
  #queued = 0;
  /** A drain is due (queued as a microtask). */
  #draining = false;
  /** Where the bodies every connection keeps are copied. */
  #arena = new BodyArena();
  /** True while the drain reports the exchanges a cut left under way. */
  #cutting = false;

  /** A recorder with `options`' bounds. */
  constructor(options: RecorderOptions = {}) {
    // What a dropped entry kept goes back to the arena, to be filled again.
    this.ring = new ExchangeRing({
      maxRequests: options.maxRequests ?? 200,
      onEvict: (entry) => {
        releaseMessage(entry.request);
        if (entry.response) releaseMessage(entry.response);
      },
    });
    this.maxBody = options.maxBody ?? 64 * 1024;
    this.#slab = new Uint8Array(options.queueBytes ?? 4 * 1024 * 1024);
  }

  /** Starts recording one connection. */
  connection(info: ConnInfo): ConnRecording {
    const tap = new HttpTap({
      maxBody: this.maxBody,
      arena: this.#arena,
      onExchange: (x) => {
        const entry: Omit<InspectedExchange, "id"> = {
          request: x.request,
          response: x.response,
          start: x.start,
          end: x.end,
          upgraded: x.upgraded,
          tunnel: info.tunnel,
          remote: info.remote,
          local: info.local,
          time: performance.timeOrigin + x.start,
        };
        if (this.#cutting) entry.incomplete = "queue_full";
        this.ring.add(entry);
      },
    });
    return new ConnRecording(this, tap);
  }

  /**
   * Queues a copy of `bytes` going `dir` (0: visitor → service, 1: service →
   * visitor; 2 and 3 mark an end and a cut); `always` for the markers (no
   * bytes), which are never dropped.
   */
  enqueue(conn: ConnRecording, dir: 0 | 1 | 2 | 3, bytes: Uint8Array, always = false): void {
    const offset = this.#queued;
    if (!always && offset + bytes.length > this.#slab.length) {
      this.dropped++;
      conn.off = true;
      // Reported at the next drain, not when the connection ends (a kept-alive one may last).
      this.enqueue(conn, 3, EMPTY, true);
      return;
    }
    this.#slab.set(bytes, offset);
    this.#queued += bytes.length;
    this.#queue.push({ conn, dir, offset, length: bytes.length });
    if (!this.#draining) {
      this.#draining = true;
      queueMicrotask(this.#drainSoon);
    }
  }

  #drainSoon = () => {
    this.#draining = false;
    this.drain();
  };

  /** Parses everything queued now (a microtask after the first chunk queued calls it; tests may too). */
  drain(): void {
    const queue = this.#queue;
    this.#queue = [];
    // One clock read for the lot: the drain runs as soon as the relay's callback that queued
    // them returns, so their times differ by µs at most.
    const at = performance.now();
    for (const { conn, dir, offset, length } of queue) {
      const tap = conn.tap;
      if (dir === 2) {
        tap.end(at);
        continue;
      }
      if (dir === 3) {
        // The chunks before the cut are parsed: the exchanges they finished are whole. Those
        // still under way end here, marked (a pipelined one already answered is marked too).
        this.#cutting = true;
        try {
          tap.end(at);
        } finally {
          this.#cutting = false;
        }
        continue;
      }
      // Chunks queued before a drop are still parsed: the exchanges before the gap are whole.
      // The tap copies what it keeps: the slab is reused once this drain is over.
      if (dir === 0) tap.request(this.#slab, at, offset, offset + length);
      else tap.response(this.#slab, at, offset, offset + length);
      if (tap.stopped) conn.off = true;
    }
    this.#queued = 0;
  }

  /** Drops what is queued. */
  close(): void {
    this.#queue = [];
    this.#queued = 0;
  }
}

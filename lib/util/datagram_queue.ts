/**
 * A bounded first-in first-out queue of datagrams that drops the oldest
 * when full, the way a router's queue keeps UDP fresh: under overload the
 * newest datagrams are the ones worth delivering, and memory stays bounded.
 *
 * Datagrams are copied in, back to back into one ring buffer that grows on
 * demand up to the bound, so a busy queue allocates nothing per datagram
 * and the caller may reuse its buffer at once. A datagram handed out is a
 * view into the ring: valid until the next `push` (copy it to keep it).
 *
 * @example
 * ```ts
 * import { DatagramQueue } from "./datagram_queue.ts";
 * const queue = new DatagramQueue({ maxBytes: 4 });
 * queue.push(new Uint8Array([1, 2]));
 * queue.push(new Uint8Array([3, 4]));
 * console.assert(queue.push(new Uint8Array([5])) === 1); // [1, 2] made room
 * console.assert(queue.shift()?.[0] === 3 && queue.length === 1);
 * ```
 *
 * @module
 */

/** First ring size; it doubles as needed up to `maxBytes`. */
const INITIAL_BYTES = 4096;
const INITIAL_ITEMS = 64;

/** Options of {@linkcode DatagramQueue}. */
export interface DatagramQueueOptions {
  /** Payload bytes queued at most; older datagrams are dropped to stay under. Default 1 MiB. */
  maxBytes?: number;
  /** Datagrams queued at most. Default: no limit but `maxBytes`. */
  maxCount?: number;
}

/** A bounded FIFO of datagrams that drops the oldest. */
export class DatagramQueue {
  /** Datagrams dropped to make room, so far. */
  dropped = 0;
  #maxBytes: number;
  #maxCount: number;
  #ring = new Uint8Array(0);
  // Items in a ring of their own: start offset and length in `#ring`.
  #starts = new Int32Array(INITIAL_ITEMS);
  #lengths = new Int32Array(INITIAL_ITEMS);
  #first = 0;
  #count = 0;
  #bytes = 0;

  /** An empty queue; memory is taken as datagrams arrive. */
  constructor(options: DatagramQueueOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 1024 * 1024;
    this.#maxCount = options.maxCount ?? Infinity;
  }

  /** Datagrams queued. */
  get length(): number {
    return this.#count;
  }

  /** Payload bytes queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Queues a copy of `datagram`, first dropping the oldest datagrams it
   * needs room for. Returns how many were dropped; a datagram larger than
   * the whole queue is itself dropped (and counted). Datagrams handed out
   * before are no longer valid.
   */
  push(datagram: Uint8Array): number {
    if (datagram.length > this.#maxBytes) {
      this.dropped++;
      return 1;
    }
    // An empty datagram still takes a byte of the ring, so queued ones never share an offset.
    const need = Math.max(datagram.length, 1);
    let dropped = 0;
    let at: number;
    for (;;) {
      if (this.#count >= this.#maxCount) {
        this.#discard();
        dropped++;
        continue;
      }
      at = this.#place(need);
      if (at >= 0) break;
      if (this.#ring.length < this.#maxBytes) {
        this.#grow(need);
      } else {
        this.#discard();
        dropped++;
      }
    }
    this.dropped += dropped;
    if (this.#count === this.#starts.length) this.#growItems();
    const slot = (this.#first + this.#count) % this.#starts.length;
    this.#starts[slot] = at;
    this.#lengths[slot] = datagram.length;
    this.#count++;
    this.#bytes += datagram.length;
    this.#ring.set(datagram, at);
    return dropped;
  }

  /** The oldest datagram, no longer queued; `undefined` when empty. Valid until the next `push`. */
  shift(): Uint8Array | undefined {
    const head = this.peek();
    if (head !== undefined) this.#discard();
    return head;
  }

  /** The oldest datagram, still queued. Valid until the next `push`. */
  peek(): Uint8Array | undefined {
    if (this.#count === 0) return undefined;
    const start = this.#starts[this.#first]!;
    return this.#ring.subarray(start, start + this.#lengths[this.#first]!);
  }

  /** Empties the queue (not counted as dropped). */
  clear(): void {
    this.#first = 0;
    this.#count = 0;
    this.#bytes = 0;
  }

  #discard(): void {
    this.#bytes -= this.#lengths[this.#first]!;
    this.#first = (this.#first + 1) % this.#starts.length;
    this.#count--;
    if (this.#count === 0) this.#first = 0;
  }

  /** Where `need` bytes fit without touching queued ones; -1 when they do not. */
  #place(need: number): number {
    if (this.#count === 0) return need <= this.#ring.length ? 0 : -1;
    const oldest = this.#starts[this.#first]!;
    const newest = (this.#first + this.#count - 1) % this.#starts.length;
    const end = this.#starts[newest]! + Math.max(this.#lengths[newest]!, 1);
    if (this.#starts[newest]! >= oldest) {
      // Queued bytes lie in [oldest, end): room after them, else before them.
      if (this.#ring.length - end >= need) return end;
      return oldest >= need ? 0 : -1;
    }
    // Wrapped: queued bytes lie in [oldest, …) and [0, end).
    return oldest - end >= need ? end : -1;
  }

  /** A larger ring (up to `maxBytes`), the queued datagrams copied to its start in order. */
  #grow(need: number): void {
    let size = Math.max(this.#ring.length * 2, INITIAL_BYTES);
    while (size < this.#bytes + this.#count + need) size *= 2;
    const ring = new Uint8Array(Math.min(size, this.#maxBytes));
    let at = 0;
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#first + i) % this.#starts.length;
      const start = this.#starts[slot]!;
      const length = this.#lengths[slot]!;
      ring.set(this.#ring.subarray(start, start + length), at);
      this.#starts[slot] = at;
      at += Math.max(length, 1);
    }
    this.#ring = ring;
  }

  #growItems(): void {
    const size = this.#starts.length * 2;
    const starts = new Int32Array(size);
    const lengths = new Int32Array(size);
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#first + i) % this.#starts.length;
      starts[i] = this.#starts[slot]!;
      lengths[i] = this.#lengths[slot]!;
    }
    this.#starts = starts;
    this.#lengths = lengths;
    this.#first = 0;
  }
}

/**
 * A bounded first-in first-out queue of datagrams that drops the oldest
 * when full, the way a router's queue keeps UDP fresh: under overload the
 * newest datagrams are the ones worth delivering, and memory stays bounded.
 *
 * Datagrams are copied in, back to back into shared 64 KiB slabs, so a
 * queued datagram costs no allocation of its own and the caller may reuse
 * its buffer at once.
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

const SLAB = 64 * 1024;

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
  #items: Uint8Array[] = [];
  #head = 0;
  #bytes = 0;
  #maxBytes: number;
  #maxCount: number;
  #slab = new Uint8Array(0);
  #used = 0;

  /** An empty queue. */
  constructor(options: DatagramQueueOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 1024 * 1024;
    this.#maxCount = options.maxCount ?? Infinity;
  }

  /** Datagrams queued. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Payload bytes queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Queues a copy of `datagram`, first dropping the oldest datagrams it
   * needs room for. Returns how many were dropped; a datagram larger than
   * the whole queue is itself dropped (and counted).
   */
  push(datagram: Uint8Array): number {
    if (datagram.length > this.#maxBytes) {
      this.dropped++;
      return 1;
    }
    let dropped = 0;
    while (
      this.length > 0 &&
      (this.#bytes + datagram.length > this.#maxBytes || this.length >= this.#maxCount)
    ) {
      this.shift();
      dropped++;
    }
    this.dropped += dropped;
    this.#items.push(this.#copy(datagram));
    this.#bytes += datagram.length;
    return dropped;
  }

  /** The oldest datagram, no longer queued; `undefined` when empty. It stays valid. */
  shift(): Uint8Array | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head]!;
    this.#items[this.#head++] = EMPTY;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    this.#bytes -= item.length;
    return item;
  }

  /** The oldest datagram, still queued. */
  peek(): Uint8Array | undefined {
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined;
  }

  /** Empties the queue (not counted as dropped). */
  clear(): void {
    this.#items = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  #copy(datagram: Uint8Array): Uint8Array {
    if (datagram.length > SLAB / 4) return datagram.slice();
    if (this.#used + datagram.length > this.#slab.length) {
      // The old slab is freed once the datagrams viewing it are gone.
      this.#slab = new Uint8Array(SLAB);
      this.#used = 0;
    }
    const copy = this.#slab.subarray(this.#used, this.#used + datagram.length);
    copy.set(datagram);
    this.#used += datagram.length;
    return copy;
  }
}

const EMPTY = new Uint8Array(0);

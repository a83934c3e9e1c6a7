/**
 * A token bucket for bandwidth limits: `rate` bytes per second with a burst
 * of `burst` bytes. Callers that would exceed it wait their turn (TCP: the
 * sender slows down through flow control) or are told no (UDP: the datagram
 * is dropped). Shared by every connection of a tunnel, fair in arrival order.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "./rate.ts";
 * const bucket = new TokenBucket(1_000_000);
 * await bucket.take(64 * 1024); // within the burst: no wait
 * ```
 *
 * @module
 */

/** A byte-rate limiter. */
export class TokenBucket {
  /** Bytes per second. */
  readonly rate: number;
  /** Bytes that may go at once after an idle period. */
  readonly burst: number;
  /** Times a caller had to wait or was refused. */
  throttled = 0;
  #next = 0;
  #now: () => number;

  /** A bucket of `rate` bytes/s; burst defaults to 1/10 s worth, at least 64 KiB. */
  constructor(rate: number, burst?: number, now: () => number = () => performance.now()) {
    if (!(rate > 0)) throw new RangeError("TokenBucket rate must be positive");
    this.rate = rate;
    this.burst = burst ?? Math.max(64 * 1024, rate / 10);
    this.#now = now;
  }

  /** GCRA: when `n` more bytes would be due, and how long past the burst allowance that is. */
  #reserve(n: number): { due: number; wait: number } {
    const now = this.#now();
    const due = Math.max(this.#next, now) + (n / this.rate) * 1000;
    return { due, wait: due - now - (this.burst / this.rate) * 1000 };
  }

  /** Waits until `n` bytes may pass. */
  async take(n: number): Promise<void> {
    const { due, wait } = this.#reserve(n);
    this.#next = due;
    if (wait > 0) {
      this.throttled++;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  /** Takes `n` bytes if they may pass now; false (nothing taken) otherwise. */
  tryTake(n: number): boolean {
    const { due, wait } = this.#reserve(n);
    if (wait > 0) {
      this.throttled++;
      return false;
    }
    this.#next = due;
    return true;
  }
}

/**
 * What a bandwidth limit offers its users: pacing (TCP, HTTP) and a check
 * that never waits (UDP). A {@linkcode TokenBucket} is one.
 */
export interface Throttle {
  /** Waits until `n` bytes may pass. */
  take(n: number): Promise<void>;
  /** Takes `n` bytes if they may pass now. */
  tryTake(n: number): boolean;
  /** Times a caller had to wait or was refused. */
  readonly throttled: number;
}

/**
 * Two limits at once (a tunnel's own and its user's): bytes pass when both
 * allow them.
 *
 * @example
 * ```ts
 * import { bothLimits, TokenBucket } from "./rate.ts";
 * const limit = bothLimits(new TokenBucket(1_000_000), new TokenBucket(500_000));
 * console.assert(limit.tryTake(1024) && limit.throttled === 0);
 * ```
 */
export function bothLimits(a: Throttle, b: Throttle): Throttle {
  return {
    async take(n) {
      await a.take(n);
      await b.take(n);
    },
    tryTake(n) {
      return a.tryTake(n) && b.tryTake(n);
    },
    get throttled() {
      return a.throttled + b.throttled;
    },
  };
}

/**
 * Slows down password guessing: after a failed login from an address, the
 * next attempt from it waits 100 ms, then 200, 400 … up to 10 s. A success,
 * or ten quiet minutes, forgets the address. At most 10,000 addresses are
 * tracked (the oldest are forgotten first).
 *
 * @module
 */

const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 10_000;
const FORGET_AFTER_MS = 10 * 60_000;
const MAX_TRACKED = 10_000;

/** Failed-login bookkeeping per source address. */
export class LoginLimiter {
  #failures = new Map<string, { count: number; last: number }>();
  #now: () => number;

  /** An empty limiter. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** How long the next attempt from `address` must wait, in ms. */
  delayFor(address: string): number {
    const f = this.#failures.get(address);
    if (!f) return 0;
    if (this.#now() - f.last > FORGET_AFTER_MS) {
      this.#failures.delete(address);
      return 0;
    }
    return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (f.count - 1));
  }

  /** Records a failed login; returns how many in a row. */
  failed(address: string): number {
    const f = this.#failures.get(address);
    const count = (f && this.#now() - f.last <= FORGET_AFTER_MS ? f.count : 0) + 1;
    this.#failures.delete(address);
    this.#failures.set(address, { count, last: this.#now() });
    while (this.#failures.size > MAX_TRACKED) {
      this.#failures.delete(this.#failures.keys().next().value as string);
    }
    return count;
  }

  /** Forgets `address` after a successful login. */
  succeeded(address: string): void {
    this.#failures.delete(address);
  }
}

/**
 * Exponential backoff with optional jitter, following the seed's
 * ReconnectConfig (`max_retries`, `initial_delay`, `max_delay`,
 * `backoff_factor`, `enable_jitter`).
 *
 * @example
 * ```ts
 * import { Backoff } from "./backoff.ts";
 * const b = new Backoff({
 *   max_retries: 3, initial_delay: 100, max_delay: 1000, backoff_factor: 2, enable_jitter: false,
 * });
 * console.assert(b.next() === 100 && b.next() === 200 && b.next() === 400 && b.next() === null);
 * ```
 *
 * @module
 */

/** Backoff settings; delays in ms. */
export interface BackoffOptions {
  /** Attempts before giving up; 0 = never give up. */
  max_retries: number;
  /** First delay in ms. */
  initial_delay: number;
  /** Largest delay in ms. */
  max_delay: number;
  /** Multiplier per attempt. */
  backoff_factor: number;
  /** Each delay is drawn uniformly from [delay/2, delay]. */
  enable_jitter: boolean;
}

/** Yields the delay before each retry. */
export class Backoff {
  #options: BackoffOptions;
  #random: () => number;
  #attempt = 0;

  /** `random` is injectable for tests. */
  constructor(options: BackoffOptions, random: () => number = Math.random) {
    this.#options = options;
    this.#random = random;
  }

  /** Retries made since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next retry in ms, or `null` when retries are used up. */
  next(): number | null {
    const o = this.#options;
    if (o.max_retries > 0 && this.#attempt >= o.max_retries) return null;
    const base = Math.min(o.max_delay, o.initial_delay * o.backoff_factor ** this.#attempt);
    this.#attempt++;
    if (!o.enable_jitter) return Math.round(base);
    return Math.round(base / 2 + this.#random() * base / 2);
  }

  /** Starts over after a success. */
  reset(): void {
    this.#attempt = 0;
  }
}

/** Resolves after `ms`, or at once (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

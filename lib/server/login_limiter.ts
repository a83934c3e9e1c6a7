/**
 * Limits password guessing on the control port and the admin API without
 * ever making a correct login wait. Two limits per source address (IPv4
 * address, or the /64 of an IPv6 address, since one IPv6 host holds a whole
 * /64):
 *
 * - **Open handshakes**: at most `maxHandshakes` unauthenticated control
 *   connections at once; more are refused at once.
 * - **Failed logins**: a token bucket of `maxFailures` attempts that refills
 *   one per `failureInterval`. Every attempt takes one before its token is
 *   checked; a correct token gives it back, a wrong one keeps it spent. With
 *   the bucket empty an attempt is refused at once, before its token is
 *   looked at, with the seconds until the next one may be made.
 *
 * Nothing sleeps: a refusal costs a map lookup, so no caller queues behind
 * an attacker. An address's success gives back only its own attempt; it
 * never erases its earlier failures nor touches another address.
 *
 * The token is deliberately not compared before the bucket: a "correct
 * admin token skips the limit" check would let an attacker keep guessing
 * that very token at full speed once the bucket is empty. The owner behind
 * the same address as an attacker therefore gets in while the attacker's
 * failures stay under the refill rate (the bucket never empties), and
 * otherwise is told when to retry.
 *
 * At most `maxTracked` addresses are remembered; the least recently seen
 * are forgotten first and start again from a full bucket. Forgetting a
 * drained bucket takes `maxTracked` other addresses seen since, and an
 * attacker holding that many addresses has that many buckets anyway.
 *
 * @example
 * ```ts
 * import { LoginLimiter } from "./login_limiter.ts";
 * const limiter = new LoginLimiter({ maxFailures: 2 });
 * for (let i = 0; i < 2; i++) {
 *   const attempt = limiter.attempt("192.0.2.1");
 *   console.assert(!("reason" in attempt)); // admitted; the (wrong) token is checked
 * }
 * const third = limiter.attempt("192.0.2.1");
 * console.assert("reason" in third && third.reason === "rate");
 * ```
 *
 * @module
 */

import { parseIp } from "../util/mod.ts";

/** Default {@linkcode LoginLimiterOptions.maxFailures}. */
export const DEFAULT_MAX_FAILURES = 10;
/** Default {@linkcode LoginLimiterOptions.failureInterval} in ms. */
export const DEFAULT_FAILURE_INTERVAL = 6_000;
/** Default {@linkcode LoginLimiterOptions.maxHandshakes}. */
export const DEFAULT_MAX_HANDSHAKES = 8;
/** Default {@linkcode LoginLimiterOptions.maxTracked}. */
export const DEFAULT_MAX_TRACKED = 10_000;

/** Options of {@linkcode LoginLimiter}. */
export interface LoginLimiterOptions {
  /** Failed logins an address may make in a burst. Default 10. */
  maxFailures?: number;
  /** Then one more per this many ms. Default 6000 (10 a minute). */
  failureInterval?: number;
  /** Unauthenticated handshakes an address may have open at once. Default 8. */
  maxHandshakes?: number;
  /** Addresses remembered at most. Default 10,000. */
  maxTracked?: number;
  /** Clock in ms (tests). Default `performance.now`. */
  now?: () => number;
}

/** Why the limiter refused, in words and in numbers. */
export interface LoginRefusal {
  /** `concurrent`: too many open handshakes; `rate`: too many failed logins. */
  reason: "concurrent" | "rate";
  /** For people, e.g. `Too many failed logins from 192.0.2.1; retry in 6 s`. */
  message: string;
  /** Whole seconds until an attempt would be admitted (`rate`); 0 for `concurrent`. */
  retryAfter: number;
  /**
   * Refusals of this address for this reason since it was last quiet (a
   * full bucket and no handshake open): for logging the first of a flood
   * and every so many.
   */
  refusedSinceQuiet: number;
}

/** An admitted login attempt. */
export interface LoginAttempt {
  /** The token was right: gives the attempt back to the bucket. */
  succeeded(): void;
}

interface Entry {
  key: string;
  /** Attempts left (fractional while refilling). */
  tokens: number;
  /** When `tokens` was last brought up to date. */
  at: number;
  /** Open handshakes. */
  open: number;
  /** Refusals by reason since the address was last quiet. */
  refused: Record<LoginRefusal["reason"], number>;
}

/**
 * The key `address` is limited under: the IPv4 address (also when written
 * IPv4-mapped, `::ffff:192.0.2.1`), `<prefix>::/64` for IPv6, anything
 * else as given.
 *
 * @example
 * ```ts
 * import { limitKey } from "./login_limiter.ts";
 * console.assert(limitKey("::ffff:192.0.2.1") === "192.0.2.1");
 * console.assert(limitKey("2001:db8:0:7:1:2:3:4") === "2001:db8:0:7::/64");
 * ```
 */
export function limitKey(address: string): string {
  const ip = parseIp(address);
  if (!ip) return address;
  if (ip.version === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((ip.value >> s) & 0xffn)).join(".");
  }
  const groups = [112n, 96n, 80n, 64n].map((s) => ((ip.value >> s) & 0xffffn).toString(16));
  return groups.every((g) => g === "0") ? "::/64" : `${groups.join(":")}::/64`;
}

/** Per-address limits on unauthenticated handshakes and failed logins. */
export class LoginLimiter {
  /** Failed logins an address may make in a burst. */
  readonly maxFailures: number;
  /** ms per failed login regained. */
  readonly failureInterval: number;
  /** Open unauthenticated handshakes per address. */
  readonly maxHandshakes: number;
  #maxTracked: number;
  #now: () => number;
  /** In order of last use (oldest first). */
  #entries = new Map<string, Entry>();

  /** A limiter that remembers nothing yet. */
  constructor(options: LoginLimiterOptions = {}) {
    this.maxFailures = options.maxFailures ?? DEFAULT_MAX_FAILURES;
    this.failureInterval = options.failureInterval ?? DEFAULT_FAILURE_INTERVAL;
    this.maxHandshakes = options.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES;
    this.#maxTracked = options.maxTracked ?? DEFAULT_MAX_TRACKED;
    this.#now = options.now ?? (() => performance.now());
    if (!(this.maxFailures >= 1 && this.failureInterval > 0 && this.maxHandshakes >= 1)) {
      throw new RangeError(
        "LoginLimiter needs maxFailures >= 1, failureInterval > 0 and maxHandshakes >= 1",
      );
    }
  }

  /** Addresses remembered now (at most `maxTracked`). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Opens a handshake from `address`: a slot to dispose of when the
   * handshake ends (logged in or not), or a refusal when the address has
   * `maxHandshakes` open already.
   */
  enter(address: string): Disposable | LoginRefusal {
    const entry = this.#entry(address);
    if (entry.open >= this.maxHandshakes) {
      entry.refused.concurrent++;
      return {
        reason: "concurrent",
        message: `Too many logins in progress from ${entry.key} (at most ${this.maxHandshakes} ` +
          `at once)`,
        retryAfter: 0,
        refusedSinceQuiet: entry.refused.concurrent,
      };
    }
    entry.open++;
    let open = true;
    return {
      [Symbol.dispose]: () => {
        if (open) entry.open--;
        open = false;
      },
    };
  }

  /**
   * Takes one attempt from `address`'s bucket before its token is checked,
   * or refuses when the bucket is empty. Call
   * {@linkcode LoginAttempt.succeeded} when the token was right; a failure
   * needs no call (the attempt stays spent).
   */
  attempt(address: string): LoginAttempt | LoginRefusal {
    const entry = this.#entry(address);
    if (entry.tokens < 1) {
      entry.refused.rate++;
      const retryAfter = Math.max(
        1,
        Math.ceil(((1 - entry.tokens) * this.failureInterval) / 1000),
      );
      return {
        reason: "rate",
        message: `Too many failed logins from ${entry.key}; retry in ${retryAfter} s`,
        retryAfter,
        refusedSinceQuiet: entry.refused.rate,
      };
    }
    entry.tokens--;
    let settled = false;
    return {
      succeeded: () => {
        if (settled) return;
        settled = true;
        this.#refill(entry);
        entry.tokens = Math.min(this.maxFailures, entry.tokens + 1);
      },
    };
  }

  #refill(entry: Entry): void {
    const now = this.#now();
    entry.tokens = Math.min(
      this.maxFailures,
      entry.tokens + (now - entry.at) / this.failureInterval,
    );
    entry.at = now;
  }

  /** The entry of `address`, brought up to date and marked most recently used. */
  #entry(address: string): Entry {
    const key = limitKey(address);
    let entry = this.#entries.get(key);
    if (entry) {
      this.#entries.delete(key);
      this.#refill(entry);
      if (entry.tokens >= this.maxFailures && entry.open === 0) {
        entry.refused = { concurrent: 0, rate: 0 };
      }
    } else {
      entry = {
        key,
        tokens: this.maxFailures,
        at: this.#now(),
        open: 0,
        refused: { concurrent: 0, rate: 0 },
      };
      while (this.#entries.size >= this.#maxTracked) {
        this.#entries.delete(this.#entries.keys().next().value!);
      }
    }
    this.#entries.set(key, entry);
    return entry;
  }
}

/**
 * What the reconnect loop says while it cannot connect: the first failure
 * of a kind at its level, the same failure again only at debug, and once a
 * minute a one-line summary (`still trying 127.0.0.1:7000: connection
 * refused (12 attempts)`), so that a client waiting for its server neither
 * floods its log nor goes quiet.
 *
 * @example
 * ```ts
 * import { createLogger } from "../util/mod.ts";
 * import { RetryLog } from "./retry_log.ts";
 * const lines: string[] = [];
 * const retries = new RetryLog(createLogger({ sink: (l) => lines.push(l) }), "h:7000");
 * retries.failed("connection refused", "warn", { attempt: 1, delay_ms: 1000 });
 * console.assert(lines.length === 1);
 * ```
 *
 * @module
 */

import type { LogFields, Logger, LogLevel } from "../util/mod.ts";

/** Options of {@linkcode RetryLog}. */
export interface RetryLogOptions {
  /** Milliseconds between summaries of one failure. Default 60000. */
  summaryInterval?: number;
  /** The clock, in ms. Default `performance.now`. */
  now?: () => number;
}

/** The reconnect loop's account of failed attempts to reach one server. */
export class RetryLog {
  #log: Logger;
  #server: string;
  #interval: number;
  #now: () => number;
  /** The failure being repeated: its reason, level, count and last summary time. */
  #streak: { reason: string; level: LogLevel; count: number; summarised: number } | null = null;

  /** Creates the log for `server` (`host:port`). */
  constructor(log: Logger, server: string, options: RetryLogOptions = {}) {
    this.#log = log;
    this.#server = server;
    this.#interval = options.summaryInterval ?? 60_000;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * One more failed attempt, failing for `reason` (short: `connection
   * refused`): logged as `reconnecting` at `level` when the reason is new,
   * at debug when it repeats, with a summary at `level` once per interval.
   */
  failed(reason: string, level: Exclude<LogLevel, "debug">, fields: LogFields): void {
    const now = this.#now();
    const streak = this.#streak;
    const event = { server: this.#server, ...fields, error: reason };
    if (!streak || streak.reason !== reason || streak.level !== level) {
      this.#streak = { reason, level, count: 1, summarised: now };
      this.#log[level]("reconnecting", event);
      return;
    }
    streak.count++;
    this.#log.debug("reconnecting", event);
    if (now - streak.summarised >= this.#interval) {
      streak.summarised = now;
      this.#log[level](`still trying ${this.#server}: ${reason} (${streak.count} attempts)`);
    }
  }

  /** Starts over: the client connected. */
  reset(): void {
    this.#streak = null;
  }
}

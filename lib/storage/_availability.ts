/**
 * Whether the database answers, for the {@linkcode Availability} of one
 * store: work bounded by the query timeout, a liveness ping, an outage
 * noticed once and probed until it ends. Private to storage: the `Store`
 * owns one and speaks for it.
 *
 * @module
 */

import type { Logger } from "../util/mod.ts";
import { type Database, DatabaseUnavailableError, isConnectionError } from "./db.ts";

/** A query went unanswered for the query timeout (the database may only be slow). */
export class QueryTimeoutError extends DatabaseUnavailableError {
  /** Names the timeout that passed. */
  constructor(ms: number) {
    super(`no answer within ${ms} ms (storage.query_timeout)`);
  }
}

/** Options of {@linkcode Availability}. */
export interface AvailabilityOptions {
  /** Where an outage and its end are logged. */
  logger: Logger;
  /** Milliseconds work may go unanswered; 0 waits forever (and nothing is pinged). */
  queryTimeout: number;
  /** Milliseconds between reconnection probes while the database is down. */
  probeInterval: number;
  /** Milliseconds between liveness pings while the database is up. */
  pingInterval: number;
  /** The rows waiting for the database, for the log lines of an outage. */
  pendingWrites: () => number;
  /** Called after each recovery, once the listeners have heard of it. */
  reconnected: () => void;
}

/**
 * The database's availability: up until a connection fails or a ping goes
 * unanswered, then down (logged once) and probed until it answers again.
 */
export class Availability {
  /** Queries issued through {@linkcode Availability.run}, the probes and what callers add. */
  queries = 0;
  readonly #db: Database;
  readonly #options: AvailabilityOptions;
  #available = true;
  #downSince = 0;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #pinging = false;
  #closed = false;
  #recoverListeners = new Set<() => void>();
  #availabilityListeners = new Set<(available: boolean) => void>();

  /** Starts the liveness pings when there is a query timeout. */
  constructor(db: Database, options: AvailabilityOptions) {
    this.#db = db;
    this.#options = options;
    if (options.queryTimeout > 0) {
      this.#pingTimer = setInterval(() => this.ping(), options.pingInterval);
    }
  }

  /** Whether the database answers (the last query or liveness ping reached it). */
  get available(): boolean {
    return this.#available;
  }

  /** Calls `fn` after each recovery from an outage. Returns an unsubscribe function. */
  onRecover(fn: () => void): () => void {
    this.#recoverListeners.add(fn);
    return () => this.#recoverListeners.delete(fn);
  }

  /** Calls `fn` whenever availability changes. Returns an unsubscribe function. */
  onAvailability(fn: (available: boolean) => void): () => void {
    this.#availabilityListeners.add(fn);
    return () => this.#availabilityListeners.delete(fn);
  }

  /**
   * Runs `work`, noticing outages: a connection failure marks the database
   * down and becomes a {@linkcode DatabaseUnavailableError}; work unanswered
   * for `timeout` fails with a {@linkcode QueryTimeoutError} and has the
   * database pinged at once.
   */
  async run<T>(work: () => Promise<T>, timeout?: number): Promise<T> {
    if (!this.#available) throw new DatabaseUnavailableError("database is down (reconnecting)");
    this.queries++;
    try {
      return await this.bounded(work(), timeout);
    } catch (error) {
      if (error instanceof QueryTimeoutError) {
        this.ping();
        throw error;
      }
      if (isConnectionError(error)) {
        this.markDown(error);
        throw error instanceof DatabaseUnavailableError
          ? error
          : new DatabaseUnavailableError(error);
      }
      throw error;
    }
  }

  /** `work`, or a {@linkcode QueryTimeoutError} when it takes longer than `ms`. */
  bounded<T>(work: Promise<T>, ms: number = this.#options.queryTimeout): Promise<T> {
    if (!(ms > 0)) return work;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueryTimeoutError(ms)), ms);
    });
    // The work may still settle after the timeout; nobody waits for it then.
    work.catch(() => {});
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  /** Pings PostgreSQL (bounded by the query timeout) unless a ping is under way. */
  ping(): void {
    if (!this.#available || this.#closed || this.#pinging || !(this.#options.queryTimeout > 0)) {
      return;
    }
    this.#pinging = true;
    this.bounded(this.#db.query("select 1"))
      .catch((error) => {
        if (isConnectionError(error)) this.markDown(error);
      })
      .finally(() => (this.#pinging = false));
  }

  /** The database stopped answering: logged once, then probed until it answers. */
  markDown(error: unknown): void {
    if (!this.#available || this.#closed) return;
    this.#available = false;
    this.#downSince = performance.now();
    this.#options.logger.error("database unavailable", {
      backend: this.#db.kind,
      error,
      pending_writes: this.#options.pendingWrites(),
    });
    for (const fn of this.#availabilityListeners) fn(false);
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    this.#probe = setTimeout(async () => {
      if (this.#closed) return;
      try {
        this.queries++;
        await this.bounded(this.#db.query("select 1"));
      } catch {
        if (!this.#closed) this.#scheduleProbe();
        return;
      }
      if (this.#closed) return;
      this.#available = true;
      this.#options.logger.info("database reconnected", {
        backend: this.#db.kind,
        down_ms: Math.round(performance.now() - this.#downSince),
        pending_writes: this.#options.pendingWrites(),
      });
      for (const fn of this.#availabilityListeners) fn(true);
      for (const fn of this.#recoverListeners) fn();
      this.#options.reconnected();
    }, this.#options.probeInterval);
  }

  /** Stops the liveness pings: the first step of closing (the last flush still notices an outage). */
  stopPinging(): void {
    clearInterval(this.#pingTimer);
  }

  /** Stops pinging and probing: nothing is marked down or reconnected after this. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#pingTimer);
    clearTimeout(this.#probe);
  }
}

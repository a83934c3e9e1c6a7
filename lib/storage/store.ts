/**
 * The {@linkcode Store}: one database (PostgreSQL or embedded PGlite) with its
 * migrations applied, the DAOs, a health monitor that notices an outage and
 * the recovery, batched writers for high-frequency rows (session heartbeats,
 * metrics, access logs) and the `burrow_config` change feed.
 *
 * @module
 */

import type { StorageConfig } from "../config/types.ts";
import type { Logger } from "../util/logger.ts";
import { type Database, DatabaseUnavailableError, isConnectionError } from "./db.ts";
import {
  AlertsDao,
  ApiKeysDao,
  type LogInput,
  LogsDao,
  MetricsDao,
  type SessionBeat,
  type SessionOpen,
  SessionsDao,
  SigningKeysDao,
  TunnelsDao,
  UsersDao,
} from "./daos.ts";
import {
  changedMigrations,
  loadMigrations,
  migrate,
  type Migration,
  schemaKey,
} from "./migrate.ts";
import type { ConfigChange, MetricRow } from "./models.ts";
import { openPglite } from "./pglite.ts";
import { openPostgres } from "./postgres.ts";

/** Options of {@linkcode Store.open}. */
export interface StoreOptions {
  /** Where progress and problems are logged. */
  logger: Logger;
  /** Milliseconds between flushes of batched writes. Default 5000. */
  flushInterval?: number;
  /** Milliseconds between reconnection probes while the database is down. Default 1000. */
  probeInterval?: number;
  /** Apply migrations on open. Default true. */
  migrate?: boolean;
  /** Cache directory for blank PGlite clusters (`null`: none). */
  cacheDir?: string | null | undefined;
}

/** Most log events held while the database is unreachable. */
const MAX_PENDING_LOGS = 10_000;
/** Most metric buckets held while the database is unreachable. */
const MAX_PENDING_METRICS = 100_000;

/**
 * The database with its DAOs, batched writers, outage tracking and change feed.
 *
 * @example
 * ```ts ignore
 * await using store = await Store.open({ data_dir: "./burrow-data" }, { logger });
 * const alice = await store.users.add("alice");
 * ```
 */
export class Store {
  /** The connection. */
  readonly db: Database;
  /** `users`. */
  readonly users: UsersDao;
  /** `api_keys`. */
  readonly apiKeys: ApiKeysDao;
  /** `signing_keys`. */
  readonly signingKeys: SigningKeysDao;
  /** `tunnels`. */
  readonly tunnels: TunnelsDao;
  /** `sessions`. */
  readonly sessions: SessionsDao;
  /** `metrics`. */
  readonly metrics: MetricsDao;
  /** `logs`. */
  readonly logs: LogsDao;
  /** `alerts`. */
  readonly alerts: AlertsDao;
  /** Queries issued through {@linkcode Store.run} and the writers. */
  queries = 0;

  #log: Logger;
  #options: StoreOptions;
  #available = true;
  #downSince = 0;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #flushTimer: ReturnType<typeof setInterval> | undefined;
  #flushing: Promise<void> | null = null;
  #recoverListeners = new Set<() => void>();
  #availabilityListeners = new Set<(available: boolean) => void>();
  #closed = false;
  // Batched writes.
  #opens = new Map<string, SessionOpen>();
  #beats = new Map<string, SessionBeat>();
  #closes = new Map<string, { id: string; at: Date; reason: string }>();
  #metrics = new Map<string, MetricRow>();
  #logs: LogInput[] = [];
  #droppedLogs = 0;

  private constructor(db: Database, options: StoreOptions) {
    this.db = db;
    this.#log = options.logger;
    this.#options = options;
    this.users = new UsersDao(db);
    this.apiKeys = new ApiKeysDao(db);
    this.signingKeys = new SigningKeysDao(db);
    this.tunnels = new TunnelsDao(db);
    this.sessions = new SessionsDao(db);
    this.metrics = new MetricsDao(db);
    this.logs = new LogsDao(db);
    this.alerts = new AlertsDao(db);
    this.#flushTimer = setInterval(
      () => this.flush().catch(() => {}),
      options.flushInterval ?? 5000,
    );
  }

  /**
   * Opens the database `config` names (`url` → PostgreSQL, else PGlite in
   * `data_dir`) and applies pending migrations.
   */
  static async open(config: StorageConfig, options: StoreOptions): Promise<Store> {
    const log = options.logger;
    const url = config.url?.reveal();
    const doMigrate = options.migrate ?? true;
    const migrations = doMigrate ? await loadMigrations() : [];
    const onApply = (m: Migration) => log.info("applying migration", { migration: m.name });
    const db = url ? await openPostgres(url, { logger: log }) : await openPglite(config.data_dir, {
      logger: log,
      cacheDir: options.cacheDir,
      // A new embedded database starts from a cached copy with the schema
      // already applied: no DDL, which also costs PGlite memory.
      setup: doMigrate
        ? {
          key: await schemaKey(migrations),
          run: async (db) => void await migrate(db, migrations, onApply),
        }
        : undefined,
    });
    try {
      if (doMigrate) {
        const result = await migrate(db, migrations, onApply);
        const changed = await changedMigrations(db, migrations);
        if (changed.length) {
          log.warn("applied migrations were edited since", { migrations: changed });
        }
        log.info("database ready", {
          backend: db.kind,
          location: db.location,
          schema_version: result.version,
          applied: result.applied.length,
        });
      }
    } catch (error) {
      await db.close();
      throw error;
    }
    return new Store(db, options);
  }

  /** Which backend. */
  get kind(): Database["kind"] {
    return this.db.kind;
  }

  /** Whether the last query reached the database. */
  get available(): boolean {
    return this.#available;
  }

  /** Rows waiting for the next flush. */
  get pendingWrites(): number {
    return this.#opens.size + this.#beats.size + this.#closes.size + this.#metrics.size +
      this.#logs.length;
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
   * Runs database work, noticing outages: a connection failure marks the
   * database down (logged once, probed until it answers again) and becomes a
   * {@linkcode DatabaseUnavailableError}.
   */
  async run<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    if (!this.#available) throw new DatabaseUnavailableError("database is down (reconnecting)");
    this.queries++;
    try {
      return await fn(this);
    } catch (error) {
      if (isConnectionError(error)) {
        this.#markDown(error);
        throw error instanceof DatabaseUnavailableError
          ? error
          : new DatabaseUnavailableError(error);
      }
      throw error;
    }
  }

  /** Subscribes to config changes (and a `resync` after the feed reconnects). */
  async listenConfig(fn: (change: ConfigChange) => void): Promise<() => Promise<void>> {
    let first = true;
    return await this.db.listen("burrow_config", (payload) => {
      let change: ConfigChange;
      try {
        change = JSON.parse(payload);
      } catch {
        this.#log.warn("ignored a malformed config notification", { payload });
        return;
      }
      fn(change);
    }, () => {
      if (first) {
        first = false;
        return;
      }
      this.#log.info("config feed re-subscribed; resynchronising");
      fn({ table: "*", op: "resync" });
    });
  }

  // ---- batched writes ----

  /** Queues the row of a session that just opened. */
  sessionOpened(row: SessionOpen): void {
    this.#opens.set(row.id, row);
  }

  /** Queues a session's latest heartbeat (later beats replace earlier ones). */
  sessionBeat(beat: SessionBeat): void {
    this.#beats.set(beat.id, beat);
  }

  /** Queues a session's end. */
  sessionClosed(id: string, reason: string, last?: SessionBeat): void {
    if (last) this.#beats.set(id, last);
    this.#closes.set(id, { id, at: new Date(), reason });
  }

  /** Adds counters to a tunnel's current one-minute bucket. */
  addMetrics(
    tunnelId: number,
    delta: Partial<Omit<MetricRow, "tunnel_id" | "bucket">>,
    at: Date = new Date(),
  ): void {
    const bucket = new Date(Math.floor(at.getTime() / 60_000) * 60_000);
    const key = `${tunnelId}@${bucket.getTime()}`;
    let row = this.#metrics.get(key);
    if (!row) {
      if (this.#metrics.size >= MAX_PENDING_METRICS) return;
      row = {
        tunnel_id: tunnelId,
        bucket,
        bytes_in: 0,
        bytes_out: 0,
        connections: 0,
        errors: 0,
        latency_ms_sum: 0,
        latency_count: 0,
      };
      this.#metrics.set(key, row);
    }
    row.bytes_in += delta.bytes_in ?? 0;
    row.bytes_out += delta.bytes_out ?? 0;
    row.connections += delta.connections ?? 0;
    row.errors += delta.errors ?? 0;
    row.latency_ms_sum += delta.latency_ms_sum ?? 0;
    row.latency_count += delta.latency_count ?? 0;
  }

  /** Queues a log event; the oldest are dropped (and counted) past 10,000 unsent. */
  addLog(
    event: Omit<LogInput, "at" | "fields"> & { at?: Date; fields?: LogInput["fields"] },
  ): void {
    if (this.#logs.length >= MAX_PENDING_LOGS) {
      this.#logs.shift();
      this.#droppedLogs++;
    }
    this.#logs.push({ ...event, at: event.at ?? new Date(), fields: event.fields ?? {} });
  }

  /**
   * Writes everything queued, at most five queries however many rows. On
   * failure the rows stay queued for the next attempt.
   */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => (this.#flushing = null));
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    if (!this.#available || this.pendingWrites === 0) return;
    const opens = [...this.#opens.values()];
    const beats = [...this.#beats.values()];
    const closes = [...this.#closes.values()];
    const metrics = [...this.#metrics.values()];
    const logs = this.#logs;
    this.#opens = new Map();
    this.#beats = new Map();
    this.#closes = new Map();
    this.#metrics = new Map();
    this.#logs = [];
    try {
      await this.run(async (s) => {
        // Counted by run() once; each batch below is one more query.
        s.queries += [opens, beats, closes, metrics, logs].filter((b) => b.length).length - 1;
        await s.sessions.open(opens);
        await s.sessions.beat(beats);
        await s.sessions.close(closes);
        await s.metrics.add(metrics);
        await s.logs.add(logs);
      });
      if (this.#droppedLogs) {
        this.#log.warn("log events dropped while the database was unreachable", {
          dropped: this.#droppedLogs,
        });
        this.#droppedLogs = 0;
      }
    } catch (error) {
      // Put back what was not written, without overwriting newer entries.
      for (const o of opens) if (!this.#opens.has(o.id)) this.#opens.set(o.id, o);
      for (const b of beats) if (!this.#beats.has(b.id)) this.#beats.set(b.id, b);
      for (const c of closes) if (!this.#closes.has(c.id)) this.#closes.set(c.id, c);
      for (const m of metrics) {
        const key = `${m.tunnel_id}@${m.bucket.getTime()}`;
        const newer = this.#metrics.get(key);
        if (newer) {
          newer.bytes_in += m.bytes_in;
          newer.bytes_out += m.bytes_out;
          newer.connections += m.connections;
          newer.errors += m.errors;
          newer.latency_ms_sum += m.latency_ms_sum;
          newer.latency_count += m.latency_count;
        } else this.#metrics.set(key, m);
      }
      this.#logs = [...logs, ...this.#logs].slice(-MAX_PENDING_LOGS);
      if (!(error instanceof DatabaseUnavailableError)) {
        this.#log.error("writing batched rows failed", { error });
      }
    }
  }

  /**
   * Deletes history older than `before`: metric buckets, log events,
   * resolved alerts and closed sessions. Returns what was deleted.
   */
  async prune(before: Date): Promise<Record<string, number>> {
    return await this.run(async (s) => {
      const count = async (sql: string) => (await s.db.query(sql, [before])).length;
      return {
        metrics: await count("delete from metrics where bucket < $1 returning 1"),
        logs: await count("delete from logs where at < $1 returning 1"),
        alerts: await count(
          "delete from alerts where state = 'resolved' and resolved_at < $1 returning 1",
        ),
        sessions: await count(
          "delete from sessions where disconnected_at is not null and disconnected_at < $1 returning 1",
        ),
      };
    });
  }

  // ---- outage handling ----

  #markDown(error: unknown): void {
    if (!this.#available || this.#closed) return;
    this.#available = false;
    this.#downSince = performance.now();
    this.#log.error("database unavailable", {
      backend: this.db.kind,
      error,
      pending_writes: this.pendingWrites,
    });
    for (const fn of this.#availabilityListeners) fn(false);
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    this.#probe = setTimeout(async () => {
      if (this.#closed) return;
      try {
        this.queries++;
        await this.db.query("select 1");
      } catch {
        this.#scheduleProbe();
        return;
      }
      this.#available = true;
      this.#log.info("database reconnected", {
        backend: this.db.kind,
        down_ms: Math.round(performance.now() - this.#downSince),
        pending_writes: this.pendingWrites,
      });
      for (const fn of this.#availabilityListeners) fn(true);
      for (const fn of this.#recoverListeners) fn();
      this.flush().catch(() => {});
    }, this.#options.probeInterval ?? 1000);
  }

  /** Flushes what is queued (if the database answers) and closes. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#flushTimer);
    await this.flush().catch(() => {});
    this.#closed = true;
    clearTimeout(this.#probe);
    await this.db.close();
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

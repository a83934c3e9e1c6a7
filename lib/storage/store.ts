/**
 * The {@linkcode Store}: one database (PostgreSQL or embedded PGlite) with its
 * migrations applied, the DAOs, a health monitor that notices an outage and
 * the recovery (`_availability.ts`), one bounded queue for high-frequency
 * rows (session heartbeats, metrics, access logs) and for what an outage
 * holds back (`_write_queue.ts`), and the `burrow_config` change feed.
 *
 * @module
 */

import type { StorageConfig } from "../config/mod.ts";
import type { Logger } from "../util/mod.ts";
import { Availability } from "./_availability.ts";
import {
  type PendingTunnel,
  type QueueTunnelOptions,
  type TunnelRecord,
  type TunnelRef,
  WriteQueue,
} from "./_write_queue.ts";
import type { Database } from "./db.ts";
import {
  AlertsDao,
  type KickNotice,
  type LogInput,
  LogsDao,
  MetricsDao,
  type SessionBeat,
  type SessionOpen,
  SessionsDao,
} from "./activity_dao.ts";
import { ApiKeysDao, SigningKeysDao, UsersDao } from "./accounts_dao.ts";
import { TunnelsDao } from "./tunnels_dao.ts";
import { type PlacementChange, PlacementsDao } from "./placements_dao.ts";
import { NodesDao } from "./nodes_dao.ts";
import {
  changedMigrations,
  loadMigrations,
  migrate,
  type Migration,
  schemaKey,
} from "./migrate.ts";
import type { ConfigChange, MetricRow, TunnelRow } from "./models.ts";
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
  /**
   * Milliseconds a PostgreSQL query may go unanswered before it fails with
   * {@linkcode DatabaseUnavailableError}; 0 waits forever. Default
   * `storage.query_timeout`, else 3000. (PGlite runs in this process and has
   * no timeout.)
   */
  queryTimeout?: number;
  /**
   * Milliseconds between liveness pings (`select 1`, bounded by the query
   * timeout) while PostgreSQL is up, so a database that stops answering is
   * noticed without waiting for the next write. Default 1000.
   */
  pingInterval?: number;
  /**
   * Most rows held for the database (tunnel rows and statuses, session rows,
   * metric buckets, log events). Past it, new metric buckets and log events
   * are dropped and counted; tunnel and session rows are always kept (at
   * most one per tunnel or session). Default 10,000.
   */
  maxPendingWrites?: number;
  /** Apply migrations on open. Default true. */
  migrate?: boolean;
  /** Cache directory for blank PGlite clusters (`null`: none). */
  cacheDir?: string | null | undefined;
}

/** Options of {@linkcode Store.run}. */
export interface RunOptions {
  /** Milliseconds before the work fails as unanswered; 0 waits forever. Default: the query timeout. */
  timeout?: number;
}

/** Default of {@linkcode StoreOptions.maxPendingWrites}. */
export const MAX_PENDING_WRITES = 10_000;
/** Default of {@linkcode StoreOptions.queryTimeout}. */
export const QUERY_TIMEOUT = 3000;
/** At most one "resynchronising" line per this many ms; the others are counted. */
const RESYNC_LOG_INTERVAL = 30_000;

/**
 * The database with its DAOs, batched writers, outage tracking and change feed.
 *
 * While the database is unreachable, what the server would have written goes
 * into one bounded queue (tunnel rows of tunnels declared meanwhile, tunnel
 * statuses, session rows, metric buckets, log events), written in that order
 * once it answers again. Counters and events of a queued tunnel refer to it
 * by its {@linkcode PendingTunnel} and get its row id when it is written.
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
  /** `placements` (cluster mode). */
  readonly placements: PlacementsDao;
  /** `nodes` and `cluster_leases` (cluster mode). */
  readonly nodes: NodesDao;
  /** Most rows held for the database (see {@linkcode StoreOptions.maxPendingWrites}). */
  readonly maxPendingWrites: number;

  #log: Logger;
  #availability: Availability;
  #queue: WriteQueue;
  #closed = false;
  #resyncLog: {
    at: number;
    suppressed: number;
    timer: ReturnType<typeof setTimeout> | undefined;
  } = { at: -Infinity, suppressed: 0, timer: undefined };

  private constructor(db: Database, options: StoreOptions, queryTimeout: number) {
    this.db = db;
    this.#log = options.logger;
    this.maxPendingWrites = options.maxPendingWrites ?? MAX_PENDING_WRITES;
    this.users = new UsersDao(db);
    this.apiKeys = new ApiKeysDao(db);
    this.signingKeys = new SigningKeysDao(db);
    this.tunnels = new TunnelsDao(db);
    this.sessions = new SessionsDao(db);
    this.metrics = new MetricsDao(db);
    this.logs = new LogsDao(db);
    this.alerts = new AlertsDao(db);
    this.placements = new PlacementsDao(db);
    this.nodes = new NodesDao(db);
    this.#availability = new Availability(db, {
      logger: options.logger,
      queryTimeout: db.kind === "postgres" ? queryTimeout : 0,
      probeInterval: options.probeInterval ?? 1000,
      pingInterval: options.pingInterval ?? 1000,
      pendingWrites: () => this.pendingWrites,
      reconnected: () => void this.flush().catch(() => {}),
    });
    this.#queue = new WriteQueue(db, this.#availability, {
      logger: options.logger,
      maxPendingWrites: this.maxPendingWrites,
      flushInterval: options.flushInterval ?? 5000,
    });
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
    return new Store(db, options, options.queryTimeout ?? config.query_timeout ?? QUERY_TIMEOUT);
  }

  /** Which backend. */
  get kind(): Database["kind"] {
    return this.db.kind;
  }

  /** Whether the database answers (the last query or liveness ping reached it). */
  get available(): boolean {
    return this.#availability.available;
  }

  /** Rows waiting for the database: the pending-writes queue. */
  get pendingWrites(): number {
    return this.#queue.size;
  }

  /** Queries issued through {@linkcode Store.run} and the writers (liveness pings not counted). */
  get queries(): number {
    return this.#availability.queries;
  }

  /** Metric buckets and log events dropped because the pending-writes queue was full. */
  get droppedWrites(): number {
    return this.#queue.droppedWrites;
  }

  /** Calls `fn` after each recovery from an outage. Returns an unsubscribe function. */
  onRecover(fn: () => void): () => void {
    return this.#availability.onRecover(fn);
  }

  /** Calls `fn` whenever availability changes. Returns an unsubscribe function. */
  onAvailability(fn: (available: boolean) => void): () => void {
    return this.#availability.onAvailability(fn);
  }

  /**
   * Runs database work, noticing outages: a connection failure marks the
   * database down (logged once, probed until it answers again) and becomes a
   * {@linkcode DatabaseUnavailableError}. Work unanswered for the query
   * timeout fails the same way and has the database pinged at once: only a
   * ping that goes unanswered too marks it down (a slow query is not an
   * outage).
   */
  run<T>(fn: (store: Store) => Promise<T>, options: RunOptions = {}): Promise<T> {
    return this.#availability.run(() => fn(this), options.timeout);
  }

  /**
   * Subscribes to changes of `placements` (cluster mode), and a `resync`
   * after the feed reconnects (notifications may have been missed).
   */
  async listenPlacements(fn: (change: PlacementChange) => void): Promise<() => Promise<void>> {
    let first = true;
    return await this.db.listen("burrow_placements", (payload) => {
      let change: PlacementChange;
      try {
        change = JSON.parse(payload);
      } catch {
        this.#log.warn("ignored a malformed placement notification", { payload });
        return;
      }
      fn(change);
    }, () => {
      if (first) first = false;
      else fn({ op: "resync" });
    });
  }

  /**
   * Subscribes to kicks (`NOTIFY burrow_kick`, cluster mode): sessions the
   * admin API of some node was asked to close. A kick sent while the feed
   * was down is lost; the administrator sees the session still listed.
   */
  async listenKicks(fn: (kick: KickNotice) => void): Promise<() => Promise<void>> {
    return await this.db.listen("burrow_kick", (payload) => {
      let kick: KickNotice;
      try {
        kick = JSON.parse(payload);
      } catch {
        this.#log.warn("ignored a malformed kick notification", { payload });
        return;
      }
      if (typeof kick?.node !== "string" || typeof kick.session !== "string") {
        this.#log.warn("ignored a malformed kick notification", { payload });
        return;
      }
      fn(kick);
    });
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
      this.#logResync();
      fn({ table: "*", op: "resync" });
    });
  }

  /** Logs a re-subscription at most once per 30 s; the others are counted in the next line. */
  #logResync(): void {
    const r = this.#resyncLog;
    const now = performance.now();
    if (r.timer === undefined && now - r.at >= RESYNC_LOG_INTERVAL) {
      r.at = now;
      this.#log.info("config feed re-subscribed; resynchronising");
      return;
    }
    if (r.suppressed++ > 0 || this.#closed) return;
    r.timer = setTimeout(() => {
      const count = r.suppressed;
      r.timer = undefined;
      r.suppressed = 0;
      r.at = performance.now();
      this.#log.info("config feed re-subscribed; resynchronising", {
        count,
        window_ms: RESYNC_LOG_INTERVAL,
      });
    }, Math.max(0, r.at + RESYNC_LOG_INTERVAL - now));
    Deno.unrefTimer(r.timer as unknown as number);
  }

  // ---- the pending-writes queue ----

  /**
   * Queues the row of a tunnel a client declared while the database could
   * not record it. A later declaration of the same user and name replaces the
   * queued one. The row is written (conflicts checked) before anything else
   * queued once the database answers.
   */
  queueTunnel(record: TunnelRecord, options: QueueTunnelOptions = {}): PendingTunnel {
    return this.#queue.queueTunnel(record, options);
  }

  /** The queued row of the user's tunnel `name`, if one waits. */
  queuedTunnel(userId: number, name: string): PendingTunnel | undefined {
    return this.#queue.queuedTunnel(userId, name);
  }

  /**
   * Records a tunnel's observed status and public port (latest wins): at
   * once while the database answers, else when it does again.
   */
  tunnelStatus(
    tunnel: TunnelRef,
    status: TunnelRow["status"],
    port: number | null,
    error: string | null,
  ): void {
    this.#queue.tunnelStatus(tunnel, status, port, error);
  }

  /** Queues the row of a session that just opened. */
  sessionOpened(row: SessionOpen): void {
    this.#queue.sessionOpened(row);
  }

  /** Queues a session's latest heartbeat (later beats replace earlier ones). */
  sessionBeat(beat: SessionBeat): void {
    this.#queue.sessionBeat(beat);
  }

  /** Queues a session's end. */
  sessionClosed(id: string, reason: string, last?: SessionBeat): void {
    this.#queue.sessionClosed(id, reason, last);
  }

  /** Adds counters to a tunnel's current one-minute bucket. */
  addMetrics(
    tunnel: TunnelRef,
    delta: Partial<Omit<MetricRow, "tunnel_id" | "bucket">>,
    at?: Date,
  ): void {
    this.#queue.addMetrics(tunnel, delta, at);
  }

  /**
   * Queues a log event. `tunnel` names a tunnel whose row is still queued
   * (its id replaces `tunnel_id` when written). Past the queue's bound the
   * event is dropped and counted.
   */
  addLog(
    event: Omit<LogInput, "at" | "fields"> & {
      at?: Date;
      fields?: LogInput["fields"];
      tunnel?: PendingTunnel | undefined;
    },
  ): void {
    this.#queue.addLog(event);
  }

  /**
   * Writes everything queued: first the rows of tunnels declared during an
   * outage (one at a time, conflicts checked), then tunnel statuses, then
   * sessions, metrics and logs in one transaction of at most five queries
   * however many rows. What could not be written stays queued.
   */
  flush(): Promise<void> {
    return this.#queue.flush();
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
    }, { timeout: 10 * 60_000 });
  }

  /** Flushes what is queued (if the database answers) and closes. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#availability.stopPinging();
    await this.#queue.close();
    this.#closed = true;
    this.#availability.close();
    clearTimeout(this.#resyncLog.timer);
    await this.db.close();
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

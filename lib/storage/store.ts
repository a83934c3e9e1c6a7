/**
 * The {@linkcode Store}: one database (PostgreSQL or embedded PGlite) with its
 * migrations applied, the DAOs, a health monitor that notices an outage and
 * the recovery, batched writers for high-frequency rows (session heartbeats,
 * metrics, access logs) and the `burrow_config` change feed.
 *
 * @module
 */

import type { StorageConfig } from "../config/mod.ts";
import type { Logger } from "../util/mod.ts";
import { type Database, DatabaseUnavailableError, isConnectionError } from "./db.ts";
import {
  AlertsDao,
  type LogInput,
  LogsDao,
  MetricsDao,
  type SessionBeat,
  type SessionOpen,
  SessionsDao,
} from "./activity_dao.ts";
import { ApiKeysDao, SigningKeysDao, UsersDao } from "./accounts_dao.ts";
import { ConflictError, ValidationError } from "./errors.ts";
import { type DeclaredTunnel, TunnelsDao } from "./tunnels_dao.ts";
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

/** Log rows per statement of a batched write (see {@linkcode Store.flush}). */
const LOG_SLICE = 50;

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

/** A declared tunnel to record once the database answers (see {@linkcode Store.queueTunnel}). */
export interface TunnelRecord {
  /** The owner. */
  userId: number;
  /** The client that declared it. */
  clientId: string;
  /** What the client declared. */
  tunnel: DeclaredTunnel;
}

/** Options of {@linkcode Store.queueTunnel}. */
export interface QueueTunnelOptions {
  /** Called once the row is written. */
  onRecorded?: (row: TunnelRow) => void;
  /** Called when the database refuses the row (a clash, a disabled or managed name). */
  onRefused?: (error: Error) => void;
}

/** A declared tunnel whose row waits in the pending-writes queue. */
export interface PendingTunnel {
  /** The tunnel's name. */
  readonly name: string;
  /** Its row id once written, else `null`. */
  readonly id: number | null;
  /** Why the database refused the row, once it did; else `null`. */
  readonly refusal: string | null;
}

/** What a tunnel's status, counters and events refer to: its row id or its queued row. */
export type TunnelRef = number | PendingTunnel;

/** Default of {@linkcode StoreOptions.maxPendingWrites}. */
export const MAX_PENDING_WRITES = 10_000;
/** Default of {@linkcode StoreOptions.queryTimeout}. */
export const QUERY_TIMEOUT = 3000;
/** At most one "resynchronising" line per this many ms; the others are counted. */
const RESYNC_LOG_INTERVAL = 30_000;

/** A query went unanswered for the query timeout (the database may only be slow). */
class QueryTimeoutError extends DatabaseUnavailableError {
  constructor(ms: number) {
    super(`no answer within ${ms} ms (storage.query_timeout)`);
  }
}

class QueuedTunnel implements PendingTunnel {
  id: number | null = null;
  refusal: string | null = null;
  /** Bumped when a newer declaration replaces `record`. */
  version = 0;
  recorded: Array<(row: TunnelRow) => void> = [];
  refused: Array<(error: Error) => void> = [];
  constructor(public record: TunnelRecord, readonly seq: number) {}
  get name(): string {
    return this.record.tunnel.name;
  }
  get key(): string {
    return queueKey(this.record.userId, this.record.tunnel.name);
  }
}

function queueKey(userId: number, name: string): string {
  return `${userId}/${name}`;
}

interface TunnelStatusRow {
  status: TunnelRow["status"];
  port: number | null;
  error: string | null;
}

type QueuedLog = LogInput & { tunnel?: PendingTunnel | undefined };

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
  /** Queries issued through {@linkcode Store.run} and the writers (liveness pings not counted). */
  queries = 0;
  /** Metric buckets and log events dropped because the pending-writes queue was full. */
  droppedWrites = 0;
  /** Most rows held for the database (see {@linkcode StoreOptions.maxPendingWrites}). */
  readonly maxPendingWrites: number;

  #log: Logger;
  #options: StoreOptions;
  #queryTimeout: number;
  #available = true;
  #downSince = 0;
  #probe: ReturnType<typeof setTimeout> | undefined;
  #flushTimer: ReturnType<typeof setInterval> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #pinging = false;
  #flushing: Promise<void> | null = null;
  #recoverListeners = new Set<() => void>();
  #availabilityListeners = new Set<(available: boolean) => void>();
  #closed = false;
  #overflow = 0;
  #resyncLog: {
    at: number;
    suppressed: number;
    timer: ReturnType<typeof setTimeout> | undefined;
  } = { at: -Infinity, suppressed: 0, timer: undefined };
  // The pending writes.
  #tunnelQueue = new Map<string, QueuedTunnel>();
  #tunnelSeq = 0;
  #statuses = new Map<number | PendingTunnel, TunnelStatusRow>();
  #statusWrites = new Map<number, Promise<void>>();
  #opens = new Map<string, SessionOpen>();
  #beats = new Map<string, SessionBeat>();
  #closes = new Map<string, { id: string; at: Date; reason: string }>();
  #metrics = new Map<string, { tunnel: TunnelRef; row: MetricRow }>();
  /** The bucket the last `addMetrics` added to: requests mostly follow one another on a tunnel. */
  #lastMetric: { tunnel: TunnelRef; bucketMs: number; row: MetricRow } | null = null;
  #logs: QueuedLog[] = [];

  private constructor(db: Database, options: StoreOptions, queryTimeout: number) {
    this.db = db;
    this.#log = options.logger;
    this.#options = options;
    this.#queryTimeout = db.kind === "postgres" ? queryTimeout : 0;
    this.maxPendingWrites = options.maxPendingWrites ?? MAX_PENDING_WRITES;
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
    if (this.#queryTimeout > 0) {
      this.#pingTimer = setInterval(() => this.#ping(), options.pingInterval ?? 1000);
    }
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
    return this.#available;
  }

  /** Rows waiting for the database: the pending-writes queue. */
  get pendingWrites(): number {
    return this.#tunnelQueue.size + this.#statuses.size + this.#opens.size + this.#beats.size +
      this.#closes.size + this.#metrics.size + this.#logs.length;
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
   * {@linkcode DatabaseUnavailableError}. Work unanswered for the query
   * timeout fails the same way and has the database pinged at once: only a
   * ping that goes unanswered too marks it down (a slow query is not an
   * outage).
   */
  async run<T>(fn: (store: Store) => Promise<T>, options: RunOptions = {}): Promise<T> {
    if (!this.#available) throw new DatabaseUnavailableError("database is down (reconnecting)");
    this.queries++;
    try {
      return await this.#bounded(fn(this), options.timeout);
    } catch (error) {
      if (error instanceof QueryTimeoutError) {
        this.#ping();
        throw error;
      }
      if (isConnectionError(error)) {
        this.#markDown(error);
        throw error instanceof DatabaseUnavailableError
          ? error
          : new DatabaseUnavailableError(error);
      }
      throw error;
    }
  }

  /** `work`, or a {@linkcode QueryTimeoutError} when it takes longer than `ms`. */
  #bounded<T>(work: Promise<T>, ms = this.#queryTimeout): Promise<T> {
    if (!(ms > 0)) return work;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueryTimeoutError(ms)), ms);
    });
    // The work may still settle after the timeout; nobody waits for it then.
    work.catch(() => {});
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
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

  /** Whether one more metric bucket or log event fits; counts and logs a drop when not. */
  #room(): boolean {
    if (this.pendingWrites < this.maxPendingWrites) return true;
    this.droppedWrites++;
    if (this.#overflow++ === 0) {
      this.#log.warn("pending database writes full: dropping new metrics and log events", {
        limit: this.maxPendingWrites,
        database_available: this.#available,
      });
    }
    return false;
  }

  /**
   * Queues the row of a tunnel a client declared while the database could
   * not record it. A later declaration of the same user and name replaces the
   * queued one. The row is written (conflicts checked) before anything else
   * queued once the database answers.
   */
  queueTunnel(record: TunnelRecord, options: QueueTunnelOptions = {}): PendingTunnel {
    const key = queueKey(record.userId, record.tunnel.name);
    let queued = this.#tunnelQueue.get(key);
    if (queued) {
      queued.record = record;
      queued.version++;
    } else {
      queued = new QueuedTunnel(record, ++this.#tunnelSeq);
      this.#tunnelQueue.set(key, queued);
    }
    if (options.onRecorded) queued.recorded.push(options.onRecorded);
    if (options.onRefused) queued.refused.push(options.onRefused);
    return queued;
  }

  /** The queued row of the user's tunnel `name`, if one waits. */
  queuedTunnel(userId: number, name: string): PendingTunnel | undefined {
    return this.#tunnelQueue.get(queueKey(userId, name));
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
    const key = typeof tunnel === "number" ? tunnel : tunnel.id ?? tunnel;
    if (typeof key !== "number" && key.refusal !== null) return;
    this.#statuses.set(key, { status, port, error });
    if (typeof key === "number" && this.#available) this.#writeStatus(key).catch(() => {});
  }

  /** Writes the latest queued status of tunnel `id`, one write at a time per tunnel. */
  #writeStatus(id: number): Promise<void> {
    const previous = this.#statusWrites.get(id) ?? Promise.resolve();
    const write = previous.then(async () => {
      const row = this.#statuses.get(id);
      if (!row) return;
      this.#statuses.delete(id);
      try {
        await this.run((s) => s.tunnels.setStatus(id, row.status, row.port, row.error));
      } catch (error) {
        if (!(error instanceof DatabaseUnavailableError)) {
          this.#log.warn("could not record tunnel status", { tunnel_id: id, error });
        } else if (!this.#statuses.has(id)) this.#statuses.set(id, row);
      }
    }).finally(() => {
      if (this.#statusWrites.get(id) === write) this.#statusWrites.delete(id);
    });
    this.#statusWrites.set(id, write);
    return write;
  }

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
    tunnel: TunnelRef,
    delta: Partial<Omit<MetricRow, "tunnel_id" | "bucket">>,
    at?: Date,
  ): void {
    if (typeof tunnel !== "number" && tunnel.id !== null) tunnel = tunnel.id;
    // Called for every request: no Date is made unless a new bucket starts.
    const bucketMs = Math.floor((at ? at.getTime() : Date.now()) / 60_000) * 60_000;
    const last = this.#lastMetric;
    if (last !== null && last.tunnel === tunnel && last.bucketMs === bucketMs) {
      addInto(last.row, delta);
      return;
    }
    const key = `${
      typeof tunnel === "number" ? tunnel : `q${(tunnel as QueuedTunnel).seq}`
    }@${bucketMs}`;
    let entry = this.#metrics.get(key);
    if (!entry) {
      if (!this.#room()) return;
      entry = {
        tunnel,
        row: {
          tunnel_id: typeof tunnel === "number" ? tunnel : 0,
          bucket: new Date(bucketMs),
          bytes_in: 0,
          bytes_out: 0,
          connections: 0,
          errors: 0,
          latency_ms_sum: 0,
          latency_count: 0,
        },
      };
      this.#metrics.set(key, entry);
    }
    this.#lastMetric = { tunnel, bucketMs, row: entry.row };
    addInto(entry.row, delta);
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
    if (!this.#room()) return;
    this.#logs.push({ ...event, at: event.at ?? new Date(), fields: event.fields ?? {} });
  }

  /**
   * Writes everything queued: first the rows of tunnels declared during an
   * outage (one at a time, conflicts checked), then tunnel statuses, then
   * sessions, metrics and logs in one transaction of at most five queries
   * however many rows. What could not be written stays queued.
   */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => (this.#flushing = null));
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    if (!this.#available || this.pendingWrites === 0) return;
    if (!(await this.#flushTunnels())) return;
    await this.#flushStatuses();
    await this.#flushBatch();
    if (this.#overflow && this.pendingWrites < this.maxPendingWrites) {
      this.#log.warn("pending database writes flushed after dropping some", {
        dropped: this.#overflow,
        limit: this.maxPendingWrites,
      });
      this.#overflow = 0;
    }
  }

  /** Writes queued tunnel rows in order; false when the database stopped answering. */
  async #flushTunnels(): Promise<boolean> {
    for (const queued of [...this.#tunnelQueue.values()]) {
      const { version, record } = queued;
      try {
        const row = await this.run((s) =>
          s.tunnels.recordDeclared(record.userId, record.clientId, record.tunnel)
        );
        queued.id = row.id;
        if (queued.version === version) this.#tunnelQueue.delete(queued.key);
        const listeners = queued.recorded;
        queued.recorded = [];
        queued.refused = [];
        for (const fn of listeners) fn(row);
      } catch (error) {
        if (error instanceof DatabaseUnavailableError) return false;
        if (!(error instanceof ConflictError || error instanceof ValidationError)) {
          this.#log.error("writing a queued tunnel row failed", {
            tunnel: record.tunnel.name,
            error,
          });
        }
        queued.refusal = (error as Error).message;
        this.#tunnelQueue.delete(queued.key);
        const listeners = queued.refused;
        queued.recorded = [];
        queued.refused = [];
        for (const fn of listeners) fn(error as Error);
      }
    }
    return true;
  }

  /** Writes the queued statuses, those of queued tunnels once their rows exist. */
  async #flushStatuses(): Promise<void> {
    for (const [key, row] of [...this.#statuses]) {
      if (typeof key === "number") continue;
      if (key.id !== null) {
        this.#statuses.delete(key);
        if (!this.#statuses.has(key.id)) this.#statuses.set(key.id, row);
      } else if (key.refusal !== null) this.#statuses.delete(key);
    }
    const ids = [...this.#statuses.keys()].filter((k): k is number => typeof k === "number");
    await Promise.all(ids.map((id) => this.#writeStatus(id)));
  }

  /** Sessions, metrics and logs in one transaction. */
  async #flushBatch(): Promise<void> {
    if (!this.#available) return;
    const opens = [...this.#opens.values()];
    const beats = [...this.#beats.values()];
    const closes = [...this.#closes.values()];
    // Counters and events of a tunnel whose row is not written yet wait for it.
    const waiting = (t: TunnelRef | undefined) =>
      t !== undefined && typeof t !== "number" && t.id === null && t.refusal === null;
    const metricEntries = [...this.#metrics].filter(([, e]) => !waiting(e.tunnel));
    const logs = this.#logs.filter((l) => !waiting(l.tunnel));
    if (!opens.length && !beats.length && !closes.length && !metricEntries.length && !logs.length) {
      return;
    }
    this.#opens = new Map();
    this.#beats = new Map();
    this.#closes = new Map();
    this.#lastMetric = null;
    for (const [key] of metricEntries) this.#metrics.delete(key);
    this.#logs = this.#logs.filter((l) => waiting(l.tunnel));
    const metrics = mergeMetrics(metricEntries.map(([, e]) => e));
    const logRows = logs.map(({ tunnel, ...row }) =>
      tunnel === undefined ? row : { ...row, tunnel_id: tunnel.id }
    );
    const putBack = () => {
      for (const o of opens) if (!this.#opens.has(o.id)) this.#opens.set(o.id, o);
      for (const b of beats) if (!this.#beats.has(b.id)) this.#beats.set(b.id, b);
      for (const c of closes) if (!this.#closes.has(c.id)) this.#closes.set(c.id, c);
      for (const m of metrics) {
        const key = `${m.tunnel_id}@${m.bucket.getTime()}`;
        const newer = this.#metrics.get(key);
        if (newer) addInto(newer.row, m);
        else this.#metrics.set(key, { tunnel: m.tunnel_id, row: m });
      }
      this.#logs = [...logRows, ...this.#logs];
    };
    this.queries += [opens, beats, closes, metrics].filter((b) => b.length).length +
      Math.ceil(logRows.length / LOG_SLICE);
    // One transaction: on failure nothing was written and everything goes back in the queue.
    const work = this.db.transaction(async (tx) => {
      await new SessionsDao(tx).open(opens);
      await new SessionsDao(tx).beat(beats);
      await new SessionsDao(tx).close(closes);
      await new MetricsDao(tx).add(metrics);
      // The embedded database runs on the event loop: hundreds of rows in one statement held
      // every request for ~25 ms. In slices, with a turn of the event loop between them.
      for (let i = 0; i < logRows.length; i += LOG_SLICE) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 0));
        await new LogsDao(tx).add(logRows.slice(i, i + LOG_SLICE));
      }
    });
    try {
      await this.#bounded(work);
    } catch (error) {
      if (error instanceof QueryTimeoutError) {
        // In doubt: the transaction may still commit. Requeue only if it fails.
        work.catch(putBack);
        this.#ping();
        return;
      }
      putBack();
      if (isConnectionError(error)) this.#markDown(error);
      else this.#log.error("writing batched rows failed", { error });
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
    }, { timeout: 10 * 60_000 });
  }

  // ---- outage handling ----

  /** Pings PostgreSQL (bounded by the query timeout) unless a ping is under way. */
  #ping(): void {
    if (!this.#available || this.#closed || this.#pinging || !(this.#queryTimeout > 0)) return;
    this.#pinging = true;
    this.#bounded(this.db.query("select 1"))
      .catch((error) => {
        if (isConnectionError(error)) this.#markDown(error);
      })
      .finally(() => (this.#pinging = false));
  }

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
        await this.#bounded(this.db.query("select 1"));
      } catch {
        if (!this.#closed) this.#scheduleProbe();
        return;
      }
      if (this.#closed) return;
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
    clearInterval(this.#pingTimer);
    await this.flush().catch(() => {});
    await Promise.all(this.#statusWrites.values());
    this.#closed = true;
    clearTimeout(this.#probe);
    clearTimeout(this.#resyncLog.timer);
    await this.db.close();
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Adds the counters of `delta` into `row`. */
function addInto(row: MetricRow, delta: Partial<MetricRow>): void {
  row.bytes_in += delta.bytes_in ?? 0;
  row.bytes_out += delta.bytes_out ?? 0;
  row.connections += delta.connections ?? 0;
  row.errors += delta.errors ?? 0;
  row.latency_ms_sum += delta.latency_ms_sum ?? 0;
  row.latency_count += delta.latency_count ?? 0;
}

/**
 * Metric rows with their tunnel ids resolved, one per tunnel and bucket
 * (a queued tunnel's early buckets meet the ones counted under its id);
 * rows of tunnels the database refused are left out.
 */
function mergeMetrics(entries: Array<{ tunnel: TunnelRef; row: MetricRow }>): MetricRow[] {
  const out = new Map<string, MetricRow>();
  for (const { tunnel, row } of entries) {
    const id = typeof tunnel === "number" ? tunnel : tunnel.id;
    if (id === null) continue;
    const key = `${id}@${row.bucket.getTime()}`;
    const into = out.get(key);
    if (into) addInto(into, row);
    else out.set(key, { ...row, tunnel_id: id });
  }
  return [...out.values()];
}

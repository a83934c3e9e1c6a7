/**
 * The {@linkcode WriteQueue} of one store: what the server writes often or
 * during an outage, held in memory and written together. Private to
 * storage: the `Store` owns one and speaks for it; its vocabulary
 * ({@linkcode TunnelRecord}, {@linkcode PendingTunnel}, {@linkcode TunnelRef})
 * is exported with the `Store`.
 *
 * @module
 */

import type { Logger } from "../util/mod.ts";
import { type Availability, QueryTimeoutError } from "./_availability.ts";
import { type Database, DatabaseUnavailableError, isConnectionError } from "./db.ts";
import {
  type LogInput,
  LogsDao,
  MetricsDao,
  type SessionBeat,
  type SessionOpen,
  SessionsDao,
} from "./activity_dao.ts";
import { ConflictError, ValidationError } from "./errors.ts";
import { addInto, type Batch, mergeMetrics, rowsOf } from "./_batch.ts";
import { type DeclaredTunnel, TunnelsDao } from "./tunnels_dao.ts";
import type { MetricRow, TunnelRow } from "./models.ts";

/** Log rows per statement of a batched write. */
const LOG_SLICE = 50;

/** A declared tunnel to record once the database answers (see `Store.queueTunnel`). */
export interface TunnelRecord {
  /** The owner. */
  userId: number;
  /** The client that declared it. */
  clientId: string;
  /** What the client declared. */
  tunnel: DeclaredTunnel;
  /** The owner is an administrator (a conflict names whose tunnel it is). */
  admin?: boolean;
}

/** Options of `Store.queueTunnel`. */
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

/** Options of {@linkcode WriteQueue}. */
export interface WriteQueueOptions {
  /** Where drops and failed writes are logged. */
  logger: Logger;
  /** Most rows held (see `StoreOptions.maxPendingWrites`). */
  maxPendingWrites: number;
  /** Milliseconds between flushes. */
  flushInterval: number;
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
 * One bounded queue of what the server would have written (tunnel rows of
 * tunnels declared during an outage, tunnel statuses, session rows, metric
 * buckets, log events), flushed on a timer and after an outage, in that
 * order. Counters and events of a queued tunnel refer to it by its
 * {@linkcode PendingTunnel} and get its row id when it is written.
 */
export class WriteQueue {
  /** Metric buckets and log events dropped because the queue was full. */
  droppedWrites = 0;
  readonly #db: Database;
  readonly #availability: Availability;
  readonly #tunnels: TunnelsDao;
  readonly #log: Logger;
  readonly #max: number;
  #flushTimer: ReturnType<typeof setInterval>;
  #flushing: Promise<void> | null = null;
  #overflow = 0;
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
  /** Batches whose transaction may have committed, retried in order under their ids. */
  #inDoubt: Batch[] = [];
  /** Ids of batches known written, deleted from `write_batches` by the next batch. */
  #settled: string[] = [];

  /** Writes to `db` while `availability` says it answers; flushes every `flushInterval` ms. */
  constructor(db: Database, availability: Availability, options: WriteQueueOptions) {
    this.#db = db;
    this.#availability = availability;
    this.#tunnels = new TunnelsDao(db);
    this.#log = options.logger;
    this.#max = options.maxPendingWrites;
    this.#flushTimer = setInterval(() => this.flush().catch(() => {}), options.flushInterval);
  }

  /** Rows waiting for the database. */
  get size(): number {
    return this.#tunnelQueue.size + this.#statuses.size + this.#opens.size + this.#beats.size +
      this.#closes.size + this.#metrics.size + this.#logs.length +
      this.#inDoubt.reduce((n, b) => n + rowsOf(b), 0);
  }

  /** Whether one more metric bucket or log event fits; counts and logs a drop when not. */
  #room(): boolean {
    if (this.size < this.#max) return true;
    this.droppedWrites++;
    if (this.#overflow++ === 0) {
      this.#log.warn("pending database writes full: dropping new metrics and log events", {
        limit: this.#max,
        database_available: this.#availability.available,
      });
    }
    return false;
  }

  /** Queues the row of a declared tunnel; a later declaration of the same user and name replaces it. */
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

  /** Records a tunnel's status (latest wins): at once while the database answers, else later. */
  tunnelStatus(
    tunnel: TunnelRef,
    status: TunnelRow["status"],
    port: number | null,
    error: string | null,
  ): void {
    const key = typeof tunnel === "number" ? tunnel : tunnel.id ?? tunnel;
    if (typeof key !== "number" && key.refusal !== null) return;
    this.#statuses.set(key, { status, port, error });
    if (typeof key === "number" && this.#availability.available) {
      this.#writeStatus(key).catch(() => {});
    }
  }

  /** Writes the latest queued status of tunnel `id`, one write at a time per tunnel. */
  #writeStatus(id: number): Promise<void> {
    const previous = this.#statusWrites.get(id) ?? Promise.resolve();
    const write = previous.then(async () => {
      const row = this.#statuses.get(id);
      if (!row) return;
      this.#statuses.delete(id);
      try {
        await this.#availability.run(() =>
          this.#tunnels.setStatus(id, row.status, row.port, row.error)
        );
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

  /** Adds counters to a tunnel's one-minute bucket of `at` (default now). */
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

  /** Queues a log event (`tunnel`: a queued row whose id it gets); dropped when full. */
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

  /** Writes everything queued, one flush at a time; what could not be written stays queued. */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => (this.#flushing = null));
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    if (!this.#availability.available || this.size === 0) return;
    if (!(await this.#flushTunnels())) return;
    await this.#flushStatuses();
    await this.#flushBatch();
    if (this.#overflow && this.size < this.#max) {
      this.#log.warn("pending database writes flushed after dropping some", {
        dropped: this.#overflow,
        limit: this.#max,
      });
      this.#overflow = 0;
    }
  }

  /** Writes queued tunnel rows in order; false when the database stopped answering. */
  async #flushTunnels(): Promise<boolean> {
    for (const queued of [...this.#tunnelQueue.values()]) {
      const { version, record } = queued;
      try {
        const row = await this.#availability.run(() =>
          this.#tunnels.recordDeclared(record.userId, record.clientId, record.tunnel, {
            admin: record.admin ?? false,
          })
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

  /**
   * Sessions, metrics and logs in one transaction of at most six queries
   * however many rows (the batch's id, then one per kind of row). First the batches whose commit is in doubt, each
   * again under its own id, then what was queued since.
   */
  async #flushBatch(): Promise<void> {
    if (!this.#availability.available) return;
    while (this.#inDoubt.length) {
      if ((await this.#write(this.#inDoubt[0]!)) !== "written") return;
      this.#inDoubt.shift();
    }
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
    const batch: Batch = {
      id: crypto.randomUUID(),
      opens,
      beats,
      closes,
      metrics: mergeMetrics(metricEntries.map(([, e]) => e)),
      logs: logs.map(({ tunnel, ...row }) =>
        tunnel === undefined ? row : { ...row, tunnel_id: tunnel.id }
      ),
    };
    const outcome = await this.#write(batch);
    if (outcome === "doubt") this.#inDoubt.push(batch);
    else if (outcome === "failed") this.#putBack(batch);
  }

  /**
   * Writes `batch` in one transaction that first records its id: when the
   * id is there already, an earlier try committed and nothing is written
   * again. `doubt`: the connection was cut or the work timed out, so it may
   * have committed (retried later under the same id); `failed`: the
   * database refused it, nothing was written.
   */
  async #write(batch: Batch): Promise<"written" | "doubt" | "failed"> {
    const { opens, beats, closes, metrics, logs } = batch;
    const settled = this.#settled;
    this.#availability.queries += 1 +
      [opens, beats, closes, metrics].filter((b) => b.length).length +
      Math.ceil(logs.length / LOG_SLICE);
    const work = this.#db.transaction(async (tx) => {
      // A concurrent try of the same batch (one that timed out) waits here on the key.
      // One statement: the ids of batches known written are deleted as this one's is recorded.
      const fresh = await tx.query(
        `with settled as (delete from write_batches
           where id in (select jsonb_array_elements_text($2::text::jsonb)::uuid))
         insert into write_batches (id) values ($1::uuid) on conflict do nothing returning id`,
        [batch.id, JSON.stringify(settled)],
      );
      if (!fresh.length) return;
      await new SessionsDao(tx).open(opens);
      await new SessionsDao(tx).beat(beats);
      await new SessionsDao(tx).close(closes);
      await new MetricsDao(tx).add(metrics);
      // The embedded database runs on the event loop: hundreds of rows in one statement held
      // every request for ~25 ms. In slices, with a turn of the event loop between them.
      for (let i = 0; i < logs.length; i += LOG_SLICE) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 0));
        await new LogsDao(tx).add(logs.slice(i, i + LOG_SLICE));
      }
    });
    try {
      await this.#availability.bounded(work);
      this.#settled = [...this.#settled.filter((id) => !settled.includes(id)), batch.id];
      return "written";
    } catch (error) {
      if (error instanceof QueryTimeoutError) {
        // The transaction may still commit; a retry under the same id waits for it, then skips.
        work.catch(() => {});
        this.#availability.ping();
        return "doubt";
      }
      if (isConnectionError(error)) {
        // Cut before, during or after COMMIT: only the retry can tell.
        this.#availability.markDown(error);
        return "doubt";
      }
      this.#log.error("writing batched rows failed", { error });
      return "failed";
    }
  }

  /** Queues a batch the database refused again, merged with what came since. */
  #putBack(batch: Batch): void {
    for (const o of batch.opens) if (!this.#opens.has(o.id)) this.#opens.set(o.id, o);
    for (const b of batch.beats) if (!this.#beats.has(b.id)) this.#beats.set(b.id, b);
    for (const c of batch.closes) if (!this.#closes.has(c.id)) this.#closes.set(c.id, c);
    for (const m of batch.metrics) {
      const key = `${m.tunnel_id}@${m.bucket.getTime()}`;
      const newer = this.#metrics.get(key);
      if (newer) addInto(newer.row, m);
      else this.#metrics.set(key, { tunnel: m.tunnel_id, row: m });
    }
    this.#logs = [...batch.logs, ...this.#logs];
  }

  /** Stops the timer, writes what it can and waits for the status writes under way. */
  async close(): Promise<void> {
    clearInterval(this.#flushTimer);
    await this.flush().catch(() => {});
    await Promise.all(this.#statusWrites.values());
  }
}

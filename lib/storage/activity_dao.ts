/**
 * Data access for what happens: `sessions`, `metrics` buckets, `logs`
 * and `alerts`.
 *
 * @module
 */

import type { Queryable } from "./db.ts";
import type { AlertRow, LogRow, MetricRow, SessionRow } from "./models.ts";
import { NotFoundError } from "./errors.ts";
import { json } from "./_sql.ts";

// ---------------------------------------------------------------- sessions

/** A session as it opens: the columns of its row known at login. */
export type SessionOpen = Pick<
  SessionRow,
  "id" | "user_id" | "client_id" | "remote_addr" | "client_version" | "node" | "connected_at"
>;

/** Latest liveness of a session. */
export interface SessionBeat {
  /** Session id. */
  id: string;
  /** Last heartbeat. */
  at: Date;
  /** Round trip in ms. */
  rtt_ms: number | null;
  /** Bytes from the client so far. */
  bytes_in: number;
  /** Bytes to the client so far. */
  bytes_out: number;
}

/**
 * An open session of another node of the cluster, as the admin API lists
 * it: its row, its user's name and the tunnels `placements` say it holds.
 */
export interface ClusterSessionRow extends SessionRow {
  /** The name of its user; `null` when the user is gone. */
  user_name: string | null;
  /** Its tunnels by name, with the public port each got (0 for HTTP routes). */
  tunnels: Array<{ name: string; port: number }>;
}

/** What `NOTIFY burrow_kick` carries: the node that holds `session` is to close it. */
export interface KickNotice {
  /** The node that holds the session. */
  node: string;
  /** The session to close. */
  session: string;
  /** Why, as its client is told. */
  reason: string;
  /** The node whose admin API was asked. */
  by: string;
}

/** `sessions`. Writes take whole batches. */
export class SessionsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Inserts opened sessions (one query). */
  async open(rows: SessionOpen[]): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `insert into sessions (id, user_id, client_id, remote_addr, client_version, node,
                             connected_at, last_heartbeat)
       select id, user_id, client_id, remote_addr, client_version, node, connected_at, connected_at
         from jsonb_to_recordset($1::text::jsonb) as x(id text, user_id bigint, client_id text,
              remote_addr text, client_version text, node text, connected_at timestamptz)
       on conflict (id) do nothing`,
      [json(rows)],
    );
  }

  /** Updates heartbeats and byte counts (one query). */
  async beat(rows: SessionBeat[]): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `update sessions s set last_heartbeat = x.at, rtt_ms = x.rtt_ms,
              bytes_in = x.bytes_in, bytes_out = x.bytes_out
         from jsonb_to_recordset($1::text::jsonb) as x(id text, at timestamptz,
              rtt_ms double precision, bytes_in bigint, bytes_out bigint)
        where s.id = x.id`,
      [json(rows)],
    );
  }

  /** Marks sessions closed (one query). */
  async close(rows: Array<{ id: string; at: Date; reason: string }>): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `update sessions s set disconnected_at = x.at, close_reason = x.reason
         from jsonb_to_recordset($1::text::jsonb) as x(id text, at timestamptz, reason text)
        where s.id = x.id and s.disconnected_at is null`,
      [json(rows)],
    );
  }

  /** Closes sessions a previous run of `node` left open; returns how many. */
  async closeLeftovers(node: string, reason: string): Promise<number> {
    const rows = await this.#db.query(
      `update sessions set disconnected_at = coalesce(last_heartbeat, connected_at),
              close_reason = $2
        where node = $1 and disconnected_at is null returning id`,
      [node, reason],
    );
    return rows.length;
  }

  /** Sessions, newest first. */
  list(options: { open?: boolean; limit?: number } = {}): Promise<SessionRow[]> {
    return this.#db.query<SessionRow>(
      `select * from sessions where (not $1::boolean or disconnected_at is null)
        order by connected_at desc limit $2`,
      [options.open ?? false, options.limit ?? 1000],
    );
  }

  /**
   * The open sessions of the alive nodes other than `node` (those seen
   * within `deadAfterMs` by the database's clock, as `NodesDao.list` counts
   * them), oldest first; only session `id` when given.
   */
  openElsewhere(node: string, deadAfterMs: number, id?: string): Promise<ClusterSessionRow[]> {
    return this.#db.query<ClusterSessionRow>(
      `select s.*, u.name as user_name,
              coalesce((select json_agg(json_build_object('name', p.tunnel, 'port', p.port)
                                        order by p.tunnel)
                          from placements p
                         where p.node_id = s.node and p.session_id = s.id), '[]'::json) as tunnels
         from sessions s
         join nodes n on n.id = s.node
         left join users u on u.id = s.user_id
        where s.disconnected_at is null and s.node <> $1
          and n.stopped_at is null and n.last_seen >= now() - ($2::float8 * interval '1 millisecond')
          and ($3::text is null or s.id = $3)
        order by s.connected_at, s.id`,
      [node, deadAfterMs, id ?? null],
    );
  }

  /** Asks the nodes (`NOTIFY burrow_kick`) that the one holding a session close it. */
  async kick(notice: KickNotice): Promise<void> {
    await this.#db.query("select pg_notify('burrow_kick', $1)", [JSON.stringify(notice)]);
  }

  /** One session. */
  async get(id: string): Promise<SessionRow | null> {
    const [row] = await this.#db.query<SessionRow>("select * from sessions where id = $1", [id]);
    return row ?? null;
  }
}

// ---------------------------------------------------------------- metrics, logs, alerts

/** `metrics`: counters added into per-tunnel buckets. */
export class MetricsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Adds counters into their buckets (one query). */
  async add(rows: MetricRow[]): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `insert into metrics (tunnel_id, bucket, bytes_in, bytes_out, connections, errors,
                            latency_ms_sum, latency_count)
       select * from jsonb_to_recordset($1::text::jsonb) as x(tunnel_id bigint, bucket timestamptz,
              bytes_in bigint, bytes_out bigint, connections integer, errors integer,
              latency_ms_sum double precision, latency_count integer)
        where exists (select 1 from tunnels t where t.id = x.tunnel_id)
       on conflict (tunnel_id, bucket) do update set
         bytes_in = metrics.bytes_in + excluded.bytes_in,
         bytes_out = metrics.bytes_out + excluded.bytes_out,
         connections = metrics.connections + excluded.connections,
         errors = metrics.errors + excluded.errors,
         latency_ms_sum = metrics.latency_ms_sum + excluded.latency_ms_sum,
         latency_count = metrics.latency_count + excluded.latency_count`,
      [json(rows)],
    );
  }

  /** A tunnel's buckets since `since`, oldest first. */
  list(tunnelId: number, since: Date = new Date(0)): Promise<MetricRow[]> {
    return this.#db.query<MetricRow>(
      "select * from metrics where tunnel_id = $1 and bucket >= $2 order by bucket",
      [tunnelId, since],
    );
  }
}

/** A log event before it is stored. */
export type LogInput = Omit<LogRow, "id">;

/** `logs`. */
export class LogsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Appends events (one query). */
  async add(rows: LogInput[]): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `insert into logs (at, level, kind, tunnel_id, session_id, message, fields)
       select at, level, kind,
              case when exists (select 1 from tunnels t where t.id = x.tunnel_id)
                   then x.tunnel_id end,
              session_id, message, coalesce(fields, '{}')
         from jsonb_to_recordset($1::text::jsonb) as x(at timestamptz, level text, kind text,
              tunnel_id bigint, session_id text, message text, fields jsonb)`,
      [json(rows)],
    );
  }

  /** Newest events first. */
  list(options: { kind?: LogRow["kind"]; limit?: number } = {}): Promise<LogRow[]> {
    return this.#db.query<LogRow>(
      "select * from logs where ($1::text is null or kind = $1) order by id desc limit $2",
      [options.kind ?? null, options.limit ?? 100],
    );
  }

  /** Deletes events older than `before`; returns how many. */
  async prune(before: Date): Promise<number> {
    return (await this.#db.query("delete from logs where at < $1 returning id", [before])).length;
  }
}

/** `alerts`. */
export class AlertsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Records an alert whose condition started to hold (`pending`) or fires at once. */
  async fire(
    rule: string,
    severity: AlertRow["severity"],
    message: string,
    labels: Record<string, unknown> = {},
    state: "pending" | "firing" = "firing",
  ): Promise<AlertRow> {
    const [row] = await this.#db.query<AlertRow>(
      `insert into alerts (rule, severity, state, message, labels, fired_at)
       values ($1, $2, $3, $4, $5::text::jsonb, case when $3 = 'firing' then now() end)
       returning *`,
      [rule, severity, state, message, json(labels)],
    );
    return row!;
  }

  /** A pending alert's duration passed: it fires. */
  async firing(id: number, message?: string): Promise<void> {
    await this.#db.query(
      `update alerts set state = 'firing', fired_at = now(), message = coalesce($2, message)
        where id = $1 and state = 'pending'`,
      [id, message ?? null],
    );
  }

  /** Marks an alert resolved. */
  async resolve(id: number): Promise<void> {
    await this.#db.query(
      "update alerts set state = 'resolved', resolved_at = now() where id = $1 and state <> 'resolved'",
      [id],
    );
  }

  /** Deletes a pending alert whose condition stopped holding before it fired. */
  async discard(id: number): Promise<void> {
    await this.#db.query("delete from alerts where id = $1 and state = 'pending'", [id]);
  }

  /**
   * Silences an alert's notifications until `until`.
   *
   * @throws {NotFoundError} when there is no such alert.
   */
  async silence(id: number, until: Date): Promise<AlertRow> {
    const [row] = await this.#db.query<AlertRow>(
      "update alerts set silenced_until = $2 where id = $1 returning *",
      [id, until],
    );
    if (!row) throw new NotFoundError(`No alert with id ${id}`);
    return row;
  }

  /** One alert. */
  async get(id: number): Promise<AlertRow | null> {
    const [row] = await this.#db.query<AlertRow>("select * from alerts where id = $1", [id]);
    return row ?? null;
  }

  /** Alerts, newest first; only unresolved ones when asked. */
  list(options: { firing?: boolean; limit?: number; offset?: number } = {}): Promise<AlertRow[]> {
    return this.#db.query<AlertRow>(
      `select * from alerts where (not $1::boolean or state = 'firing')
        order by started_at desc, id desc limit $2 offset $3`,
      [options.firing ?? false, options.limit ?? 100, options.offset ?? 0],
    );
  }
}

/**
 * Data access for cluster mode: the `nodes` that share the database and the
 * `cluster_leases` that let one of them do work for all. Every time is the
 * database's `now()`, never a node's clock: nodes whose clocks disagree
 * still agree on who is alive and who holds a lease.
 *
 * @module
 */

import type { Database, Queryable } from "./db.ts";
import { json } from "./_sql.ts";

/** What a node says about itself when it registers. */
export interface NodeInput {
  /** The node's id (`server.cluster.node_id`). */
  id: string;
  /** Host or `host:port` the other nodes reach its relay port at. */
  advertise_addr: string;
  /** Its relay port. */
  relay_port: number;
  /** `sha256:` fingerprint of its control certificate (pinned by nodes that dial it). */
  fingerprint: string;
  /** Its burrowd version. */
  version: string;
}

/** A row of `nodes`. */
export interface NodeRow extends NodeInput {
  /** When it last started. */
  started_at: Date;
  /** Its last heartbeat. */
  last_seen: Date;
  /** When it stopped, or was found dead; `null` while it runs. */
  stopped_at: Date | null;
  /** The node that found it dead and released what it held; `null` unless it died. */
  lost_by: string | null;
  /** What it published with its last heartbeat (its tunnel windows); `[]` when nothing. */
  stats: unknown;
}

/**
 * A node as listed: its row, how long ago the database last heard from it,
 * its state and its open sessions.
 */
export interface NodeListing extends NodeRow {
  /** Milliseconds since `last_seen`, by the database's clock. */
  last_seen_ago_ms: number;
  /**
   * `alive`: heard from within `dead_after`; `dead`: not, or found dead by
   * another node; `stopped`: shut down gracefully.
   */
  state: "alive" | "dead" | "stopped";
  /** Sessions its `sessions` rows say are open. */
  sessions: number;
}

/** A session closed because its node was lost: whose tunnels may have gone with it. */
export interface LostSession {
  /** Session id. */
  id: string;
  /** Its user, if it logged in as one. */
  user_id: number | null;
  /** Its client id. */
  client_id: string;
}

/** A dead node claimed by {@linkcode NodesDao.claimDead}. */
export interface LostNode {
  /** Its id. */
  id: string;
  /** Its last heartbeat. */
  last_seen: Date;
  /** The sessions closed on its behalf. */
  sessions: LostSession[];
}

/** `($n::float8 * interval '1 millisecond')`: a parameter in ms as an interval. */
const ms = (n: number) => `($${n}::float8 * interval '1 millisecond')`;

/** `nodes` and `cluster_leases`. */
export class NodesDao {
  #db: Database;
  /** Runs on `db`. */
  constructor(db: Database) {
    this.#db = db;
  }

  /**
   * Registers a starting node: its row as new (started and seen now, not
   * stopped). A node that comes back under the same id takes its row over.
   */
  async register(node: NodeInput): Promise<NodeRow> {
    const [row] = await this.#db.query<NodeRow>(
      `insert into nodes (id, advertise_addr, relay_port, fingerprint, version, started_at,
                          last_seen, stopped_at, lost_by)
       values ($1, $2, $3, $4, $5, now(), now(), null, null)
       on conflict (id) do update set advertise_addr = excluded.advertise_addr,
              relay_port = excluded.relay_port, fingerprint = excluded.fingerprint,
              version = excluded.version, started_at = now(), last_seen = now(),
              stopped_at = null, lost_by = null
       returning *`,
      [node.id, node.advertise_addr, node.relay_port, node.fingerprint, node.version],
    );
    return row!;
  }

  /**
   * Records that node `id` is alive. Returns `false` when its row is gone
   * or stopped: another node found it dead (and closed its sessions)
   * meanwhile, and it must register again.
   */
  async beat(id: string, stats?: unknown): Promise<boolean> {
    const rows = await this.#db.query(
      stats === undefined
        ? "update nodes set last_seen = now() where id = $1 and stopped_at is null returning id"
        : `update nodes set last_seen = now(), stats = $2::text::jsonb
            where id = $1 and stopped_at is null returning id`,
      stats === undefined ? [id] : [id, json(stats)],
    );
    return rows.length > 0;
  }

  /** Marks node `id` stopped gracefully (the row stays, for the list). */
  async stop(id: string): Promise<void> {
    await this.#db.query(
      `update nodes set last_seen = now(), stopped_at = now(), lost_by = null
        where id = $1 and stopped_at is null`,
      [id],
    );
  }

  /** The row of node `id`. */
  async get(id: string): Promise<NodeRow | null> {
    const [row] = await this.#db.query<NodeRow>("select * from nodes where id = $1", [id]);
    return row ?? null;
  }

  /**
   * Every node, by id, with its state (a running node unseen for
   * `deadAfterMs` is `dead` even before another node claims it) and its open
   * sessions.
   */
  list(deadAfterMs: number): Promise<NodeListing[]> {
    return this.#db.query<NodeListing>(
      `select n.*,
              (extract(epoch from now() - n.last_seen) * 1000)::float8 as last_seen_ago_ms,
              case when n.stopped_at is not null and n.lost_by is null then 'stopped'
                   when n.stopped_at is not null or n.last_seen < now() - ${ms(1)} then 'dead'
                   else 'alive' end as state,
              (select count(*) from sessions s
                where s.node = n.id and s.disconnected_at is null)::int as sessions
         from nodes n order by n.id`,
      [deadAfterMs],
    );
  }

  /**
   * Claims the nodes other than `self` unseen for `deadAfterMs` and not yet
   * stopped, and closes their open sessions (`close_reason` `node <id>
   * lost`, at the node's last heartbeat), in one transaction. A node is
   * claimed by one caller only: the update that sets its `stopped_at`
   * re-checks `stopped_at is null` under the row's lock, so of several nodes
   * claiming at once, the others find it already stopped.
   */
  async claimDead(self: string, deadAfterMs: number): Promise<LostNode[]> {
    const claim = async (tx: Queryable): Promise<LostNode[]> => {
      const nodes = await tx.query<{ id: string; last_seen: Date }>(
        `update nodes set stopped_at = now(), lost_by = $1
          where id <> $1 and stopped_at is null and last_seen < now() - ${ms(2)}
          returning id, last_seen`,
        [self, deadAfterMs],
      );
      const lost: LostNode[] = [];
      for (const node of nodes) {
        const sessions = await tx.query<LostSession>(
          `update sessions set disconnected_at = greatest(connected_at, $2::timestamptz),
                  close_reason = $3
            where node = $1 and disconnected_at is null
            returning id, user_id, client_id`,
          [node.id, node.last_seen, `node ${node.id} lost`],
        );
        lost.push({ id: node.id, last_seen: node.last_seen, sessions });
      }
      return lost;
    };
    return await this.#db.transaction(claim);
  }

  /**
   * Sets offline the tunnels that `sessions` (closed with their lost node)
   * had active: a client's own tunnels, and the unbound tunnels of its user,
   * unless the client (for unbound ones: the user) has an open session on
   * another node, which may hold them now. Returns how many.
   */
  async releaseTunnels(sessions: readonly LostSession[], reason: string): Promise<number> {
    if (!sessions.length) return 0;
    const rows = await this.#db.query(
      `update tunnels t set status = 'offline', active_port = null, last_error = $2,
              updated_at = now()
         from (select distinct user_id, client_id
                 from jsonb_to_recordset($1::text::jsonb) as x(user_id bigint, client_id text)) x
        where t.status = 'active' and t.user_id = x.user_id
          and (t.client_id = x.client_id or t.client_id is null)
          and not exists (select 1 from sessions s
                           where s.disconnected_at is null and s.user_id = t.user_id
                             and (t.client_id is null or s.client_id = t.client_id))
       returning t.id`,
      [json(sessions.map((s) => ({ user_id: s.user_id, client_id: s.client_id }))), reason],
    );
    return new Set(rows.map((r) => r.id)).size;
  }

  // ---------------------------------------------------------------- leases

  /**
   * Takes or renews lease `name` for `node` until `ttlMs` from now: taken
   * when nobody holds it, it has expired, or `node` holds it already.
   * Returns whether `node` holds it now. One statement, so two nodes asking
   * at once never both get it.
   */
  async tryLease(name: string, node: string, ttlMs: number): Promise<boolean> {
    const rows = await this.#db.query(
      `insert into cluster_leases (name, node_id, expires_at) values ($1, $2, now() + ${ms(3)})
       on conflict (name) do update set node_id = excluded.node_id,
              expires_at = excluded.expires_at
        where cluster_leases.node_id = excluded.node_id or cluster_leases.expires_at < now()
       returning node_id`,
      [name, node, ttlMs],
    );
    return rows.length > 0;
  }

  /** Gives lease `name` up if `node` holds it, so another node can take it at once. */
  async releaseLease(name: string, node: string): Promise<void> {
    await this.#db.query("delete from cluster_leases where name = $1 and node_id = $2", [
      name,
      node,
    ]);
  }

  /** Who holds lease `name` now (`null`: nobody, or it expired). */
  async leaseHolder(name: string): Promise<string | null> {
    const [row] = await this.#db.query<{ node_id: string }>(
      "select node_id from cluster_leases where name = $1 and expires_at >= now()",
      [name],
    );
    return row?.node_id ?? null;
  }
}

/**
 * Data access for `placements`: which node of a cluster holds which tunnel
 * (see `sql/010_placements.sql`).
 *
 * @module
 */

import type { Queryable } from "./db.ts";
import { json } from "./_sql.ts";

/** One tunnel held by one session of one node. */
export interface PlacementRow {
  /** The node the client is connected to. */
  node_id: string;
  /** The session that holds the tunnel. */
  session_id: string;
  /** The tunnel's name as its client knows it. */
  tunnel: string;
  /** Its user; `null` for a client of the shared token. */
  user_id: number | null;
  /** Its user's name (`admin` for the shared token), as metrics and logs name it. */
  user_name: string;
  /** The client's stable id. */
  client_id: string;
  /** Its row in `tunnels`, when it has one. */
  tunnel_id: number | null;
  /** Its type. */
  type: "tcp" | "udp" | "http" | "https";
  /** The public port it got (0 for HTTP routes on the shared ports). */
  port: number;
  /** The tunnel as opened: the request with the port it got and the host names it serves. */
  request: Record<string, unknown>;
  /** A group member's health as its client reports it. */
  healthy: boolean;
  /** When the row was written. */
  placed_at: Date;
}

/** A placement as written: the row without its time and health (healthy when written). */
export type Placement = Omit<PlacementRow, "placed_at" | "healthy">;

/** What `NOTIFY burrow_placements` says: a row's key and what happened to it. */
export interface PlacementChange {
  /** `insert`, `update` or `delete`; `resync` after the feed reconnected (reload all). */
  op: "insert" | "update" | "delete" | "resync";
  /** The row's node. */
  node_id?: string;
  /** The row's session. */
  session_id?: string;
  /** The row's tunnel. */
  tunnel?: string;
}

/** `placements`. */
export class PlacementsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Writes (or rewrites) one placement. */
  async place(row: Placement): Promise<void> {
    await this.#db.query(
      `insert into placements (node_id, session_id, tunnel, user_id, user_name, client_id, tunnel_id,
                               type, port, request)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb)
       on conflict (node_id, session_id, tunnel) do update
         set user_id = excluded.user_id, user_name = excluded.user_name, client_id = excluded.client_id,
             tunnel_id = excluded.tunnel_id, type = excluded.type, port = excluded.port,
             request = excluded.request, healthy = true, placed_at = now()`,
      [
        row.node_id,
        row.session_id,
        row.tunnel,
        row.user_id,
        row.user_name,
        row.client_id,
        row.tunnel_id,
        row.type,
        row.port,
        json(row.request),
      ],
    );
  }

  /** Records a group member's health (its client's checks); other nodes hear of it. */
  async setHealthy(node: string, session: string, tunnel: string, healthy: boolean): Promise<void> {
    await this.#db.query(
      `update placements set healthy = $4
        where node_id = $1 and session_id = $2 and tunnel = $3 and healthy <> $4`,
      [node, session, tunnel, healthy],
    );
  }

  /** Deletes one placement (a tunnel closed). */
  async withdraw(node: string, session: string, tunnel: string): Promise<void> {
    await this.#db.query(
      "delete from placements where node_id = $1 and session_id = $2 and tunnel = $3",
      [node, session, tunnel],
    );
  }

  /** Deletes every placement of `node` (one that started again, or was found dead); returns how many. */
  async withdrawNode(node: string): Promise<number> {
    const rows = await this.#db.query("delete from placements where node_id = $1 returning 1", [
      node,
    ]);
    return rows.length;
  }

  /** Every placement, oldest first. */
  async list(): Promise<PlacementRow[]> {
    const rows = await this.#db.query<PlacementRow>(
      "select * from placements order by placed_at, node_id, session_id, tunnel",
    );
    return rows.map((r) => ({
      ...r,
      user_id: r.user_id === null ? null : Number(r.user_id),
      tunnel_id: r.tunnel_id === null ? null : Number(r.tunnel_id),
    }));
  }

  /** One placement, if written. */
  async get(node: string, session: string, tunnel: string): Promise<PlacementRow | undefined> {
    const [row] = await this.#db.query<PlacementRow>(
      "select * from placements where node_id = $1 and session_id = $2 and tunnel = $3",
      [node, session, tunnel],
    );
    if (!row) return undefined;
    return {
      ...row,
      user_id: row.user_id === null ? null : Number(row.user_id),
      tunnel_id: row.tunnel_id === null ? null : Number(row.tunnel_id),
    };
  }

  /**
   * Which alive nodes other than `node` (seen within `deadAfterMs`, by the
   * database's clock) hold which tunnel rows: one pair per node and tunnel.
   */
  async holders(
    node: string,
    deadAfterMs: number,
  ): Promise<Array<{ node_id: string; tunnel_id: number }>> {
    const rows = await this.#db.query<{ node_id: string; tunnel_id: number }>(
      `select distinct p.node_id, p.tunnel_id
         from placements p join nodes n on n.id = p.node_id
        where p.tunnel_id is not null and p.node_id <> $1
          and n.stopped_at is null and n.last_seen >= now() - ($2::float8 * interval '1 millisecond')
        order by p.node_id`,
      [node, deadAfterMs],
    );
    return rows.map((r) => ({ node_id: r.node_id, tunnel_id: Number(r.tunnel_id) }));
  }
}

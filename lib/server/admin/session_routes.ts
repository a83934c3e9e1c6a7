/**
 * `/sessions`: the connected clients (list, kick), each with the node it is
 * connected to. Outside cluster mode that is this node, from memory. In
 * cluster mode the other alive nodes' sessions come from the database
 * (their `sessions` rows and `placements`), and a kick of one of them is
 * sent to its node as `NOTIFY burrow_kick` (see `../kicks.ts`): the API
 * answers 202 once it is sent, the node holding the session closes it.
 *
 * @module
 */

import type { ClusterSessionRow } from "../../storage/mod.ts";
import { KICK_REASON, kickLocal } from "../kicks.ts";
import type { BurrowServer } from "../server.ts";
import { ApiError, listing, Reply, type Resource, type RouteContext } from "./route.ts";
import { object } from "./schemas.ts";

/** A session as the API lists it (the `Session` schema). */
interface SessionListing {
  id: string;
  node: string;
  client_id: string;
  user: string | null;
  remote_addr: string;
  client_version: string;
  connected_at: Date;
  rtt_ms: number | null;
  bytes_in: number;
  bytes_out: number;
  tunnels: Array<{ name: string; port: number; active_connections?: number }>;
}

/** This node's sessions, from memory. */
function localSessions(server: BurrowServer): SessionListing[] {
  return [...server.sessions].map((s) => ({
    id: s.sessionId,
    node: server.node,
    client_id: s.clientId,
    user: s.principal?.userName ?? null,
    remote_addr: s.remote,
    client_version: s.software,
    connected_at: s.connectedAt,
    rtt_ms: s.mux.rtt || null,
    bytes_in: s.mux.bytes.in,
    bytes_out: s.mux.bytes.out,
    tunnels: [...s.tunnels.values()].map((t) => ({
      name: t.name,
      port: t.port,
      active_connections: t.activeConnections,
    })),
  }));
}

/** Another node's session, from its row: traffic and RTT as of its last batch of heartbeats. */
function remoteSession(row: ClusterSessionRow): SessionListing {
  return {
    id: row.id,
    node: row.node,
    client_id: row.client_id,
    user: row.user_name,
    remote_addr: row.remote_addr,
    client_version: row.client_version,
    connected_at: row.connected_at,
    rtt_ms: row.rtt_ms,
    bytes_in: Number(row.bytes_in),
    bytes_out: Number(row.bytes_out),
    tunnels: row.tunnels,
  };
}

/** The sessions of the whole cluster: this node's first, then the others' oldest first. */
async function clusterSessions({ server, service }: RouteContext): Promise<SessionListing[]> {
  const local = localSessions(server);
  const cluster = server.config.cluster;
  if (!cluster) return local;
  const others = await service().sessionsElsewhere(server.node, cluster.dead_after);
  return [...local, ...others.map(remoteSession)];
}

/**
 * Kicks session `id`: at once when this node holds it (no body, 204),
 * else, in cluster mode, through the node that does (202 naming it).
 */
async function kick({ params, server, service, log }: RouteContext): Promise<Reply | void> {
  const id = params.id!;
  if (kickLocal(server.sessions, id, { log })) return;
  const cluster = server.config.cluster;
  const [row] = cluster
    ? await service().sessionsElsewhere(server.node, cluster.dead_after, id)
    : [];
  if (!row) throw new ApiError(404, "not_found", `No connected session ${id}`);
  await service().sendKick({ node: row.node, session: id, reason: KICK_REASON, by: server.node });
  log.info("session kick sent to its node", {
    session_id: id,
    client_id: row.client_id,
    node: row.node,
  });
  return new Reply(202, { id, node: row.node });
}

/** The routes of sessions. */
export const SESSION_ROUTES: readonly Resource[] = [
  {
    path: "/sessions",
    get: {
      ...listing(
        "Connected clients (of every alive node, in cluster mode)",
        "Session",
        clusterSessions,
      ),
      description: "OK. This node's sessions first, then (cluster mode) the other alive nodes' " +
        "from the database, whose traffic and RTT are as of their last recorded heartbeat",
    },
  },
  {
    path: "/sessions/{id}",
    delete: {
      summary: "Disconnect a client (it may reconnect)",
      status: 204,
      description: "Disconnected (the session was on this node)",
      others: {
        202: {
          description: "Sent to the node that holds the session (cluster mode), which closes it",
          response: object({ id: { type: "string" }, node: { type: "string" } }, ["id", "node"]),
        },
      },
      handle: kick,
    },
  },
];

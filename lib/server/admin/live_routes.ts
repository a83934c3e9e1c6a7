/**
 * What the running server holds rather than the database: connected
 * sessions (list, kick), per-tunnel statistics, load-balancing groups, and
 * the control certificate (reload).
 *
 * @module
 */

import { ApiError, listing, type Resource } from "./route.ts";
import { object } from "./schemas.ts";

/** The routes of the server's live state. */
export const LIVE_ROUTES: readonly Resource[] = [
  {
    path: "/sessions",
    get: listing("Connected clients", "Session", ({ server }) =>
      [...server.sessions].map((s) => ({
        id: s.sessionId,
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
      }))),
  },
  {
    path: "/sessions/{id}",
    delete: {
      summary: "Disconnect a client (it may reconnect)",
      status: 204,
      description: "Disconnected",
      handle: ({ params, server, log }) => {
        const session = [...server.sessions].find((s) => s.sessionId === params.id);
        if (!session) throw new ApiError(404, "not_found", `No connected session ${params.id}`);
        log.info("session kicked through the admin API", {
          session_id: session.sessionId,
          client_id: session.clientId,
        });
        session.close("Disconnected by an administrator");
      },
    },
  },
  {
    path: "/stats",
    get: listing(
      "Per-tunnel state and window (what alert rules see)",
      "TunnelStats",
      ({ server }) => server.stats.snapshot(),
    ),
  },
  {
    path: "/groups",
    get: listing(
      "Load-balancing groups",
      "Group",
      ({ server }) =>
        [...server.groups.groups.values()].map((g) => ({
          name: g.name,
          key: g.key,
          port: g.port,
          strategy: g.balancer.strategy,
          members: g.balancer.members.map((m) => ({
            tunnel: m.name,
            client_id: m.clientId,
            weight: m.weight,
            healthy: m.healthy,
            active_connections: m.active,
            connections: m.connections,
          })),
        })),
    ),
  },
  {
    path: "/tls/reload",
    post: {
      summary: "Re-read the control certificate for new connections (like SIGHUP)",
      response: object({ fingerprint: { type: "string" } }, ["fingerprint"]),
      handle: async ({ server }) => ({ fingerprint: await server.reloadCertificate() }),
    },
  },
];

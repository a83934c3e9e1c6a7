/**
 * What the running server holds rather than the database: per-tunnel
 * statistics, load-balancing groups, and the control certificate (reload).
 * Its connected sessions are in `session_routes.ts`.
 *
 * @module
 */

import { listing, type Resource } from "./route.ts";
import { object } from "./schemas.ts";

/** The routes of the server's live state. */
export const LIVE_ROUTES: readonly Resource[] = [
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

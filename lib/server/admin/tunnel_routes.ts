/**
 * `/tunnels`: list with traffic, create, show, change (enable, disable)
 * and delete tunnels, and a tunnel's per-minute traffic. Changes reach the
 * connected client at once.
 *
 * @module
 */

import type { TunnelInput } from "../../storage/mod.ts";
import { durationOf, listing, type Resource, type RouteContext } from "./route.ts";
import { ref, TUNNEL_FIELDS } from "./schemas.ts";

const tunnelId = { id: { type: "integer" } };

/**
 * The tunnel fields a request body sets. In a change (`partial`), `null`
 * clears a field; in a creation it is the same as leaving the field out.
 */
function tunnelInput(body: Readonly<Record<string, unknown>>, partial: boolean) {
  const input: Record<string, unknown> = {};
  for (const key of TUNNEL_FIELDS) {
    const value = body[key];
    if (value !== undefined && (value !== null || partial)) input[key] = value;
  }
  return input as Partial<TunnelInput>;
}

/** The start of the period `?since=` asks for (`fallback` when absent). */
function since(url: URL, fallback: string): Date {
  const text = url.searchParams.get("since") ?? fallback;
  return new Date(Date.now() - durationOf(text, "Query parameter since"));
}

/**
 * `rows` with the nodes whose sessions hold each now: this node's from
 * memory, and in cluster mode the other alive nodes' from `placements`
 * (a client with `ha_connections` may hold a tunnel on several).
 */
async function withNodes<T extends { id: number }>(
  { server, service }: RouteContext,
  rows: readonly T[],
): Promise<Array<T & { nodes: string[] }>> {
  const holders = new Map<number, Set<string>>();
  const add = (tunnel: number, node: string) => {
    const nodes = holders.get(tunnel) ?? new Set();
    holders.set(tunnel, nodes.add(node));
  };
  for (const session of server.sessions) {
    for (const t of session.tunnels.values()) if (t.dbId !== null) add(t.dbId, server.node);
  }
  const cluster = server.config.cluster;
  if (cluster) {
    for (const h of await service().tunnelHolders(server.node, cluster.dead_after)) {
      add(h.tunnel_id, h.node_id);
    }
  }
  return rows.map((r) => ({ ...r, nodes: [...holders.get(r.id) ?? []].sort() }));
}

/** The routes of tunnels. */
export const TUNNEL_ROUTES: readonly Resource[] = [
  {
    path: "/tunnels",
    get: listing(
      "List tunnels with owner, state, traffic totals and the nodes holding them",
      "TunnelOverview",
      async (ctx) => {
        const from = since(ctx.url, "24h");
        const user = ctx.url.searchParams.get("user") || undefined;
        return withNodes(
          ctx,
          await ctx.service().tunnels({ since: from, ...(user ? { user } : {}) }),
        );
      },
      { user: { type: "string" }, since: { type: "string", examples: ["24h"] } },
    ),
    post: {
      summary: "Create a managed tunnel; it reaches the user's client at once",
      body: ref("TunnelCreate"),
      status: 201,
      response: ref("Tunnel"),
      handle: ({ body, service }) =>
        service().createTunnel(body.user as string, tunnelInput(body, false) as TunnelInput),
    },
  },
  {
    path: "/tunnels/{id}",
    params: tunnelId,
    get: {
      summary: "One tunnel",
      response: ref("Tunnel"),
      handle: ({ params, service }) => service().tunnel(Number(params.id)),
    },
    patch: {
      summary: "Change, disable or enable a tunnel; the client follows at once",
      body: ref("TunnelPatch"),
      response: ref("Tunnel"),
      handle: ({ params, body, service }) =>
        service().updateTunnel(Number(params.id), tunnelInput(body, true)),
    },
    delete: {
      summary: "Delete a tunnel; its port closes",
      status: 204,
      description: "Deleted",
      handle: ({ params, service }) => service().removeTunnel(Number(params.id)),
    },
  },
  {
    path: "/tunnels/{id}/metrics",
    params: tunnelId,
    get: listing(
      "Per-minute traffic of a tunnel",
      "MetricBucket",
      ({ params, url, service }) => service().tunnelMetrics(Number(params.id), since(url, "1h")),
      { since: { type: "string" } },
    ),
  },
];

/**
 * Joining a load-balancing group from a tunnel request: the group settings
 * checked (they come from the wire), and a TCP or UDP member joined to the
 * server's group registry (`group.ts`). HTTP groups share a route on the HTTP
 * port instead (see `http.ts`) but check the same settings.
 *
 * @module
 */

import type { TunnelRequest } from "../../protocol/mod.ts";
import { ENTITY_NAME } from "../../util/mod.ts";
import type { Strategy } from "../balancer.ts";
import type { OpenRequest, TunnelContext } from "./context.ts";
import type { GroupListener, GroupMember } from "./group.ts";
import type { RouteTarget } from "./public_tunnel.ts";

/** A group member's settings, checked. */
export interface GroupSettings {
  /** Group name. */
  name: string;
  /** The members' shared secret. */
  key: string;
  /** How the group spreads visitors (the first member's choice holds). */
  strategy: Strategy;
  /** This member's share. */
  weight: number;
}

/** A group member's settings from a tunnel request, checked, or why they are wrong. */
export function groupSettings(request: TunnelRequest): GroupSettings | string {
  const { group, group_key: key } = request;
  const strategy = request.load_balance ?? "round_robin";
  const weight = request.weight ?? 1;
  if (typeof group !== "string" || !ENTITY_NAME.test(group)) {
    return `Group name ${JSON.stringify(group)} is invalid`;
  }
  if (typeof key !== "string" || !key) return `Group "${group}" needs a group_key`;
  if (strategy !== "round_robin" && strategy !== "least_connections") {
    return `load_balance must be round_robin or least_connections, not ${JSON.stringify(strategy)}`;
  }
  if (typeof weight !== "number" || !Number.isInteger(weight) || weight < 1 || weight > 1000) {
    return `weight must be an integer 1-1000, not ${JSON.stringify(weight)}`;
  }
  return { name: group, key, strategy, weight };
}

/** Options of {@linkcode joinGroup}. */
export interface JoinOptions {
  /** The members' type (TCP and UDP groups are separate spaces). */
  type: "tcp" | "udp";
  /** Opens the group's public side when this member founds it, or says why it cannot. */
  listen: (route: () => RouteTarget | null) => GroupListener | string;
}

/** Joins (or founds) the load-balancing group `open.request` names. */
export async function joinGroup(
  open: OpenRequest,
  context: TunnelContext,
  options: JoinOptions,
): Promise<GroupMember | string> {
  const { name, request } = open;
  const settings = groupSettings(request);
  if (typeof settings === "string") return settings;
  return await context.groups.join(
    {
      group: settings.name,
      type: options.type,
      key: settings.key,
      strategy: settings.strategy,
      weight: settings.weight,
      port: request.remote_port ?? 0,
      tunnelName: name,
      clientId: context.clientId,
      mux: context.mux,
      compress: request.compression === "gzip",
      onConnection: (member, event) => context.onConnection(member, event),
      onFirstByte: (member, ms) => context.onFirstByte(member, ms),
    },
    options.listen,
  );
}

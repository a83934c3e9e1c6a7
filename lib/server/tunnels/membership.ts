/**
 * Joining a load-balancing group from a tunnel request: the group settings
 * read (the tunnel spec checked them), and a TCP or UDP member joined to the
 * server's group registry (`group.ts`). HTTP groups share a route on the HTTP
 * port instead (see `http.ts`) but read the same settings.
 *
 * @module
 */

import type { TunnelRequest } from "../../protocol/mod.ts";
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

/**
 * The settings of the group a tunnel request joins, with their defaults
 * (the tunnel spec checked them: a group has its group_key).
 */
export function groupSettings(request: TunnelRequest): GroupSettings {
  return {
    name: request.group ?? "",
    key: request.group_key ?? "",
    strategy: request.load_balance ?? "round_robin",
    weight: request.weight ?? 1,
  };
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

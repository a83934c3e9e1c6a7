/**
 * The tunnel types, by name: the one place that tells them apart. Adding a
 * type is a file with its {@linkcode TunnelKind} and a line here.
 *
 * @module
 */

import { checkTunnelRequest, formatProblems, type TunnelRequest } from "../../protocol/mod.ts";
import type { TunnelRow } from "../../storage/mod.ts";
import type { OpenRequest, TunnelContext, TunnelKind } from "./context.ts";
import { httpTunnels } from "./http.ts";
import type { PublicTunnel, TunnelType } from "./public_tunnel.ts";
import { tcpTunnels } from "./tcp.ts";
import { udpTunnels } from "./udp.ts";

/** Every tunnel type; each opens alone (`open`) or as a group member (`join`). */
const KINDS: Readonly<Record<TunnelType, TunnelKind>> = {
  tcp: tcpTunnels,
  udp: udpTunnels,
  http: httpTunnels,
  https: httpTunnels,
};

/** The names of the tunnel types. */
export const TUNNEL_TYPES: readonly TunnelType[] = Object.keys(KINDS) as TunnelType[];

/**
 * Whether `value` names a tunnel type.
 *
 * @example
 * ```ts
 * import { isTunnelType } from "./registry.ts";
 * console.assert(isTunnelType("udp") && !isTunnelType("ftp") && !isTunnelType("toString"));
 * ```
 */
export function isTunnelType(value: unknown): value is TunnelType {
  return typeof value === "string" && Object.hasOwn(KINDS, value);
}

/** How tunnels of `type` open. */
export function tunnelKind(type: TunnelType): TunnelKind {
  return KINDS[type];
}

/**
 * Opens the tunnel `open.request` asks for (of a known type: see
 * {@linkcode isTunnelType}): alone, or as a member of the group it names.
 * Resolves with the tunnel, or with why it cannot open; a request the
 * tunnel spec refuses (`checkTunnelRequest`) does not reach its type, so
 * the types read their settings without checking them again.
 */
export async function openTunnel(
  open: OpenRequest,
  context: TunnelContext,
): Promise<PublicTunnel | string> {
  const problems = checkTunnelRequest(open.name, open.request);
  if (problems.length) return formatProblems(problems);
  const kind = KINDS[open.request.protocol];
  const refused = await context.beforeOpen?.(open);
  if (refused !== undefined) return refused;
  const opened = open.request.group === undefined
    ? await kind.open(open, context)
    : await kind.join(open, context);
  context.opened?.(typeof opened === "string" ? null : opened, open);
  return opened;
}

/** The request a database-managed tunnel's row (of a known type) stands for. */
export function managedRequest(row: TunnelRow): TunnelRequest {
  return KINDS[row.type].requestOf(row);
}

/** What decides whether a managed tunnel must be re-opened after its row changed. */
export function listenSignature(row: TunnelRow): string {
  const base = `${row.name}|${row.type}|${row.remote_port ?? 0}`;
  return isTunnelType(row.type) ? base + KINDS[row.type].publicSide(row) : base;
}

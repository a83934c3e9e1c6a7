/**
 * What a tunnel type needs to open: the session's side of things (its
 * client connection, port policy, limits and counters) as one
 * {@linkcode TunnelContext}, and the {@linkcode TunnelKind} each type
 * implements.
 *
 * @module
 */

import type { ServerConfig } from "../../config/mod.ts";
import type { StreamOpener } from "../../mux/mod.ts";
import type { TunnelRequest } from "../../protocol/mod.ts";
import type { TunnelRow } from "../../storage/mod.ts";
import type { IpPolicy } from "../../util/mod.ts";
import type { Logger } from "../../util/mod.ts";
import { formatPortRanges } from "../ports.ts";
import type { HttpFront } from "../http_front.ts";
import type { GroupRegistry } from "./group.ts";
import type { VisitorGuards } from "./guards.ts";
import {
  type ConnectionEvent,
  PortInUseError,
  type PublicTunnel,
  TunnelError,
} from "./public_tunnel.ts";

/** Why a UDP tunnel dropped datagrams. */
export type UdpDropReason = "queue_full" | "no_route" | "bandwidth" | "connection_limit";

/** The session a tunnel opens in, as the tunnel types see it. */
export interface TunnelContext {
  /** The validated server configuration. */
  readonly config: ServerConfig;
  /** Where tunnels log. */
  readonly logger: Logger;
  /** The client connection visitors are carried over. */
  readonly mux: StreamOpener;
  /** The client's id (for logs). */
  readonly clientId: string;
  /** Load-balancing groups of the whole server. */
  readonly groups: GroupRegistry;
  /** The shared HTTP and HTTPS ports, when configured. */
  readonly vhosts: { http: HttpFront | null; https: HttpFront | null };
  /** Host names the client's token may serve (patterns); `null`: any. */
  readonly allowedDomains: readonly string[] | null;
  /** The ports a tunnel asking for `requested` may try (0: any allowed), or why it may not. */
  ports(requested: number): number[] | string;
  /** Why `port` cannot be had, found in use: whose it is, as far as this client may know. */
  portTaken(port: number, transport: "tcp" | "udp"): string;
  /** The visitor guards of a tunnel named `name`: `policy` and the session's limits. */
  guards(name: string, policy: IpPolicy | undefined): VisitorGuards;
  /** A visitor of `tunnel` finished. */
  onConnection(tunnel: PublicTunnel, event: ConnectionEvent): void;
  /** The first byte of a visitor of `tunnel` came back `ms` after it arrived. */
  onFirstByte(tunnel: PublicTunnel, ms: number): void;
  /** Datagrams a UDP tunnel dropped since its last report (`in`: from visitors). */
  onUdpDrops(tunnel: string, direction: "in" | "out", reason: UdpDropReason, count: number): void;
  /**
   * Cluster mode: called before the tunnel's public side opens, so that this
   * node's relay of the same tunnel held through another node gives way;
   * resolves with why the tunnel may not open (another client holds it
   * through another node), if so.
   */
  beforeOpen?(open: OpenRequest): Promise<string | undefined>;
  /**
   * Cluster mode: the tunnel opened from `open` (other nodes are told where
   * it is held), or `null` when it could not open.
   */
  opened?(tunnel: PublicTunnel | null, open: OpenRequest): void;
}

/** What opening a tunnel takes besides its session's context. */
export interface OpenRequest {
  /** Tunnel name as the client declared it. */
  name: string;
  /** The request as the client sent it or as a managed row reads (trust nothing). */
  request: TunnelRequest;
  /** Visitors allowed (`allow_ips`, `deny_ips`); absent: everyone. */
  policy: IpPolicy | undefined;
}

/** How one tunnel type opens: one of these per type in the registry. */
export interface TunnelKind {
  /** Opens a tunnel serving alone, or says why it cannot. */
  open(open: OpenRequest, context: TunnelContext): Promise<PublicTunnel | string>;
  /** Opens a member of the load-balancing group `request.group` names, or says why it cannot. */
  join(open: OpenRequest, context: TunnelContext): Promise<PublicTunnel | string>;
  /** The request a database-managed tunnel's row stands for. */
  requestOf(row: TunnelRow): TunnelRequest;
  /**
   * What of a managed tunnel's row shapes its public side besides name,
   * type and port, as text: when it changes, the tunnel is re-opened.
   */
  publicSide(row: TunnelRow): string;
}

/** Options of {@linkcode bindPort}. */
export interface BindOptions<T> {
  /** The port asked for; 0: any allowed. */
  port: number;
  /** Binds one port; throws when it cannot. */
  bind: (port: number) => T;
}

/**
 * Tries the ports `context` allows for `options.port` until `options.bind`
 * takes one, or says why none.
 */
export function bindPort<T>(context: TunnelContext, options: BindOptions<T>): T | string {
  const { port: requested, bind } = options;
  const candidates = context.ports(requested);
  if (typeof candidates === "string") return candidates;
  let lastError: Error | undefined;
  for (const port of candidates) {
    try {
      return bind(port);
    } catch (error) {
      lastError = error as Error;
    }
  }
  const allowed = context.config.allow_ports;
  if (requested === 0 && allowed.length) return `No free port in ${formatPortRanges(allowed)}`;
  if (lastError instanceof PortInUseError) {
    return context.portTaken(lastError.port, lastError.transport);
  }
  return lastError instanceof TunnelError ? lastError.message : String(lastError);
}

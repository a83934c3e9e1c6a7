/**
 * What every tunnel type is to the session that holds it: a public side
 * (a TCP listener, a UDP socket, routes on an HTTP port, or a place in a
 * load-balancing group) whose visitors are carried to the client, with live
 * counts, totals, and a close that is safe to call twice.
 *
 * How a type opens is its `TunnelKind` (`context.ts`); the registry
 * (`registry.ts`) holds one per type and is the only place that tells types
 * apart. What every type enforces on visitors is `guards.ts`.
 *
 * @module
 */

import type { StreamOpener } from "../../mux/mod.ts";
import type { TunnelRequest } from "../../protocol/mod.ts";
import type { TunnelRow } from "../../storage/mod.ts";

/** A tunnel type as the wire and the database name it. */
export type TunnelType = TunnelRequest["protocol"];

/** Totals since a tunnel opened. */
export interface TunnelTotals {
  /** Visitors carried: connections, UDP sessions or HTTP requests. */
  connections: number;
  /** Bytes from visitors, of the visitors that finished. */
  bytesIn: number;
  /** Bytes to visitors, of the visitors that finished. */
  bytesOut: number;
}

/** Bytes moved so far by one open connection or UDP session; grows while it runs. */
export interface LiveTransfer {
  /** Bytes from the visitor so far. */
  sent: number;
  /** Bytes to the visitor so far. */
  received: number;
}

/** One finished visitor connection (or UDP session, or HTTP request). */
export interface ConnectionEvent {
  /** Tunnel name. */
  tunnel: string;
  /** Visitor `host:port`. */
  remote: string;
  /** Bytes from the visitor. */
  bytesIn: number;
  /** Bytes to the visitor. */
  bytesOut: number;
  /** How long it lasted in ms. */
  durationMs: number;
  /** Why it ended, if not cleanly (e.g. the local service refused). */
  error?: string | undefined;
  /** The live totals object of this connection (identity for live byte accounting). */
  transfer?: LiveTransfer | undefined;
}

/**
 * Where one visitor is carried: the owner's client connection, or the group
 * member the balancer picked.
 */
export interface RouteTarget {
  /** The client connection that carries it. */
  mux: StreamOpener;
  /** The tunnel name the client knows. */
  name: string;
  /** Gzip the stream (the client sees `gzip: true` in the stream's metadata). */
  compress?: boolean;
  /** Called with the public connection once it is accepted (to drop it later) and its live totals. */
  attach?(conn: Deno.TcpConn, live: LiveTransfer): void;
  /** Called when the connection ends, with its totals. */
  done?(event: ConnectionEvent): void;
  /** Called when the first byte comes back, with ms since the connection was accepted. */
  firstByte?(ms: number): void;
}

/** The end-to-end probe state of a tunnel that asked for it (`probe: true`). */
export interface ProbeState {
  /** The last probe failed (state changes are logged once). */
  failing: boolean;
}

/**
 * A tunnel a session holds, whatever its type.
 *
 * @example
 * ```ts ignore
 * const tunnel = await openTunnel({ name: "ssh", request, policy: undefined }, context);
 * if (typeof tunnel !== "string") console.log(tunnel.type, tunnel.port, tunnel.stats);
 * await tunnel.close();
 * ```
 */
export interface PublicTunnel {
  /** Its type. */
  readonly type: TunnelType;
  /** Tunnel name as the client knows it. */
  readonly name: string;
  /** The public port (the real one when 0 was asked). */
  readonly port: number;
  /** Its row in the database, when recorded there. */
  dbId: number | null;
  /** The database row of a server-managed tunnel; `null` when the client declared it. */
  managed: TunnelRow | null;
  /** Visitors served now: open connections, UDP sessions, requests in flight. */
  readonly activeConnections: number;
  /** Live totals of the visitors served now. */
  readonly liveTransfers: Iterable<LiveTransfer>;
  /** Totals since the tunnel opened. */
  readonly stats: TunnelTotals;
  /** Group members: the group whose public side it shares with other clients' tunnels. */
  readonly group?: { readonly name: string } | undefined;
  /** Group members: in rotation while its client reports the local service healthy. */
  healthy?: boolean;
  /** HTTP(S) tunnels: the public URLs, for the client to print. */
  readonly urls?: readonly string[] | undefined;
  /** Tunnels probed end to end by the server (`probe: true`). */
  readonly probe?: ProbeState | undefined;
  /**
   * Stops taking visitors. With `dropConnections` (the default) the visitors
   * served now are cut off; without, they finish first where the type allows
   * it (graceful shutdown). Safe to call twice.
   */
  close(dropConnections?: boolean): Promise<void>;
}

/** Why a tunnel could not be opened, in words for both logs. */
export class TunnelError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "TunnelError";
  }
}

/**
 * A public port something else holds. Its message says only that; the
 * session words who holds it (`TunnelContext.portTaken`).
 */
export class PortInUseError extends TunnelError {
  /** The port asked for. */
  readonly port: number;
  /** Its family: TCP (also HTTP ports) or UDP. */
  readonly transport: "tcp" | "udp";
  /** Creates the error. */
  constructor(port: number, transport: "tcp" | "udp") {
    super(`${transport === "udp" ? "UDP port" : "Port"} ${port} is already in use`);
    this.name = "PortInUseError";
    this.port = port;
    this.transport = transport;
  }
}

/**
 * A TCP tunnel on the server: a public listener whose every connection is
 * carried as its own mux stream to the client that owns the tunnel, or to
 * the member of its load-balancing group the balancer picks.
 *
 * @module
 */

import { compressedConn, relay, type StreamOpener } from "../../mux/mod.ts";
import type { TunnelRow } from "../../storage/mod.ts";
import type { Logger } from "../../util/mod.ts";
import { formatAddr } from "../../util/mod.ts";
import { bindPort, type TunnelKind } from "./context.ts";
import { joinGroup } from "./membership.ts";
import { VisitorGuard, type VisitorGuards } from "./guards.ts";
import {
  type ConnectionEvent,
  type LiveTransfer,
  PortInUseError,
  type ProbeState,
  type PublicTunnel,
  type RouteTarget,
  TunnelError,
  type TunnelTotals,
} from "./public_tunnel.ts";

/** How long a visitor of a relay waits for its link to the holding node (cluster mode). */
const RELAY_WAIT_MS = 5_000;

/** Options of {@linkcode TcpTunnel.listen}. */
export interface TcpTunnelOptions extends VisitorGuards {
  /** Tunnel name as the client declared it. */
  name: string;
  /** Public listen address. */
  hostname: string;
  /** Public port; 0 picks a free one. */
  port: number;
  /** The owning session's multiplexer (unless `route` picks one per connection). */
  mux?: StreamOpener;
  /**
   * Chooses where each public connection goes (load-balancing groups);
   * `null` refuses it. Default: `mux`, under this tunnel's name.
   */
  route?: () => RouteTarget | null;
  /** Called when each public connection ends. */
  onConnection?: ((event: ConnectionEvent) => void) | undefined;
  /** Called with ms from accept to the first byte back, per connection. */
  onFirstByte?: ((ms: number) => void) | undefined;
  /** Gzip the data streams (`compression: gzip`). */
  compress?: boolean | undefined;
  /** Probed end to end by the server (`probe: true`). */
  probe?: boolean | undefined;
}

/** A listening TCP tunnel. */
export class TcpTunnel implements PublicTunnel {
  /** Its type. */
  readonly type = "tcp";
  /** Tunnel name as the client declared it. */
  readonly name: string;
  /** The public port (the real one when 0 was asked). */
  readonly port: number;
  /** Its row in the database, when recorded there. */
  dbId: number | null = null;
  /** The database row of a server-managed tunnel; `null` when the client declared it. */
  managed: TunnelRow | null = null;
  /** Probed end to end by the server, when it asked for it. */
  readonly probe: ProbeState | undefined;
  #listener: Deno.TcpListener;
  #route: () => RouteTarget | null;
  #log: Logger;
  #onConnection: ((event: ConnectionEvent) => void) | undefined;
  #onFirstByte: ((ms: number) => void) | undefined;
  #guard: VisitorGuard;
  #live = new Set<LiveTransfer>();
  #conns = new Set<Deno.TcpConn>();
  #closed = false;
  #accepting: Promise<void>;
  #connections = 0;
  #bytesIn = 0;
  #bytesOut = 0;

  private constructor(options: TcpTunnelOptions, listener: Deno.TcpListener) {
    this.name = options.name;
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    const mux = options.mux;
    const fixed = mux ? { mux, name: options.name, compress: options.compress ?? false } : null;
    this.#route = options.route ?? (() => fixed);
    this.#log = options.logger;
    this.#onConnection = options.onConnection;
    this.#onFirstByte = options.onFirstByte;
    this.#guard = new VisitorGuard(options.name, options);
    this.probe = options.probe ? { failing: false } : undefined;
    this.#accepting = this.#acceptLoop();
  }

  /**
   * Listens on the public port.
   *
   * @throws {TunnelError} when the port is taken or cannot be bound.
   */
  static listen(options: TcpTunnelOptions): TcpTunnel {
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({ hostname: options.hostname, port: options.port });
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new PortInUseError(options.port, "tcp");
      }
      if (error instanceof Deno.errors.PermissionDenied) {
        throw new TunnelError(`Port ${options.port} needs privileges this server lacks`);
      }
      throw new TunnelError(`Cannot listen on port ${options.port}: ${(error as Error).message}`);
    }
    return new TcpTunnel(options, listener);
  }

  /** Live totals of the connections open now. */
  get liveTransfers(): Iterable<LiveTransfer> {
    return this.#live;
  }

  /** Public connections open now. */
  get activeConnections(): number {
    return this.#conns.size;
  }

  /** Totals since the tunnel opened: connections, bytes from visitors, bytes to visitors. */
  get stats(): TunnelTotals {
    return { connections: this.#connections, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut };
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closed) return;
        this.#log.warn("accept failed", { tunnel: this.name, error });
        continue;
      }
      this.#serve(conn);
    }
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const remote = formatAddr(conn.remoteAddr);
    const guard = this.#guard;
    // Refused before a stream is opened: nothing reaches the client.
    if (!guard.admits((conn.remoteAddr as Deno.NetAddr).hostname, remote)) {
      conn.close();
      return;
    }
    if (guard.full(this.#conns.size)) {
      conn.close();
      return;
    }
    const target = this.#closed ? null : this.#route();
    // A relay whose link to the holding node is being dialled: the visitor waits for it.
    if (target?.mux.ready && target.mux.peerGoingAway) await target.mux.ready(RELAY_WAIT_MS);
    if (!target || target.mux.isClosed || target.mux.peerGoingAway) {
      if (!target && !this.#closed) {
        this.#log.warn("connection refused: no healthy member", { tunnel: this.name, remote });
      }
      conn.close();
      return;
    }
    this.#conns.add(conn);
    this.#connections++;
    const started = performance.now();
    const live: LiveTransfer = { sent: 0, received: 0 };
    this.#live.add(live);
    target.attach?.(conn, live);
    let event: ConnectionEvent;
    try {
      // Open first: the client starts dialing its local service sooner.
      const stream = target.mux.open({
        tunnel: target.name,
        remote,
        // The public address the visitor reached, for a PROXY protocol header on the client.
        local: formatAddr(conn.localAddr),
        ...(target.compress ? { gzip: true } : {}),
      });
      conn.setNoDelay(true);
      const firstByte = target.firstByte ?? this.#onFirstByte;
      const limit = guard.limit;
      const throttledBefore = guard.throttled;
      // Compressed: the relay's counts are the tunnel's (compressed) bytes.
      const result = await relay(target.compress ? compressedConn(conn) : conn, stream, {
        maxBuffer: target.mux.maxFrameData,
        result: live,
        throttleUp: limit?.in,
        throttleDown: limit?.out,
        ...(firstByte ? { onFirstByte: () => firstByte(performance.now() - started) } : {}),
      });
      this.#bytesIn += result.sent;
      this.#bytesOut += result.received;
      const durationMs = performance.now() - started;
      guard.limitedSince(throttledBefore);
      event = {
        tunnel: target.name,
        remote,
        bytesIn: result.sent,
        bytesOut: result.received,
        durationMs,
        // A visitor leaving mid-transfer is not the tunnel's failure; a reset from the client is.
        error: result.errorSide === "stream" ? result.error?.message : undefined,
        transfer: live,
      };
    } catch (error) {
      try {
        conn.close();
      } catch { /* closed */ }
      this.#log.debug("connection failed", { tunnel: this.name, remote, error });
      event = {
        tunnel: target.name,
        remote,
        bytesIn: 0,
        bytesOut: 0,
        durationMs: performance.now() - started,
        error: error instanceof Error ? error.message : String(error),
        transfer: live,
      };
    } finally {
      this.#conns.delete(conn);
      this.#live.delete(live);
    }
    target.done?.(event);
    this.#onConnection?.(event);
  }

  /** Stops accepting; with `dropConnections`, also closes open public connections. */
  async close(dropConnections = true): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#listener.close();
      } catch { /* closed */ }
    }
    await this.#accepting;
    if (dropConnections) {
      for (const conn of this.#conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    }
  }
}

/** TCP tunnels: a public port of their own, or one shared by their group. */
export const tcpTunnels: TunnelKind = {
  open({ name, request, policy }, context) {
    const compress = request.compression === "gzip";
    return Promise.resolve(bindPort(context, {
      port: request.remote_port ?? 0,
      bind: (port) => {
        const tunnel: TcpTunnel = TcpTunnel.listen({
          ...context.guards(name, policy),
          name,
          hostname: context.config.bind_addr,
          port,
          mux: context.mux,
          compress,
          probe: request.probe === true,
          onConnection: (event) => context.onConnection(tunnel, event),
          onFirstByte: (ms) => context.onFirstByte(tunnel, ms),
        });
        return tunnel;
      },
    }));
  },
  join(open, context) {
    const { name, request, policy } = open;
    return joinGroup(open, context, {
      type: "tcp",
      // The group's listener: each connection reports through the member it went to.
      listen: (route) =>
        bindPort(context, {
          port: request.remote_port ?? 0,
          bind: (port) =>
            TcpTunnel.listen({
              ...context.guards(name, policy),
              name,
              hostname: context.config.bind_addr,
              port,
              route,
            }),
        }),
    });
  },
  requestOf(row) {
    return { protocol: "tcp", local_port: row.local_port ?? 0, remote_port: row.remote_port ?? 0 };
  },
  publicSide: () => "",
};

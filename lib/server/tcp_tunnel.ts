/**
 * A TCP tunnel on the server: a public listener whose every connection is
 * carried as its own mux stream to the client that owns the tunnel.
 *
 * @module
 */

import { compressedConn, type Mux, relay } from "../mux/mod.ts";
import { formatAddr } from "../util/net.ts";
import type { Logger } from "../util/logger.ts";
import type { IpPolicy } from "../util/cidr.ts";
import type { Throttle } from "../util/rate.ts";
import type { TunnelRow } from "../storage/models.ts";

/**
 * What every public listener enforces on visitors, and the counters it
 * reports to. TCP paces over the bandwidth limit and closes connections over
 * the connection limit; UDP drops datagrams; HTTP answers 403 / 503.
 */
export interface VisitorGuards {
  /** Where events are logged. */
  logger: Logger;
  /** Visitors allowed; others are refused before anything reaches the client. */
  policy?: IpPolicy | undefined;
  /** Called for each visitor (or datagram) the policy refused. */
  onDenied?: (() => void) | undefined;
  /** Bandwidth limit per direction (from / to visitors). */
  limit?: { in: Throttle; out: Throttle } | undefined;
  /** Called when the bandwidth limit held traffic back or dropped it. */
  onLimit?: (() => void) | undefined;
  /** Most open connections, UDP sessions or requests in flight; 0 or absent: unlimited. */
  maxConnections?: number | undefined;
  /** Called for each visitor refused by `maxConnections`. */
  onConnectionLimit?: (() => void) | undefined;
}

/** Options of {@linkcode TcpTunnel.listen}. */
export interface TcpTunnelOptions extends VisitorGuards {
  /** Tunnel name as the client declared it. */
  name: string;
  /** Public listen address. */
  hostname: string;
  /** Public port; 0 picks a free one. */
  port: number;
  /** The owning session's multiplexer (unless `route` picks one per connection). */
  mux?: Mux;
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
}

/** Where one public connection is carried. */
export interface RouteTarget {
  /** The client connection that carries it. */
  mux: Mux;
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

/** One finished public connection. */
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

/** Bytes moved so far by one open connection or UDP session; grows while it runs. */
export interface LiveTransfer {
  /** Bytes from the visitor so far. */
  sent: number;
  /** Bytes to the visitor so far. */
  received: number;
}

/** Why a tunnel could not be opened, in words for both logs. */
export class TunnelError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "TunnelError";
  }
}

/** A listening TCP tunnel. */
export class TcpTunnel {
  /** Tunnel name as the client declared it. */
  readonly name: string;
  /** The public port (the real one when 0 was asked). */
  readonly port: number;
  /** Its row in the database, when recorded there. */
  dbId: number | null = null;
  /** Probed end to end by the server. */
  probe = false;
  /** The last probe failed (state changes are logged once). */
  probeFailing = false;
  /** The database row of a server-managed tunnel; `null` when the client declared it. */
  managed: TunnelRow | null = null;
  #listener: Deno.TcpListener;
  #route: () => RouteTarget | null;
  #log: Logger;
  #onConnection: ((event: ConnectionEvent) => void) | undefined;
  #onFirstByte: ((ms: number) => void) | undefined;
  #policy: IpPolicy | undefined;
  #onDenied: (() => void) | undefined;
  #denied = 0;
  #limit: { in: Throttle; out: Throttle } | undefined;
  #onLimit: (() => void) | undefined;
  #maxConnections: number;
  #onConnectionLimit: (() => void) | undefined;
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
    this.#policy = options.policy?.empty ? undefined : options.policy;
    this.#onDenied = options.onDenied;
    this.#limit = options.limit;
    this.#onLimit = options.onLimit;
    this.#maxConnections = options.maxConnections ?? 0;
    this.#onConnectionLimit = options.onConnectionLimit;
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
        throw new TunnelError(`Port ${options.port} is already in use`);
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
  get stats(): { connections: number; bytesIn: number; bytesOut: number } {
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
    if (this.#policy && !this.#policy.allows((conn.remoteAddr as Deno.NetAddr).hostname)) {
      // Dropped before a stream is opened: nothing reaches the client.
      conn.close();
      this.#denied++;
      this.#onDenied?.();
      if (this.#denied === 1 || this.#denied % 1000 === 0) {
        this.#log.warn("visitor refused by IP policy", {
          tunnel: this.name,
          remote,
          refused_so_far: this.#denied,
        });
      }
      return;
    }
    if (this.#maxConnections > 0 && this.#conns.size >= this.#maxConnections) {
      conn.close();
      this.#onConnectionLimit?.();
      return;
    }
    const target = this.#closed ? null : this.#route();
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
        ...(target.compress ? { gzip: true } : {}),
      });
      conn.setNoDelay(true);
      const firstByte = target.firstByte ?? this.#onFirstByte;
      const limit = this.#limit;
      const throttledBefore = limit ? limit.in.throttled + limit.out.throttled : 0;
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
      if (limit && limit.in.throttled + limit.out.throttled > throttledBefore) this.#onLimit?.();
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

/**
 * A UDP tunnel on the server: one public socket; each visitor address gets
 * its own session (a mux stream to the client) carrying its datagrams with
 * their boundaries; sessions idle for `session_timeout` expire.
 *
 * @module
 */

import { DatagramWriter, MAX_DATAGRAM, type MuxStream, readDatagrams } from "../mux/mod.ts";
import type { TunnelRow } from "../storage/models.ts";
import { formatAddr } from "../util/net.ts";
import type { ConnectionEvent, LiveTransfer, RouteTarget, VisitorGuards } from "./tcp_tunnel.ts";
import { TunnelError } from "./tcp_tunnel.ts";

/** Options of {@linkcode UdpTunnel.listen}. */
export interface UdpTunnelOptions extends VisitorGuards {
  /** Tunnel name as the client declared it. */
  name: string;
  /** Public listen address. */
  hostname: string;
  /** Public port; 0 picks a free one. */
  port: number;
  /** Picks where each new visitor session goes; `null` drops its datagrams. */
  route: () => RouteTarget | null;
  /** A visitor silent this long (ms) loses its session. */
  sessionTimeout: number;
  /** Called when each visitor session ends. */
  onSession?: ((event: ConnectionEvent) => void) | undefined;
}

interface Peer {
  key: string;
  addr: Deno.NetAddr;
  stream: MuxStream;
  writer: DatagramWriter;
  target: RouteTarget;
  lastSeen: number;
  started: number;
  bytesOut: number;
  live: LiveTransfer;
}

/** A listening UDP tunnel. */
export class UdpTunnel {
  /** Tunnel name as the client declared it. */
  readonly name: string;
  /** The public port. */
  readonly port: number;
  /** Its row in the database, when recorded there. */
  dbId: number | null = null;
  /** The database row of a server-managed tunnel. */
  managed: TunnelRow | null = null;
  #socket: Deno.DatagramConn;
  #options: UdpTunnelOptions;
  #peers = new Map<string, Peer>();
  #closed = false;
  #receiving: Promise<void>;
  #sweeper: ReturnType<typeof setInterval>;
  #dropped = 0;
  #denied = 0;

  private constructor(options: UdpTunnelOptions, socket: Deno.DatagramConn) {
    this.name = options.name;
    this.#options = options;
    this.#socket = socket;
    this.port = (socket.addr as Deno.NetAddr).port;
    this.#receiving = this.#receiveLoop();
    this.#sweeper = setInterval(
      () => this.#sweep(),
      Math.max(100, Math.min(5_000, options.sessionTimeout / 2)),
    );
  }

  /**
   * Binds the public UDP port.
   *
   * @throws {TunnelError} when the port is taken or cannot be bound.
   */
  static listen(options: UdpTunnelOptions): UdpTunnel {
    let socket: Deno.DatagramConn;
    try {
      socket = Deno.listenDatagram({
        transport: "udp",
        hostname: options.hostname,
        port: options.port,
      });
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new TunnelError(`UDP port ${options.port} is already in use`);
      }
      throw new TunnelError(
        `Cannot listen on UDP port ${options.port}: ${(error as Error).message}`,
      );
    }
    return new UdpTunnel(options, socket);
  }

  /** Live totals of the visitor sessions open now. */
  get liveTransfers(): Iterable<LiveTransfer> {
    return [...this.#peers.values()].map((p) => p.live);
  }

  /** Visitor sessions open now. */
  get activeConnections(): number {
    return this.#peers.size;
  }

  /** Datagrams dropped because a session's stream was backed up or no member was healthy. */
  get dropped(): number {
    return this.#dropped + [...this.#peers.values()].reduce((n, p) => n + p.writer.dropped, 0);
  }

  async #receiveLoop(): Promise<void> {
    // Deno truncates a datagram silently into a short buffer: give it room for the largest.
    const buf = new Uint8Array(MAX_DATAGRAM + 1);
    while (!this.#closed) {
      let data: Uint8Array;
      let addr: Deno.Addr;
      try {
        [data, addr] = await this.#socket.receive(buf);
      } catch (error) {
        if (this.#closed) return;
        this.#options.logger.warn("udp receive failed", { tunnel: this.name, error });
        continue;
      }
      const from = addr as Deno.NetAddr;
      const policy = this.#options.policy;
      if (policy && !policy.empty && !policy.allows(from.hostname)) {
        this.#denied++;
        this.#options.onDenied?.();
        if (this.#denied === 1 || this.#denied % 1000 === 0) {
          this.#options.logger.warn("visitor refused by IP policy", {
            tunnel: this.name,
            remote: formatAddr(from),
            refused_so_far: this.#denied,
          });
        }
        continue;
      }
      const key = formatAddr(from);
      let peer = this.#peers.get(key);
      const max = this.#options.maxConnections ?? 0;
      if (!peer && max > 0 && this.#peers.size >= max) {
        this.#dropped++;
        this.#options.onConnectionLimit?.();
        continue;
      }
      if (!peer || peer.stream.isReset) {
        peer = this.#open(key, from) ?? undefined;
        if (!peer) {
          this.#dropped++;
          continue;
        }
      }
      peer.lastSeen = performance.now();
      if (this.#options.limit && !this.#options.limit.in.tryTake(data.length)) {
        this.#dropped++;
        this.#options.onLimit?.();
        continue;
      }
      if (peer.writer.send(data)) peer.live.sent += data.length; // copied into its frame at once
    }
  }

  #open(key: string, addr: Deno.NetAddr): Peer | null {
    const target = this.#options.route();
    if (!target || target.mux.isClosed || target.mux.peerGoingAway) return null;
    let stream: MuxStream;
    try {
      stream = target.mux.open({ tunnel: target.name, remote: key, udp: true });
    } catch {
      return null;
    }
    const now = performance.now();
    const peer: Peer = {
      key,
      addr,
      stream,
      writer: new DatagramWriter(stream),
      target,
      lastSeen: now,
      started: now,
      bytesOut: 0,
      live: { sent: 0, received: 0 },
    };
    this.#peers.set(key, peer);
    this.#replies(peer);
    return peer;
  }

  /** Sends the client's replies back to the visitor until the session ends. */
  async #replies(peer: Peer): Promise<void> {
    let error: string | undefined;
    try {
      for await (const datagram of readDatagrams(peer.stream)) {
        peer.lastSeen = performance.now();
        if (this.#options.limit && !this.#options.limit.out.tryTake(datagram.length)) {
          this.#dropped++;
          this.#options.onLimit?.();
          continue;
        }
        peer.bytesOut += datagram.length;
        peer.live.received += datagram.length;
        await this.#socket.send(datagram, peer.addr).catch(() => {});
      }
    } catch (e) {
      error = (e as Error).message;
    }
    this.#end(peer, error);
  }

  #end(peer: Peer, error?: string): void {
    if (this.#peers.get(peer.key) !== peer) return;
    this.#peers.delete(peer.key);
    const event: ConnectionEvent = {
      tunnel: peer.target.name,
      remote: peer.key,
      bytesIn: peer.writer.bytes,
      bytesOut: peer.bytesOut,
      durationMs: performance.now() - peer.started,
      error,
      transfer: peer.live,
    };
    this.#options.logger.debug("udp session closed", {
      tunnel: this.name,
      remote: peer.key,
      datagrams_in: peer.writer.sent,
      dropped: peer.writer.dropped,
      error,
    });
    peer.target.done?.(event);
    this.#options.onSession?.(event);
  }

  #sweep(): void {
    const limit = performance.now() - this.#options.sessionTimeout;
    for (const peer of [...this.#peers.values()]) {
      if (peer.lastSeen >= limit) continue;
      peer.stream.reset(`UDP session idle for ${Math.round(this.#options.sessionTimeout / 1000)}s`);
      this.#end(peer);
    }
  }

  /** Closes the socket and every visitor session. */
  async close(_dropConnections = true): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearInterval(this.#sweeper);
      try {
        this.#socket.close();
      } catch { /* closed */ }
      for (const peer of [...this.#peers.values()]) {
        peer.stream.reset("Tunnel closed");
        this.#end(peer, "tunnel closed");
      }
    }
    await this.#receiving;
  }
}

/**
 * A UDP tunnel on the server: one public socket; each visitor address gets
 * its own session (a mux stream to the client) carrying its datagrams with
 * their boundaries; sessions idle for `session_timeout` expire.
 *
 * Neither direction waits on the other or queues without bound: datagrams
 * to the client wait for the stream in a bounded queue (several travel per
 * frame), datagrams to the visitor in a bounded queue behind one awaited
 * send; both drop the oldest when full, and the drops are reported.
 *
 * @module
 */

import { DatagramWriter, type MuxStream, readDatagramBatches } from "../../mux/mod.ts";
import type { TunnelRow } from "../../storage/mod.ts";
import { UdpReceiver, UdpSender } from "../../transport/mod.ts";
import type { Throttle } from "../../util/mod.ts";
import { formatAddr, raiseSocketBuffers } from "../../util/mod.ts";
import { bindPort, type TunnelKind, type UdpDropReason } from "./context.ts";
import { VisitorGuard, type VisitorGuards } from "./guards.ts";
import { joinGroup } from "./membership.ts";
import {
  type ConnectionEvent,
  type LiveTransfer,
  PortInUseError,
  type PublicTunnel,
  type RouteTarget,
  TunnelError,
  type TunnelTotals,
} from "./public_tunnel.ts";

export type { UdpDropReason };

/** Default `session_timeout` of UDP tunnels (the seed's 30 s). */
export const UDP_SESSION_TIMEOUT = 30_000;

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
  /** SO_RCVBUF and SO_SNDBUF of the public socket, bytes; 0 keeps the kernel's. Default 0. */
  socketBuffer?: number | undefined;
  /**
   * Datagrams dropped since the last call, by direction (`in`: from
   * visitors) and reason; called at most once a second and at close.
   */
  onDropped?: ((direction: "in" | "out", reason: UdpDropReason, count: number) => void) | undefined;
}

interface Peer {
  key: string;
  addr: Deno.NetAddr;
  stream: MuxStream;
  writer: DatagramWriter;
  sender: UdpSender;
  target: RouteTarget;
  lastSeen: number;
  started: number;
  live: LiveTransfer;
  ended: boolean;
}

type DropKey = `${"in" | "out"}:${UdpDropReason}`;

/** A listening UDP tunnel. */
export class UdpTunnel implements PublicTunnel {
  /** Its type. */
  readonly type = "udp";
  /** Tunnel name as the client declared it. */
  readonly name: string;
  /** The public port. */
  readonly port: number;
  /** Its row in the database, when recorded there. */
  dbId: number | null = null;
  /** The database row of a server-managed tunnel. */
  managed: TunnelRow | null = null;
  #socket: Deno.DatagramConn;
  /** The public socket's address, sent with each session (the client's PROXY protocol header). */
  #local: string;
  #options: UdpTunnelOptions;
  #guard: VisitorGuard;
  #limit: { in: Throttle; out: Throttle } | undefined;
  #peers = new Map<string, Peer>();
  /** The peer of the last datagram: most datagrams come from the same one. */
  #last: Peer | null = null;
  #closed = false;
  #receiver: UdpReceiver;
  #receiving: Promise<void>;
  #sweeper: ReturnType<typeof setInterval>;
  /** Drops counted here, plus those of ended sessions; live sessions count their own. */
  #drops = new Map<DropKey, number>();
  #reported = new Map<DropKey, number>();
  #sessions = 0;
  #bytesIn = 0;
  #bytesOut = 0;

  private constructor(options: UdpTunnelOptions, socket: Deno.DatagramConn) {
    this.name = options.name;
    this.#options = options;
    this.#guard = new VisitorGuard(options.name, options);
    this.#limit = options.limit;
    this.#socket = socket;
    this.#local = formatAddr(socket.addr);
    this.port = (socket.addr as Deno.NetAddr).port;
    this.#receiver = new UdpReceiver(socket, {
      onError: (error) => options.logger.warn("udp receive failed", { tunnel: this.name, error }),
    });
    this.#receiving = this.#receiver.run((data, from, key) => this.#onDatagram(data, from, key));
    this.#sweeper = setInterval(
      () => this.#sweep(),
      Math.max(100, Math.min(1_000, options.sessionTimeout / 2)),
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
        throw new PortInUseError(options.port, "udp");
      }
      throw new TunnelError(
        `Cannot listen on UDP port ${options.port}: ${(error as Error).message}`,
      );
    }
    raiseSocketBuffers(socket, options.socketBuffer ?? 0, { logger: options.logger });
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

  /** Totals since the tunnel opened: visitor sessions, and the bytes of those that ended. */
  get stats(): TunnelTotals {
    return { connections: this.#sessions, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut };
  }

  /** Datagrams dropped so far, both directions, every reason. */
  get dropped(): number {
    let n = 0;
    for (const count of this.#dropTotals().values()) n += count;
    return n;
  }

  #drop(key: DropKey, count = 1): void {
    this.#drops.set(key, (this.#drops.get(key) ?? 0) + count);
  }

  #dropTotals(): Map<DropKey, number> {
    const totals = new Map(this.#drops);
    const add = (key: DropKey, n: number) => n && totals.set(key, (totals.get(key) ?? 0) + n);
    for (const peer of this.#peers.values()) {
      add("in:queue_full", peer.writer.dropped);
      add("out:queue_full", peer.sender.dropped);
    }
    return totals;
  }

  /** Reports the drops since the last report. */
  #reportDrops(): void {
    const report = this.#options.onDropped;
    if (!report) return;
    for (const [key, total] of this.#dropTotals()) {
      const delta = total - (this.#reported.get(key) ?? 0);
      if (delta <= 0) continue;
      this.#reported.set(key, total);
      const [direction, reason] = key.split(":") as ["in" | "out", UdpDropReason];
      report(direction, reason, delta);
    }
  }

  #onDatagram(data: Uint8Array, from: Deno.NetAddr, key: string): void {
    let peer = this.#last;
    if (!peer || peer.key !== key || peer.ended || peer.stream.isReset) {
      peer = this.#visitor(from, key);
      if (!peer) return;
      this.#last = peer;
    }
    peer.lastSeen = performance.now();
    const limit = this.#limit;
    if (limit && !limit.in.tryTake(data.length)) {
      this.#drop("in:bandwidth");
      this.#guard.limited();
      return;
    }
    // The writer copies the datagram: the receiver reuses its buffer.
    if (peer.writer.send(data)) peer.live.sent += data.length;
  }

  /** The session of a visitor other than the last one: found, opened, or refused (`null`). */
  #visitor(from: Deno.NetAddr, key: string): Peer | null {
    const guard = this.#guard;
    if (!guard.admits(from.hostname, key)) return null;
    const peer = this.#peers.get(key);
    if (peer && !peer.stream.isReset) return peer;
    if (peer) this.#end(peer, "stream reset");
    if (guard.full(this.#peers.size)) {
      this.#drop("in:connection_limit");
      return null;
    }
    const opened = this.#open(key, from);
    if (!opened) this.#drop("in:no_route");
    return opened;
  }

  #open(key: string, addr: Deno.NetAddr): Peer | null {
    const target = this.#options.route();
    if (!target || target.mux.isClosed || target.mux.peerGoingAway) return null;
    let stream: MuxStream;
    try {
      stream = target.mux.open({ tunnel: target.name, remote: key, local: this.#local, udp: true });
    } catch {
      return null;
    }
    const now = performance.now();
    const peer: Peer = {
      key,
      addr,
      stream,
      writer: new DatagramWriter(stream),
      sender: new UdpSender(this.#socket, addr, {
        onError: (error) => {
          if (this.#closed) return;
          this.#options.logger.debug("udp send failed", { tunnel: this.name, remote: key, error });
        },
      }),
      target,
      lastSeen: now,
      started: now,
      live: { sent: 0, received: 0 },
      ended: false,
    };
    this.#peers.set(key, peer);
    this.#sessions++;
    this.#replies(peer);
    return peer;
  }

  /** Sends the client's replies back to the visitor until the session ends. */
  async #replies(peer: Peer): Promise<void> {
    const limit = this.#limit;
    let error: string | undefined;
    try {
      for await (const batch of readDatagramBatches(peer.stream)) {
        peer.lastSeen = performance.now();
        for (const datagram of batch) {
          if (limit && !limit.out.tryTake(datagram.length)) {
            this.#drop("out:bandwidth");
            this.#guard.limited();
            continue;
          }
          peer.live.received += datagram.length;
          peer.sender.send(datagram); // copied: the stream's buffer is reused next
        }
      }
    } catch (e) {
      error = (e as Error).message;
    }
    this.#end(peer, error);
  }

  #end(peer: Peer, error?: string): void {
    if (this.#peers.get(peer.key) !== peer) return;
    this.#peers.delete(peer.key);
    if (this.#last === peer) this.#last = null;
    peer.ended = true;
    // Replies still queued for an idle or closed session are not worth sending.
    void peer.sender.close();
    this.#drop("in:queue_full", peer.writer.dropped);
    this.#drop("out:queue_full", peer.sender.dropped);
    const event: ConnectionEvent = {
      tunnel: peer.target.name,
      remote: peer.key,
      bytesIn: peer.writer.bytes,
      bytesOut: peer.live.received,
      durationMs: performance.now() - peer.started,
      error,
      transfer: peer.live,
    };
    this.#bytesIn += event.bytesIn;
    this.#bytesOut += event.bytesOut;
    this.#options.logger.debug("udp session closed", {
      tunnel: this.name,
      remote: peer.key,
      datagrams_in: peer.writer.sent,
      dropped_in: peer.writer.dropped,
      datagrams_out: peer.sender.sent,
      dropped_out: peer.sender.dropped,
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
    this.#reportDrops();
  }

  /** Closes the socket and every visitor session. */
  async close(_dropConnections = true): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearInterval(this.#sweeper);
      // Receiver and senders use the socket's descriptor directly: they stop before it closes.
      this.#receiver.stop();
      const stopped: Promise<void>[] = [];
      for (const peer of [...this.#peers.values()]) {
        peer.stream.reset("Tunnel closed");
        this.#end(peer, "tunnel closed");
        stopped.push(peer.sender.close());
      }
      await Promise.all(stopped);
      try {
        this.#socket.close();
      } catch { /* closed */ }
      this.#reportDrops();
    }
    await this.#receiving;
  }
}

/** UDP tunnels: a public socket of their own, or one shared by their group. */
export const udpTunnels: TunnelKind = {
  open({ name, request, policy }, context) {
    const sessionTimeout = (request.session_timeout as number | undefined) ?? UDP_SESSION_TIMEOUT;
    const fixed = { mux: context.mux, name };
    return Promise.resolve(bindPort(context, {
      port: request.remote_port ?? 0,
      bind: (port) => {
        const tunnel: UdpTunnel = UdpTunnel.listen({
          ...context.guards(name, policy),
          name,
          hostname: context.config.bind_addr,
          port,
          route: () => fixed,
          sessionTimeout,
          socketBuffer: context.config.udp.socket_buffer,
          onDropped: (direction, reason, count) =>
            context.onUdpDrops(name, direction, reason, count),
          onSession: (event) => context.onConnection(tunnel, event),
        });
        return tunnel;
      },
    }));
  },
  join(open, context) {
    const { name, request, policy } = open;
    const sessionTimeout = (request.session_timeout as number | undefined) ?? UDP_SESSION_TIMEOUT;
    return joinGroup(open, context, {
      type: "udp",
      // The group's socket: each session reports through the member it went to.
      listen: (route) =>
        bindPort(context, {
          port: request.remote_port ?? 0,
          bind: (port) =>
            UdpTunnel.listen({
              ...context.guards(name, policy),
              name,
              hostname: context.config.bind_addr,
              port,
              route,
              sessionTimeout,
              socketBuffer: context.config.udp.socket_buffer,
              onDropped: (direction, reason, count) =>
                context.onUdpDrops(name, direction, reason, count),
            }),
        }),
    });
  },
  requestOf(row) {
    return {
      protocol: "udp",
      local_port: row.local_port ?? 0,
      remote_port: row.remote_port ?? 0,
      session_timeout: Number(row.options.session_timeout ?? UDP_SESSION_TIMEOUT),
    };
  },
  // A new session_timeout applies to the next opening (as it always has).
  publicSide: () => "",
};

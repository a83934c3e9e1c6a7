/**
 * Load-balancing groups: tunnels with the same `group` and `group_key` from
 * different clients share one public port. The first member opens the
 * listener, the last one leaving closes it; each connection goes to the
 * member the {@linkcode Balancer} picks.
 *
 * @module
 */

import type { StreamOpener } from "../../mux/mod.ts";
import type { TunnelRow } from "../../storage/mod.ts";
import type { Logger } from "../../util/mod.ts";
import { timingSafeEqualText } from "../../util/mod.ts";
import { Balancer, type BalancerMember, type Strategy } from "../balancer.ts";
import type {
  ConnectionEvent,
  LiveTransfer,
  PublicTunnel,
  RouteTarget,
  TunnelTotals,
} from "./public_tunnel.ts";

/** The shared public side of a group: a TCP listener or a UDP socket. */
export interface GroupListener {
  /** The public port. */
  readonly port: number;
  /** Stops it; with `dropConnections`, also ends open connections. */
  close(dropConnections?: boolean): Promise<void>;
}

/** What a tunnel asks for to join (or found) a group. */
export interface JoinRequest {
  /** Group name (TCP and UDP groups are separate spaces). */
  group: string;
  /** Tunnel type of the members. */
  type: "tcp" | "udp";
  /** The members' shared secret. */
  key: string;
  /** Strategy; the first member's choice holds. */
  strategy: Strategy;
  /** Share of connections. */
  weight: number;
  /** Public port asked for; 0: the group's (or any, for the first member). */
  port: number;
  /** The member's tunnel name (what its client knows). */
  tunnelName: string;
  /** The member's client id (for logs). */
  clientId: string;
  /** The member's client connection. */
  mux: StreamOpener;
  /** Called when each of the member's connections ends. */
  onConnection: (member: GroupMember, event: ConnectionEvent) => void;
  /** Called with ms from accept to first byte back, per connection of the member. */
  onFirstByte?: (member: GroupMember, ms: number) => void;
  /** Gzip this member's data streams. */
  compress?: boolean;
}

/** A tunnel's membership in a group; closes like a tunnel. */
export class GroupMember implements BalancerMember, PublicTunnel {
  /** The member's tunnel name. */
  readonly name: string;
  /** The member's client id. */
  readonly clientId: string;
  /** Share of connections. */
  readonly weight: number;
  /** Connections open through this member now. */
  active = 0;
  /** Taken out of rotation while its client reports the local service down. */
  healthy = true;
  /** Connections carried so far. */
  connections = 0;
  /** Bytes from visitors, of the connections that finished. */
  bytesIn = 0;
  /** Bytes to visitors, of the connections that finished. */
  bytesOut = 0;
  /** Its row in the database, when recorded. */
  dbId: number | null = null;
  /** Group members are always declared by clients. */
  managed: TunnelRow | null = null;
  /** @internal */
  readonly conns = new Set<Deno.TcpConn>();
  /** Live totals of this member's open connections. */
  readonly liveTransfers = new Set<LiveTransfer>();
  /** @internal */
  readonly mux: StreamOpener;
  /** The group it belongs to. */
  readonly group: TunnelGroup;
  /** Gzips its data streams. */
  readonly compress: boolean;

  /** @internal */
  constructor(group: TunnelGroup, request: JoinRequest) {
    this.group = group;
    this.compress = request.compress ?? false;
    this.name = request.tunnelName;
    this.clientId = request.clientId;
    this.weight = request.weight;
    this.mux = request.mux;
  }

  /** The group's type. */
  get type(): "tcp" | "udp" {
    return this.group.type;
  }

  /** The group's public port. */
  get port(): number {
    return this.group.port;
  }

  /** Totals of this member since it joined. */
  get stats(): TunnelTotals {
    return { connections: this.connections, bytesIn: this.bytesIn, bytesOut: this.bytesOut };
  }

  /** Connections open through this member now. */
  get activeConnections(): number {
    return this.active;
  }

  /** Leaves the group; with `dropConnections`, also closes this member's open connections. */
  close(dropConnections = true): Promise<void> {
    return this.group.leave(this, dropConnections);
  }
}

/** A group with its shared listener. */
export class TunnelGroup {
  /** Group name. */
  readonly name: string;
  /** The members' type. */
  readonly type: "tcp" | "udp";
  /** Registry key: type and name. */
  readonly key: string;
  /** The balancer over the members. */
  readonly balancer: Balancer<GroupMember>;
  #key: string;
  #listener: GroupListener | null = null;
  #registry: GroupRegistry;
  #log: Logger;

  /** @internal */
  constructor(
    name: string,
    type: "tcp" | "udp",
    key: string,
    strategy: Strategy,
    registry: GroupRegistry,
    log: Logger,
  ) {
    this.name = name;
    this.type = type;
    this.key = `${type}:${name}`;
    this.#key = key;
    this.balancer = new Balancer(strategy);
    this.#registry = registry;
    this.#log = log;
  }

  /** The shared public port. */
  get port(): number {
    return this.#listener?.port ?? 0;
  }

  /** @internal */
  setListener(listener: GroupListener): void {
    this.#listener = listener;
  }

  /** @internal */
  keyMatches(key: string): Promise<boolean> {
    return timingSafeEqualText(key, this.#key);
  }

  /** @internal */
  route(): RouteTarget | null {
    // A member whose connection just died (not yet removed) is passed over.
    let member = this.balancer.pick();
    for (let i = 0; member && (member.mux.isClosed || member.mux.peerGoingAway); i++) {
      if (i >= this.balancer.members.length) return null;
      member = this.balancer.pick();
    }
    if (!member) return null;
    member.active++;
    member.connections++;
    let conn: Deno.TcpConn | null = null;
    let transfer: LiveTransfer | null = null;
    return {
      mux: member.mux,
      name: member.name,
      compress: member.compress,
      attach: (c, live) => {
        conn = c;
        transfer = live;
        member.conns.add(c);
        member.liveTransfers.add(live);
      },
      done: (event) => {
        member.active--;
        member.bytesIn += event.bytesIn;
        member.bytesOut += event.bytesOut;
        if (conn) member.conns.delete(conn);
        if (transfer) member.liveTransfers.delete(transfer);
        this.#registry.onConnection(member, event);
      },
      firstByte: (ms) => this.#registry.onFirstByte(member, ms),
    };
  }

  /** @internal */
  async leave(member: GroupMember, dropConnections: boolean): Promise<void> {
    if (!this.balancer.remove(member)) return;
    if (dropConnections) {
      for (const c of member.conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    }
    this.#log.info("group member left", {
      group: this.name,
      tunnel: member.name,
      client_id: member.clientId,
      members: this.balancer.members.length,
    });
    if (this.balancer.members.length === 0) {
      this.#registry.forget(this);
      const listener = this.#listener;
      this.#listener = null;
      await listener?.close(dropConnections);
      this.#log.info("group closed", { group: this.name });
    }
  }
}

/** Every group on this server, by name. */
export class GroupRegistry {
  #groups = new Map<string, TunnelGroup>();
  #log: Logger;
  #onConnection = new WeakMap<GroupMember, JoinRequest["onConnection"]>();
  #onFirstByte = new WeakMap<GroupMember, NonNullable<JoinRequest["onFirstByte"]>>();

  /** An empty registry. */
  constructor(log: Logger) {
    this.#log = log;
  }

  /** Groups by `type:name`. */
  get groups(): ReadonlyMap<string, TunnelGroup> {
    return this.#groups;
  }

  /**
   * Adds a member, founding the group (and opening its listener through
   * `listen`) when it is the first. Resolves with the member, or with the
   * reason it was refused.
   */
  async join(
    request: JoinRequest,
    listen: (route: () => RouteTarget | null) => GroupListener | string,
  ): Promise<GroupMember | string> {
    const registryKey = `${request.type}:${request.group}`;
    let group = this.#groups.get(registryKey);
    if (group) {
      if (!(await group.keyMatches(request.key))) {
        return `Wrong group_key for group "${request.group}"`;
      }
      // The group may have closed while the key was compared.
      if (this.#groups.get(registryKey) !== group) return this.join(request, listen);
      if (request.port !== 0 && request.port !== group.port) {
        return `Group "${request.group}" listens on port ${group.port}; set remote_port to ` +
          `${group.port} or 0 to join it`;
      }
      if (request.strategy !== group.balancer.strategy) {
        this.#log.warn("group member asks for another strategy; the group's holds", {
          group: request.group,
          tunnel: request.tunnelName,
          asked: request.strategy,
          strategy: group.balancer.strategy,
        });
      }
    } else {
      group = new TunnelGroup(
        request.group,
        request.type,
        request.key,
        request.strategy,
        this,
        this.#log,
      );
      const founded = group;
      const listener = listen(() => founded.route());
      if (typeof listener === "string") return listener;
      group.setListener(listener);
      this.#groups.set(registryKey, group);
      this.#log.info("group opened", {
        group: request.group,
        port: listener.port,
        strategy: request.strategy,
      });
    }
    const member = new GroupMember(group, request);
    this.#onConnection.set(member, request.onConnection);
    if (request.onFirstByte) this.#onFirstByte.set(member, request.onFirstByte);
    group.balancer.add(member);
    this.#log.info("group member joined", {
      group: request.group,
      tunnel: request.tunnelName,
      client_id: request.clientId,
      weight: request.weight,
      members: group.balancer.members.length,
    });
    return member;
  }

  /** @internal */
  forget(group: TunnelGroup): void {
    if (this.#groups.get(group.key) === group) this.#groups.delete(group.key);
  }

  /** @internal */
  onFirstByte(member: GroupMember, ms: number): void {
    this.#onFirstByte.get(member)?.(member, ms);
  }

  /** @internal */
  onConnection(member: GroupMember, event: ConnectionEvent): void {
    this.#onConnection.get(member)?.(member, event);
  }
}

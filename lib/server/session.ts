/**
 * One client's session on the server, the protocol's state machine: the
 * handshake (`handshake.ts`), then the control loop (create and destroy
 * tunnels, heartbeats, health reports, managed tunnels pushed) until the
 * connection ends, and the tunnels it owns, closed with it.
 *
 * @module
 */

import type { ServerConfig } from "../config/mod.ts";
import { Mux, PeerClosedError } from "../mux/mod.ts";
import type { Duplex } from "../transport/mod.ts";
import {
  checkTunnelRequest,
  decodeControl,
  encodeControl,
  type ErrorMessage,
  formatProblems,
  type Message,
  ProtocolError,
  type TunnelRequest,
  type TunnelStatusMessage,
} from "../protocol/mod.ts";
import type { TunnelRow } from "../storage/mod.ts";
import type { Logger } from "../util/mod.ts";
import type { IpPolicy } from "../util/mod.ts";
import { portsFor } from "./ports.ts";
import { nameHolder, nameTakenMessage, portHeld, portTakenMessage } from "./holders.ts";
import type { Principal } from "./login.ts";
import type { SessionRecorder } from "./recorder.ts";
import { reconcileManaged } from "./managed.ts";
import type { ClusterTunnels } from "./cluster/mod.ts";
import { acceptHandshake, DEFAULT_HANDSHAKE_TIMEOUT, type HandshakeHost } from "./handshake.ts";
import type { Bandwidth, Limits } from "./bandwidth.ts";
import type { HttpFront } from "./http_front.ts";
import {
  type GroupRegistry,
  openTunnel,
  type PublicTunnel,
  type TunnelContext,
  TunnelError,
  type VisitorGuards,
  visitorPolicy,
} from "./tunnels/mod.ts";

/** What a session needs from its server (its handshake's needs included). */
export interface SessionHost extends HandshakeHost {
  /** The validated server configuration. */
  readonly config: ServerConfig;
  /** Where the server logs. */
  readonly logger: Logger;
  /** Load-balancing groups of the whole server. */
  readonly groups: GroupRegistry;
  /** The shared HTTP and HTTPS ports, when configured. */
  readonly vhosts: { http: HttpFront | null; https: HttpFront | null };
  /** Where the session reports traffic and its tunnels' state. */
  readonly recorder: SessionRecorder;
  /** The bandwidth limits of its tunnels. */
  readonly bandwidth: Bandwidth;
  /** The control port, as bound. */
  readonly port: number;
  /** Cluster mode: this node's part of the cluster's tunnels; `null` outside it. */
  readonly cluster?: { readonly tunnels: ClusterTunnels } | null;
  /** Every registered session (this one included). */
  readonly sessions: ReadonlySet<ClientSession>;
  /**
   * Records an authenticated session; an older one with the same client id
   * is closed first, and its tunnels with it.
   */
  register(session: ClientSession): Promise<void>;
  /** Forgets a session that ended. */
  unregister(session: ClientSession, reason: string): void;
  /**
   * Records a tunnel the client declared; resolves with its row id (`null`
   * when there is no database to record it in, or while its row waits for
   * the database).
   *
   * @throws {TunnelError} when the database refuses it (conflict, disabled).
   */
  recordTunnel(
    session: ClientSession,
    name: string,
    request: TunnelRequest,
  ): Promise<number | null>;
}

/** A connected client. */
export class ClientSession {
  /** The client's `host:port`. */
  readonly remote: string;
  /** The client's address without the port. */
  readonly remoteHost: string;
  /** Id given to the client in `ack`. */
  readonly sessionId: string = crypto.randomUUID();
  /** The client's stable id from `hello` (empty before it). */
  clientId = "";
  /** The client's software from `hello`, e.g. `burrow/0.1.0`. */
  software = "";
  /** The protocol version agreed in `hello`. */
  protocolVersion = 1;
  /** Who logged in (set by the handshake). */
  principal: Principal | null = null;
  /** When the session was authenticated. */
  connectedAt: Date = new Date();
  /** Open tunnels by name. */
  readonly tunnels = new Map<string, PublicTunnel>();
  /** The multiplexed control connection. */
  readonly mux: Mux;

  #host: SessionHost;
  #log: Logger;
  #lastSeen = performance.now();
  #refused = false;
  #managedQueue: Promise<void> = Promise.resolve();
  #lastPush = "[]";
  #servedManaged = false;
  /** Names of declared tunnels between their request and their answer. */
  #opening = new Set<string>();
  /** Each tunnel's bandwidth limit, which visitors relayed from other nodes share. */
  #limits = new Map<string, Limits | undefined>();

  /** Wraps an accepted control connection. */
  constructor(conn: Duplex, remote: string, host: SessionHost) {
    this.remote = remote;
    this.remoteHost = remote.startsWith("[")
      ? remote.slice(1, remote.indexOf("]"))
      : remote.slice(0, remote.lastIndexOf(":")) || remote;
    this.#host = host;
    this.#log = host.logger;
    this.mux = new Mux(conn, { role: "server", pingInterval: host.config.heartbeat_interval });
  }

  /** This session as the tunnel it opens now sees it. */
  #tunnelContext(): TunnelContext {
    const host = this.#host;
    return {
      config: host.config,
      logger: this.#log,
      mux: this.mux,
      clientId: this.clientId,
      groups: host.groups,
      vhosts: host.vhosts,
      allowedDomains: this.principal?.tokenLimits?.domains ?? null,
      ports: (requested) =>
        portsFor(requested, {
          server: this.#host.config.allow_ports,
          user: this.principal?.allowPorts ?? null,
          token: this.principal?.tokenLimits?.ports ?? null,
          userName: this.principal?.userName ?? "admin",
        }),
      // Found in use: a holder this server knows of, else another program.
      portTaken: (port, transport) =>
        portHeld(this.#host, this.principal, port, transport) ??
          host.cluster?.tunnels.portHolder(port, transport) ??
          portTakenMessage(port, transport, this.principal, null),
      guards: (name, policy) => this.#guards(name, policy),
      onConnection: (tunnel, event) => host.recorder.connection(this, tunnel, event),
      onFirstByte: (tunnel, ms) => host.recorder.firstByte(this, tunnel, ms),
      onUdpDrops: (tunnel, direction, reason, count) =>
        host.recorder.udpDrops(this, tunnel, direction, reason, count),
      // Cluster mode: the other nodes relay this node's tunnels (and refuse one held elsewhere).
      beforeOpen: (open) =>
        host.cluster?.tunnels.beforeOpen(this, open) ?? Promise.resolve(undefined),
      opened: (tunnel, open) => host.cluster?.tunnels.opened(this, tunnel, open),
    };
  }

  /** Runs the session to its end; never throws. */
  async run(): Promise<void> {
    let registered = false;
    let reason = "closed";
    let watchdog: ReturnType<typeof setInterval> | undefined;
    try {
      if (!(await this.#handshake())) return;
      await this.#host.register(this);
      registered = true;
      this.#log.info("session opened", {
        client_id: this.clientId,
        session_id: this.sessionId,
        remote: this.remote,
      });
      const timeout = this.#host.config.heartbeat_timeout;
      watchdog = setInterval(() => {
        if (performance.now() - this.#lastSeen > timeout) {
          this.close(`no heartbeat for ${Math.round(timeout / 1000)}s`);
        }
      }, Math.min(1000, timeout / 2));
      await this.#controlLoop();
    } catch (error) {
      this.close(error instanceof Error ? error : new Error(String(error)));
    } finally {
      clearInterval(watchdog);
      this.mux.close();
      for (const tunnel of this.tunnels.values()) {
        await tunnel.close();
        this.#host.recorder.tunnelStatus(this, tunnel, "offline", null);
      }
      this.tunnels.clear();
      const cause = await this.mux.closed;
      reason = cause?.message ?? "closed";
      const fields = { remote: this.remote, client_id: this.clientId || undefined };
      if (cause instanceof ProtocolError) {
        this.#log.warn("protocol error", { ...fields, error: cause.message });
        this.#host.recorder.error("protocol_error");
      } else if (!registered && cause && !this.#refused) {
        // Pinning clients fetch the certificate on a connection they close at once.
        const level = cause instanceof PeerClosedError && this.mux.bytes.in === 0
          ? "debug"
          : "warn";
        this.#log[level]("connection failed before login", { ...fields, error: cause.message });
      }
      if (registered) {
        this.#host.unregister(this, reason);
        this.#log.info("session closed", {
          client_id: this.clientId,
          session_id: this.sessionId,
          user: this.principal?.userName,
          reason,
        });
      }
    }
  }

  /** Ends the session at once. Safe to call twice. */
  close(reason: string | Error): void {
    this.mux.close(typeof reason === "string" ? new Error(reason) : reason);
  }

  /** Announces shutdown: the client opens nothing new and reconnects later. */
  goAway(reason: string): void {
    this.mux.goAway(reason);
  }

  #send(message: Message): void {
    this.mux.sendControl(encodeControl(message));
  }

  async #refuse(code: ErrorMessage["code"], message: string, retryAfter?: number): Promise<void> {
    this.#refused = true;
    this.#send({
      type: "error",
      code,
      message,
      ...(retryAfter ? { retry_after: retryAfter } : {}),
    });
    await this.mux.flush();
    this.close(message);
  }

  async #receive(): Promise<Message | null> {
    const bytes = await this.mux.recvControl();
    if (bytes === null) return null;
    this.#lastSeen = performance.now();
    return decodeControl(bytes);
  }

  /** Hello and auth; false when the client was refused, timed out or left. */
  async #handshake(): Promise<boolean> {
    this.principal = await acceptHandshake(
      {
        receive: () => this.#receive(),
        send: (message) => this.#send(message),
        refuse: (code, message, retryAfter) => this.#refuse(code, message, retryAfter),
        close: (reason) => this.close(reason),
      },
      this.#host,
      this,
      {
        timeoutMs: this.#host.config.handshake_timeout ?? DEFAULT_HANDSHAKE_TIMEOUT,
        logger: this.#log,
      },
    );
    return this.principal !== null;
  }

  async #controlLoop(): Promise<void> {
    for (;;) {
      const message = await this.#receive();
      if (message === null) return;
      switch (message.type) {
        case "heartbeat":
          this.#send({ type: "heartbeat", timestamp: message.timestamp, status: "online" });
          this.#host.recorder.heartbeat(this);
          break;
        case "control":
          if (message.action === "create_tunnel") {
            this.#send(await this.#createTunnel(message.tunnel_id, message.config!));
          } else {
            await this.#destroyTunnel(message.tunnel_id);
          }
          break;
        case "tunnel_health":
          this.#health(message);
          break;
        default:
          throw new ProtocolError(`Unexpected "${message.type}" message from a client`);
      }
    }
  }

  async #createTunnel(name: string, request: TunnelRequest): Promise<TunnelStatusMessage> {
    const fail = (reason: string): TunnelStatusMessage => {
      this.#log.warn("tunnel refused", { tunnel: name, client_id: this.clientId, reason });
      this.#host.recorder.error("tunnel_refused");
      return { type: "tunnel_status", tunnel_id: name, status: "failed", error: reason };
    };
    const config = this.#host.config;
    // The tunnel spec, as the YAML and the admin API apply it, before anything is recorded.
    const problems = checkTunnelRequest(name, request);
    if (problems.length) return fail(formatProblems(problems));
    const limits = this.principal?.tokenLimits;
    if (limits?.types && !limits.types.includes(request.protocol)) {
      return fail(
        `This token may not publish ${request.protocol} tunnels (allowed: ${
          limits.types.join(", ")
        })`,
      );
    }
    if (this.tunnels.has(name)) return fail(`Tunnel "${name}" already exists in this session`);
    // One name, one row: a second client of the user would take over the first one's.
    const twin = nameHolder(this.#host.sessions, this, name, (s, n) => s.#opening.has(n));
    if (twin) return fail(nameTakenMessage(name, twin));
    const declared = [...this.tunnels.values()].filter((t) => !t.managed).length;
    if (declared >= config.limits.max_tunnels_per_client) {
      return fail(
        `Limit of ${config.limits.max_tunnels_per_client} tunnels per client reached ` +
          `(server.limits.max_tunnels_per_client)`,
      );
    }
    // A port a live tunnel holds is named now, before its row or a bind is tried.
    const port = request.remote_port ?? 0;
    const transport = request.protocol;
    if (port > 0 && request.group === undefined && (transport === "tcp" || transport === "udp")) {
      const held = portHeld(this.#host, this.principal, port, transport);
      if (held) return fail(held);
    }
    this.#opening.add(name);
    try {
      return await this.#openDeclared(name, request, fail);
    } finally {
      this.#opening.delete(name);
    }
  }

  /** Records and opens a declared tunnel that passed the session's checks. */
  async #openDeclared(
    name: string,
    request: TunnelRequest,
    fail: (reason: string) => TunnelStatusMessage,
  ): Promise<TunnelStatusMessage> {
    let dbId: number | null;
    try {
      dbId = await this.#host.recordTunnel(this, name, request);
    } catch (error) {
      if (error instanceof TunnelError) return fail(error.message);
      throw error;
    }
    let policy: IpPolicy;
    try {
      policy = visitorPolicy(request.allow_ips, request.deny_ips);
    } catch (error) {
      return fail((error as Error).message);
    }
    const opened = await openTunnel({ name, request, policy }, this.#tunnelContext());
    if (typeof opened === "string") {
      const refused = { dbId, name, port: 0, type: request.protocol };
      this.#host.recorder.tunnelStatus(this, refused, "failed", opened, true);
      return fail(opened);
    }
    opened.dbId = dbId;
    this.tunnels.set(name, opened);
    this.#host.recorder.tunnelStatus(this, opened, "active", null);
    this.#log.info("tunnel opened", {
      tunnel: name,
      type: request.protocol,
      client_id: this.clientId,
      remote_port: opened.port,
      ...(opened.group ? { group: opened.group.name } : {}),
    });
    return {
      type: "tunnel_status",
      tunnel_id: name,
      status: "active",
      remote_port: opened.port,
      ...(opened.urls ? { urls: [...opened.urls] } : {}),
    };
  }

  /** What every public listener of this session shares: visitor policy, limits and their counters. */
  #guards(name: string, policy: IpPolicy | undefined): VisitorGuards {
    const limit = this.#host.bandwidth.forTunnel(this.principal);
    this.#limits.set(name, limit);
    return {
      logger: this.#log,
      policy,
      onDenied: () => this.#host.recorder.error("visitor_denied"),
      limit,
      onLimit: () => this.#host.recorder.limitHit("bandwidth", this, name),
      maxConnections: this.#host.config.limits.max_connections_per_tunnel,
      onConnectionLimit: () => this.#host.recorder.limitHit("connections", this, name),
    };
  }

  /** A client's health report on one of its tunnels: a group member leaves or rejoins rotation. */
  #health(message: { tunnel_id: string; healthy: boolean; reason?: string | undefined }): void {
    const tunnel = this.tunnels.get(message.tunnel_id);
    if (!tunnel) return;
    const fields = { tunnel: tunnel.name, client_id: this.clientId, reason: message.reason };
    if (!tunnel.group) {
      this.#log.info(`local service ${message.healthy ? "healthy" : "unhealthy"}`, fields);
    } else if (tunnel.healthy !== message.healthy) {
      tunnel.healthy = message.healthy;
      this.#host.cluster?.tunnels.healthChanged(this, tunnel.name, message.healthy);
      const msg = `group member ${message.healthy ? "healthy" : "unhealthy"}`;
      this.#log.info(msg, { group: tunnel.group.name, ...fields });
    }
  }

  /** The bandwidth limit of tunnel `name` (cluster mode: relayed visitors share it). */
  limitOf(name: string): Limits | undefined {
    return this.#limits.get(name);
  }

  /** Tells the client about one of its tunnels (clients of protocol 2 and later). */
  notify(tunnel: string, code: string, message: string): void {
    if (this.protocolVersion < 2 || this.mux.isClosed) return;
    this.#send({ type: "notice", tunnel_id: tunnel, code, message });
  }

  /** Whether the session serves (or was told of) database-managed tunnels. */
  get hasManagedTunnels(): boolean {
    return this.#servedManaged;
  }

  /**
   * Serves exactly `rows` (database-managed tunnels of this client): opens
   * new ones, re-opens those whose public side changed, closes the rest, then
   * pushes the complete list to the client. Calls are serialised.
   */
  applyManaged(rows: TunnelRow[]): Promise<void> {
    this.#managedQueue = this.#managedQueue.then(() => this.#applyManaged(rows)).catch((error) => {
      this.#log.error("applying managed tunnels failed", { client_id: this.clientId, error });
    });
    return this.#managedQueue;
  }

  async #applyManaged(rows: TunnelRow[]): Promise<void> {
    if (this.mux.isClosed) return;
    const pushed = await reconcileManaged(this, rows, {
      logger: this.#log,
      recorder: this.#host.recorder,
      context: () => this.#tunnelContext(),
    });
    // Pushed only when it changed (a login of a user without managed tunnels sends nothing).
    const text = JSON.stringify(pushed);
    if (text === this.#lastPush) return;
    this.#lastPush = text;
    this.#servedManaged = pushed.length > 0;
    this.#send({ type: "config_push", tunnels: pushed });
  }

  /** Closes a client-declared tunnel the database disabled or deleted, telling the client why. */
  async revokeTunnel(name: string, reason: string): Promise<void> {
    const tunnel = this.tunnels.get(name);
    if (!tunnel || tunnel.managed) return;
    this.tunnels.delete(name);
    await tunnel.close();
    this.#host.recorder.tunnelStatus(this, tunnel, "offline", reason, true);
    this.#log.info("tunnel closed", { tunnel: name, client_id: this.clientId, reason });
    this.#send({ type: "tunnel_status", tunnel_id: name, status: "closed", error: reason });
  }

  async #destroyTunnel(name: string): Promise<void> {
    const tunnel = this.tunnels.get(name);
    if (!tunnel) {
      this.#send({
        type: "tunnel_status",
        tunnel_id: name,
        status: "failed",
        error: `No tunnel "${name}" in this session`,
      });
      return;
    }
    if (tunnel.managed) {
      this.#send({
        type: "tunnel_status",
        tunnel_id: name,
        status: "failed",
        error: `Tunnel "${name}" is managed on the server and cannot be closed by the client`,
      });
      return;
    }
    this.tunnels.delete(name);
    await tunnel.close();
    this.#host.recorder.tunnelStatus(this, tunnel, "offline", null, true);
    this.#log.info("tunnel closed", { tunnel: name, client_id: this.clientId });
    this.#send({ type: "tunnel_status", tunnel_id: name, status: "closed" });
  }
}

/**
 * One client's session on the server: handshake (hello, auth), the control
 * loop (create/destroy tunnels, heartbeats) and the tunnels it owns.
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
  MIN_PROTOCOL_VERSION,
  negotiateVersion,
  ProtocolError,
  type PushedTunnel,
  type TunnelRequest,
  type TunnelStatusMessage,
} from "../protocol/mod.ts";
import type { TunnelRow } from "../storage/mod.ts";
import type { Logger } from "../util/mod.ts";
import { bothLimits, IpPolicy, type Throttle, TokenBucket, VERSION } from "../util/mod.ts";
import { portsFor } from "./ports.ts";
import type { HttpFront } from "./http_front.ts";
import {
  type ConnectionEvent,
  type GroupRegistry,
  isTunnelType,
  listenSignature,
  managedRequest,
  openTunnel,
  type PublicTunnel,
  type TunnelContext,
  TunnelError,
  type UdpDropReason,
  type VisitorGuards,
} from "./tunnels/mod.ts";

/** A tunnel's identity as the server records it (a refused tunnel has no port). */
export type TunnelIdentity = Pick<PublicTunnel, "dbId" | "name" | "port"> & {
  /** Its type as requested. */
  readonly type: string;
};

/** Who a session logged in as. */
export interface Principal {
  /** The user's row id; `null` when the server runs without a database. */
  userId: number | null;
  /** The user's name (`admin` for the shared token). */
  userName: string;
  /** The user token's id; `null` for the shared token. */
  tokenId: string | null;
  /** Port ranges the user's tunnels may take (on top of `server.allow_ports`); `null`: any. */
  allowPorts?: Array<[number, number]> | null;
  /** The user's bandwidth limit (bytes/s per direction, all its tunnels); `null`: none. */
  maxBandwidth?: number | null;
  /** Limits of the token the client logged in with; `null` parts do not limit. */
  tokenLimits?: {
    types: string[] | null;
    ports: Array<[number, number]> | null;
    domains: string[] | null;
  };
}

/** The outcome of checking a client's credentials. */
export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; code: "auth_failed" | "unavailable"; message: string }
  | { ok: false; code: "limit"; message: string; retryAfter: number };

/** What a session needs from its server. */
export interface SessionHost {
  /** The validated server configuration. */
  readonly config: ServerConfig;
  /** Where the server logs. */
  readonly logger: Logger;
  /** Load-balancing groups of the whole server. */
  readonly groups: GroupRegistry;
  /** The shared HTTP and HTTPS ports, when configured. */
  readonly vhosts: { http: HttpFront | null; https: HttpFront | null };
  /**
   * Checks a client's token (shared token, user token or API key) from
   * `address` for client id `clientId`; refuses at once, without looking at
   * the token, an address that failed too often (`code: "limit"`).
   */
  authenticate(token: string, address: string, clientId: string): Promise<AuthResult>;
  /**
   * Opens an unauthenticated handshake from `address`: a slot to dispose of
   * when it ends, or a refusal (counted and logged) when the address has too
   * many open.
   */
  enterHandshake(address: string): Disposable | { message: string };
  /** Records an authenticated session; closes an older one with the same client id. */
  register(session: ClientSession): void;
  /** Forgets a session that ended. */
  unregister(session: ClientSession, reason: string): void;
  /** Whether another client may log in now (max_clients). */
  hasRoom(): boolean;
  /** A heartbeat arrived. */
  onHeartbeat(session: ClientSession): void;
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
  /** A tunnel's state changed. */
  tunnelStatus(
    session: ClientSession,
    tunnel: TunnelIdentity,
    status: "offline" | "active" | "failed",
    error: string | null,
    gone?: boolean,
  ): void;
  /** The first byte of a public connection came back `ms` after it was accepted. */
  onFirstByte(
    session: ClientSession,
    tunnel: Pick<PublicTunnel, "name" | "type">,
    ms: number,
  ): void;
  /** Counts an error of `kind` (metrics). */
  countError(kind: string): void;
  /** The session user's shared bandwidth buckets, when the user has a limit. */
  userBuckets(session: ClientSession): { in: TokenBucket; out: TokenBucket } | undefined;
  /** A limit held back or dropped traffic of a tunnel (logged once per tunnel, counted always). */
  countLimit(kind: "bandwidth" | "connections", session: ClientSession, tunnel: string): void;
  /** Datagrams a UDP tunnel dropped since its last report (`in`: from visitors). */
  countUdpDrops(
    session: ClientSession,
    tunnel: string,
    direction: "in" | "out",
    reason: UdpDropReason,
    count: number,
  ): void;
  /** A public connection through one of this session's tunnels ended. */
  onConnection(
    session: ClientSession,
    tunnel: Pick<PublicTunnel, "dbId" | "name" | "type">,
    event: ConnectionEvent,
  ): void;
}

/**
 * The visitor policy of a tunnel request.
 *
 * @throws {Error} naming a bad block or a list that is not a list of strings.
 */
function policyOf(allow: unknown, deny: unknown): IpPolicy {
  const strings = (v: unknown, name: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      throw new Error(`${name} must be a list of IP addresses or CIDR blocks`);
    }
    return v as string[];
  };
  return IpPolicy.parse(strings(allow, "allow_ips"), strings(deny, "deny_ips"));
}

/** Milliseconds a new connection has to complete hello and auth. */
const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

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
  get #handshakeTimeout(): number {
    return this.#host.config.handshake_timeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
  }
  #lastPush = "[]";
  #servedManaged = false;

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
      guards: (name, policy) => this.#guards(name, policy),
      onConnection: (tunnel, event) => host.onConnection(this, tunnel, event),
      onFirstByte: (tunnel, ms) => host.onFirstByte(this, tunnel, ms),
      onUdpDrops: (tunnel, direction, reason, count) =>
        host.countUdpDrops(this, tunnel, direction, reason, count),
    };
  }

  /** Runs the session to its end; never throws. */
  async run(): Promise<void> {
    let registered = false;
    let reason = "closed";
    let watchdog: ReturnType<typeof setInterval> | undefined;
    try {
      if (!(await this.#handshake())) return;
      this.#host.register(this);
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
        this.#host.tunnelStatus(this, tunnel, "offline", null);
      }
      this.tunnels.clear();
      const cause = await this.mux.closed;
      reason = cause?.message ?? "closed";
      const fields = { remote: this.remote, client_id: this.clientId || undefined };
      if (cause instanceof ProtocolError) {
        this.#log.warn("protocol error", { ...fields, error: cause.message });
        this.#host.countError("protocol_error");
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

  async #refuse(code: ErrorMessage["code"], message: string, retryAfter?: number): Promise<false> {
    this.#refused = true;
    this.#send({
      type: "error",
      code,
      message,
      ...(retryAfter ? { retry_after: retryAfter } : {}),
    });
    await this.mux.flush();
    this.close(message);
    return false;
  }

  #timedOut(): false {
    this.close(`Handshake not completed within ${this.#handshakeTimeout / 1000}s`);
    return false;
  }

  async #receive(): Promise<Message | null> {
    const bytes = await this.mux.recvControl();
    if (bytes === null) return null;
    this.#lastSeen = performance.now();
    return decodeControl(bytes);
  }

  async #handshake(): Promise<boolean> {
    // Refused before reading anything: the client's hello gets this error as its answer.
    const slot = this.#host.enterHandshake(this.remoteHost);
    if ("message" in slot) return await this.#refuse("limit", slot.message);
    using _slot = slot;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.#handshakeTimeout);
    });
    try {
      const hello = await Promise.race([this.#receive(), timedOut]);
      if (hello === "timeout") return this.#timedOut();
      if (hello === null) return false;
      if (hello.type !== "hello") {
        throw new ProtocolError(`Expected "hello" first, got "${hello.type}"`);
      }
      const agreed = negotiateVersion(hello, "client");
      if ("error" in agreed) {
        this.#log.warn("version mismatch", { remote: this.remote, error: agreed.error });
        return await this.#refuse("version_mismatch", agreed.error);
      }
      this.#send({
        type: "hello",
        version: agreed.version,
        min_version: MIN_PROTOCOL_VERSION,
        software: `burrowd/${VERSION}`,
      });
      this.clientId = hello.client_id ?? this.sessionId;
      this.software = hello.software;
      this.protocolVersion = agreed.version;
      const auth = await Promise.race([this.#receive(), timedOut]);
      if (auth === "timeout") return this.#timedOut();
      if (auth === null) return false;
      if (auth.type !== "auth") {
        throw new ProtocolError(`Expected "auth" after "hello", got "${auth.type}"`);
      }
      const result = await this.#host.authenticate(auth.token, this.remoteHost, this.clientId);
      if (!result.ok) {
        if (result.code === "auth_failed") {
          this.#log.warn("authentication failed", {
            remote: this.remote,
            client_id: this.clientId,
            reason: result.message,
          });
          return await this.#refuse("auth_failed", `authentication failed: ${result.message}`);
        }
        if (result.code === "limit") {
          // Counted and logged (sparingly) by the host: a flood must not flood the log.
          return await this.#refuse("limit", result.message, result.retryAfter);
        }
        this.#log.warn("login refused: database unavailable", {
          remote: this.remote,
          client_id: this.clientId,
        });
        return await this.#refuse("unavailable", result.message);
      }
      this.principal = result.principal;
      if (!this.#host.hasRoom()) {
        this.#log.warn("client refused: server full", {
          remote: this.remote,
          max_clients: this.#host.config.max_clients,
        });
        return await this.#refuse(
          "server_busy",
          `Server is full (max_clients ${this.#host.config.max_clients})`,
        );
      }
      this.#send({
        type: "ack",
        session_id: this.sessionId,
        heartbeat_interval: this.#host.config.heartbeat_interval,
      });
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  async #controlLoop(): Promise<void> {
    for (;;) {
      const message = await this.#receive();
      if (message === null) return;
      switch (message.type) {
        case "heartbeat":
          this.#send({ type: "heartbeat", timestamp: message.timestamp, status: "online" });
          this.#host.onHeartbeat(this);
          break;
        case "control":
          if (message.action === "create_tunnel") {
            this.#send(await this.#createTunnel(message.tunnel_id, message.config!));
          } else {
            await this.#destroyTunnel(message.tunnel_id);
          }
          break;
        case "tunnel_health": {
          const tunnel = this.tunnels.get(message.tunnel_id);
          if (!tunnel) break;
          if (tunnel.group) {
            if (tunnel.healthy !== message.healthy) {
              tunnel.healthy = message.healthy;
              this.#log.info(message.healthy ? "group member healthy" : "group member unhealthy", {
                group: tunnel.group.name,
                tunnel: tunnel.name,
                client_id: this.clientId,
                reason: message.reason,
              });
            }
          } else {
            this.#log.info(message.healthy ? "local service healthy" : "local service unhealthy", {
              tunnel: tunnel.name,
              client_id: this.clientId,
              reason: message.reason,
            });
          }
          break;
        }
        default:
          throw new ProtocolError(`Unexpected "${message.type}" message from a client`);
      }
    }
  }

  async #createTunnel(name: string, request: TunnelRequest): Promise<TunnelStatusMessage> {
    const fail = (reason: string): TunnelStatusMessage => {
      this.#log.warn("tunnel refused", { tunnel: name, client_id: this.clientId, reason });
      this.#host.countError("tunnel_refused");
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
    const declared = [...this.tunnels.values()].filter((t) => !t.managed).length;
    if (declared >= config.limits.max_tunnels_per_client) {
      return fail(
        `Limit of ${config.limits.max_tunnels_per_client} tunnels per client reached ` +
          `(server.limits.max_tunnels_per_client)`,
      );
    }
    let dbId: number | null;
    try {
      dbId = await this.#host.recordTunnel(this, name, request);
    } catch (error) {
      if (error instanceof TunnelError) return fail(error.message);
      throw error;
    }
    let policy: IpPolicy;
    try {
      policy = policyOf(request.allow_ips, request.deny_ips);
    } catch (error) {
      return fail((error as Error).message);
    }
    const opened = await openTunnel({ name, request, policy }, this.#tunnelContext());
    if (typeof opened === "string") {
      const refused = { dbId, name, port: 0, type: request.protocol };
      this.#host.tunnelStatus(this, refused, "failed", opened, true);
      return fail(opened);
    }
    opened.dbId = dbId;
    this.tunnels.set(name, opened);
    this.#host.tunnelStatus(this, opened, "active", null);
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

  /**
   * The bandwidth limit of a new tunnel: its own (`server.limits.max_bandwidth`)
   * and its user's (shared by all the user's tunnels on this server), if any.
   */
  #bandwidth(): { in: Throttle; out: Throttle } | undefined {
    const rate = this.#host.config.limits.max_bandwidth;
    const own = rate > 0 ? { in: new TokenBucket(rate), out: new TokenBucket(rate) } : undefined;
    const user = this.#host.userBuckets(this);
    if (!own && !user) return undefined;
    if (!own) return user;
    if (!user) return own;
    return { in: bothLimits(own.in, user.in), out: bothLimits(own.out, user.out) };
  }

  /** What every public listener of this session shares: visitor policy, limits and their counters. */
  #guards(name: string, policy: IpPolicy | undefined): VisitorGuards {
    return {
      logger: this.#log,
      policy,
      onDenied: () => this.#host.countError("visitor_denied"),
      limit: this.#bandwidth(),
      onLimit: () => this.#host.countLimit("bandwidth", this, name),
      maxConnections: this.#host.config.limits.max_connections_per_tunnel,
      onConnectionLimit: () => this.#host.countLimit("connections", this, name),
    };
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
    const wanted = new Map(rows.map((r) => [r.id, r]));
    for (const [name, tunnel] of [...this.tunnels]) {
      if (!tunnel.managed) continue;
      const row = wanted.get(tunnel.dbId!);
      if (row && listenSignature(row) === listenSignature(tunnel.managed)) {
        tunnel.managed = row;
        continue;
      }
      this.tunnels.delete(name);
      await tunnel.close();
      this.#host.tunnelStatus(this, tunnel, "offline", null, true);
      this.#log.info("tunnel closed", {
        tunnel: name,
        client_id: this.clientId,
        reason: row ? "changed on the server" : "removed or disabled on the server",
      });
    }
    const pushed: PushedTunnel[] = [];
    for (const row of rows) {
      const base = {
        name: row.name,
        type: row.type,
        local_addr: row.local_addr,
        local_port: row.local_port ?? 0,
      };
      const current = [...this.tunnels.values()].find((t) => t.managed && t.dbId === row.id);
      if (current) {
        pushed.push({
          ...base,
          status: "active",
          remote_port: current.port,
          ...(current.urls ? { urls: [...current.urls] } : {}),
        });
        continue;
      }
      let error: string | null = null;
      if (!isTunnelType(row.type)) {
        error = `Unknown tunnel type "${row.type}"`;
      } else if (!row.local_port) error = "Tunnel has no local_port";
      else if (this.tunnels.has(row.name)) {
        error = `Tunnel "${row.name}" already exists in this session`;
      }
      let policy: IpPolicy | undefined;
      try {
        policy = policyOf(row.options.allow_ips, row.options.deny_ips);
      } catch (e) {
        error ??= (e as Error).message;
      }
      const opened = error ??
        await openTunnel(
          { name: row.name, request: managedRequest(row), policy },
          this.#tunnelContext(),
        );
      if (typeof opened === "string") {
        this.#log.warn("tunnel refused", {
          tunnel: row.name,
          client_id: this.clientId,
          reason: opened,
        });
        this.#host.tunnelStatus(
          this,
          { dbId: row.id, name: row.name, port: 0, type: row.type },
          "failed",
          opened,
          true,
        );
        pushed.push({ ...base, status: "failed", error: opened });
        continue;
      }
      opened.dbId = row.id;
      opened.managed = row;
      this.tunnels.set(row.name, opened);
      this.#host.tunnelStatus(this, opened, "active", null);
      this.#log.info("tunnel opened", {
        tunnel: row.name,
        type: row.type,
        client_id: this.clientId,
        remote_port: opened.port,
        managed: true,
      });
      pushed.push({
        ...base,
        status: "active",
        remote_port: opened.port,
        ...(opened.urls ? { urls: [...opened.urls] } : {}),
      });
    }
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
    this.#host.tunnelStatus(this, tunnel, "offline", reason, true);
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
    this.#host.tunnelStatus(this, tunnel, "offline", null, true);
    this.#log.info("tunnel closed", { tunnel: name, client_id: this.clientId });
    this.#send({ type: "tunnel_status", tunnel_id: name, status: "closed" });
  }
}

/**
 * The Burrow server: the TLS control listener, the sessions of connected
 * clients, and graceful shutdown.
 *
 * @module
 */

import {
  type AccessEvent,
  accessLog,
  formatAddr,
  IpPolicy,
  type Logger,
  nullLogger,
  parsePortRanges,
  Secret,
  sockopt,
  TokenBucket,
  VERSION,
} from "../util/mod.ts";
import { TokenError, TokenService } from "../auth/mod.ts";
import type { ServerConfig } from "../config/mod.ts";
import type { TunnelRequest } from "../protocol/mod.ts";
import {
  DatabaseUnavailableError,
  recordingLogger,
  type Store,
  type User,
} from "../storage/mod.ts";
import {
  listenDenoTls,
  listenMutualTls,
  loadServerCertificate,
  nodeTlsListener,
  type TlsListener,
} from "../transport/mod.ts";
import type { Duplex } from "../transport/mod.ts";
import {
  AlertEngine,
  type AlertRuleSpec,
  DEFAULT_RULES,
  NO_TRAFFIC_METRICS,
  notifiersFor,
  ServerMetrics,
  type TrafficMetrics,
  TunnelStats,
} from "../monitor/mod.ts";
import { alertStore, tokenStore } from "./stores.ts";
import { probeTunnel } from "./prober.ts";
import type { LoginRefusal } from "./login_limiter.ts";
import { Login } from "./login.ts";
import {
  type AuthResult,
  ClientSession,
  type SessionHost,
  type TunnelIdentity,
} from "./session.ts";
import {
  type ConnectionEvent,
  GroupRegistry,
  type HttpEvent,
  type PublicTunnel,
  type UdpDropReason,
} from "./tunnels/mod.ts";
import type { HttpFront } from "./http_front.ts";
import { openVhosts } from "./vhosts.ts";
import { ConfigSync } from "./config_sync.ts";
import { TunnelRecords } from "./tunnel_records.ts";
import { loadOrCreateToken } from "./token_file.ts";
import { VhostCertificates } from "./vhost_certs.ts";

/** Most access events per second written to the `logs` table; the rest are counted. */
const ACCESS_LOG_PER_SECOND = 100;

/** Options of {@linkcode BurrowServer.start}. */
export interface BurrowServerOptions {
  /** Default: drops everything. */
  logger?: Logger;
  /**
   * The database (users, tokens, tunnels, sessions, metrics, logs). Without
   * one the server accepts only the shared token and records nothing.
   */
  store?: Store;
  /** Name of this node in `sessions.node`. Default: the host name. */
  node?: string;
}

/**
 * A running server.
 *
 * @example
 * ```ts ignore
 * await using server = await BurrowServer.start(config, { logger });
 * console.log(server.port, server.fingerprint);
 * ```
 */
export class BurrowServer implements SessionHost {
  /** The validated server configuration. */
  readonly config: ServerConfig;
  /** Where the server logs. */
  readonly logger: Logger;
  #fingerprint: string;

  /** `sha256:` fingerprint of the control channel's certificate (the current one after a reload). */
  get fingerprint(): string {
    return this.#fingerprint;
  }
  /** The shared client token (configured, or generated in the data directory). */
  readonly token: Secret;
  /** The database, when the server has one. */
  readonly store: Store | null;
  /** User tokens, when the server has a database. */
  readonly tokens: TokenService<User> | null;
  /** This node's name. */
  readonly node: string;
  /** Load-balancing groups. */
  readonly groups: GroupRegistry;
  /** Prometheus metrics. */
  readonly metrics: ServerMetrics;
  /** Logging in, shared by the control port and the admin API. */
  readonly login: Login;
  /** Per-tunnel state and windows. */
  readonly stats: TunnelStats;
  /** The alert rules engine. */
  readonly alerts: AlertEngine;
  /** The shared HTTP and HTTPS ports, when configured. */
  readonly vhosts: { http: HttpFront | null; https: HttpFront | null };
  /** Certificates of the HTTPS port (files and ACME). */
  readonly certificates: VhostCertificates;

  #listener: TlsListener;
  #sessions = new Set<ClientSession>();
  #byClient = new Map<string, ClientSession>();
  /** Every connection's session, authenticated or still in its handshake. */
  #running = new Map<ClientSession, Promise<void>>();
  #accepting: Promise<void>;
  #stopping = false;
  #stopped: Promise<void> | null = null;
  #admin: User | null;
  #unlisten: (() => Promise<void>) | null = null;
  /** Keeps sessions in step with the database (none without one). */
  #sync: ConfigSync | null = null;
  /** Where traffic is counted: the metrics, or nowhere when `server.metrics` is off. */
  #traffic: TrafficMetrics;
  /** The `tunnels` rows of the tunnels clients declare (none without a database). */
  #records: TunnelRecords | null = null;
  #accessWindow = { second: 0, written: 0, suppressed: 0 };
  #access: (event: AccessEvent) => void;
  #accessing: () => boolean;
  #prober: ReturnType<typeof setInterval> | undefined;
  #controlPolicy: IpPolicy;
  #controlDenied = 0;
  #pruner: ReturnType<typeof setInterval> | undefined;

  private constructor(
    config: ServerConfig,
    logger: Logger,
    listener: TlsListener,
    fingerprint: string,
    token: Secret,
    options: {
      store: Store | null;
      tokens: TokenService<User> | null;
      admin: User | null;
      node: string;
      alerts: (stats: TunnelStats) => AlertEngine;
      vhosts: { http: HttpFront | null; https: HttpFront | null };
      certificates: VhostCertificates;
    },
  ) {
    this.vhosts = options.vhosts;
    this.certificates = options.certificates;
    this.config = config;
    this.token = token;
    this.logger = logger;
    this.store = options.store;
    this.tokens = options.tokens;
    this.#admin = options.admin;
    this.node = options.node;
    this.groups = new GroupRegistry(logger);
    this.#controlPolicy = IpPolicy.parse(config.allow_ips, config.deny_ips);
    const accessLogger = logger.child("access");
    this.#access = accessLog(config.log.access_file, accessLogger, {
      maxSize: config.log.max_size,
      maxFiles: config.log.max_files,
    });
    // Without a file, access lines are debug logs: most requests build none.
    this.#accessing = config.log.access_file ? () => true : () => accessLogger.enabled("debug");
    this.stats = new TunnelStats({ windowMs: config.alerting.window });
    this.metrics = new ServerMetrics();
    this.#traffic = config.metrics ? this.metrics : NO_TRAFFIC_METRICS;
    this.login = new Login({
      limits: {
        maxFailures: config.auth.max_failures,
        failureInterval: config.auth.failure_interval,
        maxHandshakes: config.auth.max_handshakes,
      },
      sharedToken: token,
      tokens: this.tokens,
      metrics: this.metrics,
      logger,
    });
    this.alerts = options.alerts(this.stats);
    this.#bindMetrics();
    this.#listener = listener;
    this.#fingerprint = fingerprint;
    this.#accepting = this.#acceptLoop();
  }

  /** Loads or generates the certificate and listens on the control port. */
  static async start(
    config: ServerConfig,
    options: BurrowServerOptions = {},
  ): Promise<BurrowServer> {
    const base = (options.logger ?? nullLogger).child("server");
    // Warnings and errors also go to the database's logs table.
    const logger = options.store ? recordingLogger(base, options.store, "server") : base;
    const tls = await loadServerCertificate({
      certFile: config.tls.cert_file,
      keyFile: config.tls.key_file,
      dataDir: config.storage.data_dir,
      names: [Deno.hostname()],
    });
    if (tls.generated) {
      logger.info("generated a self-signed certificate", {
        dir: `${config.storage.data_dir}/tls`,
        fingerprint: tls.fingerprint,
      });
    }
    const token = config.auth.token ?? await loadOrCreateToken(config.storage.data_dir, logger);
    const store = options.store ?? null;
    const node = options.node ?? Deno.hostname();
    let tokens: TokenService<User> | null = null;
    let admin: User | null = null;
    if (store) {
      admin = await store.users.ensure("admin", { admin: true });
      tokens = await TokenService.create(tokenStore(store), logger);
      const leftovers = await store.sessions.closeLeftovers(node, "server restarted");
      if (leftovers) {
        logger.info("closed sessions left open by a previous run", { count: leftovers });
      }
    }
    // Deno's TLS is the faster control port, but it needs FFI for TCP_NODELAY and for a
    // handshake deadline that frees the socket; node:tls does both by itself.
    const denoTls = !config.tls.client_ca_file && config.tls.min_version === "1.2" &&
      sockopt.available();
    if (!config.tls.client_ca_file && config.tls.min_version === "1.2" && !denoTls) {
      logger.info("control port on node:tls instead of Deno's TLS", {
        reason: sockopt.unavailableReason,
      });
    }
    const listener = denoTls
      ? denoListener(config, tls, logger)
      : await nodeListener(config, tls, logger);
    const rules: AlertRuleSpec[] = config.alerts.map((r) => ({ ...r }));
    if (config.alerting.default_rules) {
      for (const d of DEFAULT_RULES) if (!rules.some((r) => r.name === d.name)) rules.push(d);
    }
    const notifiers = notifiersFor(config.alerting, logger.child("alerts"));
    const certificates = new VhostCertificates(config, logger.child("certs"));
    let vhosts: { http: HttpFront | null; https: HttpFront | null };
    try {
      vhosts = await openVhosts(
        config,
        logger,
        certificates,
        tls,
        (kind) => server?.countError(kind),
      );
    } catch (error) {
      listener.close();
      certificates.close();
      throw error;
    }
    let server: BurrowServer | undefined;
    try {
      server = new BurrowServer(config, logger, listener, tls.fingerprint, token, {
        store,
        tokens,
        admin,
        node,
        vhosts,
        certificates,
        alerts: (stats) =>
          new AlertEngine({
            rules,
            stats,
            store: store ? alertStore(store) : null,
            notifiers,
            logger: logger.child("alerts"),
            intervalMs: config.alerting.evaluate_every,
          }),
      });
    } catch (error) {
      listener.close();
      await vhosts.http?.close();
      await vhosts.https?.close();
      certificates.close();
      throw error;
    }
    certificates.startRenewal();
    server.alerts.start();
    server.#prober = setInterval(() => server.#probeAll(), config.alerting.probe_interval);
    if (store && (config.storage.retention ?? 0) > 0) {
      const prune = () => server.#prune();
      server.#pruner = setInterval(prune, 3_600_000);
      prune();
    }
    if (store) {
      server.#records = new TunnelRecords(store, server.logger);
      server.#sync = new ConfigSync({
        host: { sessions: () => server.#sessions, stopping: () => server.#stopping },
        store,
        tokens: server.tokens,
        logger: server.logger,
        declared: server.#records!.declared,
      });
      server.#unlisten = await store.listenConfig((change) => server.#sync!.onChange(change));
      store.onRecover(() => server.#sync!.resync());
    }
    sockopt.announce(logger);
    logger.info("control channel listening", {
      addr: config.bind_addr,
      port: server.port,
      fingerprint: tls.fingerprint,
      version: VERSION,
    });
    return server;
  }

  /** The control port (the real one when `bind_port` was 0). */
  get port(): number {
    return this.#listener.port;
  }

  /**
   * Re-reads the certificate (`server.tls.cert_file`/`key_file`, or the
   * generated one) for new control connections; established sessions carry
   * on. Returns the new fingerprint.
   */
  async reloadCertificate(): Promise<string> {
    const config = this.config;
    const tls = await loadServerCertificate({
      certFile: config.tls.cert_file,
      keyFile: config.tls.key_file,
      dataDir: config.storage.data_dir,
      names: [Deno.hostname()],
    });
    await this.#listener.reload(tls.cert, tls.key);
    const previous = this.#fingerprint;
    this.#fingerprint = tls.fingerprint;
    this.logger.info("certificate reloaded", {
      fingerprint: tls.fingerprint,
      changed: previous !== tls.fingerprint,
      sessions: this.#sessions.size,
    });
    return tls.fingerprint;
  }

  /** Whether the control listener accepts connections. */
  get listening(): boolean {
    return !this.#stopping;
  }

  /** Connected, authenticated sessions. */
  get sessions(): ReadonlySet<ClientSession> {
    return this.#sessions;
  }

  /** @internal */
  hasRoom(): boolean {
    return this.#sessions.size < this.config.max_clients;
  }

  /** @internal */
  enterHandshake(address: string): Disposable | LoginRefusal {
    return this.login.enterHandshake(address);
  }

  /** @internal */
  loginRefused(refusal: LoginRefusal, address: string): void {
    this.login.refused(refusal, address);
  }

  /** @internal */
  async authenticate(token: string, address: string, clientId: string): Promise<AuthResult> {
    // Taken before the token is looked at: an empty bucket refuses at once, right or wrong.
    const attempt = this.login.attempt(address);
    if ("reason" in attempt) {
      return { ok: false, code: "limit", message: attempt.message, retryAfter: attempt.retryAfter };
    }
    const result = await this.#authenticate(token, address, clientId);
    if (result.ok) {
      attempt.succeeded();
      this.metrics.login("ok");
    } else {
      this.metrics.login(result.code);
      this.metrics.error(result.code);
    }
    return result;
  }

  async #authenticate(
    token: string,
    address: string,
    clientId: string,
  ): Promise<Exclude<AuthResult, { code: "limit" }>> {
    try {
      const who = await this.login.verify(token, "tunnel", { onlyTokenShaped: true });
      if (who === null) {
        return {
          ok: true,
          principal: { userId: this.#admin?.id ?? null, userName: "admin", tokenId: null },
        };
      }
      const user = who.user;
      const clients = user.allowed_clients ?? [];
      if (clients.length && !clients.includes(clientId)) {
        return {
          ok: false,
          code: "auth_failed",
          message: `client id "${clientId}" may not log in as user "${user.name}"`,
        };
      }
      if (!IpPolicy.parse(user.allow_ips ?? [], user.deny_ips ?? []).allows(address)) {
        return {
          ok: false,
          code: "auth_failed",
          message: `address ${address} may not log in as user "${user.name}"`,
        };
      }
      this.store!.run((s) => s.apiKeys.touch([who.tokenId])).catch(() => {});
      return {
        ok: true,
        principal: {
          userId: user.id,
          userName: user.name,
          tokenId: who.tokenId,
          allowPorts: user.allow_ports ? parsePortRanges(user.allow_ports) : null,
          maxBandwidth: user.max_bandwidth ?? null,
          tokenLimits: {
            types: who.limits.types ?? null,
            ports: who.limits.ports ? parsePortRanges(who.limits.ports) : null,
            domains: who.limits.domains ?? null,
          },
        },
      };
    } catch (error) {
      if (error instanceof TokenError) {
        return { ok: false, code: "auth_failed", message: error.message };
      }
      if (error instanceof DatabaseUnavailableError) {
        return {
          ok: false,
          code: "unavailable",
          message: "The server cannot check this token now: its database is unreachable. " +
            "Retrying.",
        };
      }
      throw error;
    }
  }

  /** @internal */
  register(session: ClientSession): void {
    const previous = this.#byClient.get(session.clientId);
    if (previous) {
      this.logger.info("replacing older session of the same client", {
        client_id: session.clientId,
        old_session_id: previous.sessionId,
      });
      previous.close("Replaced by a new connection of the same client");
    }
    this.#byClient.set(session.clientId, session);
    this.#sessions.add(session);
    this.store?.sessionOpened({
      id: session.sessionId,
      user_id: session.principal?.userId ?? null,
      client_id: session.clientId,
      remote_addr: session.remote,
      client_version: session.software,
      node: this.node,
      connected_at: session.connectedAt,
    });
    const userId = session.principal?.userId;
    if (userId != null) {
      // The newcomer takes the user's unbound tunnels from the previous newest session.
      const previous = this.#sync?.newestOf(userId, session);
      const affected = previous?.hasManagedTunnels ? [session, previous] : [session];
      this.#sync?.syncUser(userId, affected);
    }
  }

  /** @internal */
  unregister(session: ClientSession, reason: string): void {
    this.#sessions.delete(session);
    if (this.#byClient.get(session.clientId) === session) this.#byClient.delete(session.clientId);
    this.store?.sessionClosed(session.sessionId, reason, this.#beat(session));
    this.#records?.forgetSession(session.sessionId);
    // Tunnels of this user not bound to one client move to its next newest session.
    const userId = session.principal?.userId;
    if (userId != null && !this.#stopping && session.hasManagedTunnels) {
      const next = this.#sync?.newestOf(userId, session);
      if (next) this.#sync?.syncUser(userId, [next]);
    }
  }

  #beat(session: ClientSession) {
    const bytes = session.mux.bytes;
    return {
      id: session.sessionId,
      at: new Date(),
      rtt_ms: session.mux.rtt || null,
      bytes_in: bytes.in,
      bytes_out: bytes.out,
    };
  }

  #bindMetrics(): void {
    this.metrics.bind({
      sessions: () =>
        [...this.#sessions].map((s) => ({
          user: s.principal?.userName ?? "admin",
          tunnels: [...s.tunnels.values()].map((t) => ({
            name: t.name,
            type: t.type,
            activeConnections: t.activeConnections,
            liveTransfers: t.liveTransfers,
          })),
        })),
      caches: () => ({
        tokens: this.tokens ? this.tokens.cache : { hits: 0, misses: 0 },
        managed_tunnels: this.#sync?.managed ?? { hits: 0, misses: 0 },
      }),
      database: () =>
        this.store
          ? {
            available: this.store.available,
            pendingWrites: this.store.pendingWrites,
            maxPendingWrites: this.store.maxPendingWrites,
            droppedWrites: this.store.droppedWrites,
            queries: this.store.queries,
          }
          : null,
      alerts: () => {
        const severity = new Map(this.alerts.rules.map((r) => [r.name, r.severity]));
        return this.alerts.active.map((a) => ({
          state: a.state,
          severity: severity.get(a.rule) ?? "",
        }));
      },
    });
  }

  /** Deletes history older than `server.storage.retention`. */
  async #prune(): Promise<void> {
    const retention = this.config.storage.retention ?? 0;
    if (!this.store || retention <= 0) return;
    try {
      const deleted = await this.store.prune(new Date(Date.now() - retention));
      if (Object.values(deleted).some((n) => n > 0)) {
        this.logger.info("pruned history past retention", { ...deleted, retention_ms: retention });
      }
    } catch (error) {
      if (!(error instanceof DatabaseUnavailableError)) {
        this.logger.warn("pruning history failed", { error });
      }
    }
  }

  /** Probes every tunnel that asked for it (`probe: true`), end to end. */
  async #probeAll(): Promise<void> {
    for (const session of [...this.#sessions]) {
      const user = session.principal?.userName ?? "admin";
      for (const tunnel of [...session.tunnels.values()]) {
        const probe = tunnel.probe;
        if (!probe) continue;
        const failure = await probeTunnel(session.mux, tunnel.name, 3000);
        if (session.mux.isClosed || session.tunnels.get(tunnel.name) !== tunnel) continue;
        this.stats.recordConnection(user, tunnel.name, failure !== null);
        if (failure !== null) this.metrics.error("probe_failed");
        if ((failure !== null) === probe.failing) continue;
        probe.failing = failure !== null;
        const fields = { tunnel: tunnel.name, user, client_id: session.clientId };
        if (failure !== null) {
          this.logger.warn("tunnel probe failed", { ...fields, reason: failure });
        } else this.logger.info("tunnel probe recovered", fields);
        const ref = this.#records?.ref(session, tunnel) ?? null;
        this.store?.addLog({
          level: failure ? "warn" : "info",
          kind: "event",
          tunnel_id: typeof ref === "number" ? ref : null,
          tunnel: typeof ref === "object" ? ref ?? undefined : undefined,
          session_id: session.sessionId,
          message: failure ? "tunnel probe failed" : "tunnel probe recovered",
          fields: { ...fields, ...(failure ? { reason: failure } : {}) },
        });
      }
    }
  }

  #limitLogged = new Set<string>();
  #userBuckets = new Map<number, { rate: number; in: TokenBucket; out: TokenBucket }>();

  /** @internal */
  userBuckets(session: ClientSession): { in: TokenBucket; out: TokenBucket } | undefined {
    const p = session.principal;
    if (!p || p.userId == null || !p.maxBandwidth) return undefined;
    let b = this.#userBuckets.get(p.userId);
    if (!b || b.rate !== p.maxBandwidth) {
      b = {
        rate: p.maxBandwidth,
        in: new TokenBucket(p.maxBandwidth),
        out: new TokenBucket(p.maxBandwidth),
      };
      this.#userBuckets.set(p.userId, b);
    }
    return b;
  }

  /** @internal */
  countLimit(kind: "bandwidth" | "connections", session: ClientSession, tunnel: string): void {
    this.#traffic.limitHit(kind);
    const user = session.principal?.userName ?? "admin";
    const key = `${kind}|${user}/${tunnel}`;
    if (this.#limitLogged.has(key)) return;
    this.#limitLogged.add(key);
    const limit = kind === "bandwidth"
      ? { bytes_per_second: this.config.limits.max_bandwidth }
      : { max_connections: this.config.limits.max_connections_per_tunnel };
    this.logger.warn(
      kind === "bandwidth" ? "bandwidth limit reached" : "connection limit reached",
      { tunnel, user, client_id: session.clientId, ...limit },
    );
    // Once per tunnel and kind, like the log line: the client's user learns why traffic is slow
    // or visitors are turned away.
    session.notify(
      tunnel,
      kind === "bandwidth" ? "bandwidth_limit" : "connection_limit",
      kind === "bandwidth"
        ? `Tunnel "${tunnel}" reached its bandwidth limit (${
          [
            this.config.limits.max_bandwidth ? `${this.config.limits.max_bandwidth} B/s` : "",
            session.principal?.maxBandwidth
              ? `${session.principal.maxBandwidth} B/s for all of user "${user}"`
              : "",
          ].filter(Boolean).join(", ")
        } per direction); traffic over it is slowed (TCP) or dropped (UDP)`
        : `Tunnel "${tunnel}" reached its limit of ${this.config.limits.max_connections_per_tunnel} ` +
          `open connections; more visitors are turned away`,
    );
  }

  /** @internal */
  countUdpDrops(
    session: ClientSession,
    tunnel: string,
    direction: "in" | "out",
    reason: UdpDropReason,
    count: number,
  ): void {
    this.#traffic.udpDropped(
      session.principal?.userName ?? "admin",
      tunnel,
      direction,
      reason,
      count,
    );
  }

  /** @internal */
  countError(kind: string): void {
    this.metrics.error(kind);
  }

  /** @internal */
  onFirstByte(
    session: ClientSession,
    tunnel: Pick<PublicTunnel, "name" | "type">,
    ms: number,
  ): void {
    this.#traffic.firstByte(tunnel.type, ms);
    this.stats.recordLatency(session.principal?.userName ?? "admin", tunnel.name, ms);
  }

  /** @internal */
  onHeartbeat(session: ClientSession): void {
    this.#traffic.heartbeat(session.mux.rtt);
    // Batched: the store writes every session's latest beat in one query per flush.
    this.store?.sessionBeat(this.#beat(session));
  }

  /**
   * @internal
   *
   * Records the `tunnels` row of a tunnel `session` declares; see
   * {@linkcode TunnelRecords.record}.
   */
  recordTunnel(
    session: ClientSession,
    name: string,
    request: TunnelRequest,
  ): Promise<number | null> {
    return this.#records?.record(session, name, request) ?? Promise.resolve(null);
  }

  /** @internal */
  tunnelStatus(
    session: ClientSession,
    tunnel: TunnelIdentity,
    status: "offline" | "active" | "failed",
    error: string | null,
    gone = false,
  ): void {
    const user = session.principal?.userName ?? "admin";
    if (status === "active") {
      this.stats.connected(user, tunnel.name, tunnel.type);
    } else if (gone) {
      this.stats.forget(user, tunnel.name);
    } else {
      this.stats.disconnected(user, tunnel.name);
    }
    const ref = this.#records?.ref(session, tunnel) ?? null;
    if (gone) this.#records?.forget(session.sessionId, tunnel.name);
    // Status changes are events in the logs table.
    this.store?.addLog({
      level: status === "failed" ? "warn" : "info",
      kind: "event",
      tunnel_id: typeof ref === "number" ? ref : null,
      tunnel: typeof ref === "object" ? ref ?? undefined : undefined,
      session_id: session.sessionId,
      message: status === "active"
        ? "tunnel connected"
        : gone
        ? (status === "failed" ? "tunnel refused" : "tunnel removed")
        : "tunnel disconnected",
      fields: {
        tunnel: tunnel.name,
        user,
        client_id: session.clientId,
        ...(status === "active" ? { port: tunnel.port } : {}),
        ...(error ? { error } : {}),
      },
    });
    if (!this.store || ref === null) return;
    // Written at once, or queued while the database is down (latest status wins).
    this.store.tunnelStatus(ref, status, status === "active" ? tunnel.port : null, error);
  }

  /** @internal */
  onConnection(
    session: ClientSession,
    tunnel: Pick<PublicTunnel, "dbId" | "name" | "type">,
    event: ConnectionEvent,
  ): void {
    const user = session.principal?.userName ?? "admin";
    this.#traffic.connectionEnded(
      user,
      tunnel.name,
      !!event.error,
      event.transfer,
      event.bytesIn,
      event.bytesOut,
    );
    this.stats.recordConnection(user, tunnel.name, !!event.error);
    if (this.#accessing()) {
      this.#access({
        tunnel: tunnel.name,
        user,
        type: tunnel.type,
        remote: event.remote,
        bytes_in: event.bytesIn,
        bytes_out: event.bytesOut,
        duration_ms: Math.round(event.durationMs),
        status: event.error ? "error" : "ok",
        error: event.error,
        ...("http" in event ? httpFields((event as HttpEvent).http) : {}),
      });
    }
    const store = this.store;
    const ref = this.#records?.ref(session, tunnel) ?? null;
    if (!store || ref === null) return;
    store.addMetrics(ref, {
      bytes_in: event.bytesIn,
      bytes_out: event.bytesOut,
      connections: 1,
      errors: event.error ? 1 : 0,
    });
    // Access events are capped per second so a connection flood cannot flood the database.
    const second = Math.floor(Date.now() / 1000);
    const w = this.#accessWindow;
    if (w.second !== second) {
      if (w.suppressed) {
        store.addLog({
          level: "warn",
          kind: "event",
          tunnel_id: null,
          session_id: null,
          message: "access events suppressed",
          fields: { count: w.suppressed, limit_per_second: ACCESS_LOG_PER_SECOND },
        });
      }
      this.#accessWindow = { second, written: 0, suppressed: 0 };
    }
    if (this.#accessWindow.written >= ACCESS_LOG_PER_SECOND) {
      this.#accessWindow.suppressed++;
      return;
    }
    this.#accessWindow.written++;
    store.addLog({
      level: event.error ? "warn" : "info",
      kind: event.error ? "error" : "access",
      tunnel_id: typeof ref === "number" ? ref : null,
      tunnel: typeof ref === "object" ? ref : undefined,
      session_id: session.sessionId,
      message: event.error ? "connection failed" : "connection",
      fields: {
        remote: event.remote,
        bytes_in: event.bytesIn,
        bytes_out: event.bytesOut,
        duration_ms: Math.round(event.durationMs),
        ...(event.error ? { error: event.error } : {}),
      },
    });
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Duplex & { remoteAddr: Deno.Addr };
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#stopping) return;
        if (error instanceof Deno.errors.BadResource) return;
        this.logger.warn("control accept failed", { error });
        continue;
      }
      if (this.#stopping) {
        conn.close();
        continue;
      }
      const from = (conn.remoteAddr as Deno.NetAddr).hostname;
      if (!this.#controlPolicy.allows(from)) {
        // Closed before the TLS handshake: the client learns nothing.
        conn.close();
        this.metrics.error("client_denied");
        if (++this.#controlDenied === 1 || this.#controlDenied % 1000 === 0) {
          this.logger.warn("control connection refused by IP policy", {
            remote: formatAddr(conn.remoteAddr),
            refused_so_far: this.#controlDenied,
          });
        }
        continue;
      }
      const session = new ClientSession(conn, formatAddr(conn.remoteAddr), this);
      this.#running.set(session, session.run().finally(() => this.#running.delete(session)));
    }
  }

  /**
   * Graceful shutdown: stop accepting, tell every client to go away, wait up
   * to `graceMs` for open connections to finish, then close everything.
   * Safe to call twice.
   */
  shutdown(graceMs = 5000): Promise<void> {
    this.#stopped ??= this.#shutdown(graceMs);
    return this.#stopped;
  }

  async #shutdown(graceMs: number): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#prober);
    clearInterval(this.#pruner);
    this.logger.info("shutting down", { sessions: this.#sessions.size, grace_ms: graceMs });
    try {
      this.#listener.close();
    } catch { /* closed */ }
    await this.#accepting;
    const sessions = [...this.#sessions];
    for (const session of sessions) {
      for (const tunnel of session.tunnels.values()) await tunnel.close(false);
      session.goAway("Server shutting down");
    }
    const deadline = performance.now() + graceMs;
    while (
      performance.now() < deadline &&
      sessions.some((s) => [...s.tunnels.values()].some((t) => t.activeConnections > 0))
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const session of this.#running.keys()) {
      await session.mux.flush();
      session.close("Server shut down");
    }
    await Promise.all(this.#running.values());
    await this.alerts.stop();
    await this.vhosts.http?.close();
    await this.vhosts.https?.close();
    this.certificates.close();
    await this.#unlisten?.().catch(() => {});
    await this.store?.flush().catch(() => {});
    this.logger.info("stopped");
  }

  /** Same as `shutdown(0)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown(0);
  }
}

function httpFields(http: HttpEvent["http"]) {
  return { method: http.method, host: http.host, path: http.path, http_status: http.status };
}

/** The control port on Deno's TLS; a taken port is named with its configuration key. */
function denoListener(config: ServerConfig, tls: { cert: string; key: string }, logger: Logger) {
  let listener: TlsListener;
  try {
    listener = listenDenoTls({ hostname: config.bind_addr, port: config.bind_port, ...tls });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Control port ${config.bind_addr}:${config.bind_port} is already in use ` +
          `(server.bind_port): is another burrowd running?`,
      );
    }
    throw error;
  }
  logger.info("control port on Deno's TLS (TLS 1.3, and 1.2 for clients that ask)");
  return listener;
}

/** node:tls: TLS 1.3 only unless `min_version` says 1.2, and mutual TLS when a client CA is configured. */
async function nodeListener(
  config: ServerConfig,
  tls: { cert: string; key: string },
  logger: Logger,
): Promise<TlsListener> {
  const file = config.tls.client_ca_file;
  let ca: string | undefined;
  if (file) {
    try {
      ca = await Deno.readTextFile(file);
    } catch (error) {
      throw new Error(
        `server.tls.client_ca_file: cannot read ${file}: ${(error as Error).message}`,
      );
    }
  }
  const minVersion = !file && config.tls.min_version === "1.2" ? "TLSv1.2" : "TLSv1.3";
  const listener = await listenMutualTls({
    hostname: config.bind_addr,
    port: config.bind_port,
    cert: tls.cert,
    key: tls.key,
    ca,
    minVersion,
    onHandshakeError: (remote, error) =>
      logger.warn(file ? "client certificate refused" : "TLS handshake refused", {
        remote,
        error: error.message,
      }),
  });
  if (file) {
    logger.info("mutual TLS on the control port", { client_ca_file: file, min_version: "TLSv1.3" });
  } else if (minVersion === "TLSv1.3") logger.info("TLS 1.3 only on the control port");
  return nodeTlsListener(listener);
}

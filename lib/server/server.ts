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
  LruCache,
  nullLogger,
  parsePortRanges,
  Secret,
  sockopt,
  timingSafeEqualText,
  TokenBucket,
  VERSION,
} from "../util/mod.ts";
import { join } from "node:path";
import { looksLikeApiKey, looksLikeJwt, TokenError, TokenService } from "../auth/mod.ts";
import type { ServerConfig } from "../config/mod.ts";
import type { TunnelRequest } from "../protocol/mod.ts";
import {
  type ConfigChange,
  ConflictError,
  DatabaseUnavailableError,
  type DeclaredTunnel,
  type PendingTunnel,
  recordingLogger,
  type Store,
  type TunnelRecord,
  type TunnelRef,
  type TunnelRow,
  type User,
  ValidationError,
} from "../storage/mod.ts";
import {
  listenDenoTls,
  listenMutualTls,
  loadServerCertificate,
  nodeTlsListener,
  type TlsListener,
} from "../transport/mod.ts";
import type { Duplex } from "../mux/mod.ts";
import {
  AlertEngine,
  type AlertRuleSpec,
  DEFAULT_RULES,
  logNotifier,
  type Notifier,
  ServerMetrics,
  TunnelStats,
  webhookNotifier,
} from "../monitor/mod.ts";
import { alertStore } from "./stores.ts";
import { probeTunnel } from "./prober.ts";
import { LoginLimiter, type LoginRefusal } from "./login_limiter.ts";
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
  TunnelError,
  type UdpDropReason,
} from "./tunnels/mod.ts";
import { HttpFront } from "./http_front.ts";
import { VhostCertificates } from "./vhost_certs.ts";

/** Most access events per second written to the `logs` table; the rest are counted. */
const ACCESS_LOG_PER_SECOND = 100;

/**
 * The token in `<dataDir>/token`, generated (32 random bytes, base64url)
 * when absent. The token itself is never logged, only where it is kept.
 */
export async function loadOrCreateToken(dataDir: string, logger: Logger): Promise<Secret> {
  const path = join(dataDir, "token");
  try {
    const text = (await Deno.readTextFile(path)).trim();
    if (text) return new Secret(text);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const token = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600 });
  logger.info("generated a client token", { file: path });
  return new Secret(token);
}

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
  readonly tokens: TokenService | null;
  /** This node's name. */
  readonly node: string;
  /** Load-balancing groups. */
  readonly groups: GroupRegistry;
  /** Prometheus metrics. */
  readonly metrics: ServerMetrics;
  /** Per-address limits on logins, shared by the control port and the admin API. */
  readonly logins: LoginLimiter;
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
  /** user id → its database-managed tunnels, served from here while the database is down. */
  #managed = new LruCache<number, TunnelRow[]>({ max: 10_000, ttl: 60_000 });
  /**
   * `user id/name` → the row of a tunnel a client declared, kept right by the
   * change feed and resyncs: a declaration that owns the same port and names
   * is published without waiting on the database.
   */
  #declared = new LruCache<string, TunnelRow>({ max: 10_000, ttl: Infinity });
  /** `session id/name` → the queued row of a tunnel declared while the database was down. */
  #unrecorded = new Map<string, PendingTunnel>();
  #resyncing: Promise<void> | null = null;
  #resyncAgain = false;
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
      tokens: TokenService | null;
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
    this.logins = new LoginLimiter({
      maxFailures: config.auth.max_failures,
      failureInterval: config.auth.failure_interval,
      maxHandshakes: config.auth.max_handshakes,
    });
    const accessLogger = logger.child("access");
    this.#access = accessLog(config.log.access_file, accessLogger, {
      maxSize: config.log.max_size,
      maxFiles: config.log.max_files,
    });
    // Without a file, access lines are debug logs: most requests build none.
    this.#accessing = config.log.access_file ? () => true : () => accessLogger.enabled("debug");
    this.stats = new TunnelStats({ windowMs: config.alerting.window });
    this.metrics = new ServerMetrics();
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
    let tokens: TokenService | null = null;
    let admin: User | null = null;
    if (store) {
      admin = await store.users.ensure("admin", { admin: true });
      tokens = await TokenService.create(store, logger);
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
    const notifiers: Notifier[] = [logNotifier(logger.child("alerts"))];
    if (config.alerting.webhook_url) {
      notifiers.push(webhookNotifier(config.alerting.webhook_url, logger.child("alerts")));
    }
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
      server.#unlisten = await store.listenConfig((change) => server.#onConfigChange(change));
      store.onRecover(() => server.#resync());
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
    const slot = this.logins.enter(address);
    if ("reason" in slot) this.loginRefused(slot, address);
    return slot;
  }

  /**
   * @internal Counts a refusal of the login limiter, and logs the first since
   * the address was last quiet and every hundredth after it (a flood must
   * not flood the log too).
   */
  loginRefused(refusal: LoginRefusal, address: string): void {
    this.metrics.loginRefused(refusal.reason);
    if (refusal.refusedSinceQuiet === 1 || refusal.refusedSinceQuiet % 100 === 0) {
      this.logger.warn(
        refusal.reason === "rate"
          ? "too many failed logins: refusing this address for now"
          : "too many logins in progress: refusing more from this address",
        {
          remote: address,
          refused_since_quiet: refusal.refusedSinceQuiet,
          ...(refusal.reason === "rate"
            ? { retry_after_s: refusal.retryAfter, max_failures: this.logins.maxFailures }
            : { max_handshakes: this.logins.maxHandshakes }),
        },
      );
    }
  }

  /** @internal */
  async authenticate(token: string, address: string, clientId: string): Promise<AuthResult> {
    // Taken before the token is looked at: an empty bucket refuses at once, right or wrong.
    const attempt = this.logins.attempt(address);
    if ("reason" in attempt) {
      this.loginRefused(attempt, address);
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
    if (await timingSafeEqualText(token, this.token.reveal())) {
      return {
        ok: true,
        principal: { userId: this.#admin?.id ?? null, userName: "admin", tokenId: null },
      };
    }
    if (!this.tokens || !(looksLikeJwt(token) || looksLikeApiKey(token))) {
      return { ok: false, code: "auth_failed", message: "invalid token" };
    }
    try {
      const who = await this.tokens.verify(token, "tunnel");
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
      const previous = this.#newestOf(userId, session);
      const affected = previous?.hasManagedTunnels ? [session, previous] : [session];
      this.#syncUser(userId, affected);
    }
  }

  /** @internal */
  unregister(session: ClientSession, reason: string): void {
    this.#sessions.delete(session);
    if (this.#byClient.get(session.clientId) === session) this.#byClient.delete(session.clientId);
    this.store?.sessionClosed(session.sessionId, reason, this.#beat(session));
    for (const key of this.#unrecorded.keys()) {
      if (key.startsWith(`${session.sessionId}/`)) this.#unrecorded.delete(key);
    }
    // Tunnels of this user not bound to one client move to its next newest session.
    const userId = session.principal?.userId;
    if (userId != null && !this.#stopping && session.hasManagedTunnels) {
      const next = this.#newestOf(userId, session);
      if (next) this.#syncUser(userId, [next]);
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
        managed_tunnels: this.#managed,
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
        const ref = this.#ref(session, tunnel);
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
    if (this.config.metrics) this.metrics.limitHit(kind);
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
    if (!this.config.metrics) return;
    this.metrics.udpDropped(
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
    if (this.config.metrics) this.metrics.firstByte(tunnel.type, ms);
    this.stats.recordLatency(session.principal?.userName ?? "admin", tunnel.name, ms);
  }

  /** @internal */
  onHeartbeat(session: ClientSession): void {
    if (this.config.metrics) this.metrics.heartbeat(session.mux.rtt);
    // Batched: the store writes every session's latest beat in one query per flush.
    this.store?.sessionBeat(this.#beat(session));
  }

  /**
   * @internal
   *
   * A declaration owning the same port and names as the cached row of this
   * user's tunnel is published at once and recorded in the background;
   * otherwise the row is written first (conflicts refuse the tunnel). While
   * the database is unreachable the row is queued and the tunnel published:
   * its counters and events wait with it, and if the database refuses the
   * row once it answers, the tunnel is closed with the reason.
   */
  async recordTunnel(
    session: ClientSession,
    name: string,
    request: TunnelRequest,
  ): Promise<number | null> {
    const userId = session.principal?.userId;
    if (!this.store || userId == null) return null;
    const store = this.store;
    const record: TunnelRecord = {
      userId,
      clientId: session.clientId,
      tunnel: declaredTunnel(name, request),
    };
    const cached = this.#declared.get(`${userId}/${name}`);
    if (cached && ownsSame(cached, record.tunnel)) {
      this.#recordLater(session, record, cached.id);
      return cached.id;
    }
    if (!store.available || store.queuedTunnel(userId, name)) {
      return this.#queueTunnel(session, record);
    }
    try {
      const row = await store.run((s) =>
        s.tunnels.recordDeclared(userId, session.clientId, record.tunnel)
      );
      this.#declared.set(`${userId}/${name}`, row);
      return row.id;
    } catch (error) {
      if (error instanceof ConflictError || error instanceof ValidationError) {
        throw new TunnelError(error.message);
      }
      if (error instanceof DatabaseUnavailableError) return this.#queueTunnel(session, record);
      throw error;
    }
  }

  /** Queues the row of a tunnel about to be published without one. */
  #queueTunnel(session: ClientSession, record: TunnelRecord): null {
    const name = record.tunnel.name;
    const pending = this.store!.queueTunnel(record, {
      onRecorded: (row) => this.#recorded(session, row),
      onRefused: (error) => this.#refusedLater(session, name, error),
    });
    this.#unrecorded.set(`${session.sessionId}/${name}`, pending);
    this.logger.warn("tunnel row queued: database unavailable", {
      tunnel: name,
      client_id: session.clientId,
      pending_writes: this.store!.pendingWrites,
    });
    return null;
  }

  /** Records (or queues) the row of a tunnel published under its cached row id `id`. */
  #recordLater(session: ClientSession, record: TunnelRecord, id: number): void {
    const store = this.store!;
    const { userId, clientId, tunnel } = record;
    const options = {
      onRecorded: (row: TunnelRow) => {
        this.#declared.set(`${row.user_id}/${row.name}`, row);
        // Re-created meanwhile (deleted, then declared again): the live tunnel follows its row.
        const live = session.tunnels.get(row.name);
        if (live && !live.managed && live.dbId === id) live.dbId = row.id;
      },
      onRefused: (error: Error) => this.#refusedLater(session, tunnel.name, error),
    };
    if (!store.available || store.queuedTunnel(userId, tunnel.name)) {
      store.queueTunnel(record, options);
      return;
    }
    store.run((s) => s.tunnels.recordDeclared(userId, clientId, tunnel)).then(
      options.onRecorded,
      (error) => {
        if (error instanceof DatabaseUnavailableError) store.queueTunnel(record, options);
        else if (error instanceof ConflictError || error instanceof ValidationError) {
          options.onRefused(error);
        } else this.logger.error("recording a tunnel failed", { tunnel: tunnel.name, error });
      },
    );
  }

  /** The queued row of a tunnel published during an outage was written. */
  #recorded(session: ClientSession, row: TunnelRow): void {
    this.#declared.set(`${row.user_id}/${row.name}`, row);
    this.#unrecorded.delete(`${session.sessionId}/${row.name}`);
    const tunnel = session.tunnels.get(row.name);
    if (tunnel && !tunnel.managed && tunnel.dbId === null) tunnel.dbId = row.id;
    this.logger.info("queued tunnel row written", {
      tunnel: row.name,
      tunnel_id: row.id,
      client_id: session.clientId,
    });
  }

  /** The database refused the row of a tunnel published without it: the tunnel closes. */
  #refusedLater(session: ClientSession, name: string, error: Error): void {
    this.#unrecorded.delete(`${session.sessionId}/${name}`);
    const reason = `Tunnel "${name}" was published while the database could not check it, ` +
      `and the database refuses it: ${error.message}`;
    this.logger.warn("tunnel refused by the database after publishing", {
      tunnel: name,
      client_id: session.clientId,
      reason: error.message,
    });
    session.revokeTunnel(name, reason).catch(() => {});
  }

  /** What a session's tunnel's status, counters and events refer to, if anything. */
  #ref(session: ClientSession, tunnel: Pick<PublicTunnel, "dbId" | "name">): TunnelRef | null {
    return tunnel.dbId ?? this.#unrecorded.get(`${session.sessionId}/${tunnel.name}`) ?? null;
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
    const ref = this.#ref(session, tunnel);
    if (gone) this.#unrecorded.delete(`${session.sessionId}/${tunnel.name}`);
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
    if (this.config.metrics) {
      this.metrics.connectionEnded(
        user,
        tunnel.name,
        !!event.error,
        event.transfer,
        event.bytesIn,
        event.bytesOut,
      );
    }
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
    const ref = this.#ref(session, tunnel);
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

  // ---- database-managed tunnels ----

  #sessionsOf(userId: number): ClientSession[] {
    return [...this.#sessions].filter((s) => s.principal?.userId === userId && !s.mux.isClosed);
  }

  /** The user's managed tunnels: cached (invalidated by notifications), else read. */
  async #managedRows(userId: number): Promise<TunnelRow[] | null> {
    const cached = this.#managed.get(userId);
    if (cached) return cached;
    try {
      const rows = await this.store!.run((s) => s.tunnels.managedFor(userId));
      this.#managed.set(userId, rows);
      return rows;
    } catch (error) {
      if (!(error instanceof DatabaseUnavailableError)) {
        this.logger.error("loading managed tunnels failed", { user_id: userId, error });
      }
      // Keep serving what we had.
      return this.#managed.getStale(userId) ?? null;
    }
  }

  /**
   * Hands sessions of a user the managed tunnels they serve: one bound to a
   * client id goes to that client, an unbound one to the user's newest
   * session. `only` limits the work to the sessions a login or logout affects.
   */
  async #syncUser(userId: number, only?: ClientSession[]): Promise<void> {
    const sessions = this.#sessionsOf(userId);
    if (!sessions.length || !this.store) return;
    const rows = await this.#managedRows(userId);
    if (!rows) return;
    const newest = sessions.reduce((a, b) => (b.connectedAt >= a.connectedAt ? b : a));
    const targets = only ? sessions.filter((s) => only.includes(s)) : sessions;
    await Promise.all(
      targets.map((session) =>
        session.applyManaged(
          rows.filter((r) =>
            r.client_id === session.clientId || (r.client_id === null && session === newest)
          ),
        )
      ),
    );
  }

  #newestOf(userId: number, except?: ClientSession): ClientSession | undefined {
    return this.#sessionsOf(userId).filter((s) => s !== except).reduce<ClientSession | undefined>(
      (a, b) => (!a || b.connectedAt >= a.connectedAt ? b : a),
      undefined,
    );
  }

  /**
   * After the change feed or the database reconnected (notifications may
   * have been missed): re-reads what the caches hold instead of dropping it,
   * so tokens and tunnels keep serving, and acts on what changed meanwhile:
   * sessions of revoked tokens or disabled users close, declared tunnels
   * disabled or deleted close, managed tunnels are handed out again. Runs
   * one at a time; requests meanwhile make one more run.
   */
  #resync(): Promise<void> {
    if (this.#resyncing) {
      this.#resyncAgain = true;
      return this.#resyncing;
    }
    this.#resyncing = (async () => {
      do {
        this.#resyncAgain = false;
        await this.#resyncOnce().catch((error) =>
          this.logger.error("resynchronising failed", { error })
        );
      } while (this.#resyncAgain && !this.#stopping);
    })().finally(() => (this.#resyncing = null));
    return this.#resyncing;
  }

  async #resyncOnce(): Promise<void> {
    const store = this.store;
    if (!store || this.#stopping) return;
    const sessions = [...this.#sessions];
    if (this.tokens) {
      const ids = sessions.map((s) => s.principal?.tokenId).filter((id) => id != null);
      const current = await this.tokens.revalidate(ids as string[]);
      for (const session of current ? sessions : []) {
        const id = session.principal?.tokenId;
        if (id == null || !current!.has(id)) continue;
        const entry = current!.get(id);
        const why = !entry || entry.key.revoked_at
          ? "The token of this session was revoked"
          : entry.user.disabled
          ? `User "${entry.user.name}" was disabled`
          : null;
        if (!why) continue;
        this.logger.info("closing session after resync", { client_id: session.clientId, why });
        session.close(why);
      }
    }
    // Declared tunnels: those cached and those open.
    const ids = new Set<number>();
    for (const key of this.#declared.keys()) ids.add(this.#declared.getStale(key)!.id);
    for (const session of sessions) {
      for (const t of session.tunnels.values()) if (!t.managed && t.dbId != null) ids.add(t.dbId);
    }
    const rows = ids.size
      ? await store.run((s) => s.tunnels.byIds([...ids])).catch(() => null)
      : [];
    if (rows) {
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const key of this.#declared.keys()) {
        const row = byId.get(this.#declared.getStale(key)!.id);
        if (row) this.#declared.set(key, row);
        else this.#declared.delete(key);
      }
      for (const session of sessions) {
        for (const tunnel of [...session.tunnels.values()]) {
          if (tunnel.managed || tunnel.dbId == null) continue;
          const row = byId.get(tunnel.dbId);
          if (row?.enabled) continue;
          await session.revokeTunnel(
            tunnel.name,
            row ? "disabled on the server" : "deleted on the server",
          );
        }
      }
    }
    // Managed tunnels: re-read in one query (kept as cached if it fails), then handed out.
    const users = [
      ...new Set([...this.#sessions].map((s) => s.principal?.userId).filter((id) => id != null)),
    ] as number[];
    const managed = users.length
      ? await store.run((s) => s.tunnels.managedForUsers(users)).catch(() => null)
      : null;
    for (const id of managed ? users : []) {
      this.#managed.set(id, managed!.filter((r) => r.user_id === id));
    }
    for (const id of users) await this.#syncUser(id);
  }

  async #onConfigChange(change: ConfigChange): Promise<void> {
    if (change.table === "*") return await this.#resync();
    this.tokens?.invalidate(change);
    const userId = change.user_id;
    if (change.table === "users" && typeof change.id === "number") {
      const user = change.op === "delete"
        ? null
        : await this.store!.run((s) => s.users.byId(change.id as number)).catch(() => undefined);
      if (user === undefined) return;
      if (!user || user.disabled) {
        for (const session of this.#sessionsOf(change.id)) {
          this.logger.info("closing session of a disabled user", {
            client_id: session.clientId,
            user: session.principal?.userName,
          });
          session.close(`User "${session.principal?.userName}" was disabled`);
        }
      }
      return;
    }
    if (change.table === "api_keys" && typeof change.id === "string") {
      const key = change.op === "delete"
        ? null
        : await this.store!.run((s) => s.apiKeys.withUser(change.id as string)).catch(() =>
          undefined
        );
      if (key === undefined) return;
      if (!key || key.key.revoked_at) {
        for (const session of this.#sessions) {
          if (session.principal?.tokenId !== change.id) continue;
          this.logger.info("closing session of a revoked token", { client_id: session.clientId });
          session.close("The token of this session was revoked");
        }
      }
      return;
    }
    if (change.table !== "tunnels" || userId == null) return;
    if (typeof change.id === "number") this.#declared.deleteWhere((_, r) => r.id === change.id);
    if (change.source === "client" && typeof change.id === "number") {
      // A tunnel a client declared was disabled, deleted or changed in the database.
      const row = change.op === "delete"
        ? null
        : await this.store!.run((s) => s.tunnels.get(change.id as number)).catch(() => undefined);
      if (row === undefined) return;
      if (row) this.#declared.set(`${row.user_id}/${row.name}`, row);
      if (!row || !row.enabled) {
        for (const session of this.#sessionsOf(userId)) {
          for (const tunnel of session.tunnels.values()) {
            if (tunnel.dbId !== change.id || tunnel.managed) continue;
            await session.revokeTunnel(
              tunnel.name,
              row ? "disabled on the server" : "deleted on the server",
            );
          }
        }
      }
      return;
    }
    this.#managed.delete(userId);
    await this.#syncUser(userId);
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

/** Opens the shared HTTP and HTTPS ports that the configuration asks for. */
async function openVhosts(
  config: ServerConfig,
  logger: Logger,
  certificates: VhostCertificates,
  fallback: { cert: string; key: string },
  onUnrouted: (kind: string) => void,
): Promise<{ http: HttpFront | null; https: HttpFront | null }> {
  const headerTimeout = config.handshake_timeout ?? 10_000;
  const log = logger.child("http");
  let https: HttpFront | null = null;
  if (config.vhost_https_port !== undefined) {
    https = await HttpFront.listen({
      hostname: config.bind_addr,
      port: config.vhost_https_port,
      scheme: "https",
      logger: log,
      headerTimeout,
      certificates,
      fallbackCertificate: fallback,
      onUnrouted,
    }).catch((error) => {
      throw new Error(
        `Cannot listen on vhost_https_port ${config.vhost_https_port}: ${error.message}`,
      );
    });
    log.info("https vhost listening", { addr: config.bind_addr, port: https.port });
  }
  let http: HttpFront | null = null;
  if (config.vhost_http_port !== undefined) {
    try {
      http = await HttpFront.listen({
        hostname: config.bind_addr,
        port: config.vhost_http_port,
        scheme: "http",
        logger: log,
        headerTimeout,
        acmeChallenge: (token) => certificates.challengeResponse(token),
        httpsRouter: https?.router,
        httpsPort: https?.port,
        onUnrouted,
      });
    } catch (error) {
      await https?.close();
      throw new Error(
        `Cannot listen on vhost_http_port ${config.vhost_http_port}: ${(error as Error).message}`,
      );
    }
    log.info("http vhost listening", { addr: config.bind_addr, port: http.port });
  }
  return { http, https };
}

/** The `tunnels` row fields of a tunnel a client declared. */
function declaredTunnel(name: string, request: TunnelRequest): DeclaredTunnel {
  return {
    name,
    type: request.protocol,
    local_port: request.local_port,
    remote_port: request.remote_port ?? 0,
    ...(request.custom_domains ? { custom_domains: request.custom_domains } : {}),
    ...(request.subdomain ? { subdomain: request.subdomain } : {}),
    ...(request.domain
      ? { custom_domains: [...(request.custom_domains ?? []), request.domain] }
      : {}),
    ...(typeof request.group === "string" || Array.isArray(request.locations)
      ? {
        ...(typeof request.group === "string" ? { group: request.group } : {}),
        options: {
          ...(typeof request.group === "string"
            ? {
              group: request.group,
              load_balance: request.load_balance ?? "round_robin",
              weight: request.weight ?? 1,
            }
            : {}),
          ...(Array.isArray(request.locations) ? { locations: request.locations } : {}),
        },
      }
      : {}),
  };
}

/**
 * Whether the recorded `row` already owns what `declared` claims (port, host
 * names, group), so publishing it needs no check by the database.
 */
function ownsSame(row: TunnelRow, declared: DeclaredTunnel): boolean {
  return row.enabled && row.source === "client" && row.type === declared.type &&
    (row.remote_port ?? 0) === (declared.remote_port ?? 0) &&
    canonical(row.custom_domains ?? []) === canonical(declared.custom_domains ?? []) &&
    (row.subdomain ?? null) === (declared.subdomain ?? null) &&
    canonical(row.options ?? {}) === canonical(declared.options ?? {});
}

/** JSON with object keys sorted (jsonb does not keep their order). */
function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
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

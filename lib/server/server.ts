/**
 * The Burrow server's life: its start (certificate, shared token, database,
 * control port, vhost ports, alerts, chores), the sessions of connected
 * clients (one per client id), and graceful shutdown. What sessions report
 * goes to the recorder; logins to `login.ts`.
 *
 * @module
 */

import {
  accessLog,
  formatAddr,
  IpPolicy,
  type Logger,
  nullLogger,
  Secret,
  sleep,
  sockopt,
  VERSION,
} from "../util/mod.ts";
import { TokenService } from "../auth/mod.ts";
import type { ServerConfig } from "../config/mod.ts";
import type { TunnelRequest } from "../protocol/mod.ts";
import { recordingLogger, type Store, type User } from "../storage/mod.ts";
import type { Duplex, TlsListener } from "../transport/mod.ts";
import {
  type AlertEngine,
  NO_TRAFFIC_METRICS,
  ServerMetrics,
  TunnelStats,
} from "../monitor/mod.ts";
import { tokenStore } from "./stores.ts";
import { alertEngine } from "./alerting.ts";
import { ClusterNode } from "./cluster_node.ts";
import { Chores } from "./chores.ts";
import { gaugeSource } from "./gauges.ts";
import type { LoginRefusal } from "./login_limiter.ts";
import { type AuthResult, Login } from "./login.ts";
import { ClientSession, type SessionHost } from "./session.ts";
import { NO_HISTORY, Recorder } from "./recorder.ts";
import { controlCertificate, listenControlPort } from "./control_port.ts";
import { Bandwidth } from "./bandwidth.ts";
import { GroupRegistry } from "./tunnels/mod.ts";
import type { HttpFront } from "./http_front.ts";
import { openVhosts } from "./vhosts.ts";
import { ConfigSync } from "./config_sync.ts";
import { TunnelRecords } from "./tunnel_records.ts";
import { loadOrCreateToken } from "./token_file.ts";
import { VhostCertificates } from "./vhost_certs.ts";

/** Options of {@linkcode BurrowServer.start}. */
export interface BurrowServerOptions {
  /** Default: drops everything. */
  logger?: Logger;
  /**
   * The database (users, tokens, tunnels, sessions, metrics, logs). Without
   * one the server accepts only the shared token and records nothing.
   */
  store?: Store;
  /** Name of this node in `sessions.node`. Default: `server.cluster.node_id`, else the host name. */
  node?: string;
  /**
   * A secret the admin API takes as the shared token, for the `burrowd`
   * subcommands on this machine (see `LoginOptions.localAdminToken`). Default: none.
   */
  localAdminToken?: Secret;
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
  /** Where sessions report traffic and tunnel state. */
  readonly recorder: Recorder;
  /** The bandwidth limits of tunnels. */
  readonly bandwidth: Bandwidth;
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
  #unlisten: (() => Promise<void>) | null = null;
  /** Keeps sessions in step with the database (none without one). */
  #sync: ConfigSync | null = null;
  /** The `tunnels` rows of the tunnels clients declare (none without a database). */
  #records: TunnelRecords | null = null;
  #chores: Chores | null = null;
  /** This server as a node of its cluster (cluster mode only). */
  #cluster: ClusterNode | null = null;
  #controlPolicy: IpPolicy;
  #controlDenied = 0;

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
      localAdminToken: Secret | null;
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
    this.node = options.node;
    this.groups = new GroupRegistry(logger);
    this.#controlPolicy = IpPolicy.parse(config.allow_ips, config.deny_ips);
    this.stats = new TunnelStats({ windowMs: config.alerting.window });
    this.metrics = new ServerMetrics({ node: config.cluster ? this.node : undefined });
    this.bandwidth = new Bandwidth(config.limits.max_bandwidth);
    this.#records = this.store ? new TunnelRecords(this.store, logger) : null;
    const accessLogger = logger.child("access");
    this.recorder = new Recorder({
      config,
      logger,
      metrics: this.metrics,
      traffic: config.metrics ? this.metrics : NO_TRAFFIC_METRICS,
      stats: this.stats,
      history: this.store ?? NO_HISTORY,
      records: this.#records,
      access: accessLog(config.log.access_file, accessLogger, {
        maxSize: config.log.max_size,
        maxFiles: config.log.max_files,
      }),
      // Without a file, access lines are debug logs: most requests build none.
      accessing: config.log.access_file ? () => true : () => accessLogger.enabled("debug"),
    });
    this.login = new Login({
      limits: {
        maxFailures: config.auth.max_failures,
        failureInterval: config.auth.failure_interval,
        maxHandshakes: config.auth.max_handshakes,
      },
      sharedToken: token,
      localAdminToken: options.localAdminToken,
      tokens: this.tokens,
      metrics: this.metrics,
      logger,
      adminId: options.admin?.id ?? null,
      touch: (id) => this.store?.run((s) => s.apiKeys.touch([id])).catch(() => {}),
    });
    this.alerts = options.alerts(this.stats);
    this.metrics.bind(gaugeSource(this, () => this.#sync?.managed ?? { hits: 0, misses: 0 }));
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
    const tls = await controlCertificate(config);
    if (tls.generated) {
      logger.info("generated a self-signed certificate", {
        dir: `${config.storage.data_dir}/tls`,
        fingerprint: tls.fingerprint,
      });
    }
    const token = config.auth.token ?? await loadOrCreateToken(config.storage.data_dir, logger);
    const store = options.store ?? null;
    const node = options.node ?? config.cluster?.node_id ?? Deno.hostname();
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
    const listener = await listenControlPort(config, tls, logger);
    const certificates = new VhostCertificates(config, logger.child("certs"));
    let vhosts: { http: HttpFront | null; https: HttpFront | null };
    try {
      vhosts = await openVhosts(
        config,
        logger,
        certificates,
        tls,
        (kind) => server?.metrics.error(kind),
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
        localAdminToken: options.localAdminToken ?? null,
        vhosts,
        certificates,
        alerts: (stats) =>
          alertEngine(config, {
            stats,
            store,
            logger,
            evaluating: () => !config.cluster || (server?.cluster?.leadsAlerts ?? false),
            peers: () => server?.cluster?.registry.peers.values() ?? [],
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
    server.#chores = new Chores({
      config,
      store,
      logger,
      sessions: () => server.#sessions,
      recorder: server.recorder,
    });
    if (store) {
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
    if (config.cluster && store) {
      try {
        server.#cluster = await ClusterNode.start(server, store, logger, tls);
        const relays = server.#cluster.tunnels;
        server.recorder.onTunnelStatus = (session, tunnel, status) => {
          if (status !== "active") relays.closed(session, tunnel.name);
        };
      } catch (error) {
        await server.shutdown(0);
        throw error;
      }
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

  /** This server as a node of its cluster; `null` outside cluster mode. */
  get cluster(): ClusterNode | null {
    return this.#cluster;
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
    const tls = await controlCertificate(config);
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
  authenticate(token: string, address: string, clientId: string): Promise<AuthResult> {
    return this.login.client(token, address, clientId);
  }

  /** @internal */
  async register(session: ClientSession): Promise<void> {
    const previous = this.#byClient.get(session.clientId);
    if (previous) {
      this.logger.info("replacing older session of the same client", {
        client_id: session.clientId,
        old_session_id: previous.sessionId,
      });
      previous.close("Replaced by a new connection of the same client");
      // Its ports and names are free before the newcomer asks for them again (bounded).
      const waited = new AbortController();
      await Promise.race([this.#running.get(previous), sleep(5_000, waited.signal)]);
      waited.abort();
    }
    this.#byClient.set(session.clientId, session);
    this.#sessions.add(session);
    this.recorder.sessionOpened(session, this.node);
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
    this.recorder.sessionClosed(session, reason);
    this.#records?.forgetSession(session.sessionId);
    // Tunnels of this user not bound to one client move to its next newest session.
    const userId = session.principal?.userId;
    if (userId != null && !this.#stopping && session.hasManagedTunnels) {
      const next = this.#sync?.newestOf(userId, session);
      if (next) this.#sync?.syncUser(userId, [next]);
    }
  }

  /** @internal Records the row of a tunnel `session` declares ({@linkcode TunnelRecords.record}). */
  recordTunnel(
    session: ClientSession,
    name: string,
    request: TunnelRequest,
  ): Promise<number | null> {
    return this.#records?.record(session, name, request) ?? Promise.resolve(null);
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
    await this.#chores?.stop();
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
    await this.#cluster?.stop();
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

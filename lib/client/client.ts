/**
 * The Burrow client: keeps a control connection to a server (or, with
 * `ha_connections`, one to each of several servers), registers its tunnels
 * on each, serves each incoming stream by dialing the local service, and
 * reconnects with backoff, to the next server address, when a connection
 * is lost.
 *
 * @module
 */

import type { ClientConfig, TunnelConfig } from "../config/mod.ts";
import type { MuxStream } from "../mux/mod.ts";
import { type Message, ProtocolError, type PushedTunnel } from "../protocol/mod.ts";
import { type HealthChange, watchHealth } from "./health.ts";
import { AddressBook } from "./addresses.ts";
import { ClientSession, GaveUpError, type SessionHost } from "./session.ts";
import { LocalSide } from "./local.ts";
import type { Recorder } from "./inspect/mod.ts";
import {
  type ClientStatus,
  formatRegistration,
  type Registration,
  type TunnelState,
} from "./state.ts";
import { tunnelRequest } from "./requests.ts";
import { type Logger, nullLogger } from "../util/mod.ts";
import { sockopt } from "../util/mod.ts";

/** Options of {@linkcode BurrowClient}. */
export interface BurrowClientOptions {
  /** Where to log. Default: nowhere. */
  logger?: Logger;
  /** Called whenever a tunnel's state changes (quick mode prints the URL). */
  onTunnel?: (state: TunnelState) => void;
  /** Called on each connection once the server has answered for every configured tunnel. */
  onRegistered?: (registration: Registration) => void;
  /** The request inspector's recorder, if the inspector is on. */
  recorder?: Recorder | undefined;
}

/**
 * A client that runs until its signal aborts.
 *
 * @example
 * ```ts ignore
 * const controller = new AbortController();
 * await new BurrowClient(config, { logger }).run(controller.signal);
 * ```
 */
export class BurrowClient {
  #config: ClientConfig;
  #log: Logger;
  /** Stable for this process, so a reconnect replaces its own stale session. */
  #clientId: string;
  /** The server addresses the sessions take turns on. */
  #book: AddressBook;
  #onTunnel: ((state: TunnelState) => void) | undefined;
  #onRegistered: ((registration: Registration) => void) | undefined;
  #tunnels: Map<string, TunnelConfig>;
  /** Tunnels the server manages in its database, as last pushed. */
  #managed = new Map<string, TunnelConfig & { remotePort?: number }>();
  /** Each tunnel's state over all sessions: active when any session serves it. */
  #states = new Map<string, TunnelState>();
  /** Last health-check result per tunnel (only tunnels with `health_check`). */
  #health = new Map<string, HealthChange>();
  /** One per `ha_connections`; they share the local side, so traffic is counted once. */
  #sessions: ClientSession[];
  #local: LocalSide;
  /** Whether logs and summaries name the server: there may be several. */
  #several: boolean;

  /** Creates a client; nothing happens until {@linkcode BurrowClient.run}. */
  constructor(config: ClientConfig, options: BurrowClientOptions = {}) {
    this.#config = config;
    this.#log = (options.logger ?? nullLogger).child("client");
    this.#onTunnel = options.onTunnel;
    this.#onRegistered = options.onRegistered;
    this.#tunnels = new Map(config.tunnels.map((t) => [t.name, t]));
    this.#clientId = config.client_id ?? `${Deno.hostname()}-${crypto.randomUUID().slice(0, 8)}`;
    this.#several = config.server_addrs !== undefined || config.ha_connections > 1;
    // The single `server_addr` form of one session dials its name as it always did.
    this.#book = new AddressBook(config.servers, { expand: this.#several, logger: this.#log });
    const host: SessionHost = {
      config,
      log: this.#log,
      clientId: this.#clientId,
      book: this.#book,
      // Never two sessions on one address: a node closes the older session of a client id.
      busy: new Set(),
      serveStream: (stream) => this.#serveStream(stream),
      onConnected: (session) => this.#onConnected(session),
      onControl: (session, message) => this.#onControl(session, message),
      onDisconnected: (session) => this.#onDisconnected(session),
    };
    this.#sessions = Array.from(
      { length: config.ha_connections },
      (_, i) => new ClientSession(host, i + 1),
    );
    this.#local = new LocalSide({
      logger: this.#log,
      udpSocketBuffer: config.udp?.socket_buffer ?? 0,
      recorder: options.recorder,
    });
  }

  /** Tunnel states as last reported. */
  get tunnels(): TunnelState[] {
    return [...this.#states.values()];
  }

  /**
   * What `burrow status` shows: each session's server, each tunnel's state,
   * public address, local service, traffic so far (visitors → service
   * `bytes_in`, service → visitors `bytes_out`, including connections still
   * open) and the RTT.
   */
  status(): ClientStatus {
    const tunnels = [...this.#states.values()].map((s) => {
      const config = this.#tunnels.get(s.name) ?? this.#managed.get(s.name);
      const t = this.#local.traffic(s.name);
      return {
        name: s.name,
        type: config?.type ?? "tcp",
        status: s.status,
        public_addr: s.publicAddr ?? null,
        local: config ? `${config.local_addr}:${config.local_port}` : null,
        managed: s.managed ?? false,
        error: s.error ?? null,
        connections: t.connections,
        active_connections: t.active,
        bytes_in: t.bytesIn,
        bytes_out: t.bytesOut,
      };
    });
    const up = this.#sessions.find((s) => s.connected);
    return {
      client_id: this.#clientId,
      server: up?.address?.label ?? this.#book.written,
      connected: up !== undefined,
      rtt_ms: up?.rtt || null,
      sessions: this.#sessions.map((s) => ({
        server: s.address?.label ?? null,
        connected: s.connected,
        rtt_ms: s.rtt || null,
      })),
      tunnels,
    };
  }

  /** The settings of tunnel `name`, configured or pushed by the server; `undefined` when unknown. */
  tunnelConfig(name: string): TunnelConfig | undefined {
    return this.#tunnels.get(name) ?? this.#managed.get(name);
  }

  /** Last heartbeat round trip in ms of the first connected session (0 before the first). */
  get rtt(): number {
    return this.#sessions.find((s) => s.connected)?.rtt ?? 0;
  }

  /**
   * Connects and serves until `signal` aborts; each session reconnects per
   * `client.reconnect`, to the next server address.
   *
   * @throws {AuthenticationError} when the server refuses the token (unless
   * `reconnect.retry_auth_failures` is set).
   * @throws {FatalClientError} on a version mismatch or a refused certificate.
   * @throws {NotBurrowdError} when a server address answers like something
   * else (unless `reconnect.max_retries: 0` is written: then it retries).
   * @throws {Error} when every session has failed `reconnect.max_retries`
   * attempts in a row.
   */
  async run(signal: AbortSignal): Promise<void> {
    sockopt.announce(this.#log);
    // An error that retrying cannot fix stops every session; one session giving up stops itself.
    const fatal = new AbortController();
    const stop = AbortSignal.any([signal, fatal.signal]);
    // The health checks end with the run, however it ends (all sessions may give up).
    const checks = new AbortController();
    this.#startHealthChecks(checks.signal);
    try {
      await this.#runSessions(stop, fatal);
    } finally {
      checks.abort();
    }
  }

  async #runSessions(stop: AbortSignal, fatal: AbortController): Promise<void> {
    if (this.#config.ha_connections > 1) {
      this.#log.info("holding several sessions", {
        ha_connections: this.#config.ha_connections,
        servers: this.#book.written,
      });
    }
    const ended = await Promise.allSettled(this.#sessions.map(async (session) => {
      try {
        await session.run(stop);
      } catch (error) {
        if (!(error instanceof GaveUpError)) fatal.abort(error);
        else if (this.#sessions.length > 1) {
          this.#log.error("session gave up", { session: session.index, error: error.message });
        }
        throw error;
      }
    }));
    if (fatal.signal.aborted) throw fatal.signal.reason;
    const errors = ended.flatMap((e) => e.status === "rejected" ? [e.reason as Error] : []);
    if (errors.length === this.#sessions.length) throw errors[0];
  }

  /** A session logged in, so its server gets every tunnel. */
  #onConnected(session: ClientSession): void {
    session.unanswered = new Set(this.#tunnels.keys());
    for (const tunnel of this.#tunnels.values()) this.#requestTunnel(session, tunnel);
  }

  /** The session's tunnels wait for its next connection. */
  #onDisconnected(session: ClientSession): void {
    for (const state of [...session.states.values()]) {
      if (state.status !== "pending") {
        this.#setState(session, { name: state.name, status: "pending" });
      }
    }
  }

  /** Hands a stream to the one local side, if its tunnel is known. */
  #serveStream(stream: MuxStream): Promise<void> {
    const name = String(stream.meta.tunnel ?? "");
    const tunnel = this.#tunnels.get(name) ?? this.#managed.get(name);
    if (!tunnel) {
      stream.reset(`Unknown tunnel "${name}"`);
      return Promise.resolve();
    }
    return this.#local.serve(stream, tunnel);
  }

  #requestTunnel(session: ClientSession, tunnel: TunnelConfig): void {
    this.#setState(session, { name: tunnel.name, status: "pending" });
    session.send({
      type: "control",
      action: "create_tunnel",
      tunnel_id: tunnel.name,
      config: tunnelRequest(tunnel),
    });
    const health = this.#health.get(tunnel.name);
    if (health && !health.healthy) {
      session.send({
        type: "tunnel_health",
        tunnel_id: tunnel.name,
        healthy: false,
        reason: health.reason,
      });
    }
  }

  /** Runs the configured health checks for as long as the client runs; every session hears. */
  #startHealthChecks(signal: AbortSignal): void {
    for (const tunnel of this.#tunnels.values()) {
      const check = tunnel.health_check;
      if (!check) continue;
      watchHealth(check, tunnel.local_addr, tunnel.local_port, (change) => {
        this.#health.set(tunnel.name, change);
        this.#log[change.healthy ? "info" : "warn"](
          change.healthy ? "local service healthy" : "local service unhealthy",
          { tunnel: tunnel.name, reason: change.reason },
        );
        for (const session of this.#sessions) {
          session.send({
            type: "tunnel_health",
            tunnel_id: tunnel.name,
            healthy: change.healthy,
            reason: change.reason,
          });
        }
      }, signal).catch((error) =>
        this.#log.error("health check failed", { tunnel: tunnel.name, error })
      );
    }
  }

  /** What a session's server says about tunnels. */
  #onControl(session: ClientSession, message: Message): void {
    const server = this.#several ? { server: session.address?.label } : {};
    switch (message.type) {
      case "tunnel_status": {
        const tunnel = this.#tunnels.get(message.tunnel_id);
        if (!tunnel) return;
        if (message.status === "active") {
          const state = this.#activeState(
            session,
            tunnel.name,
            message.remote_port,
            message.urls,
            false,
          );
          this.#setState(session, state);
          this.#logReady(session, tunnel, state);
          this.#answered(session, tunnel.name);
        } else if (message.status === "failed") {
          const reason = message.error ?? "refused by the server";
          this.#setState(session, { name: tunnel.name, status: "failed", error: reason });
          this.#log.error("tunnel failed", { tunnel: tunnel.name, reason, ...server });
          this.#answered(session, tunnel.name);
        } else if (message.status === "closed") {
          const reason = message.error ?? "closed by the server";
          this.#setState(session, { name: tunnel.name, status: "closed", error: reason });
          this.#log.warn("tunnel closed by server", { tunnel: tunnel.name, reason, ...server });
        }
        return;
      }
      case "config_push":
        this.#applyPush(session, message.tunnels);
        return;
      case "notice":
        this.#log.warn("server notice", {
          tunnel: message.tunnel_id,
          code: message.code,
          message: message.message,
          ...server,
        });
        return;
      default:
        throw new ProtocolError(`Unexpected "${message.type}" message from the server`);
    }
  }

  /**
   * Notes the server's first answer for a configured tunnel on this
   * session's connection; after the last one, sums them up (logged, and
   * handed to `onRegistered`).
   */
  #answered(session: ClientSession, name: string): void {
    if (!session.unanswered.delete(name) || session.unanswered.size) return;
    const states = [...this.#tunnels.keys()].map((n) => session.states.get(n));
    const refused = states.filter((s) => s?.status === "failed")
      .map((s) => ({ name: s!.name, reason: s!.error ?? "refused by the server" }));
    const registration: Registration = {
      up: states.filter((s) => s?.status === "active").length,
      total: states.length,
      refused,
      ...(this.#several && session.address ? { server: session.address.label } : {}),
    };
    this.#log[refused.length ? "warn" : "info"]("tunnels registered", {
      up: registration.up,
      total: registration.total,
      summary: formatRegistration(registration),
      ...(registration.server ? { server: registration.server } : {}),
    });
    this.#onRegistered?.(registration);
  }

  /** The state of a tunnel the server opened, with its public address as visitors use it. */
  #activeState(
    session: ClientSession,
    name: string,
    remotePort: number | undefined,
    serverUrls: string[] | undefined,
    managed: boolean,
  ): TunnelState {
    // The server's name as configured: visitors reach it by that name, not by a resolved IP.
    const host = session.address?.serverName ?? "";
    const urls = serverUrls?.map((u) => u.replace("<any host>", host));
    return {
      name,
      status: "active",
      ...(managed ? { managed } : {}),
      remotePort: remotePort!,
      publicAddr: urls?.[0] ?? `${host.includes(":") ? `[${host}]` : host}:${remotePort}`,
      ...(urls ? { urls } : {}),
    };
  }

  /** Logs "tunnel ready" for a tunnel that became `state` on `session`. */
  #logReady(session: ClientSession, tunnel: TunnelConfig, state: TunnelState): void {
    this.#log.info("tunnel ready", {
      tunnel: tunnel.name,
      type: tunnel.type,
      remote_port: state.remotePort,
      public_addr: state.publicAddr,
      ...(state.urls ? { urls: state.urls } : {}),
      local: `${tunnel.local_addr}:${tunnel.local_port}`,
      ...(state.managed ? { managed: true } : {}),
      ...(this.#several ? { server: session.address?.label } : {}),
    });
  }

  /** Takes a server's complete list of managed tunnels for this client. */
  #applyPush(session: ClientSession, tunnels: PushedTunnel[]): void {
    const next = new Map<string, TunnelConfig & { remotePort?: number }>();
    for (const t of tunnels) {
      if (this.#tunnels.has(t.name)) {
        this.#log.warn("ignored a pushed tunnel that shadows a configured one", { tunnel: t.name });
        continue;
      }
      const previous = this.#managed.get(t.name);
      const config = {
        name: t.name,
        type: t.type,
        local_addr: t.local_addr,
        local_port: t.local_port,
        ...(t.proxy_protocol ? { proxy_protocol: t.proxy_protocol } : {}),
        ...(t.remote_port !== undefined
          ? { remote_port: t.remote_port, remotePort: t.remote_port }
          : {}),
      } as TunnelConfig & { remotePort?: number };
      next.set(t.name, config);
      const local = `${t.local_addr}:${t.local_port}`;
      const before = session.states.get(t.name);
      if (t.status === "active") {
        const state = this.#activeState(session, t.name, t.remote_port, t.urls, true);
        const unchanged = before?.status === "active" && before.remotePort === t.remote_port &&
          before.publicAddr === state.publicAddr &&
          previous && `${previous.local_addr}:${previous.local_port}` === local;
        this.#setState(session, state);
        if (!unchanged) this.#logReady(session, config, state);
      } else {
        const reason = t.error ?? "refused by the server";
        if (before?.status !== "failed" || before.error !== reason) {
          this.#log.error("tunnel failed", { tunnel: t.name, reason, managed: true });
        }
        this.#setState(session, { name: t.name, status: "failed", managed: true, error: reason });
      }
    }
    for (const name of this.#managed.keys()) {
      if (next.has(name)) continue;
      this.#setState(session, {
        name,
        status: "closed",
        managed: true,
        error: "removed on the server",
      });
      this.#log.info("tunnel removed", { tunnel: name, managed: true });
    }
    this.#managed = next;
  }

  /**
   * Records `state` as `session`'s; the tunnel's own state is the best over
   * the sessions (active on any is active). `onTunnel` hears every state of
   * a client with one session, and with several only the changes.
   */
  #setState(session: ClientSession, state: TunnelState): void {
    session.states.set(state.name, state);
    const all = this.#sessions.flatMap((s) => s.states.get(state.name) ?? []);
    const best = all.find((s) => s.status === "active") ??
      all.find((s) => s.status === "failed" || s.status === "closed") ?? state;
    const before = this.#states.get(state.name);
    this.#states.set(state.name, best);
    const changed = before?.status !== best.status || before.publicAddr !== best.publicAddr ||
      before.error !== best.error;
    if (this.#sessions.length === 1 || changed) this.#onTunnel?.(best);
  }
}

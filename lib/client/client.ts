/**
 * The Burrow client: keeps one control connection to the server, registers
 * its tunnels, serves each incoming stream by dialing the local service, and
 * reconnects with backoff when the connection is lost.
 *
 * @module
 */

import type { ClientConfig, TunnelConfig } from "../config/mod.ts";
import { Mux, type MuxStream } from "../mux/mod.ts";
import {
  decodeControl,
  encodeControl,
  type Message,
  ProtocolError,
  type PushedTunnel,
} from "../protocol/mod.ts";
import { UnreachableError } from "../transport/mod.ts";
import { Backoff, sleep } from "../util/mod.ts";
import { type HealthChange, watchHealth } from "./health.ts";
import {
  AuthenticationError,
  FatalClientError,
  NotBurrowdError,
  RetryLaterError,
} from "./errors.ts";
import { dialServer, explainHandshakeFailure, serverOf } from "./dial.ts";
import { giveUpMessage } from "./explain.ts";
import { handshake } from "./handshake.ts";
import { RetryLog } from "./retry_log.ts";
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
  #onTunnel: ((state: TunnelState) => void) | undefined;
  #onRegistered: ((registration: Registration) => void) | undefined;
  /** Configured tunnels the server has not answered for yet on this connection. */
  #unanswered = new Set<string>();
  #tunnels: Map<string, TunnelConfig>;
  /** Tunnels the server manages in its database, as last pushed. */
  #managed = new Map<string, TunnelConfig & { remotePort?: number }>();
  #states = new Map<string, TunnelState>();
  /** Last health-check result per tunnel (only tunnels with `health_check`). */
  #health = new Map<string, HealthChange>();
  /** The current connection, for messages sent outside the control loop. */
  #mux: Mux | null = null;
  #local: LocalSide;
  #rtt = 0;
  #heartbeatInterval = 10_000;
  /** Stable for this process, so a reconnect replaces its own stale session. */
  #clientId: string;

  /** Creates a client; nothing happens until {@linkcode BurrowClient.run}. */
  constructor(config: ClientConfig, options: BurrowClientOptions = {}) {
    this.#config = config;
    this.#log = (options.logger ?? nullLogger).child("client");
    this.#onTunnel = options.onTunnel;
    this.#onRegistered = options.onRegistered;
    this.#tunnels = new Map(config.tunnels.map((t) => [t.name, t]));
    this.#clientId = config.client_id ?? `${Deno.hostname()}-${crypto.randomUUID().slice(0, 8)}`;
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
   * What `burrow status` shows: each tunnel's state, public address, local
   * service, traffic so far (visitors → service `bytes_in`, service →
   * visitors `bytes_out`, including connections still open) and the RTT.
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
    return {
      client_id: this.#clientId,
      server: `${this.#config.server_addr}:${this.#config.server_port}`,
      connected: this.#mux !== null && !this.#mux.isClosed,
      rtt_ms: this.#rtt || null,
      tunnels,
    };
  }

  /** The settings of tunnel `name`, configured or pushed by the server; `undefined` when unknown. */
  tunnelConfig(name: string): TunnelConfig | undefined {
    return this.#tunnels.get(name) ?? this.#managed.get(name);
  }

  /** Last heartbeat round trip in ms (0 before the first). */
  get rtt(): number {
    return this.#rtt;
  }

  /**
   * Connects and serves until `signal` aborts; reconnects per
   * `client.reconnect`.
   *
   * @throws {AuthenticationError} when the server refuses the token (unless
   * `reconnect.retry_auth_failures` is set).
   * @throws {FatalClientError} on a version mismatch or a refused certificate.
   * @throws {NotBurrowdError} when the server address answers like something
   * else (unless `reconnect.max_retries: 0` is written: then it retries).
   * @throws {Error} when `reconnect.max_retries` attempts have failed.
   */
  async run(signal: AbortSignal): Promise<void> {
    sockopt.announce(this.#log);
    const checks = new AbortController();
    const stopChecks = () => checks.abort();
    signal.addEventListener("abort", stopChecks, { once: true });
    try {
      await this.#run(signal, checks.signal);
    } finally {
      checks.abort();
      signal.removeEventListener("abort", stopChecks);
    }
  }

  async #run(signal: AbortSignal, checks: AbortSignal): Promise<void> {
    const { reconnect } = this.#config;
    const backoff = new Backoff(reconnect);
    const server = serverOf(this.#config);
    const retries = new RetryLog(this.#log, server);
    // Only a written `max_retries: 0` keeps retrying an address that is not burrowd.
    const retryAnything = reconnect.max_retries === 0 && reconnect.max_retries_written === true;
    this.#startHealthChecks(checks);
    while (!signal.aborted) {
      let error: Error;
      try {
        error = await this.#session(signal, () => {
          backoff.reset();
          retries.reset();
        });
      } catch (e) {
        if (e instanceof FatalClientError) throw e;
        if (e instanceof NotBurrowdError && !retryAnything) throw e;
        if (e instanceof AuthenticationError && !reconnect.retry_auth_failures) throw e;
        error = e as Error;
      }
      if (/CertificateRequired|certificate required/i.test(error.message)) {
        // Retrying cannot help: the server wants a client certificate we do not send.
        throw new FatalClientError(
          `The server requires a client certificate (${error.message}): set ` +
            `client.tls.cert_file and client.tls.key_file to a certificate signed by its CA`,
        );
      }
      if (signal.aborted) return;
      const next = backoff.next();
      // Told by the server when a login may succeed again: not sooner.
      const delay = next !== null && error instanceof RetryLaterError
        ? Math.max(next, error.retryAfter)
        : next;
      const unreachable = error instanceof UnreachableError ? error : null;
      const reason = unreachable?.reason ?? error.message;
      if (delay === null) {
        throw new Error(giveUpMessage(server, reconnect.max_retries, reason, unreachable !== null));
      }
      // Nothing answering may be a server coming up; something else answering is a wrong address.
      const level = unreachable ? "warn" : error instanceof NotBurrowdError ? "error" : "info";
      retries.failed(reason, level, { attempt: backoff.attempt, delay_ms: delay });
      await sleep(delay, signal);
    }
  }

  /** One connection: returns the error that ended it. */
  async #session(signal: AbortSignal, onConnected: () => void): Promise<Error> {
    const config = this.#config;
    const server = serverOf(config);
    const conn = await dialServer(config, signal);
    const mux = new Mux(conn, {
      role: "client",
      onStream: (stream) => this.#serveStream(stream),
      onGoAway: (reason) => this.#log.info("server going away", { reason }),
    });
    const abort = () => mux.close(new Error("Client stopped"));
    signal.addEventListener("abort", abort, { once: true });
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    try {
      const { sessionId, heartbeatInterval } = await handshake(mux, {
        clientId: this.#clientId,
        token: this.#config.auth_token.reveal(),
        logger: this.#log,
      }).catch((error) => {
        throw explainHandshakeFailure(error, config);
      });
      this.#heartbeatInterval = heartbeatInterval;
      onConnected();
      this.#mux = mux;
      this.#log.info("connected", { server, session_id: sessionId });
      this.#unanswered = new Set(this.#tunnels.keys());
      for (const tunnel of this.#tunnels.values()) this.#requestTunnel(mux, tunnel);

      let lastSeen = performance.now();
      const interval = this.#heartbeatInterval;
      heartbeat = setInterval(() => {
        if (performance.now() - lastSeen > interval * 3) {
          mux.close(new Error(`No answer from the server for ${Math.round(interval * 3 / 1000)}s`));
          return;
        }
        send(mux, { type: "heartbeat", timestamp: Date.now(), status: "online" });
      }, interval);

      for (;;) {
        const bytes = await mux.recvControl();
        if (bytes === null) break;
        lastSeen = performance.now();
        this.#onControl(decodeControl(bytes));
      }
      return (await mux.closed) ?? new Error("Connection closed");
    } catch (error) {
      mux.close(error as Error);
      throw error;
    } finally {
      clearInterval(heartbeat);
      signal.removeEventListener("abort", abort);
      mux.close();
      for (const state of [...this.#states.values()]) {
        if (state.status !== "pending") this.#setState({ name: state.name, status: "pending" });
      }
      if (!signal.aborted) {
        this.#log.warn("disconnected", { server, error: (await mux.closed)?.message });
      }
    }
  }

  #requestTunnel(mux: Mux, tunnel: TunnelConfig): void {
    this.#setState({ name: tunnel.name, status: "pending" });
    send(mux, {
      type: "control",
      action: "create_tunnel",
      tunnel_id: tunnel.name,
      config: tunnelRequest(tunnel),
    });
    const health = this.#health.get(tunnel.name);
    if (health && !health.healthy) {
      send(mux, {
        type: "tunnel_health",
        tunnel_id: tunnel.name,
        healthy: false,
        reason: health.reason,
      });
    }
  }

  /** Runs the configured health checks for as long as the client runs. */
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
        const mux = this.#mux;
        if (mux && !mux.isClosed) {
          send(mux, {
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

  #onControl(message: Message): void {
    switch (message.type) {
      case "heartbeat":
        this.#rtt = Math.max(0, Date.now() - message.timestamp);
        return;
      case "tunnel_status": {
        const tunnel = this.#tunnels.get(message.tunnel_id);
        if (!tunnel) return;
        if (message.status === "active") {
          const state = this.#activeState(tunnel.name, message.remote_port, message.urls, false);
          this.#setState(state);
          this.#logReady(tunnel, state);
          this.#answered(tunnel.name);
        } else if (message.status === "failed") {
          const reason = message.error ?? "refused by the server";
          this.#setState({ name: tunnel.name, status: "failed", error: reason });
          this.#log.error("tunnel failed", { tunnel: tunnel.name, reason });
          this.#answered(tunnel.name);
        } else if (message.status === "closed") {
          const reason = message.error ?? "closed by the server";
          this.#setState({ name: tunnel.name, status: "closed", error: reason });
          this.#log.warn("tunnel closed by server", { tunnel: tunnel.name, reason });
        }
        return;
      }
      case "config_push":
        this.#applyPush(message.tunnels);
        return;
      case "notice":
        this.#log.warn("server notice", {
          tunnel: message.tunnel_id,
          code: message.code,
          message: message.message,
        });
        return;
      default:
        throw new ProtocolError(`Unexpected "${message.type}" message from the server`);
    }
  }

  /**
   * Notes the server's first answer for a configured tunnel on this
   * connection; after the last one, sums them up (logged, and handed to
   * `onRegistered`).
   */
  #answered(name: string): void {
    if (!this.#unanswered.delete(name) || this.#unanswered.size) return;
    const states = [...this.#tunnels.keys()].map((n) => this.#states.get(n));
    const refused = states.filter((s) => s?.status === "failed")
      .map((s) => ({ name: s!.name, reason: s!.error ?? "refused by the server" }));
    const registration = {
      up: states.filter((s) => s?.status === "active").length,
      total: states.length,
      refused,
    };
    this.#log[refused.length ? "warn" : "info"]("tunnels registered", {
      up: registration.up,
      total: registration.total,
      summary: formatRegistration(registration),
    });
    this.#onRegistered?.(registration);
  }

  /** The state of a tunnel the server opened, with its public address as visitors use it. */
  #activeState(
    name: string,
    remotePort: number | undefined,
    serverUrls: string[] | undefined,
    managed: boolean,
  ): TunnelState {
    const urls = serverUrls?.map((u) => u.replace("<any host>", this.#config.server_addr));
    return {
      name,
      status: "active",
      ...(managed ? { managed } : {}),
      remotePort: remotePort!,
      publicAddr: urls?.[0] ?? `${this.#config.server_addr}:${remotePort}`,
      ...(urls ? { urls } : {}),
    };
  }

  /** Logs "tunnel ready" for a tunnel that became `state`. */
  #logReady(tunnel: TunnelConfig, state: TunnelState): void {
    this.#log.info("tunnel ready", {
      tunnel: tunnel.name,
      type: tunnel.type,
      remote_port: state.remotePort,
      public_addr: state.publicAddr,
      ...(state.urls ? { urls: state.urls } : {}),
      local: `${tunnel.local_addr}:${tunnel.local_port}`,
      ...(state.managed ? { managed: true } : {}),
    });
  }

  /** Takes the server's complete list of managed tunnels for this client. */
  #applyPush(tunnels: PushedTunnel[]): void {
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
      const before = this.#states.get(t.name);
      if (t.status === "active") {
        const state = this.#activeState(t.name, t.remote_port, t.urls, true);
        const unchanged = before?.status === "active" && before.remotePort === t.remote_port &&
          before.publicAddr === state.publicAddr &&
          previous && `${previous.local_addr}:${previous.local_port}` === local;
        this.#setState(state);
        if (!unchanged) this.#logReady(config, state);
      } else {
        const reason = t.error ?? "refused by the server";
        if (before?.status !== "failed" || before.error !== reason) {
          this.#log.error("tunnel failed", { tunnel: t.name, reason, managed: true });
        }
        this.#setState({ name: t.name, status: "failed", managed: true, error: reason });
      }
    }
    for (const name of this.#managed.keys()) {
      if (next.has(name)) continue;
      this.#setState({ name, status: "closed", managed: true, error: "removed on the server" });
      this.#log.info("tunnel removed", { tunnel: name, managed: true });
    }
    this.#managed = next;
  }

  /** Hands a stream the server opened to the local side, if its tunnel is known. */
  #serveStream(stream: MuxStream): Promise<void> {
    const name = String(stream.meta.tunnel ?? "");
    const tunnel = this.#tunnels.get(name) ?? this.#managed.get(name);
    if (!tunnel) {
      stream.reset(`Unknown tunnel "${name}"`);
      return Promise.resolve();
    }
    return this.#local.serve(stream, tunnel);
  }

  #setState(state: TunnelState): void {
    this.#states.set(state.name, state);
    this.#onTunnel?.(state);
  }
}

function send(mux: Mux, message: Message): void {
  mux.sendControl(encodeControl(message));
}

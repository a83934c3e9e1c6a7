/**
 * One client's session on the server: handshake (hello, auth), the control
 * loop (create/destroy tunnels, heartbeats) and the tunnels it owns.
 *
 * @module
 */

import type { ServerConfig } from "../config/types.ts";
import { type Duplex, Mux, PeerClosedError } from "../mux/mod.ts";
import {
  decodeControl,
  encodeControl,
  type ErrorMessage,
  type Message,
  MIN_PROTOCOL_VERSION,
  negotiateVersion,
  ProtocolError,
  type TunnelRequest,
  type TunnelStatusMessage,
} from "../protocol/mod.ts";
import type { Logger } from "../util/logger.ts";
import type { Secret } from "../util/secret.ts";
import { timingSafeEqualText } from "../util/timing_safe.ts";
import { VERSION } from "../util/version.ts";
import { candidatePorts, formatPortRanges, portAllowed } from "./ports.ts";
import { TcpTunnel, TunnelError } from "./tcp_tunnel.ts";

/** What a session needs from its server. */
export interface SessionHost {
  /** The validated server configuration. */
  readonly config: ServerConfig;
  /** Where the server logs. */
  readonly logger: Logger;
  /** The shared client token. */
  readonly token: Secret;
  /** Records an authenticated session; closes an older one with the same client id. */
  register(session: ClientSession): void;
  /** Forgets a session that ended. */
  unregister(session: ClientSession): void;
  /** Whether another client may log in now (max_clients). */
  hasRoom(): boolean;
}

/** Milliseconds a new connection has to complete hello and auth. */
const HANDSHAKE_TIMEOUT = 10_000;

/** A connected client. */
export class ClientSession {
  /** The client's `host:port`. */
  readonly remote: string;
  /** Id given to the client in `ack`. */
  readonly sessionId: string = crypto.randomUUID();
  /** The client's stable id from `hello` (empty before it). */
  clientId = "";
  /** Open tunnels by name. */
  readonly tunnels = new Map<string, TcpTunnel>();
  /** The multiplexed control connection. */
  readonly mux: Mux;

  #host: SessionHost;
  #log: Logger;
  #lastSeen = performance.now();
  #refused = false;

  /** Wraps an accepted control connection. */
  constructor(conn: Duplex, remote: string, host: SessionHost) {
    this.remote = remote;
    this.#host = host;
    this.#log = host.logger;
    this.mux = new Mux(conn, { role: "server", pingInterval: host.config.heartbeat_interval });
  }

  /** Runs the session to its end; never throws. */
  async run(): Promise<void> {
    let registered = false;
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
      for (const tunnel of this.tunnels.values()) await tunnel.close();
      this.tunnels.clear();
      const cause = await this.mux.closed;
      const fields = { remote: this.remote, client_id: this.clientId || undefined };
      if (cause instanceof ProtocolError) {
        this.#log.warn("protocol error", { ...fields, error: cause.message });
      } else if (!registered && cause && !this.#refused) {
        // Pinning clients fetch the certificate on a connection they close at once.
        const level = cause instanceof PeerClosedError && this.mux.bytes.in === 0
          ? "debug"
          : "warn";
        this.#log[level]("connection failed before login", { ...fields, error: cause.message });
      }
      if (registered) {
        this.#host.unregister(this);
        this.#log.info("session closed", {
          client_id: this.clientId,
          session_id: this.sessionId,
          reason: cause?.message ?? "closed",
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

  async #refuse(code: ErrorMessage["code"], message: string): Promise<false> {
    this.#refused = true;
    this.#send({ type: "error", code, message });
    await this.mux.flush();
    this.close(message);
    return false;
  }

  #timedOut(): false {
    this.close(`Handshake not completed within ${HANDSHAKE_TIMEOUT / 1000}s`);
    return false;
  }

  async #receive(): Promise<Message | null> {
    const bytes = await this.mux.recvControl();
    if (bytes === null) return null;
    this.#lastSeen = performance.now();
    return decodeControl(bytes);
  }

  async #handshake(): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), HANDSHAKE_TIMEOUT);
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
      const auth = await Promise.race([this.#receive(), timedOut]);
      if (auth === "timeout") return this.#timedOut();
      if (auth === null) return false;
      if (auth.type !== "auth") {
        throw new ProtocolError(`Expected "auth" after "hello", got "${auth.type}"`);
      }
      const expected = this.#host.token.reveal();
      if (!(await timingSafeEqualText(auth.token, expected))) {
        this.#log.warn("authentication failed", { remote: this.remote, client_id: this.clientId });
        return await this.#refuse("auth_failed", "authentication failed: invalid token");
      }
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
          break;
        case "control":
          if (message.action === "create_tunnel") {
            this.#send(this.#createTunnel(message.tunnel_id, message.config!));
          } else {
            await this.#destroyTunnel(message.tunnel_id);
          }
          break;
        default:
          throw new ProtocolError(`Unexpected "${message.type}" message from a client`);
      }
    }
  }

  #createTunnel(name: string, request: TunnelRequest): TunnelStatusMessage {
    const fail = (reason: string): TunnelStatusMessage => {
      this.#log.warn("tunnel refused", { tunnel: name, client_id: this.clientId, reason });
      return { type: "tunnel_status", tunnel_id: name, status: "failed", error: reason };
    };
    const config = this.#host.config;
    if (request.protocol !== "tcp") {
      return fail(`Tunnel type "${request.protocol}" is not supported by this server yet`);
    }
    if (this.tunnels.has(name)) return fail(`Tunnel "${name}" already exists in this session`);
    if (this.tunnels.size >= config.limits.max_tunnels_per_client) {
      return fail(
        `Limit of ${config.limits.max_tunnels_per_client} tunnels per client reached ` +
          `(server.limits.max_tunnels_per_client)`,
      );
    }
    const requested = request.remote_port ?? 0;
    if (requested !== 0 && !portAllowed(requested, config.allow_ports)) {
      return fail(
        `Port ${requested} is not allowed on this server (allowed: ${
          formatPortRanges(config.allow_ports)
        })`,
      );
    }
    const candidates = requested !== 0 ? [requested] : candidatePorts(config.allow_ports);
    let tunnel: TcpTunnel | undefined;
    let lastError: Error | undefined;
    for (const port of candidates) {
      try {
        tunnel = TcpTunnel.listen({
          name,
          hostname: config.bind_addr,
          port,
          mux: this.mux,
          logger: this.#log,
        });
        break;
      } catch (error) {
        lastError = error as Error;
      }
    }
    if (!tunnel) {
      return fail(
        requested === 0 && config.allow_ports.length
          ? `No free port in ${formatPortRanges(config.allow_ports)}`
          : (lastError instanceof TunnelError ? lastError.message : String(lastError)),
      );
    }
    this.tunnels.set(name, tunnel);
    this.#log.info("tunnel opened", {
      tunnel: name,
      type: "tcp",
      client_id: this.clientId,
      remote_port: tunnel.port,
    });
    return { type: "tunnel_status", tunnel_id: name, status: "active", remote_port: tunnel.port };
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
    this.tunnels.delete(name);
    await tunnel.close();
    this.#log.info("tunnel closed", { tunnel: name, client_id: this.clientId });
    this.#send({ type: "tunnel_status", tunnel_id: name, status: "closed" });
  }
}

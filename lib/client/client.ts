/**
 * The Burrow client: keeps one control connection to the server, registers
 * its tunnels, serves each incoming stream by dialing the local service, and
 * reconnects with backoff when the connection is lost.
 *
 * @module
 */

import type { ClientConfig, TunnelConfig } from "../config/types.ts";
import {
  compressedConn,
  DatagramWriter,
  Mux,
  type MuxStream,
  readDatagramBatches,
  relay,
} from "../mux/mod.ts";
import {
  decodeControl,
  encodeControl,
  type Message,
  MIN_PROTOCOL_VERSION,
  negotiateVersion,
  PROTOCOL_VERSION,
  ProtocolError,
  type PushedTunnel,
} from "../protocol/mod.ts";
import { CertificateError, dialTls, UdpReceiver, UdpSender } from "../transport/mod.ts";
import { Backoff, sleep } from "../util/backoff.ts";
import { type HealthChange, watchHealth } from "./health.ts";
import { type Logger, nullLogger } from "../util/logger.ts";
import { VERSION } from "../util/version.ts";
import { raiseSocketBuffers } from "../util/socket_buffers.ts";
import { sockopt } from "../util/sockopt.ts";

/** The server refused our credentials; retrying will not help. */
export class AuthenticationError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "AuthenticationError";
  }
}

/** A refusal that retrying cannot fix (version mismatch, bad certificate pin). */
export class FatalClientError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "FatalClientError";
  }
}

/** The server's login limiter refused us for now; retry after `retryAfter` ms, not sooner. */
class RetryLaterError extends Error {
  readonly retryAfter: number;
  constructor(message: string, retryAfter: number) {
    super(message);
    this.name = "RetryLaterError";
    this.retryAfter = retryAfter;
  }
}

/** State of one tunnel as last reported by the server. */
export interface TunnelState {
  /** Name, unique within its list. */
  name: string;
  /** State being reported: `closed` when the server removed it. */
  status: "pending" | "active" | "failed" | "closed";
  /** Defined in the server's database rather than in this client's config. */
  managed?: boolean;
  /** Public port on the server. */
  remotePort?: number;
  /** Public address visitors use. */
  publicAddr?: string;
  /** HTTP(S) tunnels: every public URL. */
  urls?: string[];
  /** Why the tunnel failed. */
  error?: string;
}

/** Options of {@linkcode BurrowClient}. */
export interface BurrowClientOptions {
  /** Where to log. Default: nowhere. */
  logger?: Logger;
  /** Called whenever a tunnel's state changes (quick mode prints the URL). */
  onTunnel?: (state: TunnelState) => void;
}

interface Traffic {
  bytesIn: number;
  bytesOut: number;
  connections: number;
  active: number;
  live: Set<{ sent: number; received: number }>;
}

/** A client's state as `burrow status` shows it. */
export interface ClientStatus {
  /** This client's id. */
  client_id: string;
  /** `host:port` of burrowd. */
  server: string;
  /** Whether the control connection is up. */
  connected: boolean;
  /** Last heartbeat round trip. */
  rtt_ms: number | null;
  /** Every tunnel. */
  tunnels: Array<{
    name: string;
    type: string;
    status: TunnelState["status"];
    public_addr: string | null;
    local: string | null;
    managed: boolean;
    error: string | null;
    connections: number;
    active_connections: number;
    bytes_in: number;
    bytes_out: number;
  }>;
}

/**
 * How long the client waits for each answer of the handshake. Longer than
 * anything the server takes: it never sleeps before answering (its login
 * limiter refuses at once) and closes a handshake itself after
 * `server.handshake_timeout` (10 s by default). A client that gave up at
 * the same 10 s as a server delay would time out instead of logging in.
 */
const HANDSHAKE_TIMEOUT = 20_000;
const LOCAL_DIAL_TIMEOUT = 5_000;

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
  #tunnels: Map<string, TunnelConfig>;
  /** Tunnels the server manages in its database, as last pushed. */
  #managed = new Map<string, TunnelConfig & { remotePort?: number }>();
  #states = new Map<string, TunnelState>();
  /** Traffic per tunnel name. */
  #traffic = new Map<string, Traffic>();
  /** Last health-check result per tunnel (only tunnels with `health_check`). */
  #health = new Map<string, HealthChange>();
  /** The current connection, for messages sent outside the control loop. */
  #mux: Mux | null = null;
  /** Tunnels whose local service is known to be down (logged once per outage). */
  #localDown = new Set<string>();
  #rtt = 0;
  #heartbeatInterval = 10_000;
  /** Stable for this process, so a reconnect replaces its own stale session. */
  #clientId: string;

  /** Creates a client; nothing happens until {@linkcode BurrowClient.run}. */
  constructor(config: ClientConfig, options: BurrowClientOptions = {}) {
    this.#config = config;
    this.#log = (options.logger ?? nullLogger).child("client");
    this.#onTunnel = options.onTunnel;
    this.#tunnels = new Map(config.tunnels.map((t) => [t.name, t]));
    this.#clientId = config.client_id ?? `${Deno.hostname()}-${crypto.randomUUID().slice(0, 8)}`;
  }

  /** Tunnel states as last reported. */
  get tunnels(): TunnelState[] {
    return [...this.#states.values()];
  }

  #trafficOf(name: string): Traffic {
    let t = this.#traffic.get(name);
    if (!t) {
      t = { bytesIn: 0, bytesOut: 0, connections: 0, active: 0, live: new Set() };
      this.#traffic.set(name, t);
    }
    return t;
  }

  /**
   * What `burrow status` shows: each tunnel's state, public address, local
   * service, traffic so far (visitors → service `bytes_in`, service →
   * visitors `bytes_out`, including connections still open) and the RTT.
   */
  status(): ClientStatus {
    const tunnels = [...this.#states.values()].map((s) => {
      const config = this.#tunnels.get(s.name) ?? this.#managed.get(s.name);
      const t = this.#trafficOf(s.name);
      let bytesIn = t.bytesIn, bytesOut = t.bytesOut;
      for (const live of t.live) {
        bytesIn += live.received;
        bytesOut += live.sent;
      }
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
        bytes_in: bytesIn,
        bytes_out: bytesOut,
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
   * @throws {FatalClientError} on a version mismatch or certificate mismatch.
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
    const backoff = new Backoff(this.#config.reconnect);
    const server = `${this.#config.server_addr}:${this.#config.server_port}`;
    this.#startHealthChecks(checks);
    while (!signal.aborted) {
      let error: Error;
      try {
        error = await this.#session(signal, () => backoff.reset());
      } catch (e) {
        if (e instanceof FatalClientError) throw e;
        if (e instanceof AuthenticationError && !this.#config.reconnect.retry_auth_failures) {
          throw e;
        }
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
      if (delay === null) {
        throw new Error(
          `Giving up after ${this.#config.reconnect.max_retries} attempts to reach ${server}: ${error.message}`,
        );
      }
      this.#log.info("reconnecting", {
        server,
        attempt: backoff.attempt,
        delay_ms: delay,
        error: error.message,
      });
      await sleep(delay, signal);
    }
  }

  /** One connection: returns the error that ended it. */
  async #session(signal: AbortSignal, onConnected: () => void): Promise<Error> {
    const config = this.#config;
    const server = `${config.server_addr}:${config.server_port}`;
    let conn: Deno.TlsConn;
    try {
      conn = await dialTls({
        hostname: config.server_addr,
        port: config.server_port,
        caCerts: config.tls.ca_file ? [await Deno.readTextFile(config.tls.ca_file)] : undefined,
        fingerprint: config.server_fingerprint,
        insecure: config.tls.insecure_skip_verify,
        clientCert: await this.#clientCertificate(),
        signal,
      });
    } catch (error) {
      if (error instanceof CertificateError) throw new FatalClientError(error.message);
      throw error;
    }
    const mux = new Mux(conn, {
      role: "client",
      onStream: (stream) => this.#serveStream(stream),
      onGoAway: (reason) => this.#log.info("server going away", { reason }),
    });
    const abort = () => mux.close(new Error("Client stopped"));
    signal.addEventListener("abort", abort, { once: true });
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    try {
      const sessionId = await this.#handshake(mux);
      onConnected();
      this.#mux = mux;
      this.#log.info("connected", { server, session_id: sessionId });
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

  async #handshake(mux: Mux): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const receive = async (): Promise<Message> => {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Server did not answer within ${HANDSHAKE_TIMEOUT / 1000}s`)),
          HANDSHAKE_TIMEOUT,
        );
      });
      try {
        const bytes = await Promise.race([mux.recvControl(), timeout]);
        if (bytes === null) throw (await mux.closed) ?? new Error("Connection closed");
        const message = decodeControl(bytes);
        if (message.type === "error") {
          if (message.code === "auth_failed") {
            this.#log.error("authentication failed", { reason: message.message });
            throw new AuthenticationError(message.message);
          }
          if (message.code === "version_mismatch") throw new FatalClientError(message.message);
          if (message.retry_after !== undefined && message.retry_after > 0) {
            this.#log.warn("login refused for now", {
              reason: message.message,
              retry_after_s: message.retry_after,
            });
            // Capped at an hour: a wrong server must not park the client for good.
            throw new RetryLaterError(message.message, Math.min(message.retry_after, 3600) * 1000);
          }
          throw new Error(message.message);
        }
        return message;
      } finally {
        clearTimeout(timer);
      }
    };
    send(mux, {
      type: "hello",
      version: PROTOCOL_VERSION,
      min_version: MIN_PROTOCOL_VERSION,
      software: `burrow/${VERSION}`,
      client_id: this.#clientId,
    });
    const hello = await receive();
    if (hello.type !== "hello") throw new ProtocolError(`Expected "hello", got "${hello.type}"`);
    const agreed = negotiateVersion(hello, "server");
    if ("error" in agreed) throw new FatalClientError(agreed.error);
    send(mux, { type: "auth", method: "token", token: this.#config.auth_token.reveal() });
    const ack = await receive();
    if (ack.type !== "ack") throw new ProtocolError(`Expected "ack", got "${ack.type}"`);
    this.#heartbeatInterval = ack.heartbeat_interval;
    return ack.session_id;
  }

  #requestTunnel(mux: Mux, tunnel: TunnelConfig): void {
    this.#setState({ name: tunnel.name, status: "pending" });
    send(mux, {
      type: "control",
      action: "create_tunnel",
      tunnel_id: tunnel.name,
      config: {
        protocol: tunnel.type,
        local_port: tunnel.local_port,
        remote_port: tunnel.remote_port ?? 0,
        ...(tunnel.type === "udp" ? { session_timeout: tunnel.session_timeout ?? 30_000 } : {}),
        ...(tunnel.probe ? { probe: true } : {}),
        ...(tunnel.compression === "gzip" ? { compression: "gzip" } : {}),
        ...httpRequestFields(tunnel),
        ...(tunnel.allow_ips?.length ? { allow_ips: tunnel.allow_ips } : {}),
        ...(tunnel.deny_ips?.length ? { deny_ips: tunnel.deny_ips } : {}),
        ...(tunnel.group !== undefined
          ? {
            group: tunnel.group,
            group_key: tunnel.group_key?.reveal() ?? "",
            load_balance: tunnel.load_balance ?? "round_robin",
            weight: tunnel.weight ?? 1,
          }
          : {}),
      },
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

  /** The client certificate for mutual TLS (`client.tls.cert_file`/`key_file`), read once. */
  async #clientCertificate(): Promise<{ cert: string; key: string } | undefined> {
    const { cert_file, key_file } = this.#config.tls;
    if (!cert_file && !key_file) return undefined;
    if (!cert_file || !key_file) {
      throw new FatalClientError("client.tls.cert_file and client.tls.key_file go together");
    }
    try {
      return { cert: await Deno.readTextFile(cert_file), key: await Deno.readTextFile(key_file) };
    } catch (error) {
      throw new FatalClientError(`Cannot read the client certificate: ${(error as Error).message}`);
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
          const urls = message.urls?.map((u) => u.replace("<any host>", this.#config.server_addr));
          const publicAddr = urls?.[0] ?? `${this.#config.server_addr}:${message.remote_port}`;
          this.#setState({
            name: tunnel.name,
            status: "active",
            remotePort: message.remote_port!,
            publicAddr,
            ...(urls ? { urls } : {}),
          });
          this.#log.info("tunnel ready", {
            tunnel: tunnel.name,
            type: tunnel.type,
            remote_port: message.remote_port,
            public_addr: publicAddr,
            ...(urls ? { urls } : {}),
            local: `${tunnel.local_addr}:${tunnel.local_port}`,
          });
        } else if (message.status === "failed") {
          const reason = message.error ?? "refused by the server";
          this.#setState({ name: tunnel.name, status: "failed", error: reason });
          this.#log.error("tunnel failed", { tunnel: tunnel.name, reason });
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
        ...(t.remote_port !== undefined
          ? { remote_port: t.remote_port, remotePort: t.remote_port }
          : {}),
      } as TunnelConfig & { remotePort?: number };
      next.set(t.name, config);
      const local = `${t.local_addr}:${t.local_port}`;
      const before = this.#states.get(t.name);
      if (t.status === "active") {
        const urls = t.urls?.map((u) => u.replace("<any host>", this.#config.server_addr));
        const publicAddr = urls?.[0] ?? `${this.#config.server_addr}:${t.remote_port}`;
        const unchanged = before?.status === "active" && before.remotePort === t.remote_port &&
          before.publicAddr === publicAddr &&
          previous && `${previous.local_addr}:${previous.local_port}` === local;
        this.#setState({
          name: t.name,
          status: "active",
          managed: true,
          remotePort: t.remote_port!,
          publicAddr,
          ...(urls ? { urls } : {}),
        });
        if (!unchanged) {
          this.#log.info("tunnel ready", {
            tunnel: t.name,
            type: t.type,
            remote_port: t.remote_port,
            public_addr: publicAddr,
            ...(urls ? { urls } : {}),
            local,
            managed: true,
          });
        }
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

  #setState(state: TunnelState): void {
    this.#states.set(state.name, state);
    this.#onTunnel?.(state);
  }

  async #serveStream(stream: MuxStream): Promise<void> {
    const name = String(stream.meta.tunnel ?? "");
    const tunnel = this.#tunnels.get(name) ?? this.#managed.get(name);
    if (!tunnel) {
      stream.reset(`Unknown tunnel "${name}"`);
      return;
    }
    if (tunnel.type === "udp") return this.#serveUdp(stream, tunnel);
    let local: Deno.TcpConn;
    try {
      local = await dialLocal(tunnel.local_addr, tunnel.local_port);
    } catch (error) {
      const message = `local service ${tunnel.local_addr}:${tunnel.local_port} unavailable: ${
        (error as Error).message
      }`;
      stream.reset(message);
      if (!this.#localDown.has(name)) {
        this.#localDown.add(name);
        this.#log.error("local service unavailable", { tunnel: name, error: message });
      }
      return;
    }
    if (this.#localDown.delete(name)) {
      this.#log.info("local service restored", { tunnel: name });
    }
    local.setNoDelay(true);
    // The server's end-to-end probes are not visitors: they stay out of the traffic figures.
    const traffic = stream.meta.probe === true ? null : this.#trafficOf(name);
    const live = { sent: 0, received: 0 };
    if (traffic) {
      traffic.live.add(live);
      traffic.active++;
    }
    // The server says per stream whether it is gzipped (`compression: gzip`).
    const side = stream.meta.gzip === true ? compressedConn(local) : local;
    const result = await relay(side, stream, { maxBuffer: 128 * 1024, result: live });
    if (traffic) {
      traffic.live.delete(live);
      traffic.active--;
      traffic.connections++;
      // From the service's side: sent = to visitors, received = from visitors.
      traffic.bytesOut += live.sent;
      traffic.bytesIn += live.received;
    }
    if (result.error && this.#log.enabled("debug")) {
      this.#log.debug("stream ended with error", { tunnel: name, error: result.error });
    }
  }

  /**
   * One visitor's UDP session: datagrams from the stream go to the local
   * service from a socket of their own, its replies come back on the stream.
   * Neither direction waits on the other: each has a bounded queue that
   * drops the oldest (sends to the service are awaited one at a time,
   * replies travel several to a frame).
   */
  async #serveUdp(stream: MuxStream, tunnel: TunnelConfig): Promise<void> {
    const target: Deno.NetAddr = {
      transport: "udp",
      hostname: tunnel.local_addr,
      port: tunnel.local_port,
    };
    let socket: Deno.DatagramConn;
    try {
      socket = Deno.listenDatagram({
        transport: "udp",
        hostname: tunnel.local_addr.includes(":") ? "::" : "0.0.0.0",
        port: 0,
      });
    } catch (error) {
      stream.reset(`cannot open a UDP socket: ${(error as Error).message}`);
      this.#log.error("local service unavailable", { tunnel: tunnel.name, error });
      return;
    }
    raiseSocketBuffers(socket, this.#config.udp?.socket_buffer ?? 0, { logger: this.#log });
    const writer = new DatagramWriter(stream);
    const sender = new UdpSender(socket, target, {
      onError: (error) => {
        if (!this.#localDown.has(tunnel.name)) {
          this.#localDown.add(tunnel.name);
          this.#log.error("local service unavailable", { tunnel: tunnel.name, error });
        }
      },
    });
    const receiver = new UdpReceiver(socket);
    // Copied by the writer: the receiver reuses its buffer.
    const replies = receiver.run((data) => writer.send(data)).catch(() => {});
    try {
      for await (const batch of readDatagramBatches(stream)) {
        // Copied: the stream's buffer is reused next. Sent together once the batch is queued.
        for (const datagram of batch) sender.send(datagram);
      }
    } catch (error) {
      if (this.#log.enabled("debug")) {
        this.#log.debug("udp session ended with error", { tunnel: tunnel.name, error });
      }
    } finally {
      await sender.flushed();
      await sender.close();
      // Both use the socket's descriptor directly: they stop before it closes.
      receiver.stop();
      socket.close();
      await replies;
      writer.close();
      if (this.#log.enabled("debug")) {
        this.#log.debug("udp session closed", {
          tunnel: tunnel.name,
          datagrams_in: sender.sent,
          dropped_in: sender.dropped,
          datagrams_out: writer.sent,
          dropped_out: writer.dropped,
        });
      }
    }
  }
}

function send(mux: Mux, message: Message): void {
  mux.sendControl(encodeControl(message));
}

async function dialLocal(hostname: string, port: number): Promise<Deno.TcpConn> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), LOCAL_DIAL_TIMEOUT);
  try {
    return await Deno.connect({ hostname, port, signal: timeout.signal });
  } catch (error) {
    if (timeout.signal.aborted) {
      throw new Error(`connect timed out after ${LOCAL_DIAL_TIMEOUT / 1000}s`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The HTTP keys of a tunnel request (the server applies them). */
function httpRequestFields(tunnel: TunnelConfig): Record<string, unknown> {
  if (tunnel.type !== "http" && tunnel.type !== "https") return {};
  return {
    ...(tunnel.custom_domains?.length ? { custom_domains: tunnel.custom_domains } : {}),
    ...(tunnel.subdomain ? { subdomain: tunnel.subdomain } : {}),
    ...(tunnel.locations ? { locations: tunnel.locations } : {}),
    ...(tunnel.custom_headers ? { custom_headers: tunnel.custom_headers } : {}),
    ...(tunnel.request_headers ? { request_headers: tunnel.request_headers } : {}),
    ...(tunnel.response_headers ? { response_headers: tunnel.response_headers } : {}),
    ...(tunnel.basic_auth
      ? {
        basic_auth: { user: tunnel.basic_auth.user, password: tunnel.basic_auth.password.reveal() },
      }
      : {}),
    ...(tunnel.ssl_cert ? { ssl_cert: tunnel.ssl_cert } : {}),
    ...(tunnel.tls_passthrough ? { tls_passthrough: true } : {}),
  };
}

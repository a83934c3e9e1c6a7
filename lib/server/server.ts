/**
 * The Burrow server: the TLS control listener, the sessions of connected
 * clients, and graceful shutdown.
 *
 * @module
 */

import { join } from "node:path";
import type { ServerConfig } from "../config/types.ts";
import { loadServerCertificate } from "../transport/mod.ts";
import { formatAddr } from "../util/net.ts";
import { type Logger, nullLogger } from "../util/logger.ts";
import { Secret } from "../util/secret.ts";
import { VERSION } from "../util/version.ts";
import { ClientSession, type SessionHost } from "./session.ts";

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
  /** `sha256:` fingerprint of the control channel's certificate. */
  readonly fingerprint: string;
  /** The shared client token (configured, or generated in the data directory). */
  readonly token: Secret;

  #listener: Deno.TlsListener;
  #sessions = new Set<ClientSession>();
  #byClient = new Map<string, ClientSession>();
  /** Every connection's session, authenticated or still in its handshake. */
  #running = new Map<ClientSession, Promise<void>>();
  #accepting: Promise<void>;
  #stopping = false;
  #stopped: Promise<void> | null = null;

  private constructor(
    config: ServerConfig,
    logger: Logger,
    listener: Deno.TlsListener,
    fingerprint: string,
    token: Secret,
  ) {
    this.config = config;
    this.token = token;
    this.logger = logger;
    this.#listener = listener;
    this.fingerprint = fingerprint;
    this.#accepting = this.#acceptLoop();
  }

  /** Loads or generates the certificate and listens on the control port. */
  static async start(
    config: ServerConfig,
    options: BurrowServerOptions = {},
  ): Promise<BurrowServer> {
    const logger = (options.logger ?? nullLogger).child("server");
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
    let listener: Deno.TlsListener;
    try {
      listener = Deno.listenTls({
        hostname: config.bind_addr,
        port: config.bind_port,
        cert: tls.cert,
        key: tls.key,
      });
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new Error(
          `Control port ${config.bind_addr}:${config.bind_port} is already in use ` +
            `(server.bind_port): is another burrowd running?`,
        );
      }
      throw error;
    }
    const server = new BurrowServer(config, logger, listener, tls.fingerprint, token);
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
    return (this.#listener.addr as Deno.NetAddr).port;
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
  }

  /** @internal */
  unregister(session: ClientSession): void {
    this.#sessions.delete(session);
    if (this.#byClient.get(session.clientId) === session) this.#byClient.delete(session.clientId);
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.TlsConn;
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
    this.logger.info("stopped");
  }

  /** Same as `shutdown(0)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown(0);
  }
}

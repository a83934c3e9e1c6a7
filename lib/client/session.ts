/**
 * One of the client's sessions with its reconnect loop: it takes an address
 * from the client's ring (one no other session of the client holds), dials
 * it, logs in and keeps the control connection alive with heartbeats; when
 * the connection ends or the dial fails it waits out the `reconnect`
 * backoff and tries the next address. `ha_connections: 2` runs two of them.
 * What the server says about tunnels goes to the client, which owns the
 * tunnels, the local side and the health checks every session shares.
 *
 * @module
 */

import type { ClientConfig } from "../config/mod.ts";
import { Mux, type MuxStream } from "../mux/mod.ts";
import { decodeControl, encodeControl, type Message } from "../protocol/mod.ts";
import { UnreachableError } from "../transport/mod.ts";
import { Backoff, type LogFields, type Logger, sleep } from "../util/mod.ts";
import type { AddressBook, ServerAddress } from "./addresses.ts";
import { dialServer, explainHandshakeFailure } from "./dial.ts";
import {
  AuthenticationError,
  FatalClientError,
  NotBurrowdError,
  RetryLaterError,
} from "./errors.ts";
import { giveUpMessage } from "./explain.ts";
import { handshake } from "./handshake.ts";
import { RetryLog } from "./retry_log.ts";
import type { TunnelState } from "./state.ts";

/** What a session needs from the client that runs it. */
export interface SessionHost {
  readonly config: ClientConfig;
  readonly log: Logger;
  /** Stable for the process, so that a reconnect replaces its own stale session. */
  readonly clientId: string;
  /** The ring of server addresses all sessions take from. */
  readonly book: AddressBook;
  /** Keys of the addresses the client's sessions hold (dialing, connected or about to retry). */
  readonly busy: Set<string>;
  /** Serves a data stream the server opened. */
  serveStream(stream: MuxStream): Promise<void>;
  /** The session logged in: register the tunnels on it. */
  onConnected(session: ClientSession): void;
  /** A control message other than a heartbeat. */
  onControl(session: ClientSession, message: Message): void;
  /** The connection ended: its tunnels are no longer served through it. */
  onDisconnected(session: ClientSession): void;
}

/** A session that ran out of `reconnect.max_retries`: the others (if any) carry on. */
export class GaveUpError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "GaveUpError";
  }
}

/** One control connection at a time to one server address, reconnecting until stopped. */
export class ClientSession {
  /** 1-based, as logged (`session: 2`) when the client holds several. */
  readonly index: number;
  /** The address dialed or connected, null while none is free. */
  address: ServerAddress | null = null;
  /** The connection, once logged in. */
  mux: Mux | null = null;
  /** Last heartbeat round trip in ms (0 before the first). */
  rtt = 0;
  /** Tunnel states as this session's server reported them. */
  readonly states = new Map<string, TunnelState>();
  /** Configured tunnels the server has not answered for yet on this connection. */
  unanswered = new Set<string>();
  #host: SessionHost;
  #log: Logger;

  /** Session `index` of `host`; nothing happens until {@linkcode ClientSession.run}. */
  constructor(host: SessionHost, index: number) {
    this.#host = host;
    this.index = index;
    this.#log = host.config.ha_connections > 1
      ? withFields(host.log, { session: index })
      : host.log;
  }

  /** Whether the control connection is up. */
  get connected(): boolean {
    return this.mux !== null && !this.mux.isClosed;
  }

  /** Sends a control message if the connection is up. */
  send(message: Message): void {
    if (this.connected) this.mux!.sendControl(encodeControl(message));
  }

  /**
   * Connects and serves until `signal` aborts, moving to the next address
   * after each failure, per `client.reconnect`.
   *
   * @throws {AuthenticationError} when the server refuses the token (unless
   * `reconnect.retry_auth_failures` is set).
   * @throws {FatalClientError} on a version mismatch or a refused certificate.
   * @throws {NotBurrowdError} when an address answers like something else
   * (unless `reconnect.max_retries: 0` is written: then it retries).
   * @throws {GaveUpError} when `reconnect.max_retries` attempts have failed.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { config, book } = this.#host;
    const { reconnect } = config;
    const backoff = new Backoff(reconnect);
    const retries = new RetryLog(this.#log, book.written);
    // Only a written `max_retries: 0` keeps retrying an address that is not burrowd.
    const retryAnything = reconnect.max_retries === 0 && reconnect.max_retries_written === true;
    try {
      this.address = await this.#take(signal);
      while (!signal.aborted && this.address) {
        const address = this.address;
        let error: Error;
        try {
          error = await this.#connect(address, signal, () => {
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
          throw new GaveUpError(
            giveUpMessage(book.written, reconnect.max_retries, reason, unreachable !== null),
          );
        }
        // The next address is taken now, so that no other session takes it while this one waits.
        this.#release();
        const to = await this.#take(signal);
        // Nothing answering may be a server coming up; something else answering is a wrong address.
        const level = unreachable ? "warn" : error instanceof NotBurrowdError ? "error" : "info";
        retries.failed(reason, level, {
          server: address.label,
          ...(to && to.key !== address.key ? { next: to.label } : {}),
          attempt: backoff.attempt,
          delay_ms: delay,
        });
        await sleep(delay, signal);
      }
    } finally {
      this.#release();
    }
  }

  /**
   * The next free address of the ring, taken; while the other sessions hold
   * every one (`ha_connections` above the addresses there are), waits and
   * asks again, as names may resolve to more later.
   */
  async #take(signal: AbortSignal): Promise<ServerAddress | null> {
    const { book, busy, config } = this.#host;
    // Its own backoff: waiting for a free address is not a failed attempt and never gives up.
    const waiting = new Backoff({ ...config.reconnect, max_retries: 0 });
    let told = false;
    while (!signal.aborted) {
      const address = await book.next(busy);
      if (address) {
        busy.add(address.key);
        this.address = address;
        return address;
      }
      if (!told) {
        told = true;
        this.#log.info("no free server address for this session: waiting for one", {
          ha_connections: config.ha_connections,
          addresses: book.size,
        });
      }
      await sleep(waiting.next()!, signal);
    }
    return null;
  }

  #release(): void {
    if (this.address) this.#host.busy.delete(this.address.key);
    this.address = null;
  }

  /** One connection to `address`: returns the error that ended it. */
  async #connect(
    address: ServerAddress,
    signal: AbortSignal,
    onConnected: () => void,
  ): Promise<Error> {
    const host = this.#host;
    const server = address.label;
    const conn = await dialServer(host.config, address, signal);
    const mux = new Mux(conn, {
      role: "client",
      onStream: (stream) => host.serveStream(stream),
      onGoAway: (reason) => this.#log.info("server going away", { server, reason }),
    });
    const abort = () => mux.close(new Error("Client stopped"));
    signal.addEventListener("abort", abort, { once: true });
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    try {
      const { sessionId, heartbeatInterval } = await handshake(mux, {
        clientId: host.clientId,
        token: host.config.auth_token.reveal(),
        logger: this.#log,
      }).catch((error) => {
        throw explainHandshakeFailure(error, address);
      });
      onConnected();
      this.mux = mux;
      this.#log.info("connected", { server, session_id: sessionId });
      host.onConnected(this);

      let lastSeen = performance.now();
      heartbeat = setInterval(() => {
        if (performance.now() - lastSeen > heartbeatInterval * 3) {
          const silent = Math.round(heartbeatInterval * 3 / 1000);
          mux.close(new Error(`No answer from the server for ${silent}s`));
          return;
        }
        this.send({ type: "heartbeat", timestamp: Date.now(), status: "online" });
      }, heartbeatInterval);

      for (;;) {
        const bytes = await mux.recvControl();
        if (bytes === null) break;
        lastSeen = performance.now();
        const message = decodeControl(bytes);
        if (message.type === "heartbeat") this.rtt = Math.max(0, Date.now() - message.timestamp);
        else host.onControl(this, message);
      }
      return (await mux.closed) ?? new Error("Connection closed");
    } catch (error) {
      mux.close(error as Error);
      throw error;
    } finally {
      clearInterval(heartbeat);
      signal.removeEventListener("abort", abort);
      mux.close();
      if (this.mux === mux) {
        this.mux = null;
        host.onDisconnected(this);
      }
      if (!signal.aborted) {
        this.#log.warn("disconnected", { server, error: (await mux.closed)?.message });
      }
    }
  }
}

/** `log` with `fields` on every event (which session of several said it). */
function withFields(log: Logger, fields: LogFields): Logger {
  return {
    debug: (msg, more) => log.debug(msg, { ...fields, ...more }),
    info: (msg, more) => log.info(msg, { ...fields, ...more }),
    warn: (msg, more) => log.warn(msg, { ...fields, ...more }),
    error: (msg, more) => log.error(msg, { ...fields, ...more }),
    child: (component) => withFields(log.child(component), fields),
    enabled: (level) => log.enabled(level),
  };
}

/**
 * The server's side of a new control connection's handshake: `hello` (the
 * protocol version both speak), then `auth` (the token), then `ack` with
 * the session id; all within `server.handshake_timeout`. Every refusal is
 * an `error` message that names the problem before the connection closes.
 *
 * @module
 */

import {
  type ErrorMessage,
  type Message,
  MIN_PROTOCOL_VERSION,
  negotiateVersion,
  ProtocolError,
} from "../protocol/mod.ts";
import type { ServerConfig } from "../config/mod.ts";
import { type Logger, VERSION } from "../util/mod.ts";
import type { AuthResult, Principal } from "./login.ts";

/** Milliseconds a new connection has to complete hello and auth by default. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

/** The control connection as the handshake uses it. */
export interface HandshakeChannel {
  /** The next control message; `null` when the connection ended. */
  receive(): Promise<Message | null>;
  /** Queues a control message. */
  send(message: Message): void;
  /** Sends `error`, flushes it and closes: the handshake failed. */
  refuse(code: ErrorMessage["code"], message: string, retryAfter?: number): Promise<void>;
  /** Closes at once (the deadline passed: there is no one to tell). */
  close(reason: string): void;
}

/** What the handshake asks of the server. */
export interface HandshakeHost {
  /** A slot for a handshake from `address`, or why there is none. */
  enterHandshake(address: string): Disposable | { message: string };
  /** Checks the client's token. */
  authenticate(token: string, address: string, clientId: string): Promise<AuthResult>;
  /** Whether another client may log in now (max_clients). */
  hasRoom(): boolean;
  /** `max_clients` (named when the server is full) and `heartbeat_interval` (told in `ack`). */
  readonly config: Pick<ServerConfig, "max_clients" | "heartbeat_interval">;
}

/** The session being greeted: what `hello` says is written into it as it arrives. */
export interface Greeted {
  /** Its `host:port`, for logs. */
  readonly remote: string;
  /** Its address without the port, for login limits and policy. */
  readonly remoteHost: string;
  /** The session's id, told in `ack`. */
  readonly sessionId: string;
  /** The client's stable id from `hello` (the session id when it sent none). */
  clientId: string;
  /** The client's software from `hello`, e.g. `burrow/0.1.0`. */
  software: string;
  /** The protocol version agreed in `hello`. */
  protocolVersion: number;
}

/**
 * Runs the handshake of `peer` on `channel`: resolves to who logged in, or
 * to `null` when the client was refused (and told why), timed out (closed)
 * or went away.
 *
 * @throws {ProtocolError} when the client sends something else than `hello`, then `auth`.
 */
export async function acceptHandshake(
  channel: HandshakeChannel,
  host: HandshakeHost,
  peer: Greeted,
  options: { timeoutMs: number; logger: Logger },
): Promise<Principal | null> {
  const log = options.logger;
  const refuse = async (code: ErrorMessage["code"], message: string, retryAfter?: number) => {
    await channel.refuse(code, message, retryAfter);
    return null;
  };
  // Refused before reading anything: the client's hello gets this error as its answer.
  const slot = host.enterHandshake(peer.remoteHost);
  if ("message" in slot) return await refuse("limit", slot.message);
  using _slot = slot;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
  });
  const next = async (): Promise<Message | null> => {
    const message = await Promise.race([channel.receive(), timedOut]);
    if (message !== "timeout") return message;
    channel.close(`Handshake not completed within ${options.timeoutMs / 1000}s`);
    return null;
  };
  try {
    const hello = await next();
    if (hello === null) return null;
    if (hello.type !== "hello") {
      throw new ProtocolError(`Expected "hello" first, got "${hello.type}"`);
    }
    const agreed = negotiateVersion(hello, "client");
    if ("error" in agreed) {
      log.warn("version mismatch", { remote: peer.remote, error: agreed.error });
      return await refuse("version_mismatch", agreed.error);
    }
    channel.send({
      type: "hello",
      version: agreed.version,
      min_version: MIN_PROTOCOL_VERSION,
      software: `burrowd/${VERSION}`,
    });
    peer.clientId = hello.client_id ?? peer.sessionId;
    peer.software = hello.software;
    peer.protocolVersion = agreed.version;
    const clientId = peer.clientId;
    const auth = await next();
    if (auth === null) return null;
    if (auth.type !== "auth") {
      throw new ProtocolError(`Expected "auth" after "hello", got "${auth.type}"`);
    }
    const result = await host.authenticate(auth.token, peer.remoteHost, clientId);
    if (!result.ok) {
      const fields = { remote: peer.remote, client_id: clientId };
      if (result.code === "auth_failed") {
        log.warn("authentication failed", { ...fields, reason: result.message });
        // The code says what failed; the message is the reason alone, which the client
        // prints after its own "authentication failed:" (once, not twice).
        return await refuse("auth_failed", result.message);
      }
      // Counted and logged (sparingly) by the login limiter: a flood must not flood the log.
      if (result.code === "limit") return await refuse("limit", result.message, result.retryAfter);
      log.warn("login refused: database unavailable", fields);
      return await refuse("unavailable", result.message);
    }
    if (!host.hasRoom()) {
      log.warn("client refused: server full", {
        remote: peer.remote,
        max_clients: host.config.max_clients,
      });
      return await refuse(
        "server_busy",
        `Server is full (max_clients ${host.config.max_clients})`,
      );
    }
    channel.send({
      type: "ack",
      session_id: peer.sessionId,
      heartbeat_interval: host.config.heartbeat_interval,
    });
    return result.principal;
  } finally {
    clearTimeout(timer);
  }
}

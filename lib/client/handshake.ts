/**
 * The client's side of logging in: the certificate it presents for mutual
 * TLS, and the hello/auth exchange on a new control connection, with the
 * server's refusals told apart (wrong token, no common version, wait and
 * retry).
 *
 * @module
 */

import type { ClientConfig } from "../config/mod.ts";
import type { Mux } from "../mux/mod.ts";
import {
  decodeControl,
  encodeControl,
  type Message,
  MIN_PROTOCOL_VERSION,
  negotiateVersion,
  PROTOCOL_VERSION,
  ProtocolError,
} from "../protocol/mod.ts";
import type { Logger } from "../util/mod.ts";
import { VERSION } from "../util/mod.ts";
import { AuthenticationError, FatalClientError, RetryLaterError } from "./errors.ts";

/**
 * How long the client waits for each answer of the handshake. Longer than
 * anything the server takes: it never sleeps before answering (its login
 * limiter refuses at once) and closes a handshake itself after
 * `server.handshake_timeout` (10 s by default). A client that gave up at
 * the same 10 s as a server delay would time out instead of logging in.
 */
const HANDSHAKE_TIMEOUT = 20_000;

/** The client certificate for mutual TLS (`client.tls.cert_file`/`key_file`), read once. */
export async function readClientCertificate(
  tls: Pick<ClientConfig["tls"], "cert_file" | "key_file">,
): Promise<{ cert: string; key: string } | undefined> {
  const { cert_file, key_file } = tls;
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

/** Who the client is, for {@linkcode handshake}. */
export interface HandshakeOptions {
  /** Stable for the process, so that a reconnect replaces its own stale session. */
  clientId: string;
  /** The token, revealed. */
  token: string;
  /** Where refusals are logged. */
  logger: Logger;
}

/** What the server granted. */
export interface Session {
  /** The server's id of this session. */
  sessionId: string;
  /** How often to send heartbeats, ms. */
  heartbeatInterval: number;
}

/**
 * Says hello, agrees on a protocol version and logs in with the token over
 * `mux`'s control channel. Throws {@linkcode AuthenticationError} when the
 * token is refused, {@linkcode FatalClientError} when no version fits,
 * {@linkcode RetryLaterError} when the server's login limiter says to wait,
 * and a plain error for anything else (lost connection, no answer in time).
 */
export async function handshake(mux: Mux, options: HandshakeOptions): Promise<Session> {
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
          options.logger.error("authentication failed", { reason: message.message });
          // Older servers send "authentication failed: <reason>"; keep the reason alone.
          throw new AuthenticationError(message.message.replace(/^authentication failed: /, ""));
        }
        if (message.code === "version_mismatch") throw new FatalClientError(message.message);
        if (message.retry_after !== undefined && message.retry_after > 0) {
          options.logger.warn("login refused for now", {
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
    client_id: options.clientId,
  });
  const hello = await receive();
  if (hello.type !== "hello") throw new ProtocolError(`Expected "hello", got "${hello.type}"`);
  const agreed = negotiateVersion(hello, "server");
  if ("error" in agreed) throw new FatalClientError(agreed.error);
  send(mux, { type: "auth", method: "token", token: options.token });
  const ack = await receive();
  if (ack.type !== "ack") throw new ProtocolError(`Expected "ack", got "${ack.type}"`);
  return { sessionId: ack.session_id, heartbeatInterval: ack.heartbeat_interval };
}

function send(mux: Mux, message: Message): void {
  mux.sendControl(encodeControl(message));
}

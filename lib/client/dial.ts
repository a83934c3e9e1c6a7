/**
 * The client's dial of the control port, with the transport's failures
 * turned into what the reconnect loop and the program act on: a refused
 * certificate is fatal and says how to fix it, a server address that
 * answers like something else is a {@linkcode NotBurrowdError}, a server
 * that cannot be reached stays an `UnreachableError` to retry.
 *
 * @module
 */

import type { ClientConfig } from "../config/mod.ts";
import { ProtocolError } from "../protocol/mod.ts";
import { CertificateError, classifyReply, dialTls, NotTlsError } from "../transport/mod.ts";
import { FatalClientError, NotBurrowdError } from "./errors.ts";
import { explainCertificate, notBurrowdMessage } from "./explain.ts";
import { readClientCertificate } from "./handshake.ts";
import type { ServerAddress } from "./addresses.ts";

/**
 * Connects over TLS to `address`, one of the servers of `config`, checking
 * its certificate for the name configured (not the address it resolved to).
 *
 * @throws {FatalClientError} when its certificate is refused, saying what to do.
 * @throws {NotBurrowdError} when it answers in another protocol than TLS.
 * @throws {UnreachableError} (from the transport) when nothing accepts the connection.
 */
export async function dialServer(
  config: ClientConfig,
  address: ServerAddress,
  signal: AbortSignal,
): Promise<Deno.TlsConn> {
  try {
    return await dialTls({
      hostname: address.hostname,
      port: address.port,
      serverName: address.serverName,
      caCerts: config.tls.ca_file ? [await Deno.readTextFile(config.tls.ca_file)] : undefined,
      fingerprint: config.server_fingerprint,
      insecure: config.tls.insecure_skip_verify,
      clientCert: await readClientCertificate(config.tls),
      signal,
    });
  } catch (error) {
    if (error instanceof CertificateError) {
      throw new FatalClientError(explainCertificate(error, {
        host: address.serverName,
        pinned: config.server_fingerprint,
        caFile: config.tls.ca_file !== undefined,
      }));
    }
    if (error instanceof NotTlsError) {
      throw new NotBurrowdError(notBurrowdMessage(address.label, error.looksLike));
    }
    throw error;
  }
}

/**
 * The error to report for a Burrow handshake over TLS that failed with
 * `error` with `address`: a {@linkcode NotBurrowdError} when what came back in place of
 * the server's hello was another protocol, else `error` itself.
 */
export function explainHandshakeFailure(error: unknown, address: ServerAddress): unknown {
  if (!(error instanceof ProtocolError) || !error.received) return error;
  const looksLike = classifyReply(error.received, "burrow");
  return looksLike ? new NotBurrowdError(notBurrowdMessage(address.label, looksLike)) : error;
}

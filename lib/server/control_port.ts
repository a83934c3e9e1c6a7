/**
 * The control port: where clients connect, on Deno's TLS (the faster one)
 * or on node:tls (mutual TLS, TLS 1.3 only, or when FFI is off), each a
 * {@linkcode TlsListener} of the transport folder. A taken port is named
 * with its configuration key.
 *
 * @module
 */

import type { ServerConfig } from "../config/mod.ts";
import {
  listenDenoTls,
  listenMutualTls,
  loadServerCertificate,
  nodeTlsListener,
  type TlsListener,
} from "../transport/mod.ts";
import { type Logger, sockopt } from "../util/mod.ts";

/**
 * The control port's certificate: `server.tls.cert_file` and `key_file`, or
 * the one generated (at first use) in the data directory.
 */
export function controlCertificate(
  config: ServerConfig,
): ReturnType<typeof loadServerCertificate> {
  return loadServerCertificate({
    certFile: config.tls.cert_file,
    keyFile: config.tls.key_file,
    dataDir: config.storage.data_dir,
    names: [Deno.hostname()],
  });
}

/** Listens on `server.bind_addr`:`bind_port` with the certificate `tls`. */
export async function listenControlPort(
  config: ServerConfig,
  tls: { cert: string; key: string },
  logger: Logger,
): Promise<TlsListener> {
  const plain = !config.tls.client_ca_file && config.tls.min_version === "1.2";
  // Deno's TLS is the faster control port, but it needs FFI for TCP_NODELAY and for a
  // handshake deadline that frees the socket; node:tls does both by itself.
  if (plain && sockopt.available()) return denoListener(config, tls, logger);
  if (plain) {
    logger.info("control port on node:tls instead of Deno's TLS", {
      reason: sockopt.unavailableReason,
    });
  }
  return await nodeListener(config, tls, logger);
}

/** The control port on Deno's TLS; a taken port is named with its configuration key. */
function denoListener(config: ServerConfig, tls: { cert: string; key: string }, logger: Logger) {
  let listener: TlsListener;
  try {
    listener = listenDenoTls({ hostname: config.bind_addr, port: config.bind_port, ...tls });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Control port ${config.bind_addr}:${config.bind_port} is already in use ` +
          `(server.bind_port): is another burrowd running?`,
      );
    }
    throw error;
  }
  logger.info("control port on Deno's TLS (TLS 1.3, and 1.2 for clients that ask)");
  return listener;
}

/** node:tls: TLS 1.3 only unless `min_version` says 1.2, and mutual TLS when a client CA is configured. */
async function nodeListener(
  config: ServerConfig,
  tls: { cert: string; key: string },
  logger: Logger,
): Promise<TlsListener> {
  const file = config.tls.client_ca_file;
  let ca: string | undefined;
  if (file) {
    try {
      ca = await Deno.readTextFile(file);
    } catch (error) {
      throw new Error(
        `server.tls.client_ca_file: cannot read ${file}: ${(error as Error).message}`,
      );
    }
  }
  const minVersion = !file && config.tls.min_version === "1.2" ? "TLSv1.2" : "TLSv1.3";
  const listener = await listenMutualTls({
    hostname: config.bind_addr,
    port: config.bind_port,
    cert: tls.cert,
    key: tls.key,
    ca,
    minVersion,
    onHandshakeError: (remote, error) =>
      logger.warn(file ? "client certificate refused" : "TLS handshake refused", {
        remote,
        error: error.message,
      }),
  });
  if (file) {
    logger.info("mutual TLS on the control port", { client_ca_file: file, min_version: "TLSv1.3" });
  } else if (minVersion === "TLSv1.3") logger.info("TLS 1.3 only on the control port");
  return nodeTlsListener(listener);
}

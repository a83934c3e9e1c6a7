/**
 * The public HTTP and HTTPS ports (`server.vhost_http_port`,
 * `server.vhost_https_port`), opened at start.
 *
 * @module
 */

import type { ServerConfig } from "../config/mod.ts";
import type { Logger } from "../util/mod.ts";
import { HttpFront } from "./http_front.ts";
import type { VhostCertificates } from "./vhost_certs.ts";

/** Opens the shared HTTP and HTTPS ports that the configuration asks for. */
export async function openVhosts(
  config: ServerConfig,
  logger: Logger,
  certificates: VhostCertificates,
  fallback: { cert: string; key: string },
  onUnrouted: (kind: string) => void,
): Promise<{ http: HttpFront | null; https: HttpFront | null }> {
  const headerTimeout = config.handshake_timeout ?? 10_000;
  const log = logger.child("http");
  let https: HttpFront | null = null;
  if (config.vhost_https_port !== undefined) {
    https = await HttpFront.listen({
      hostname: config.bind_addr,
      port: config.vhost_https_port,
      scheme: "https",
      logger: log,
      headerTimeout,
      certificates,
      fallbackCertificate: fallback,
      onUnrouted,
    }).catch((error) => {
      throw new Error(
        `Cannot listen on vhost_https_port ${config.vhost_https_port}: ${error.message}`,
      );
    });
    log.info("https vhost listening", { addr: config.bind_addr, port: https.port });
  }
  let http: HttpFront | null = null;
  if (config.vhost_http_port !== undefined) {
    try {
      http = await HttpFront.listen({
        hostname: config.bind_addr,
        port: config.vhost_http_port,
        scheme: "http",
        logger: log,
        headerTimeout,
        acmeChallenge: (token) => certificates.challengeResponse(token),
        httpsRouter: https?.router,
        httpsPort: https?.port,
        onUnrouted,
      });
    } catch (error) {
      await https?.close();
      throw new Error(
        `Cannot listen on vhost_http_port ${config.vhost_http_port}: ${(error as Error).message}`,
      );
    }
    log.info("http vhost listening", { addr: config.bind_addr, port: http.port });
  }
  return { http, https };
}

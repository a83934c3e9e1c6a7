/**
 * Where the HTTPS port's certificates come from, by server name: files
 * listed in `server.vhost_https_certs`, else ACME for names served by a
 * tunnel with `ssl_cert: auto`, else nothing (the port then falls back to
 * the control port's certificate).
 *
 * @module
 */

import type { ServerConfig } from "../config/mod.ts";
import type { Logger } from "../util/mod.ts";
import { patternCovers } from "../util/mod.ts";
import { CertManager } from "./acme.ts";
import type { CertificateSource } from "./http_front.ts";
import type { HttpTunnel } from "./tunnels/http_tunnel.ts";

/**
 * Certificates of the HTTPS port.
 *
 * @example
 * ```ts ignore
 * const certs = new VhostCertificates(config, logger);
 * const pem = await certs.certificate("app.example.com", tunnels);
 * ```
 */
export class VhostCertificates implements CertificateSource {
  #config: ServerConfig;
  #log: Logger;
  #files = new Map<string, Promise<{ cert: string; key: string }>>();
  #acme: CertManager | null = null;
  #renewing = false;

  /** Certificates as `config` describes them. */
  constructor(config: ServerConfig, logger: Logger) {
    this.#config = config;
    this.#log = logger;
  }

  /** The ACME client, created when a tunnel first asks for an automatic certificate. */
  #manager(): CertManager {
    if (!this.#acme) {
      const acme = this.#config.acme;
      let caBundle: string | undefined;
      if (acme.ca_file) {
        try {
          caBundle = Deno.readTextFileSync(acme.ca_file);
        } catch (error) {
          throw new Error(`server.acme.ca_file "${acme.ca_file}": ${(error as Error).message}`);
        }
      }
      this.#acme = new CertManager({
        dataDir: this.#config.storage.data_dir,
        directoryUrl: acme.directory_url,
        email: acme.email,
        caBundle,
        logger: this.#log,
        renewBefore: acme.renew_before,
      });
      if (this.#renewing) this.#acme.startRenewal();
    }
    return this.#acme;
  }

  /** The certificate for `host`, or `null` to use the fallback. */
  async certificate(
    host: string,
    tunnels: HttpTunnel[],
  ): Promise<{ cert: string; key: string } | null> {
    const entry = this.#config.vhost_https_certs.find((c) =>
      c.domains.some((d) => patternCovers(d.toLowerCase(), host, { oneLabel: true }))
    );
    if (entry) {
      const key = `${entry.cert_file}\0${entry.key_file}`;
      let loading = this.#files.get(key);
      if (!loading) {
        loading = Promise.all([
          Deno.readTextFile(entry.cert_file),
          Deno.readTextFile(entry.key_file),
        ]).then(([cert, key]) => ({ cert, key }));
        this.#files.set(key, loading);
        loading.catch((error) => {
          this.#files.delete(key);
          this.#log.error("certificate file unreadable", {
            host,
            cert_file: entry.cert_file,
            error,
          });
        });
      }
      return await loading;
    }
    // Only names a tunnel asked for: a stranger's SNI must not make the server order certificates.
    if (tunnels.some((t) => t.autoCert && t.hosts.includes(host))) {
      return await this.#manager().certificate(host);
    }
    return null;
  }

  /** The HTTP-01 answer for `token`, while an order waits for it. */
  challengeResponse(token: string): string | undefined {
    return this.#acme?.challengeResponse(token);
  }

  /** Re-reads certificate files on their next use. */
  reload(): void {
    this.#files.clear();
  }

  /** Renews ACME certificates before they expire (from now on). */
  startRenewal(): void {
    this.#renewing = true;
    this.#acme?.startRenewal();
  }

  /** Stops renewal timers. Safe to call twice. */
  close(): void {
    void this.#acme?.close();
  }
}

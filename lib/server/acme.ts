/**
 * Automatic HTTPS certificates over ACME (RFC 8555) with HTTP-01 challenges.
 *
 * {@linkcode CertManager} obtains a certificate per domain from an ACME CA
 * (Let's Encrypt by default), keeps it in `<dataDir>/certs/`, hands out the
 * key authorizations that the HTTP vhost serves under
 * `/.well-known/acme-challenge/<token>`, and renews certificates before they
 * expire. The protocol work is done by `npm:acme-client`.
 *
 * @example
 * ```ts ignore
 * import { CertManager } from "./acme.ts";
 * import { createLogger } from "../util/logger.ts";
 * const certs = new CertManager({ dataDir: "./burrow-data", logger: createLogger() });
 * certs.startRenewal();
 * const { cert, key } = await certs.certificate("app.example.com");
 * await certs.close();
 * ```
 *
 * @module
 */

import type * as Acme from "acme-client";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { type Logger, writeFileAtomic } from "../util/mod.ts";
import { useTransport } from "./acme_http.ts";

let acmeModule: Promise<typeof Acme> | undefined;

/**
 * acme-client, loaded on first use: with its HTTP stack it is the largest
 * module burrowd would otherwise load at start, and most servers never order
 * a certificate.
 */
function loadAcme(): Promise<typeof Acme> {
  return acmeModule ??= import("acme-client");
}

/** The directory of Let's Encrypt's production CA, the default of {@linkcode CertManagerOptions.directoryUrl}. */
export const LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";

/** Default of {@linkcode CertManagerOptions.renewBefore}: 30 days. */
const RENEW_BEFORE_MS = 30 * 86_400_000;
/** Default interval of {@linkcode CertManager.startRenewal}: 12 hours. */
const RENEW_INTERVAL_MS = 12 * 3_600_000;
/** Polling of pending challenges and orders: first delay, longest delay, attempts. */
const POLL = { backoffMin: 500, backoffMax: 10_000, backoffAttempts: 10 };
/** After a failed order, no new order for the domain for this long (doubling up to a cap). */
const FAILURE_HOLD_MS = 60_000;
const FAILURE_HOLD_MAX_MS = 6 * 3_600_000;

/** Options of {@linkcode CertManager}. */
export interface CertManagerOptions {
  /**
   * Where certificates live: `<dataDir>/certs/<domain>.crt` (full chain) and
   * `<domain>.key` (mode 0600), plus the ACME account key `account.key`.
   */
  dataDir: string;
  /** ACME directory URL. Default {@linkcode LETS_ENCRYPT_DIRECTORY}. */
  directoryUrl?: string | undefined;
  /** Contact address registered with the ACME account. Default: none. */
  email?: string | undefined;
  /**
   * PEM certificates trusted for the ACME server's own HTTPS besides the
   * built-in roots, such as the test CA of a pebble server. Default: none.
   */
  caBundle?: string | undefined;
  /** Where `certificate issued`, `certificate loaded` and failures go. */
  logger: Logger;
  /**
   * Renew a certificate this many milliseconds before it expires (never later
   * than two thirds into its lifetime). Default 30 days.
   */
  renewBefore?: number | undefined;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  now?: (() => number) | undefined;
}

/** A certificate with its private key, as handed to `Deno.listenTls`. */
export interface ManagedCertificate {
  /** PEM certificate chain: the domain's certificate first, then its issuers. */
  cert: string;
  /** PEM private key (PKCS#8). */
  key: string;
  /** When the certificate expires. */
  notAfter: Date;
}

interface Held extends ManagedCertificate {
  notBefore: Date;
}

interface Failure {
  at: number;
  holdMs: number;
  reason: string;
}

/**
 * Obtains, stores and renews certificates for domains over ACME with HTTP-01
 * challenges.
 *
 * The HTTP vhost must answer `GET /.well-known/acme-challenge/<token>` on
 * port 80 of each domain with {@linkcode CertManager.challengeResponse}.
 * Certificates are kept in `<dataDir>/certs/` and reused across restarts;
 * concurrent requests for one domain share one order. After a failed order
 * the domain is held back (one minute, doubling up to six hours) so that
 * visitors cannot make the server hammer the CA.
 *
 * @example
 * ```ts
 * import { CertManager } from "./acme.ts";
 * import { nullLogger } from "../util/logger.ts";
 * const dataDir = await Deno.makeTempDir();
 * const certs = new CertManager({ dataDir, logger: nullLogger });
 * console.log(certs.challengeResponse("no-such-token")); // undefined
 * await certs.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export class CertManager implements AsyncDisposable {
  #dir: string;
  #directoryUrl: string;
  #email: string | undefined;
  #log: Logger;
  #renewBefore: number;
  #now: () => number;
  #http: Deno.HttpClient;
  #abort = new AbortController();
  #client: Promise<Acme.Client> | undefined;
  #held = new Map<string, Held>();
  #pending = new Map<string, Promise<ManagedCertificate>>();
  #failures = new Map<string, Failure>();
  #challenges = new Map<string, string>();
  #domains = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #renewing: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Creates a manager; nothing is read or contacted until a certificate is
   * asked for.
   *
   * @example
   * ```ts
   * import { CertManager } from "./acme.ts";
   * import { nullLogger } from "../util/logger.ts";
   * await using certs = new CertManager({
   *   dataDir: "./burrow-data",
   *   directoryUrl: "https://acme-staging-v02.api.letsencrypt.org/directory",
   *   email: "ops@example.com",
   *   logger: nullLogger,
   * });
   * ```
   */
  constructor(options: CertManagerOptions) {
    this.#dir = `${options.dataDir}/certs`;
    this.#directoryUrl = options.directoryUrl ?? LETS_ENCRYPT_DIRECTORY;
    this.#email = options.email;
    this.#log = options.logger.child("acme");
    this.#renewBefore = options.renewBefore ?? RENEW_BEFORE_MS;
    if (!(this.#renewBefore >= 0)) {
      throw new RangeError(`Invalid renewBefore "${options.renewBefore}": must be >= 0`);
    }
    this.#now = options.now ?? Date.now;
    this.#http = Deno.createHttpClient(options.caBundle ? { caCerts: [options.caBundle] } : {});
  }

  /**
   * The certificate of `domain`: the one held or stored when it is not due for
   * renewal, else a newly ordered one. Rejects with an `Error` naming the
   * domain and the CA's reason when no usable certificate can be had (a
   * failed renewal of a still valid certificate is logged and the old one is
   * returned). Rejects with a `TypeError` for a name that is not a DNS domain.
   *
   * @example
   * ```ts ignore
   * const { cert, key, notAfter } = await certs.certificate("app.example.com");
   * const listener = Deno.listenTls({ port: 443, cert, key });
   * ```
   */
  certificate(domain: string): Promise<ManagedCertificate> {
    let name: string;
    try {
      name = normalizeDomain(domain);
    } catch (error) {
      return Promise.reject(error);
    }
    const held = this.#held.get(name);
    if (held && !this.#due(held)) return Promise.resolve(publicView(held));
    if (this.#closing) return Promise.reject(new Error("Certificate manager is closed"));
    this.#domains.add(name);
    let pending = this.#pending.get(name);
    if (!pending) {
      pending = this.#obtain(name).finally(() => this.#pending.delete(name));
      this.#pending.set(name, pending);
    }
    return pending;
  }

  /**
   * The key authorization for the HTTP-01 `token` of an order in progress, or
   * `undefined` when no such challenge is pending.
   *
   * @example
   * ```ts ignore
   * // In the HTTP vhost, before routing by Host:
   * const prefix = "/.well-known/acme-challenge/";
   * if (url.pathname.startsWith(prefix)) {
   *   const body = certs.challengeResponse(url.pathname.slice(prefix.length));
   *   return body === undefined ? new Response("Not found", { status: 404 }) : new Response(body);
   * }
   * ```
   */
  challengeResponse(token: string): string | undefined {
    return this.#challenges.get(token);
  }

  /**
   * Re-checks every domain obtained so far each `intervalMs` (default 12 h)
   * and renews those within `renewBefore` of expiry (logged
   * `certificate renewed`). Calling it again restarts the timer.
   *
   * @example
   * ```ts
   * import { CertManager } from "./acme.ts";
   * import { nullLogger } from "../util/logger.ts";
   * const certs = new CertManager({ dataDir: "./burrow-data", logger: nullLogger });
   * certs.startRenewal(60 * 60_000);
   * await certs.close(); // stops the timer
   * ```
   */
  startRenewal(intervalMs: number = RENEW_INTERVAL_MS): void {
    if (this.#closing) throw new Error("Certificate manager is closed");
    if (!(intervalMs > 0)) throw new RangeError(`Invalid interval "${intervalMs}": must be > 0`);
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = setInterval(() => this.#renewDue(), intervalMs);
  }

  /**
   * Stops the renewal timer, makes orders in progress fail at their next
   * request to the CA and waits for them. Safe to call twice.
   *
   * @example
   * ```ts
   * import { CertManager } from "./acme.ts";
   * import { nullLogger } from "../util/logger.ts";
   * const certs = new CertManager({ dataDir: "./burrow-data", logger: nullLogger });
   * await certs.close();
   * await certs.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#timer !== undefined) clearInterval(this.#timer);
      this.#timer = undefined;
      this.#abort.abort();
      await Promise.allSettled([...this.#pending.values(), this.#renewing]);
      this.#challenges.clear();
      this.#http.close();
    })();
    return this.#closing;
  }

  /** Same as {@linkcode CertManager.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #renewDue(): void {
    if (this.#renewing || this.#closing) return;
    this.#renewing = (async () => {
      for (const domain of this.#domains) {
        const held = this.#held.get(domain);
        if (held && !this.#due(held)) continue;
        if (this.#closing) return;
        // Failures are logged by #obtain; the next tick tries again.
        await this.certificate(domain).catch(() => {});
      }
    })().finally(() => (this.#renewing = undefined));
  }

  /** Whether `held` should be renewed now. */
  #due(held: Held): boolean {
    const lifetime = held.notAfter.getTime() - held.notBefore.getTime();
    const margin = Math.min(this.#renewBefore, lifetime / 3);
    return held.notAfter.getTime() - this.#now() <= margin;
  }

  async #obtain(domain: string): Promise<ManagedCertificate> {
    let held = this.#held.get(domain);
    if (!held) {
      held = await this.#load(domain);
      if (held) this.#held.set(domain, held);
    }
    if (held && !this.#due(held)) return publicView(held);
    const stillValid = held && held.notAfter.getTime() > this.#now() ? held : undefined;

    const failure = this.#failures.get(domain);
    if (failure && this.#now() < failure.at + failure.holdMs) {
      if (stillValid) return publicView(stillValid);
      throw new Error(
        `Failed to obtain a certificate for "${domain}": ${failure.reason} ` +
          `(next attempt after ${new Date(failure.at + failure.holdMs).toISOString()})`,
      );
    }

    let issued: Held;
    try {
      issued = await this.#order(domain);
    } catch (error) {
      if (this.#abort.signal.aborted) throw new Error("Certificate manager is closed");
      const reason = error instanceof Error ? error.message : String(error);
      const holdMs = failure ? Math.min(failure.holdMs * 2, FAILURE_HOLD_MAX_MS) : FAILURE_HOLD_MS;
      this.#failures.set(domain, { at: this.#now(), holdMs, reason });
      if (stillValid) {
        this.#log.warn("certificate renewal failed", {
          domain,
          error: reason,
          not_after: stillValid.notAfter.toISOString(),
        });
        return publicView(stillValid);
      }
      this.#log.error("certificate order failed", { domain, error: reason });
      throw new Error(`Failed to obtain a certificate for "${domain}": ${reason}`, {
        cause: error,
      });
    }
    this.#failures.delete(domain);
    this.#held.set(domain, issued);
    try {
      await this.#store(domain, issued);
    } catch (error) {
      // Served from memory until the next restart, which orders again.
      this.#log.error("certificate not stored", {
        domain,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    this.#log.info(held ? "certificate renewed" : "certificate issued", {
      domain,
      not_after: issued.notAfter.toISOString(),
      ...(held ? { previous_not_after: held.notAfter.toISOString() } : {}),
    });
    return publicView(issued);
  }

  /** Reads the stored certificate of `domain`; `undefined` when absent or unusable. */
  async #load(domain: string): Promise<Held | undefined> {
    let cert: string, key: string;
    try {
      [cert, key] = await Promise.all([
        Deno.readTextFile(`${this.#dir}/${domain}.crt`),
        Deno.readTextFile(`${this.#dir}/${domain}.key`),
      ]);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw new Error(
        `Failed to read the stored certificate of "${domain}": ${(error as Error).message}`,
        { cause: error },
      );
    }
    try {
      const held = inspect(domain, cert, key);
      this.#log.info("certificate loaded", { domain, not_after: held.notAfter.toISOString() });
      return held;
    } catch (error) {
      this.#log.warn("stored certificate unusable", {
        domain,
        error: error instanceof Error ? error.message : String(error),
      });
      return undefined;
    }
  }

  async #store(domain: string, held: Held): Promise<void> {
    await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    // Key first: a crash in between leaves a certificate that does not match
    // its key, which #load rejects, rather than an old key with a new chain.
    await writeFileAtomic(`${this.#dir}/${domain}.key`, held.key, 0o600);
    await writeFileAtomic(`${this.#dir}/${domain}.crt`, held.cert, 0o644);
  }

  async #order(domain: string): Promise<Held> {
    const client = await this.#acmeClient();
    const acme = await loadAcme();
    const [keyPem, csr] = await acme.crypto.createCsr(
      { commonName: domain, altNames: [domain] },
      await acme.crypto.createPrivateEcdsaKey(),
    );
    const tokens = new Set<string>();
    let cert: string;
    try {
      cert = await client.auto({
        csr,
        ...(this.#email ? { email: this.#email } : {}),
        termsOfServiceAgreed: true,
        // The self-check would fetch http://<domain>/ from this host, which
        // behind NAT or split DNS proves nothing; the CA's check is the one
        // that counts.
        skipChallengeVerification: true,
        challengePriority: ["http-01"],
        challengeCreateFn: (authz, challenge, keyAuthorization) => {
          if (challenge.type !== "http-01") {
            return Promise.reject(
              new Error(`The CA offers no HTTP-01 challenge for "${authz.identifier.value}"`),
            );
          }
          tokens.add(challenge.token);
          this.#challenges.set(challenge.token, keyAuthorization);
          return Promise.resolve();
        },
        challengeRemoveFn: (_authz, challenge) => {
          this.#challenges.delete(challenge.token);
          return Promise.resolve();
        },
      });
    } finally {
      for (const token of tokens) this.#challenges.delete(token);
    }
    return inspect(domain, cert, keyPem.toString());
  }

  #acmeClient(): Promise<Acme.Client> {
    if (!this.#client) {
      const client = (async () => {
        const accountKey = await this.#accountKey();
        const acme = await loadAcme();
        const client = new acme.Client({ directoryUrl: this.#directoryUrl, accountKey, ...POLL });
        useTransport(client, this.#http, this.#abort.signal);
        return client;
      })();
      // Try again on the next order (say, the data directory was not writable).
      client.catch(() => {
        if (this.#client === client) this.#client = undefined;
      });
      this.#client = client;
    }
    return this.#client;
  }

  async #accountKey(): Promise<string> {
    const path = `${this.#dir}/account.key`;
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const acme = await loadAcme();
    const key = (await acme.crypto.createPrivateEcdsaKey()).toString();
    await writeFileAtomic(path, key, 0o600);
    return key;
  }
}

/** Parses and checks a certificate chain and key for `domain`. */
function inspect(domain: string, cert: string, key: string): Held {
  const leaf = new X509Certificate(cert);
  const names = (leaf.subjectAltName ?? "").split(/,\s*/)
    .filter((n) => n.startsWith("DNS:"))
    .map((n) => n.slice(4).toLowerCase());
  if (!names.includes(domain)) {
    throw new Error(`Certificate does not name "${domain}" (names: ${names.join(", ") || "none"})`);
  }
  if (!leaf.checkPrivateKey(createPrivateKey(key))) {
    throw new Error(`Certificate of "${domain}" does not match its private key`);
  }
  return { cert, key, notAfter: new Date(leaf.validTo), notBefore: new Date(leaf.validFrom) };
}

function publicView(held: Held): ManagedCertificate {
  return { cert: held.cert, key: held.key, notAfter: held.notAfter };
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Lower-cases `domain` and checks that it is a DNS name with at least two
 * labels (it becomes a file name, and the CA only issues for such names).
 */
function normalizeDomain(domain: string): string {
  const name = domain.toLowerCase().replace(/\.$/, "");
  const labels = name.split(".");
  if (
    name.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l)) ||
    /^[0-9]+$/.test(labels.at(-1)!)
  ) {
    throw new TypeError(
      `Invalid domain "${domain}": expected a DNS name such as "app.example.com"`,
    );
  }
  return name;
}

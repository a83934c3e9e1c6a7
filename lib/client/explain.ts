/**
 * The sentences `burrow` says when it cannot get to burrowd: what happened
 * and what to do about it, with the setting or flag that does it. Pure.
 *
 * @example
 * ```ts
 * import { notBurrowdMessage } from "./explain.ts";
 * console.assert(
 *   notBurrowdMessage("127.0.0.1:8080", "an HTTP server")
 *     .startsWith("127.0.0.1:8080 answered like an HTTP server, not burrowd."),
 * );
 * ```
 *
 * @module
 */

import type { CertificateError, PresentedCertificate } from "../transport/mod.ts";

/** `2026-11-30T13:57:13Z`. */
function day(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function selfSigned(presented: PresentedCertificate): boolean {
  return presented.issuer === presented.subject;
}

/** Where the server address is set, as the fix names it. */
const SERVER_SETTING = "--server (or client.server_addr and server_port)";

/** What {@linkcode explainCertificate} needs to know of the client's settings. */
export interface CertificateContext {
  /** The address dialed (`client.server_addr`). */
  host: string;
  /** The pinned fingerprint (`client.server_fingerprint`), if any. */
  pinned?: string | undefined;
  /** Whether the server was verified against `client.tls.ca_file`. */
  caFile?: boolean;
}

/**
 * What to tell a person about a refused server certificate: the problem,
 * what the server presented, and the flag or setting that fixes it.
 */
export function explainCertificate(error: CertificateError, context: CertificateContext): string {
  const { host, pinned } = context;
  const presented = error.presented;
  const fingerprint = presented?.fingerprint;
  switch (error.problem) {
    case "untrusted": {
      if (!presented) {
        return `The server's certificate is not trusted (${error.message}); pass the fingerprint ` +
          "burrowd printed at start (or `burrowd fingerprint` prints) with --fingerprint, or set " +
          "client.server_fingerprint";
      }
      if (!selfSigned(presented)) {
        // A pin is the certificate's own trust anchor: that works for a self-signed one only.
        return `The server's certificate (${fingerprint}) is not trusted: it was issued by ` +
          `${presented.issuer}, which this client does not trust. Pass that CA's certificate ` +
          `with --ca-file or set client.tls.ca_file${
            pinned === fingerprint
              ? " (a pinned fingerprint works for self-signed certificates only)"
              : ""
          }`;
      }
      return `The server's certificate is not trusted. Its fingerprint is ${fingerprint}; if that ` +
        "matches what burrowd printed at start (or `burrowd fingerprint` prints), pass " +
        `--fingerprint ${fingerprint} or set client.server_fingerprint`;
    }
    case "wrong_name": {
      const names = presented?.names.length ? presented.names.join(", ") : null;
      const pin = !presented || !selfSigned(presented)
        ? `have its certificate issued for ${host} as well`
        : `pin it with --fingerprint ${fingerprint}${
          context.caFile ? " in place of --ca-file" : ""
        } (client.server_fingerprint${
          context.caFile ? " in place of client.tls.ca_file" : ""
        }), which does not check names`;
      return `The server's certificate is ${names ? `for ${names}, not` : "not for"} ${host}: ` +
        `connect to ${names ? "one of those names" : "a name it is for"} with ${SERVER_SETTING}, ` +
        `or ${pin}`;
    }
    case "expired":
      return `The server's certificate ${
        presented ? `(${fingerprint}) expired on ${day(presented.validTo)}` : "has expired"
      }: renew it on the server (replace server.tls.cert_file and key_file, then send burrowd ` +
        "SIGHUP to reload them), or set this machine's clock right if it is wrong";
    case "not_yet_valid":
      return `The server's certificate ${
        presented
          ? `(${fingerprint}) is not valid before ${day(presented.validFrom)}`
          : "is not valid yet"
      }: set this machine's clock right, or wait until the certificate is valid`;
    case "pin_mismatch":
      return `The server's certificate${
        fingerprint ? ` (${fingerprint})` : ""
      } does not match the pinned ${pinned ?? "fingerprint"}: refusing to connect, as its ` +
        "certificate changed or someone is in between. If burrowd's certificate was replaced on " +
        "purpose, pin the new one in --fingerprint or client.server_fingerprint (`burrowd " +
        "fingerprint` on the server prints it)";
    case "client_certificate":
      return `The server ${
        /CertificateRequired|certificate required/i.test(error.message)
          ? "requires a client certificate"
          : "refused the client certificate"
      } (${error.message}): set client.tls.cert_file and client.tls.key_file to a certificate ` +
        "signed by its CA (server.tls.client_ca_file)";
    case "other":
      return `${error.message}: pin the server's certificate with --fingerprint or ` +
        "client.server_fingerprint (`burrowd fingerprint` prints it), or set client.tls.ca_file " +
        "to the CA that issued it";
  }
}

/** What to tell a person whose server address answered like `looksLike` (`an HTTP server`). */
export function notBurrowdMessage(server: string, looksLike: string): string {
  return `${server} answered like ${looksLike}, not burrowd. Point ${SERVER_SETTING} at ` +
    "burrowd's control port (server.bind_port, 7000 by default)";
}

/** What to tell a person when `max_retries` attempts to reach `server` failed with `reason`. */
export function giveUpMessage(
  server: string,
  attempts: number,
  reason: string,
  unreachable: boolean,
): string {
  const fix = unreachable
    ? `. Start burrowd there, or point ${SERVER_SETTING} at where it runs`
    : "";
  return `Giving up after ${attempts} attempts to reach ${server}: ${reason}${fix}`;
}

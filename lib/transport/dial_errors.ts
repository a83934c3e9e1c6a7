/**
 * How a dial to the control port fails, told apart so that the client can
 * say what happened and what to do: nothing answered (the server may be
 * coming up: retry), something answered that is not TLS, or the server's
 * certificate is not the one the client trusts (with what it presented).
 *
 * @example
 * ```ts
 * import { certificateProblem, unreachableReason } from "./dial_errors.ts";
 * console.assert(certificateProblem("invalid peer certificate: UnknownIssuer") === "untrusted");
 * console.assert(
 *   unreachableReason(new Deno.errors.ConnectionRefused("x"), "h") === "connection refused",
 * );
 * ```
 *
 * @module
 */

/** Nothing accepted the TCP connection: refused, unreachable, unresolvable or silent. */
export class UnreachableError extends Error {
  /** Short and lowercase, e.g. `connection refused`. */
  readonly reason: string;
  /** Creates the error. */
  constructor(reason: string) {
    super(`Cannot connect: ${reason}`);
    this.name = "UnreachableError";
    this.reason = reason;
  }
}

/** The server accepted the connection but answered the TLS handshake in another protocol. */
export class NotTlsError extends Error {
  /** What it looks like, following "answered like": `an HTTP server`, … */
  readonly looksLike: string;
  /** Creates the error. */
  constructor(looksLike: string) {
    super(`The server answered like ${looksLike}, not over TLS`);
    this.name = "NotTlsError";
    this.looksLike = looksLike;
  }
}

/**
 * Why a certificate was refused: not signed by anything trusted, not for
 * the address dialed, expired, not valid yet, not the pinned one, or the
 * server wants a client certificate (or refused ours).
 */
export type CertificateProblem =
  | "untrusted"
  | "wrong_name"
  | "expired"
  | "not_yet_valid"
  | "pin_mismatch"
  | "client_certificate"
  | "other";

/** What the server presented, read from a connection that did not verify it. */
export interface PresentedCertificate {
  /** `sha256:` + 64 lowercase hex digits. */
  fingerprint: string;
  /** DNS names and IP addresses it is for (subjectAltName). */
  names: string[];
  /** Its subject, e.g. `CN=burrowd`. */
  subject: string;
  /** Its issuer; the subject again when self-signed. */
  issuer: string;
  /** Start of validity. */
  validFrom: Date;
  /** End of validity. */
  validTo: Date;
}

/** Options of {@linkcode CertificateError}. */
export interface CertificateErrorOptions {
  /** Why it was refused. Default `other`. */
  problem?: CertificateProblem;
  /** What the server presented, when it could be read. */
  presented?: PresentedCertificate | undefined;
}

/** The server's certificate did not match what the client trusts. */
export class CertificateError extends Error {
  /** Why it was refused. */
  readonly problem: CertificateProblem;
  /** What the server presented, when it could be read. */
  readonly presented: PresentedCertificate | undefined;
  /** Creates the error. */
  constructor(message: string, options: CertificateErrorOptions = {}) {
    super(message);
    this.name = "CertificateError";
    this.problem = options.problem ?? "other";
    this.presented = options.presented;
  }
}

/**
 * The problem a TLS library's refusal names (rustls's wording, as Deno
 * reports it), or `null` when `message` is not about a certificate.
 */
export function certificateProblem(message: string): CertificateProblem | null {
  // The server's alerts about certificates are about the client's.
  if (
    /CertificateRequired|certificate required|fatal alert: (\w*Certificate|UnknownCA)/i.test(
      message,
    )
  ) {
    return "client_certificate";
  }
  if (!/certificate/i.test(message)) return null;
  if (/UnknownIssuer|unknown issuer/i.test(message)) return "untrusted";
  if (/NotValidForName|not valid for name/i.test(message)) return "wrong_name";
  if (/expired/i.test(message)) return "expired";
  if (/NotValidYet|not valid yet/i.test(message)) return "not_yet_valid";
  return "other";
}

const NODE_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  EHOSTUNREACH: "no route to host",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "no answer (connect timed out)",
};

/**
 * Why a TCP connect to `hostname` failed, short and lowercase (`connection
 * refused`, `cannot resolve "h"`), from Deno's or node's error; `null` when
 * `error` is not one of a connect that nothing answered.
 */
export function unreachableReason(error: unknown, hostname: string): string | null {
  if (!(error instanceof Error)) return null;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && code in NODE_CODES) return NODE_CODES[code]!;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || /lookup address/i.test(error.message)) {
    return `cannot resolve "${hostname}"`;
  }
  if (error instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (error instanceof Deno.errors.NetworkUnreachable) return "network unreachable";
  if (/no route to host/i.test(error.message)) return "no route to host";
  if (error instanceof Deno.errors.TimedOut || /^Connecting to .* timed out/.test(error.message)) {
    return "no answer (connect timed out)";
  }
  return null;
}

/** Whether a TLS handshake failed on bytes that are not TLS at all. */
export function notTlsAnswer(error: unknown): boolean {
  return error instanceof Error && /corrupt message|wrong version number/i.test(error.message);
}

/** Whether the server closed (or reset) the connection during the TLS handshake. */
export function closedDuringHandshake(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.ConnectionReset ||
    (error as { code?: unknown }).code === "ECONNRESET" ||
    /unexpected end of file|disconnected before secure TLS|connection reset/i.test(error.message);
}

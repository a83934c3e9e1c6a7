/**
 * What a server looks like from the first bytes it answered: the way the
 * client tells a person that its server address is an HTTP server, an SSH
 * server or a PostgreSQL server rather than burrowd. Pure; the bytes come
 * from the dial's probe or from the first frame the Burrow hello got back.
 *
 * @example
 * ```ts
 * import { classifyReply } from "./peer_reply.ts";
 * const reply = new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n");
 * console.assert(classifyReply(reply, "tls") === "an HTTP server");
 * ```
 *
 * @module
 */

/**
 * What was sent before the reply:
 * - `tls`: a TLS ClientHello over plain TCP;
 * - `postgres`: PostgreSQL's SSLRequest (8 bytes), which only PostgreSQL answers with one byte;
 * - `burrow`: the Burrow hello, over a TLS connection that completed.
 */
export type ProbeSent = "tls" | "postgres" | "burrow";

const decoder = new TextDecoder();

function startsWith(bytes: Uint8Array, text: string): boolean {
  if (bytes.length < text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Printable ASCII, tab, CR and LF only. */
function isText(bytes: Uint8Array): boolean {
  return bytes.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d);
}

function hex(bytes: Uint8Array): string {
  return "0x" + [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A PostgreSQL ErrorResponse: `E`, a length of 4 to 64 KiB, then a field
 * code (severity, localized severity, SQLSTATE or message).
 */
function isPostgresError(bytes: Uint8Array): boolean {
  if (bytes.length < 6 || bytes[0] !== 0x45) return false;
  const length = ((bytes[1]! << 24) | (bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!) >>> 0;
  return length >= 4 && length <= 65_536 && "SVCM".includes(String.fromCharCode(bytes[5]!));
}

/**
 * What the server that sent `reply` (in answer to `sent`) looks like, as a
 * phrase that follows "answered like": `an HTTP server`, `an SSH server`, …
 * `null` when the reply says nothing against burrowd: nothing at all, a TLS
 * record in answer to a ClientHello, or a Burrow frame.
 */
export function classifyReply(reply: Uint8Array, sent: ProbeSent): string | null {
  if (reply.length === 0) return null;
  if (sent === "postgres") {
    // "S" (TLS welcome) or "N" (no TLS) alone, or an error: nothing else answers an SSLRequest so.
    const oneByte = reply.length === 1 && (reply[0] === 0x53 || reply[0] === 0x4e);
    return oneByte || isPostgresError(reply) ? "a PostgreSQL server" : null;
  }
  if (sent === "burrow" && startsWith(reply, "BURW")) return null;
  // A TLS record (alert or handshake) answers a ClientHello as a TLS server does.
  if (sent === "tls" && reply[0]! >= 0x14 && reply[0]! <= 0x17 && reply[1] === 0x03) return null;
  if (startsWith(reply, "HTTP/")) return sent === "burrow" ? "an HTTPS server" : "an HTTP server";
  if (startsWith(reply, "SSH-")) return "an SSH server";
  if (isPostgresError(reply)) return "a PostgreSQL server";
  if (isText(reply)) {
    const line = decoder.decode(reply).split(/\r?\n/)[0]!.trim().slice(0, 40);
    if (line) return `a server of a text protocol (it said "${line}")`;
  }
  return sent === "burrow"
    ? `a TLS server that does not speak the Burrow protocol (it sent ${hex(reply)})`
    : `a server that does not speak TLS (it sent ${hex(reply)})`;
}

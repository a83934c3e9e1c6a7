/**
 * A second look at a server whose TLS handshake failed without a word about
 * certificates: connect again, send a few bytes, and keep the first bytes of
 * its answer, for {@linkcode classifyReply} to say what it is.
 *
 * @module
 */

import type { ProbeSent } from "./peer_reply.ts";

/**
 * A minimal TLS 1.3 ClientHello (one cipher suite, supported_versions only):
 * enough for a server that is not TLS to answer as it answers a real one.
 */
const CLIENT_HELLO = new Uint8Array([
  ...[0x16, 0x03, 0x01, 0x00, 0x36], // handshake record, 54 bytes
  ...[0x01, 0x00, 0x00, 0x32, 0x03, 0x03], // ClientHello, 50 bytes, legacy version 1.2
  ...new Array(32).fill(0), // random
  ...[0x00], // no session id
  ...[0x00, 0x02, 0x13, 0x01], // TLS_AES_128_GCM_SHA256
  ...[0x01, 0x00], // no compression
  ...[0x00, 0x07, 0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04], // supported_versions: TLS 1.3
]);

/** PostgreSQL's SSLRequest: length 8, code 80877103. */
const SSL_REQUEST = new Uint8Array([0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f]);

/**
 * Connects to `hostname:port`, sends what `sent` names (`tls` or
 * `postgres`), and resolves with the first bytes the server answers (up to
 * 256): empty when it closes, refuses, or says nothing within `timeout` ms.
 * Never throws.
 */
export async function probeReply(
  hostname: string,
  port: number,
  sent: Exclude<ProbeSent, "burrow">,
  timeout: number,
): Promise<Uint8Array> {
  let conn: Deno.TcpConn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const close = () => {
    try {
      conn?.close();
    } catch { /* closed */ }
  };
  const exchange = (async () => {
    conn = await Deno.connect({ hostname, port });
    if (timer === undefined) close(); // the deadline passed while connecting
    await conn.write(sent === "tls" ? CLIENT_HELLO : SSL_REQUEST);
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    return buf.slice(0, n ?? 0);
  })().catch(() => new Uint8Array());
  const deadline = new Promise<Uint8Array>((resolve) => {
    timer = setTimeout(() => {
      timer = undefined;
      close();
      resolve(new Uint8Array());
    }, timeout);
  });
  try {
    return await Promise.race([exchange, deadline]);
  } finally {
    clearTimeout(timer);
    timer = undefined;
    close();
  }
}

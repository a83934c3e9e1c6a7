/**
 * Reads the server name (SNI) out of the first bytes a TLS client sends, so
 * the HTTPS port can pick a tunnel before any TLS is spoken: pass the bytes
 * through untouched, or terminate TLS with the right certificate.
 *
 * @module
 */

/** Most bytes waited for before giving up on finding a ClientHello. */
export const MAX_CLIENT_HELLO = 16 * 1024 + 5;

/**
 * The SNI host name in `bytes` (lower case), `null` when the ClientHello
 * has none, `undefined` when more bytes are needed.
 *
 * @throws {TypeError} when the bytes are not a TLS ClientHello.
 *
 * @example
 * ```ts
 * import { readSni } from "./sni.ts";
 * console.assert(readSni(new Uint8Array([22, 3, 1])) === undefined);
 * ```
 */
export function readSni(bytes: Uint8Array): string | null | undefined {
  if (bytes.length < 5) {
    if (bytes.length > 0 && bytes[0] !== 22) throw new TypeError("Not a TLS handshake");
    return undefined;
  }
  if (bytes[0] !== 22 || bytes[1] !== 3) throw new TypeError("Not a TLS handshake");
  const recordLength = (bytes[3]! << 8) | bytes[4]!;
  if (recordLength < 4) throw new TypeError("TLS record too short for a ClientHello");
  if (bytes.length < 5 + recordLength) {
    if (5 + recordLength > MAX_CLIENT_HELLO) throw new TypeError("TLS record too long");
    return undefined;
  }
  // One record is enough: every real client fits its ClientHello in the first record.
  const view = bytes.subarray(5, 5 + recordLength);
  if (view[0] !== 1) throw new TypeError("First TLS handshake message is not a ClientHello");
  const helloLength = (view[1]! << 16) | (view[2]! << 8) | view[3]!;
  const hello = view.subarray(4, 4 + Math.min(helloLength, view.length - 4));
  let at = 2 + 32; // version, random
  const need = (n: number) => {
    if (at + n > hello.length) throw new TypeError("ClientHello is truncated");
  };
  need(1);
  at += 1 + hello[at]!; // session id
  need(2);
  at += 2 + ((hello[at]! << 8) | hello[at + 1]!); // cipher suites
  need(1);
  at += 1 + hello[at]!; // compression methods
  if (at === hello.length) return null; // no extensions
  need(2);
  const end = at + 2 + ((hello[at]! << 8) | hello[at + 1]!);
  at += 2;
  if (end > hello.length) throw new TypeError("ClientHello extensions are truncated");
  while (at + 4 <= end) {
    const type = (hello[at]! << 8) | hello[at + 1]!;
    const length = (hello[at + 2]! << 8) | hello[at + 3]!;
    at += 4;
    if (at + length > end) throw new TypeError("ClientHello extension is truncated");
    if (type === 0) {
      // server_name: list length, then entries of (type, length, name).
      let p = at + 2;
      while (p + 3 <= at + length) {
        const nameType = hello[p]!;
        const nameLength = (hello[p + 1]! << 8) | hello[p + 2]!;
        p += 3;
        if (p + nameLength > at + length) throw new TypeError("server_name is truncated");
        if (nameType === 0) {
          const name = new TextDecoder().decode(hello.subarray(p, p + nameLength));
          if (!/^[A-Za-z0-9.-]{1,253}$/.test(name)) {
            throw new TypeError(`server_name ${JSON.stringify(name)} is not a host name`);
          }
          return name.toLowerCase();
        }
        p += nameLength;
      }
      return null;
    }
    at += length;
  }
  return null;
}

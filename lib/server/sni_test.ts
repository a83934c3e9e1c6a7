// The SNI reader parses the first bytes a stranger sends to the HTTPS port:
// every malformed input must end in a TypeError, never another throw or a
// wrong name.

import { assert, assertEquals } from "../testing/mod.ts";
import { xorshift32 } from "../util/mod.ts";
import { MAX_CLIENT_HELLO, readSni } from "./sni.ts";

const u16 = (n: number) => [n >> 8, n & 0xff];

/** A TLS record holding a ClientHello, with a server_name extension when `name` is given. */
function clientHello(name?: string, extra: number[] = []): Uint8Array {
  const extensions: number[] = [];
  if (name !== undefined) {
    const host = [...new TextEncoder().encode(name)];
    const entry = [0, ...u16(host.length), ...host];
    const list = [...u16(entry.length), ...entry];
    extensions.push(...u16(0), ...u16(list.length), ...list);
  }
  extensions.push(...extra);
  const body = [
    3,
    3,
    ...new Array(32).fill(7), // random
    0, // session id
    ...u16(2),
    0x13,
    0x01, // one cipher suite
    1,
    0, // compression: null
    ...(extensions.length ? [...u16(extensions.length), ...extensions] : []),
  ];
  const handshake = [1, 0, ...u16(body.length), ...body];
  return new Uint8Array([22, 3, 1, ...u16(handshake.length), ...handshake]);
}

Deno.test("sni: the name is read and lowered; none is null; a short read asks for more", () => {
  assertEquals(readSni(clientHello("App.Example.COM")), "app.example.com");
  assertEquals(readSni(clientHello()), null, "no extensions at all");
  // Another extension (ALPN-like, type 16) before none for the name.
  assertEquals(readSni(clientHello(undefined, [0, 16, 0, 2, 0, 0])), null);
  const full = clientHello("a.test");
  for (const n of [0, 1, 4, 5, full.length - 1]) {
    assertEquals(readSni(full.subarray(0, n)), undefined, `${n} bytes`);
  }
});

Deno.test("sni: what is not a ClientHello, or lies about its lengths, is a TypeError", () => {
  const refused = (bytes: Uint8Array, what: string) => {
    let error: unknown;
    try {
      readSni(bytes);
    } catch (e) {
      error = e;
    }
    assert(error instanceof TypeError, `${what}: expected a TypeError, got ${error}`);
  };
  refused(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"), "plain HTTP");
  refused(new Uint8Array([71]), "one byte of HTTP");
  const hello = clientHello("a.test");
  const notHello = hello.slice();
  notHello[5] = 2; // a ServerHello
  refused(notHello, "another handshake message");
  refused(new Uint8Array([22, 3, 1, 0xff, 0xff]), "a record longer than any ClientHello");
  assert(0xffff + 5 > MAX_CLIENT_HELLO);
  refused(clientHello("bad name!"), "a server_name that is no host name");
  refused(clientHello("x.test").subarray(0, 60).with(4, 55), "a hello cut inside its extensions");
});

Deno.test("sni: 20,000 mutated hellos end in a name, null, undefined or a TypeError", () => {
  const random = xorshift32(0x5ee5);
  const base = clientHello("fuzz.example.com", [0, 16, 0, 5, 0, 3, 2, 104, 50]);
  for (let i = 0; i < 20_000; i++) {
    const bytes = base.slice(0, 1 + Math.floor(random() * base.length));
    for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) {
      bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    }
    try {
      const name = readSni(bytes);
      assert(name === undefined || name === null || /^[a-z0-9.-]{1,253}$/.test(name), String(name));
    } catch (error) {
      assert(error instanceof TypeError, `case ${i}: ${error}`);
    }
  }
});

// Both control-port listeners behind one interface: a TLS round trip, a
// certificate reload that new connections see and old ones survive, a close
// that ends accept, and (Deno's) a handshake that never comes freed at close.

import { assert, assertEquals, within } from "../testing/mod.ts";
import { listenDenoTls, nodeTlsListener, type TlsListener } from "./listener.ts";
import { listenMutualTls } from "./node_tls.ts";
import { generateSelfSigned } from "./tls.ts";

const [first, second] = await Promise.all([
  generateSelfSigned(["first.test"]),
  generateSelfSigned(["second.test"]),
]);

const implementations: Array<[string, () => Promise<TlsListener>]> = [
  ["Deno TLS", () => Promise.resolve(listenDenoTls({ hostname: "127.0.0.1", port: 0, ...first }))],
  ["node:tls", async () =>
    nodeTlsListener(
      await listenMutualTls({
        hostname: "127.0.0.1",
        port: 0,
        ...first,
        onHandshakeError: () => {},
      }),
    )],
];

/** Connects trusting only `cert`; resolves with the connection once the handshake is done. */
async function dial(port: number, cert: string): Promise<Deno.TlsConn> {
  const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [cert] });
  await conn.handshake();
  return conn;
}

/** Echoes what `conn` reads until it ends. */
async function echo(
  conn: { read(p: Uint8Array): Promise<number | null>; write(p: Uint8Array): Promise<number> },
) {
  const buf = new Uint8Array(1024);
  for (let n; (n = await conn.read(buf)) !== null;) await conn.write(buf.slice(0, n));
}

async function roundTrip(conn: Deno.TlsConn, text: string): Promise<string> {
  await conn.write(new TextEncoder().encode(text));
  const buf = new Uint8Array(1024);
  const n = await conn.read(buf);
  return new TextDecoder().decode(buf.subarray(0, n ?? 0));
}

for (const [name, listen] of implementations) {
  Deno.test(`${name} listener: round trip, certificate reload, close`, async () => {
    const listener = await listen();
    const served: Promise<void>[] = [];
    const accepting = (async () => {
      for (;;) {
        let conn;
        try {
          conn = await listener.accept();
        } catch {
          return;
        }
        served.push(echo(conn).catch(() => {}).finally(() => conn.close()));
      }
    })();
    const before = await dial(listener.port, first.cert);
    assertEquals(await roundTrip(before, "one"), "one");

    await listener.reload(second.cert, second.key);
    const after = await within(dial(listener.port, second.cert), 5000, "dial after reload");
    assertEquals(await roundTrip(after, "two"), "two", "new connections get the new certificate");
    assertEquals(await roundTrip(before, "three"), "three", "old connections carry on");
    let refused = false;
    try {
      (await dial(listener.port, first.cert)).close();
    } catch {
      refused = true;
    }
    assert(refused, "the old certificate is no longer presented");

    before.close();
    after.close();
    listener.close();
    await within(accepting, 5000, "accept ends after close");
    await Promise.all(served);
  });
}

Deno.test("Deno TLS listener: closing a connection whose handshake never came frees the socket", async () => {
  const listener = listenDenoTls({ hostname: "127.0.0.1", port: 0, ...first });
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
  const accepted = await within(listener.accept(), 5000, "accept of a silent client");
  accepted.close();
  // The client, which never sent a ClientHello, sees its connection end.
  const n = await within(raw.read(new Uint8Array(16)).catch(() => null), 5000, "the peer's end");
  assertEquals(n, null);
  raw.close();
  listener.close();
});

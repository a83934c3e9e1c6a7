// The dial's failures told apart on loopback: nothing listening, an HTTP
// server, a server that greets first like SSH, one that closes on a
// ClientHello but answers PostgreSQL's SSLRequest, one that only closes, and
// a self-signed certificate nobody pinned, by Deno's TLS and by the pinned
// path's node:tls.

import { assert, assertEquals, assertRejects, rawTcpServer } from "../testing/mod.ts";
import {
  CertificateError,
  dialTls,
  fingerprintOf,
  generateSelfSigned,
  NotTlsError,
  UnreachableError,
} from "./mod.ts";

/** Reads what arrives first (the probe or a ClientHello). */
async function firstBytes(conn: Deno.TcpConn): Promise<Uint8Array> {
  const buf = new Uint8Array(1024);
  const n = await conn.read(buf);
  return buf.subarray(0, n ?? 0);
}

const pinned = "sha256:" + "ab".repeat(32);

Deno.test("dialTls: a closed port is unreachable, by either path", async () => {
  const gone = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (gone.addr as Deno.NetAddr).port;
  gone.close();
  for (const fingerprint of [undefined, pinned]) {
    const error = await assertRejects(
      () => dialTls({ hostname: "127.0.0.1", port, fingerprint }),
      UnreachableError,
    );
    assertEquals(error.reason, "connection refused");
  }
});

Deno.test("dialTls: an HTTP server and an SSH server are named, by either path", async () => {
  const ac = new AbortController();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => new Response("hi"),
  );
  await using ssh = rawTcpServer(async (conn) => {
    await conn.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"));
    await firstBytes(conn);
  });
  try {
    for (const fingerprint of [undefined, pinned]) {
      const web = await assertRejects(
        () => dialTls({ hostname: "127.0.0.1", port: http.addr.port, fingerprint }),
        NotTlsError,
      );
      assertEquals(web.looksLike, "an HTTP server");
      const shell = await assertRejects(
        () => dialTls({ hostname: "127.0.0.1", port: ssh.port, fingerprint }),
        NotTlsError,
      );
      assertEquals(shell.looksLike, "an SSH server");
    }
  } finally {
    ac.abort();
    await http.finished;
  }
});

Deno.test("dialTls: a server that closes on a ClientHello is asked PostgreSQL's SSLRequest", async () => {
  const sslRequest = [0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f].join();
  // PostgreSQL closes on a ClientHello (an impossible startup packet) and answers "N" to SSLRequest.
  await using postgres = rawTcpServer(async (conn) => {
    if ((await firstBytes(conn)).join() === sslRequest) {
      await conn.write(new TextEncoder().encode("N"));
    }
  });
  await using closer = rawTcpServer(async (conn) => void await firstBytes(conn));
  const pg = await assertRejects(
    () => dialTls({ hostname: "127.0.0.1", port: postgres.port }),
    NotTlsError,
  );
  assertEquals(pg.looksLike, "a PostgreSQL server");
  const closed = await assertRejects(
    () => dialTls({ hostname: "127.0.0.1", port: closer.port }),
    Error,
  );
  assert(!(closed instanceof NotTlsError), String(closed));
  assert(/closed the connection during the TLS handshake/.test(closed.message), closed.message);
});

Deno.test("dialTls: an untrusted certificate comes back with what the server presented", async () => {
  const cert = await generateSelfSigned([]);
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...cert });
  const served = (async () => {
    for await (const conn of listener) conn.handshake().catch(() => {}).finally(() => conn.close());
  })().catch(() => {});
  try {
    const error = await assertRejects(
      () => dialTls({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
      CertificateError,
    );
    assertEquals(error.problem, "untrusted");
    assertEquals(error.presented?.fingerprint, fingerprintOf(cert.cert));
    assertEquals(error.presented?.subject, "CN=burrowd");
    assert(error.presented?.names.includes("127.0.0.1"), String(error.presented?.names));
  } finally {
    listener.close();
    await served;
  }
});

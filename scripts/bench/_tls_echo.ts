/**
 * A TLS echo service on loopback, the reference "one TLS hop" of the cluster
 * rows: it listens as a node's relay port does (`listenDenoTls` from
 * `lib/transport`, Deno's TLS with TCP_NODELAY set on each accepted
 * connection) and writes back every byte it reads. Run as its own process,
 * as a relaying node is, so a round trip through it costs what an extra hop
 * costs: a TLS record each way and a wakeup of another process.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-ffi _tls_echo.ts CERT_FILE KEY_FILE [HOST]
 * ```
 *
 * Prints `{"port":PORT}` on stdout once it listens, then runs until SIGTERM
 * or until its stdin closes (the benchmark stopped or died).
 *
 * @module
 */

import { type Duplex, listenDenoTls } from "../../lib/transport/mod.ts";

async function echo(conn: Duplex): Promise<void> {
  const buf = new Uint8Array(16_384);
  try {
    for (let n; (n = await conn.read(buf)) !== null;) {
      let off = 0;
      while (off < n) off += await conn.write(buf.subarray(off, n));
    }
  } catch { /* reset by peer */ }
  try {
    conn.close();
  } catch { /* closed */ }
}

if (import.meta.main) {
  const [certFile, keyFile, hostname = "127.0.0.1"] = Deno.args;
  if (!certFile || !keyFile) {
    console.error("Usage: _tls_echo.ts CERT_FILE KEY_FILE [HOST]");
    Deno.exit(2);
  }
  const listener = listenDenoTls({
    hostname,
    port: 0,
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
  });
  console.log(JSON.stringify({ port: listener.port }));

  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* ignore input */ }
    Deno.exit(0);
  })();
  for (;;) {
    let conn: Duplex;
    try {
      conn = await listener.accept();
    } catch {
      break; // closed on shutdown
    }
    echo(conn);
  }
}

/**
 * The local services the benchmark reaches directly and through the tunnels,
 * run as their own process so the measuring process only measures:
 *
 * - `echo`: writes back every byte it reads (latency and memory rows);
 * - `greet`: writes one byte as soon as it accepts, then waits for the peer to
 *   close (new-connection rows).
 *
 * Prints `{"echo":PORT,"greet":PORT}` on stdout when both listen, then runs
 * until SIGTERM or until its stdin closes (the benchmark stopped or died).
 *
 * @module
 */

function listen(): Deno.TcpListener {
  return Deno.listen({ hostname: "127.0.0.1", port: 0 });
}

async function echo(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(4096);
  try {
    conn.setNoDelay(true);
    for (let n; (n = await conn.read(buf)) !== null;) {
      let off = 0;
      while (off < n) off += await conn.write(buf.subarray(off, n));
    }
  } catch { /* reset by peer */ }
  conn.close();
}

const GREETING = new Uint8Array([0x2a]);

async function greet(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(64);
  try {
    conn.setNoDelay(true);
    await conn.write(GREETING);
    while (await conn.read(buf) !== null) { /* wait for the peer to close */ }
  } catch { /* reset by peer */ }
  conn.close();
}

async function serve(listener: Deno.TcpListener, handle: (c: Deno.TcpConn) => Promise<void>) {
  try {
    for await (const conn of listener) handle(conn);
  } catch { /* closed on shutdown */ }
}

if (import.meta.main) {
  const echoListener = listen();
  const greetListener = listen();
  const port = (l: Deno.TcpListener) => (l.addr as Deno.NetAddr).port;
  console.log(JSON.stringify({ echo: port(echoListener), greet: port(greetListener) }));

  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  // stdin reaches EOF when the benchmark stops us or dies.
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* ignore input */ }
    Deno.exit(0);
  })();
  await Promise.all([serve(echoListener, echo), serve(greetListener, greet)]);
}

/**
 * The floor of relaying a visitor through a second node, with nothing of
 * Burrow in it: 32 B round trips to a TCP echo directly, through one TCP
 * forwarder (the node that holds the client, in its simplest form), and
 * through two forwarders joined by TLS (a node that relays to it over a
 * link). What the third costs over the second is the least any design with
 * a relaying node adds in this runtime on this machine; `deno task bench
 * --only cluster` measures Burrow's relay against it.
 *
 * ```sh
 * deno run -A scripts/bench/prototypes/relay_chain.ts          # ~40 s
 * ```
 *
 * @module
 */

import { generateSelfSigned } from "../../../lib/transport/mod.ts";

const SECONDS = 4;
const ROUNDS = 3;

/** Copies `from` to `to` with one reused buffer until `from` ends. */
async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (let n; (n = await from.read(buf)) !== null;) {
      for (let o = 0; o < n;) o += await to.write(buf.subarray(o, n));
    }
  } catch { /* the other side went away */ }
  try {
    to.close();
  } catch { /* already closed */ }
}

function join(a: Deno.Conn, b: Deno.Conn): void {
  pump(a, b);
  pump(b, a);
}

async function serve(listener: Deno.Listener, dial: () => Promise<Deno.Conn> | null) {
  for await (const conn of listener) {
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    const out = dial();
    if (!out) {
      pump(conn, conn);
      continue;
    }
    join(conn, await out);
  }
}

async function roundTrips(port: number, seconds = SECONDS): Promise<number[]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const msg = new Uint8Array(32), buf = new Uint8Array(64), samples: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    await conn.write(msg);
    for (let got = 0; got < 32;) got += (await conn.read(buf))!;
    samples.push((performance.now() - t) * 1000);
  }
  conn.close();
  return samples.sort((a, b) => a - b);
}

const tcp = (port = 0) => Deno.listen({ hostname: "127.0.0.1", port });
const portOf = (l: Deno.Listener) => (l.addr as Deno.NetAddr).port;
const connect = async (port: number) => {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  c.setNoDelay(true);
  return c;
};

// Each forwarder is a process of its own, as nodes are: `role` runs one and prints its port.
const [role, arg, certFile] = Deno.args;
if (role) {
  const cert = certFile ? await Deno.readTextFile(certFile) : "";
  const key = certFile ? await Deno.readTextFile(certFile.replace(/crt$/, "key")) : "";
  const target = Number(arg);
  const listener = role === "tls-to-tcp"
    ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key })
    : tcp();
  console.log(portOf(listener));
  await serve(
    listener,
    role === "echo"
      ? () => null
      : role === "tcp-to-tls"
      ? () => Deno.connectTls({ hostname: "localhost", port: target, caCerts: [cert] })
      : () => connect(target),
  );
  Deno.exit(0);
}

const dir = await Deno.makeTempDir({ prefix: "burrow-relay-chain-" });
const { cert, key } = await generateSelfSigned(["localhost"]);
await Deno.writeTextFile(`${dir}/s.crt`, cert);
await Deno.writeTextFile(`${dir}/s.key`, key);
const children: Deno.ChildProcess[] = [];
async function start(name: string, target = 0): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, name, String(target), `${dir}/s.crt`],
    stdout: "piped",
  }).spawn();
  children.push(child);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return Number(value!.trim());
}
const echo = await start("echo");
// The holder: TCP in, TCP out (to the echo, standing for the client and its service).
const holder = await start("tcp-to-tcp", echo);
// A holder reached over a link (TLS in, TCP out), and the relaying node (TCP in, TLS out).
const relay = await start("tcp-to-tls", await start("tls-to-tcp", echo));

const routes = [
  ["echo directly", echo],
  ["one TCP forwarder (the holder)", holder],
  ["two forwarders over TLS (relayed)", relay],
] as const;
// Warm-up: each process's code is compiled before it is measured.
for (const [, port] of routes) await roundTrips(port, 1);
const p50 = new Map<string, number[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, port] of routes) {
    const s = await roundTrips(port);
    const list = p50.get(name) ?? [];
    list.push(s[s.length >> 1]!);
    p50.set(name, list);
    console.log(
      `${name}: p50 ${s[s.length >> 1]!.toFixed(0)} µs, p99 ${
        s[Math.floor(s.length * 0.99)]!.toFixed(0)
      } µs (${s.length} round trips)`,
    );
  }
}
const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
const held = median(p50.get(routes[1][0])!), relayed = median(p50.get(routes[2][0])!);
console.log(`relaying adds ${(relayed - held).toFixed(0)} µs to the p50 round trip`);
for (const child of children) child.kill();
await Deno.remove(dir, { recursive: true });
Deno.exit(0);

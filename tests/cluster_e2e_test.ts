/**
 * Cluster mode end to end: three burrowd nodes on one throwaway PostgreSQL
 * database, on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (Linux routes all of
 * 127/8 to loopback), sharing a certificate. A client connected to one node
 * is served at every node: visitors at the others are relayed over the
 * links between nodes.
 */

import { assert, assertEquals, eventually } from "../lib/testing/mod.ts";
import { testNeedingPostgres, throwawayDatabase } from "../lib/testing/mod.ts";
import { fingerprintOf, generateSelfSigned } from "../lib/transport/mod.ts";
import { echo, freePort, localService, Proc, writeAll } from "./_procs.ts";

/** Ignored (outside CI) when PostgreSQL is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

const TOKEN = "cluster-e2e-token";
const SECRET = "cluster-e2e-secret-of-some-length";
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Node {
  id: string;
  host: string;
  port: number;
  admin: number;
  proc: Proc;
}

interface Cluster extends AsyncDisposable {
  nodes: Node[];
  fingerprint: string;
  dir: string;
  vhost: number;
  udp: number;
  tcp: number;
  start(i: number, secret?: string): Promise<Node>;
}

/** Three nodes (or `count`) on one database, with the same certificate and vhost port. */
async function startCluster(url: string, count = 3): Promise<Cluster> {
  const dir = await Deno.makeTempDir({ prefix: "burrow-cluster-" });
  const { cert, key } = await generateSelfSigned(["localhost"]);
  await Deno.writeTextFile(`${dir}/server.crt`, cert);
  await Deno.writeTextFile(`${dir}/server.key`, key);
  const vhost = freePort();
  const cluster: Cluster = {
    nodes: [],
    fingerprint: fingerprintOf(cert),
    dir,
    vhost,
    udp: freePort(),
    tcp: freePort(),
    async start(i, secret = SECRET) {
      const id = `n${i + 1}`;
      const host = `127.0.0.${i + 1}`;
      const path = `${dir}/${id}.yaml`;
      await Deno.writeTextFile(
        path,
        `server:
  bind_addr: ${host}
  bind_port: 0
  vhost_http_port: ${vhost}
  auth: {method: token, token: "${TOKEN}"}
  tls: {cert_file: "${dir}/server.crt", key_file: "${dir}/server.key"}
  storage: {url: "${url}", data_dir: "${dir}/${id}-data"}
  admin: {bind_addr: ${host}, bind_port: 0}
  log: {level: info, format: json}
  cluster:
    node_id: ${id}
    advertise_addr: ${host}
    relay_port: 0
    secret: "${secret}"
    heartbeat: 300ms
    dead_after: 1200ms
`,
      );
      const proc = new Proc("server", ["--config", path]);
      try {
        const ready = await proc.waitFor((e) => e.msg === "control channel listening", 60_000);
        const admin = await proc.waitFor((e) => e.msg === "admin listening", 10_000);
        const node = { id, host, port: ready.port as number, admin: admin.port as number, proc };
        cluster.nodes[i] = node;
        return node;
      } catch (error) {
        await proc[Symbol.asyncDispose]();
        throw error;
      }
    },
    async [Symbol.asyncDispose]() {
      for (const node of cluster.nodes) await node?.proc[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    for (let i = 0; i < count; i++) await cluster.start(i);
  } catch (error) {
    await cluster[Symbol.asyncDispose]();
    throw error;
  }
  return cluster;
}

/** A client of `cluster` with `yaml` under `client:` (its addresses and tunnels). */
async function startClusterClient(cluster: Cluster, yaml: string): Promise<Proc> {
  const path = `${cluster.dir}/client-${crypto.randomUUID().slice(0, 6)}.yaml`;
  await Deno.writeTextFile(
    path,
    `client:
  auth_token: "${TOKEN}"
  server_fingerprint: "${cluster.fingerprint}"
  reconnect: {max_retries: 0, initial_delay: 100ms, max_delay: 500ms, enable_jitter: false}
  log: {level: info, format: json}
${yaml}`,
  );
  return new Proc("client", ["--config", path], { BURROW_NO_STATUS_LINE: "1" });
}

/** Waits until node `node` logs that it relays `tunnel`. */
function relayOpened(node: Node, tunnel: string, from = 0) {
  return node.proc.waitFor((e) => e.msg === "relay opened" && e.tunnel === tunnel, 20_000, from);
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

test.postgres("cluster: a client on n1 is served at n2 (TCP, UDP) and n3 (HTTP by Host)", async () => {
  await using db = await throwawayDatabase();
  await using cluster = await startCluster(db.url);
  const [n1, n2, n3] = cluster.nodes as [Node, Node, Node];
  await using tcp = localService(echo);
  // UDP: a local service answering each datagram in upper case.
  const udpLocal = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const udpServing = (async () => {
    try {
      for await (const [data, from] of udpLocal) {
        await udpLocal.send(enc.encode(dec.decode(data).toUpperCase()), from);
      }
    } catch { /* closed */ }
  })();
  const web = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => new Response(`web saw ${new URL(req.url).pathname}`),
  );
  try {
    const from = [n2.proc.events.length, n3.proc.events.length];
    await using client = await startClusterClient(
      cluster,
      `  server_addrs: ["${n1.host}:${n1.port}"]
  tunnels:
    - {name: echo, type: tcp, local_port: ${tcp.port}, remote_port: ${cluster.tcp}}
    - {name: shout, type: udp, local_port: ${
        (udpLocal.addr as Deno.NetAddr).port
      }, remote_port: ${cluster.udp}}
    - {name: site, type: http, local_port: ${web.addr.port}, custom_domains: [site.test]}
`,
    );
    await client.waitFor((e) => e.msg === "tunnels registered" && e.up === 3, 20_000);
    await relayOpened(n2, "echo", from[0]);
    await relayOpened(n2, "shout", from[0]);
    await relayOpened(n3, "site", from[1]);

    // 100 MB through n2 both ways, intact.
    const size = 100 * 1024 * 1024;
    const payload = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(payload.subarray(i, i + 65536));
    const conn = await Deno.connect({ hostname: n2.host, port: cluster.tcp });
    const received = new Uint8Array(size);
    const reading = (async () => {
      let got = 0;
      while (got < size) {
        const n = await conn.read(received.subarray(got));
        if (n === null) break;
        got += n;
      }
      return got;
    })();
    await writeAll(conn, payload);
    await conn.closeWrite();
    assertEquals(await reading, size);
    conn.close();
    assertEquals(await sha256(received), await sha256(payload));

    // UDP through n2 (a fresh socket per try: an answer may take a relay's opening).
    const answer = await eventually("a UDP answer through n2", async () => {
      const visitor = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
      const timer = setTimeout(() => visitor.close(), 1000);
      try {
        await visitor.send(enc.encode("hello"), {
          transport: "udp",
          hostname: n2.host,
          port: cluster.udp,
        });
        const [data] = await visitor.receive();
        return dec.decode(data);
      } catch {
        return undefined;
      } finally {
        clearTimeout(timer);
        try {
          visitor.close();
        } catch { /* closed by the timer */ }
      }
    }, 10_000);
    assertEquals(answer, "HELLO");

    // HTTP by Host through n3.
    // fetch does not let a request set Host: n3's vhost port serves as its HTTP proxy instead.
    using via = Deno.createHttpClient({ proxy: { url: `http://${n3.host}:${cluster.vhost}` } });
    const page = await fetch("http://site.test/hello", { client: via });
    assertEquals(page.status, 200);
    assertEquals(await page.text(), "web saw /hello");
    // n1 serves it itself; no relay there.
    assert(!n1.proc.events.some((e) => e.msg === "relay opened"));
  } finally {
    udpLocal.close();
    await udpServing;
    await web.shutdown();
  }
});

/**
 * Cluster mode end to end: three burrowd nodes on one throwaway PostgreSQL
 * database, on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (Linux routes all of
 * 127/8 to loopback), sharing a certificate. A client connected to one node
 * is served at every node: visitors at the others are relayed over the
 * links between nodes.
 */

import postgres from "postgres";
import { assert, assertEquals, assertRejects, eventually } from "../lib/testing/mod.ts";
import { testNeedingPostgres, throwawayDatabase } from "../lib/testing/mod.ts";
import { echo, freePort, localService, writeAll } from "./_procs.ts";
import {
  CLUSTER_SECRET as SECRET,
  CLUSTER_TOKEN as TOKEN,
  type ClusterNode as Node,
  nodeLost,
  relayOpened,
  startCluster,
  startClusterClient,
} from "./_cluster.ts";
import { createCa } from "./_pki.ts";

/** Ignored (outside CI) when PostgreSQL is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

const enc = new TextEncoder();
const dec = new TextDecoder();

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

/** Sends `text` through `host:port` (an echo-like tunnel) and returns the answer, or throws. */
async function ask(host: string, port: number, text: string, ms = 2_000): Promise<string> {
  const conn = await Deno.connect({ hostname: host, port });
  const timer = setTimeout(() => conn.close(), ms);
  try {
    await writeAll(conn, enc.encode(text));
    await conn.closeWrite();
    let got = "";
    const buf = new Uint8Array(4096);
    for (let n; (n = await conn.read(buf)) !== null;) got += dec.decode(buf.subarray(0, n));
    if (!got) throw new Error("no answer");
    return got;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/** Visits `host:port` with a new connection every few ms until stopped; counts what happened. */
function visitorLoop(host: string, port: number) {
  const log: Array<{ at: number; ok: boolean; answer?: string }> = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const at = performance.now();
      try {
        const answer = await ask(host, port, "ping");
        log.push({ at, ok: true, answer });
      } catch {
        log.push({ at, ok: false });
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    log,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** A TCP service answering every connection with `name` (after reading what it sent). */
function named(name: string) {
  return localService(async (conn) => {
    const buf = new Uint8Array(1024);
    while ((await conn.read(buf)) !== null) { /* read to the end */ }
    await writeAll(conn, enc.encode(name));
  });
}

test.postgres("cluster: SIGKILL of the client's node: it moves, and visitors at n2 see the tunnel back", async () => {
  await using db = await throwawayDatabase();
  // n1 alone first, so that the client (which starts at a random address) lands on it.
  await using cluster = await startCluster(db.url, 1);
  const n1 = cluster.nodes[0]!;
  await using service = localService(echo);
  const ports = [n1.port, freePort(), freePort()];
  const addrs = ports.map((port, i) => `"127.0.0.${i + 1}:${port}"`);
  await using client = await startClusterClient(
    cluster,
    `  server_addrs: [${addrs.join(", ")}]
  tunnels:
    - {name: echo, type: tcp, local_port: ${service.port}, remote_port: ${cluster.tcp}}
`,
  );
  await client.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000);
  // n2 and n3 join; n2 relays the tunnel to n1.
  const n2 = await cluster.start(1, SECRET, ports[1]);
  await relayOpened(n2, "echo");
  const visits = visitorLoop(n2.host, cluster.tcp);
  try {
    await eventually("a visit through n2", () => visits.log.some((v) => v.ok) || undefined);
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const [before] = await sql`select user_id, remote_port from tunnels where name = 'echo'`;
      const from = client.events.length;
      n1.proc.child.kill("SIGKILL");
      const killed = performance.now();
      // The client moves on with its backoff (n1 and a dead address may be tried first).
      await client.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000, from);
      const moved = performance.now() - killed;
      // Visitors at n2 are served again without anyone doing anything.
      const back = await eventually(
        "a visit through n2 after the kill",
        () => visits.log.find((v) => v.ok && v.at > killed + moved),
        20_000,
      );
      assertEquals(back.answer, "ping");
      // A survivor finds n1 dead and closes its sessions.
      const lost = await n2.proc.waitFor((e) => e.msg === "node lost" && e.node === "n1", 10_000);
      assert(lost);
      const open = await sql`select count(*)::int as n from sessions
                              where node = 'n1' and disconnected_at is null`;
      assertEquals(open[0]!.n, 0);
      // The tunnel's port is still its user's.
      const [after] = await sql`select user_id, remote_port from tunnels where name = 'echo'`;
      assertEquals([after!.user_id, after!.remote_port], [before!.user_id, before!.remote_port]);
      console.log(`client moved within ${Math.round(moved)} ms`);
    } finally {
      await sql.end();
    }
  } finally {
    await visits.stop();
  }
});

test.postgres("cluster: ha_connections 2: killing one node fails no visit at the other", async () => {
  await using db = await throwawayDatabase();
  await using cluster = await startCluster(db.url);
  const [n1, n2, n3] = cluster.nodes as [Node, Node, Node];
  await using service = localService(echo);
  const from3 = n3.proc.events.length;
  await using client = await startClusterClient(
    cluster,
    `  server_addrs: ["${n1.host}:${n1.port}", "${n2.host}:${n2.port}"]
  ha_connections: 2
  tunnels:
    - {name: echo, type: tcp, local_port: ${service.port}, remote_port: ${cluster.tcp}}
`,
  );
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await eventually("sessions on n1 and n2", async () => {
      const rows = await sql`select node from sessions where disconnected_at is null order by node`;
      return rows.map((r) => r.node).join() === "n1,n2" || undefined;
    }, 20_000);
    await eventually("placements on n1 and n2", async () => {
      const rows = await sql`select node_id from placements order by node_id`;
      return rows.map((r) => r.node_id).join() === "n1,n2" || undefined;
    }, 20_000).catch((error) => {
      for (const n of [n1, n2]) {
        console.log(
          n.id,
          n.proc.events.filter((e) => /tunnel|relay|placement/.test(String(e.msg))).map((e) =>
            JSON.stringify(e)
          ).join("\n"),
        );
      }
      console.log(client.events.map((e) => JSON.stringify(e)).join("\n"));
      throw error;
    });
    await relayOpened(n3, "echo", from3);
    const atN2 = visitorLoop(n2.host, cluster.tcp);
    const atN3 = visitorLoop(n3.host, cluster.tcp);
    try {
      await eventually(
        "visits through n2 and n3",
        () => (atN2.log.some((v) => v.ok) && atN3.log.some((v) => v.ok)) || undefined,
      );
      const killed = performance.now();
      n1.proc.child.kill("SIGKILL");
      await nodeLost([n2, n3], "n1");
      const detected = performance.now();
      // Keep visiting a little after the detection.
      await new Promise((r) => setTimeout(r, 1000));
      const failed = (log: typeof atN2.log, from: number, to = Infinity) =>
        log.filter((v) => !v.ok && v.at >= from && v.at < to).length;
      const visits = (log: typeof atN2.log, from: number) => log.filter((v) => v.at >= from).length;
      // n2 holds the tunnel itself: nothing of n1's death reaches its visitors.
      assertEquals(failed(atN2.log, killed), 0, `of ${visits(atN2.log, killed)} visits at n2`);
      // n3 relays to n1 and n2: no failure once n1's death is known.
      assertEquals(failed(atN3.log, detected), 0, `of ${visits(atN3.log, detected)} at n3`);
      console.log(
        `detected after ${Math.round(detected - killed)} ms; in that window n3 failed ` +
          `${failed(atN3.log, killed, detected)} of ${
            atN3.log.filter((v) => v.at >= killed && v.at < detected).length
          } visits, n2 ${failed(atN2.log, killed, detected)}`,
      );
    } finally {
      await atN2.stop();
      await atN3.stop();
    }
  } finally {
    await sql.end();
  }
});

test.postgres("cluster: a group with a member on n1 and one on n2 is split at n3; n1 dies: all go to n2", async () => {
  await using db = await throwawayDatabase();
  await using cluster = await startCluster(db.url);
  const [n1, n2, n3] = cluster.nodes as [Node, Node, Node];
  await using a = named("a");
  await using b = named("b");
  const member = (service: { port: number }) =>
    `    - {name: web, type: tcp, local_port: ${service.port}, remote_port: ${cluster.tcp}, ` +
    `group: shop, group_key: "shop-key"}\n`;
  const from3 = n3.proc.events.length;
  await using clientA = await startClusterClient(
    cluster,
    `  server_addrs: ["${n1.host}:${n1.port}"]\n  tunnels:\n${member(a)}`,
  );
  await using clientB = await startClusterClient(
    cluster,
    `  server_addrs: ["${n2.host}:${n2.port}"]\n  tunnels:\n${member(b)}`,
  );
  await clientA.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000);
  await clientB.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000);
  await n3.proc.waitFor((e) => e.msg === "relay opened", 20_000, from3);
  await eventually("both members at n3", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add(await ask(n3.host, cluster.tcp, "x").catch(() => "-"));
    return seen.has("a") && seen.has("b") || undefined;
  }, 20_000);
  const visits = visitorLoop(n3.host, cluster.tcp);
  try {
    n1.proc.child.kill("SIGKILL");
    await nodeLost([n2, n3], "n1");
    const after = performance.now();
    await new Promise((r) => setTimeout(r, 1500));
    const answers = visits.log.filter((v) => v.at > after).map((v) => v.answer ?? "failed");
    assert(answers.length > 5, `${answers.length} visits`);
    assert(answers.every((x) => x === "b"), answers.join(","));
  } finally {
    await visits.stop();
  }
});

test.postgres("cluster: a node with another secret is refused by the others, and both say so", async () => {
  await using db = await throwawayDatabase();
  await using cluster = await startCluster(db.url, 1);
  const n1 = cluster.nodes[0]!;
  await using service = localService(echo);
  await using client = await startClusterClient(
    cluster,
    `  server_addrs: ["${n1.host}:${n1.port}"]
  tunnels:
    - {name: echo, type: tcp, local_port: ${service.port}, remote_port: ${cluster.tcp}}
`,
  );
  await client.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000);
  const from1 = n1.proc.events.length;
  const n2 = await cluster.start(1, "not-the-cluster-secret-at-all");
  // n2 relays n1's tunnel: it dials n1, which refuses it.
  const refused = await n1.proc.waitFor((e) => e.msg === "node link refused", 20_000, from1);
  assert(
    /Node n2 does not know this cluster's secret/.test(String(refused.error)),
    String(refused.error),
  );
  const dialler = await n2.proc.waitFor((e) => e.msg === "node link refused", 10_000);
  assert(
    /Node n1 does not know this cluster's secret/.test(String(dialler.error)),
    String(dialler.error),
  );
  await assertRejects(() => ask(n2.host, cluster.tcp, "ping", 1_000), Error);
});

/** Creates user `name` through node `node`'s admin API and returns a token of theirs. */
async function userToken(node: Node, name: string): Promise<string> {
  const api = (path: string, body: unknown) =>
    fetch(`http://${node.host}:${node.admin}/api/v1${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const user = await api("/users", { name });
  assertEquals(user.status, 201, await user.text());
  const issued = await api("/tokens", { user: name });
  const body = await issued.text();
  assertEquals(issued.status, 201, body);
  return JSON.parse(body).token;
}

test.postgres("cluster: another user asking at n3 for a port held through n1 is refused, saying why", async () => {
  await using db = await throwawayDatabase();
  await using cluster = await startCluster(db.url);
  const [n1, , n3] = cluster.nodes as [Node, Node, Node];
  const ann = await userToken(n1, "ann");
  const bob = await userToken(n1, "bob");
  await using service = localService(echo);
  const from3 = n3.proc.events.length;
  const client = (token: string, node: Node) =>
    startClusterClient(
      cluster,
      `  server_addrs: ["${node.host}:${node.port}"]
  tunnels:
    - {name: echo, type: tcp, local_port: ${service.port}, remote_port: ${cluster.tcp}}
`,
      token,
    );
  await using first = await client(ann, n1);
  await first.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000);
  await relayOpened(n3, "echo", from3);
  await using second = await client(bob, n3);
  const refused = await second.waitFor(
    (e) => e.msg === "tunnel failed" || (e.level === "error" && /echo/.test(JSON.stringify(e))),
    20_000,
  );
  const text = JSON.stringify(refused);
  assert(/Port \d+ is reserved by another user.s tunnel/.test(text), text);
  assert(text.includes(String(cluster.tcp)), text);
  // Ann's tunnel still answers at n3.
  assertEquals(await ask(n3.host, cluster.tcp, "still ann's"), "still ann's");
});

test.postgres("cluster: without a secret, nodes under mutual TLS link with their CA's certificates", async () => {
  await using db = await throwawayDatabase();
  const ca = await createCa("burrow cluster test CA");
  const node = await ca.issueNode(["localhost", "127.0.0.1", "127.0.0.2"]);
  await using cluster = await startCluster(db.url, 2, { ca: ca.cert, node });
  const [n1, n2] = cluster.nodes as [Node, Node];
  const clientCert = await ca.issueClient("a client");
  await Deno.writeTextFile(`${cluster.dir}/client.crt`, clientCert.cert);
  await Deno.writeTextFile(`${cluster.dir}/client.key`, clientCert.key);
  await using service = localService(echo);
  const from2 = n2.proc.events.length;
  await using client = await startClusterClient(
    cluster,
    `  server_addrs: ["${n1.host}:${n1.port}"]
  tunnels:
    - {name: echo, type: tcp, local_port: ${service.port}, remote_port: ${cluster.tcp}}
`,
    TOKEN,
    `tls: {ca_file: "${cluster.dir}/ca.crt", cert_file: "${cluster.dir}/client.crt", ` +
      `key_file: "${cluster.dir}/client.key"}`,
  );
  await client.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000);
  await relayOpened(n2, "echo", from2);
  assertEquals(
    await eventually(
      "an answer through n2",
      () => ask(n2.host, cluster.tcp, "mutual").catch(() => undefined),
    ),
    "mutual",
  );
  assert(n1.proc.events.some((e) => e.msg === "node link up" && e.peer === "n2"));
});

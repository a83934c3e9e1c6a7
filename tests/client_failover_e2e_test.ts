/**
 * End to end: a client with several server addresses (`server_addrs`)
 * against independent `burrowd` processes that share a token and a
 * certificate, each on its own loopback address (127.0.0.2, 127.0.0.3) so
 * that both can open the same public port. The client skips a dead address,
 * moves to the other node when its own is killed, and with
 * `ha_connections: 2` is served by both at once, so a visitor sees no
 * failure while one node is lost.
 */

import { assert, assertEquals } from "../lib/testing/mod.ts";
import { fingerprintOf, generateSelfSigned } from "../lib/transport/mod.ts";
import { echo, echoThrough, freePort, localService, Proc, runClientCommand } from "./_procs.ts";

const TOKEN = "failover-token";

/** A burrowd on `host` (a loopback address of its own) with the shared certificate. */
interface Node {
  host: string;
  port: number;
  proc: Proc;
  addr: string;
}

async function startNode(dir: string, host: string, certDir: string, port = 0): Promise<Node> {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/server.yaml`;
  await Deno.writeTextFile(
    path,
    `server:
  bind_addr: ${host}
  bind_port: ${port}
  auth: {method: token, token: "${TOKEN}"}
  tls: {cert_file: "${certDir}/server.crt", key_file: "${certDir}/server.key"}
  storage: {data_dir: "${dir}/data"}
  admin: {bind_addr: 127.0.0.1, bind_port: 0}
  log: {level: info, format: json}
`,
  );
  const proc = new Proc("server", ["--config", path]);
  try {
    const ready = await proc.waitFor((e) => e.msg === "control channel listening", 60_000);
    const bound = ready.port as number;
    return { host, port: bound, proc, addr: `${host}:${bound}` };
  } catch (error) {
    await proc[Symbol.asyncDispose]();
    throw error;
  }
}

/** Starts a client with `yaml` under `client:` (its addresses, tunnels, ha_connections). */
async function startFailoverClient(
  dir: string,
  fingerprint: string,
  yaml: string,
  env: Record<string, string> = {},
): Promise<Proc> {
  const path = `${dir}/client-${crypto.randomUUID().slice(0, 6)}.yaml`;
  await Deno.writeTextFile(
    path,
    `client:
  auth_token: "${TOKEN}"
  server_fingerprint: "${fingerprint}"
  reconnect: {max_retries: 0, initial_delay: 100ms, max_delay: 500ms, enable_jitter: false}
  log: {level: info, format: json}
${yaml}`,
  );
  return new Proc("client", ["--config", path], { BURROW_NO_STATUS_LINE: "1", ...env });
}

/** The "tunnel ready" of `tunnel` on `server` (`host:port`) after event `from`. */
function readyOn(client: Proc, tunnel: string, server: string, from = 0) {
  return client.waitFor(
    (e) => e.msg === "tunnel ready" && e.tunnel === tunnel && e.server === server,
    20_000,
    from,
  );
}

Deno.test("server_addrs: failover to a live node, ha_connections: 2 survives a node", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-failover-" });
  const nodes: Node[] = [];
  try {
    // One certificate for every node, so one pinned fingerprint fits all.
    const { cert, key } = await generateSelfSigned([]);
    await Deno.writeTextFile(`${dir}/server.crt`, cert);
    await Deno.writeTextFile(`${dir}/server.key`, key);
    const fingerprint = fingerprintOf(cert);
    const [a, b] = await Promise.all([
      startNode(`${dir}/a`, "127.0.0.2", dir),
      startNode(`${dir}/b`, "127.0.0.3", dir),
    ]);
    nodes.push(a!, b!);
    let [nodeA, nodeB] = [a!, b!];
    await using service = localService(echo);
    const tunnel = (port: number) =>
      `  tunnels:\n    - {name: echo, type: tcp, local_port: ${service.port}, remote_port: ${port}}\n`;

    await t.step("a dead first address: the client connects to the live one", async () => {
      // Nothing listens on 127.0.0.4; the ring starts at random, so it may or may not be first.
      const dead = `127.0.0.4:${freePort()}`;
      const port = freePort();
      await using client = await startFailoverClient(
        dir,
        fingerprint,
        `  server_addrs: ["${dead}", "${nodeA.addr}"]\n${tunnel(port)}`,
      );
      await readyOn(client, "echo", nodeA.addr);
      assertEquals(await echoThrough(port, "via a", nodeA.host), "via a");
      const connected = client.events.filter((e) => e.msg === "connected");
      assertEquals(connected.map((e) => e.server), [nodeA.addr]);
      const skipped = client.events.find((e) => e.msg === "reconnecting");
      if (skipped) {
        // It tried the dead one first: the log names both ends and why.
        assertEquals([skipped.server, skipped.next], [dead, nodeA.addr]);
        assertEquals(skipped.error, "connection refused");
      }
      assertEquals(await client.stop(), 0);
    });

    await t.step(
      "the client's node is killed: it moves to the other within its backoff",
      async () => {
        const port = freePort();
        await using client = await startFailoverClient(
          dir,
          fingerprint,
          `  server_addrs: ["${nodeA.addr}", "${nodeB.addr}"]\n${tunnel(port)}`,
        );
        const first = await client.waitFor((e) => e.msg === "tunnel ready");
        const [on, other] = first.server === nodeA.addr ? [nodeA, nodeB] : [nodeB, nodeA];
        assertEquals(await echoThrough(port, "before", on.host), "before");
        const mark = client.events.length;
        const killedAt = performance.now();
        await on.proc.stop("SIGKILL");
        await readyOn(client, "echo", other.addr, mark);
        const took = performance.now() - killedAt;
        assert(took < 10_000, `moved after ${Math.round(took)} ms`);
        assertEquals(await echoThrough(port, "after", other.host), "after");
        const moved = client.events.slice(mark).find((e) => e.msg === "reconnecting");
        assertEquals([moved?.server, moved?.next], [on.addr, other.addr], JSON.stringify(moved));
        // The killed node back on its port, for the next step.
        const again = await startNode(`${dir}/${on === nodeA ? "a" : "b"}`, on.host, dir, on.port);
        nodes.push(again);
        if (on === nodeA) nodeA = again;
        else nodeB = again;
        assertEquals(await client.stop(), 0);
      },
    );

    await t.step("ha_connections: 2: both nodes serve; one killed, no visitor fails", async () => {
      const port = freePort();
      const env = { BURROW_RUN_DIR: `${dir}/run` };
      await using client = await startFailoverClient(
        dir,
        fingerprint,
        `  server_addrs: ["${nodeA.addr}", "${nodeB.addr}"]\n  ha_connections: 2\n${tunnel(port)}`,
        env,
      );
      await Promise.all([readyOn(client, "echo", nodeA.addr), readyOn(client, "echo", nodeB.addr)]);
      assertEquals(await echoThrough(port, "a", nodeA.host), "a");
      assertEquals(await echoThrough(port, "b", nodeB.host), "b");
      const status = await runClientCommand(["status", "--json"], env);
      assertEquals(status.code, 0, status.stderr);
      const [s] = JSON.parse(status.stdout);
      const servers = s.sessions.map((x: { server: string; connected: boolean }) =>
        `${x.server} ${x.connected}`
      ).sort();
      assertEquals(servers, [`${nodeA.addr} true`, `${nodeB.addr} true`]);
      const echoed = s.tunnels[0];
      assertEquals(
        echoed.connections + echoed.active_connections,
        2,
        "counted once per connection, whichever node it came through",
      );
      const table = await runClientCommand(["status"], env);
      assert(table.stdout.includes("2 of 2 sessions connected"), table.stdout);
      assert(table.stdout.includes(`→ ${nodeA.addr}: connected`), table.stdout);

      // Visitors through B while A is killed and restarted: not one may fail.
      let stop = false;
      let served = 0;
      const failures: string[] = [];
      const visitors = (async () => {
        for (let i = 0; !stop && i < 10_000; i++) {
          const got = await echoThrough(port, `visit ${i}`, nodeB.host).catch((e) => String(e));
          if (got === `visit ${i}`) served++;
          else failures.push(`visit ${i}: ${got}`);
        }
      })();
      const mark = client.events.length;
      await nodeA.proc.stop("SIGKILL");
      await client.waitFor(
        (e) => e.msg === "disconnected" && e.server === nodeA.addr,
        10_000,
        mark,
      );
      const during = served;
      await client.waitFor((e) => e.msg === "reconnecting", 10_000, mark);
      nodeA = await startNode(`${dir}/a`, nodeA.host, dir, nodeA.port);
      nodes.push(nodeA);
      await readyOn(client, "echo", nodeA.addr, mark);
      stop = true;
      await visitors;
      assertEquals(failures, []);
      assert(served > during, `${served} visits, ${during} before A was lost`);
      assertEquals(await echoThrough(port, "a again", nodeA.host), "a again");
      const back = JSON.parse((await runClientCommand(["status", "--json"], env)).stdout)[0];
      assertEquals(back.sessions.filter((x: { connected: boolean }) => x.connected).length, 2);
      assertEquals(await client.stop(), 0);
    });
  } finally {
    for (const node of nodes) await node.proc[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server_addrs: configuration and --server errors name the key and the entry", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-failover-config-" });
  try {
    const run = async (yaml: string) => {
      const path = `${dir}/bad-${crypto.randomUUID().slice(0, 6)}.yaml`;
      await Deno.writeTextFile(path, `client:\n  auth_token: t\n${yaml}`);
      return await runClientCommand(["--config", path]);
    };
    const both = await run('  server_addr: a\n  server_addrs: ["b:7000"]\n');
    assertEquals(both.code, 2, both.stderr);
    assert(
      both.stderr.includes(
        "client.server_addr: give either client.server_addrs or " +
          "client.server_addr (with server_port), not both",
      ),
      both.stderr,
    );
    const entry = await run('  server_addrs: ["a:7000", "::1", "b:99999"]\n');
    assertEquals(entry.code, 2, entry.stderr);
    assert(entry.stderr.includes('client.server_addrs[1]: "::1": write an IPv6'), entry.stderr);
    assert(entry.stderr.includes('client.server_addrs[2]: Expected a port 1-65535 after "b:"'));
    const many = await run('  server_addrs: ["a"]\n  ha_connections: 9\n');
    assert(many.stderr.includes("client.ha_connections: expected an integer 1-4, got 9"));
    const flag = await runClientCommand(["tcp", "22", "--server", "a:7000,b:x", "--token", "t"]);
    assertEquals(flag.code, 2, flag.stderr);
    assert(flag.stderr.includes('--server: Expected a port 1-65535 after "b:", got "x"'));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

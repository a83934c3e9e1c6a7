// Cluster mode end to end: real burrowd processes on one throwaway PostgreSQL database
// register as nodes, list each other, and the survivor finds a killed node dead and closes
// its sessions; the embedded database refuses cluster mode.

import postgres from "postgres";
import { assert, assertEquals, eventually } from "../lib/testing/mod.ts";
import { testNeedingPostgres, throwawayDatabase } from "../lib/testing/mod.ts";
import {
  echo,
  freePort,
  localService,
  runServerCommand,
  startClient,
  startServer,
  tunnelPort,
} from "./_procs.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

const TOKEN = "cluster-e2e-shared-token";
const SECRET = "cluster-e2e-node-secret";
const HEARTBEAT = 250;
const DEAD_AFTER = 1000;

/** The YAML under `server:` of node `id` on the database at `url`. */
function clusterYaml(id: string, dir: string, url: string): string {
  return `  storage: {url: "${url}", data_dir: "${dir}/data"}
  cluster:
    node_id: ${id}
    advertise_addr: 127.0.0.1
    relay_port: ${freePort()}
    secret: "${SECRET}"
    heartbeat: ${HEARTBEAT}ms
    dead_after: ${DEAD_AFTER}ms`;
}

async function startNode(id: string, url: string) {
  const dir = await Deno.makeTempDir({ prefix: `burrow-cluster-${id}-` });
  const server = await startServer(dir, TOKEN, 0, clusterYaml(id, dir, url));
  const admin = (await server.proc.waitFor((e) => e.msg === "admin listening")).port as number;
  return { ...server, dir, config: `${dir}/server.yaml`, admin };
}

async function nodesOf(adminPort: number): Promise<Array<Record<string, unknown>>> {
  const response = await fetch(`http://127.0.0.1:${adminPort}/api/v1/nodes`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assertEquals(response.status, 200);
  return (await response.json()).items;
}

const states = (nodes: Array<Record<string, unknown>>) =>
  Object.fromEntries(nodes.map((n) => [n.id, n.state]));

test.postgres("two nodes list each other; a killed node is found dead, its sessions closed", async () => {
  await using db = await throwawayDatabase();
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  const n1 = await startNode("n1", db.url);
  await using _n1 = n1.proc;
  const n2 = await startNode("n2", db.url);
  await using _n2 = n2.proc;
  try {
    // Either node's API lists both, alive, with what each advertised.
    for (const admin of [n1.admin, n2.admin]) {
      const nodes = await nodesOf(admin);
      assertEquals(states(nodes), { n1: "alive", n2: "alive" });
      assertEquals(nodes[0]!.fingerprint, n1.fingerprint);
      assertEquals(nodes[1]!.advertise_addr, "127.0.0.1");
    }
    // Metrics carry the node's label.
    const metrics = await (await fetch(`http://127.0.0.1:${n2.admin}/metrics`)).text();
    assert(/burrow_clients_online\{node="n2"\} 0/.test(metrics), metrics.slice(0, 500));

    // A client on n1, with a tunnel.
    await using service = localService(echo);
    const clientDir = await Deno.makeTempDir({ prefix: "burrow-cluster-client-" });
    await using client = await startClient(clientDir, {
      port: n1.port,
      token: TOKEN,
      fingerprint: n1.fingerprint,
      tunnels: [{ name: "web", local_port: service.port }],
    });
    await tunnelPort(client, "web");
    const session = await eventually("n1's session row", async () => {
      const [row] = await sql`select id from sessions where node = 'n1'
                               and disconnected_at is null`;
      return row?.id as string | undefined;
    }, 20_000);
    const tunnel = async () => {
      const [row] = await sql`select status, last_error from tunnels where name = 'web'`;
      return row ? [row.status, row.last_error] : undefined;
    };
    await eventually("the tunnel's row to say active", async () => {
      const t = await tunnel();
      return t?.[0] === "active" ? t : undefined;
    });
    await eventually("n1 to count its session", async () => {
      const [n] = await nodesOf(n2.admin);
      return n!.sessions === 1 ? true : undefined;
    });

    // n1 dies without a word; n2 finds it dead within dead_after and a heartbeat.
    const from = n2.proc.events.length;
    n1.proc.child.kill("SIGKILL");
    const killed = performance.now();
    const lost = await n2.proc.waitFor((e) => e.msg === "node lost", 10_000, from);
    const took = performance.now() - killed;
    assertEquals(lost.level, "warn");
    assertEquals(lost.node, "n1");
    assert(typeof lost.last_seen === "string");
    // n1's last beat may precede the kill by a heartbeat; a little slack for a busy machine.
    assert(took < DEAD_AFTER + 2 * HEARTBEAT + 500, `found dead after ${Math.round(took)} ms`);
    const [closed] = await sql`select disconnected_at, close_reason from sessions
                                 where id = ${session}`;
    assertEquals(closed!.close_reason, "node n1 lost");
    assert(closed!.disconnected_at !== null);
    // What n1 held is released: its tunnel's row no longer says active.
    await eventually("the tunnel's row to say offline", async () => {
      const t = await tunnel();
      return t?.[0] === "offline" ? t : undefined;
    }).then((t) => assertEquals(t, ["offline", "node n1 lost"]));
    const after = await nodesOf(n2.admin);
    assertEquals(states(after), { n1: "dead", n2: "alive" });
    assertEquals([after[0]!.lost_by, after[0]!.sessions], ["n2", 0]);
    // Once only.
    await new Promise((r) => setTimeout(r, 3 * HEARTBEAT));
    assertEquals(n2.proc.events.filter((e) => e.msg === "node lost").length, 1);

    // The command line shows both, from either node's configuration.
    const listed = await runServerCommand(["node", "list", "-c", n2.config]);
    assertEquals(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trim().split("\n");
    assertEquals(lines.length, 3, listed.stdout);
    assert(/^id\s+advertise\s+version\s+started\s+last seen\s+state\s+sessions$/.test(lines[0]!));
    assert(/^n1\s+127\.0\.0\.1:\d+\s.*\sdead \(found by n2\)\s+0$/.test(lines[1]!), lines[1]);
    assert(/^n2\s+127\.0\.0\.1:\d+\s.*\s\d+m?s ago\s+alive\s+0$/.test(lines[2]!), lines[2]);
    const json = await runServerCommand(["node", "list", "--json", "-c", n1.config]);
    assertEquals(json.code, 0, json.stderr);
    assertEquals(
      JSON.parse(json.stdout).map((n: { id: string; state: string }) => [n.id, n.state]),
      [["n1", "dead"], ["n2", "alive"]],
    );

    // A graceful stop keeps the row, marked stopped.
    assertEquals(await n2.proc.stop("SIGTERM"), 0);
    const [n2row] = await sql`select stopped_at, lost_by from nodes where id = 'n2'`;
    assert(n2row!.stopped_at !== null);
    assertEquals(n2row!.lost_by, null);
    assertEquals((await sql`select * from cluster_leases where node_id = 'n2'`).length, 0);
  } finally {
    await sql.end({ timeout: 1 });
    await Deno.remove(n1.dir, { recursive: true }).catch(() => {});
    await Deno.remove(n2.dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("cluster mode with the embedded database refuses to start and says why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-cluster-embedded-" });
  try {
    const config = `${dir}/server.yaml`;
    await Deno.writeTextFile(
      config,
      `server:
  bind_addr: 127.0.0.1
  bind_port: 0
  auth: {token: "${TOKEN}"}
  storage: {data_dir: "${dir}/data"}
  admin: {bind_port: 0}
  cluster: {node_id: n1, secret: "${SECRET}"}
`,
    );
    const run = await runServerCommand(["--config", config]);
    assertEquals(run.code, 2, run.stderr);
    assert(run.stderr.includes("cluster mode needs PostgreSQL"), run.stderr);
    assert(run.stderr.includes("server.storage.url (or env DATABASE_URL)"), run.stderr);
    // Nothing was started: no database in the data directory.
    assertEquals(await Deno.stat(`${dir}/data`).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

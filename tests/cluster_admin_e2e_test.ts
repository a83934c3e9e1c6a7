/**
 * One admin view of a cluster, end to end: three burrowd nodes on one
 * throwaway PostgreSQL database (127.0.0.1, .2 and .3), a client on n1 and
 * another on n2, each given that one address so that it stays put. The
 * admin API of n3, which holds no session, lists both with their nodes and
 * kicks the one on n1: n1 closes it, its client reconnects, and n3's list
 * moves on to the new session.
 */

import { assert, assertEquals, eventually } from "../lib/testing/mod.ts";
import { testNeedingPostgres, throwawayDatabase } from "../lib/testing/mod.ts";
import { echo, localService, type Proc } from "./_procs.ts";
import {
  type Cluster,
  CLUSTER_TOKEN as TOKEN,
  type ClusterNode as Node,
  startCluster,
  startClusterClient,
} from "./_cluster.ts";

/** Ignored (outside CI) when PostgreSQL is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

/** A client `clientId` of `cluster` connected to `node` alone, publishing `tunnel` (TCP). */
function startClient(
  cluster: Cluster,
  node: Node,
  options: { clientId: string; tunnel: string; port: number },
): Promise<Proc> {
  return startClusterClient(
    cluster,
    `  client_id: ${options.clientId}
  server_addrs: ["${node.host}:${node.port}"]
  tunnels:
    - {name: ${options.tunnel}, type: tcp, local_port: ${options.port}}
`,
  );
}

/** A session as `GET /api/v1/sessions` lists it (the fields this test reads). */
interface Session {
  id: string;
  node: string;
  client_id: string;
  user: string | null;
  tunnels: Array<{ name: string; port: number; active_connections?: number }>;
}

/** Calls the admin API of `node`. */
async function api(node: Node, method: string, path: string) {
  const response = await fetch(`http://${node.host}:${node.admin}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** The sessions `node` lists, by client id. */
async function sessionsSeenBy(node: Node): Promise<Map<string, Session>> {
  const { status, body } = await api(node, "GET", "/sessions");
  assertEquals(status, 200);
  return new Map((body.items as Session[]).map((s) => [s.client_id, s]));
}

test.postgres("cluster admin: n3's admin API lists n1's and n2's sessions and kicks one on n1", async () => {
  await using db = await throwawayDatabase();
  await using cluster = await startCluster(db.url);
  const [n1, n2, n3] = cluster.nodes as [Node, Node, Node];
  await using service = localService(echo);
  await using a = await startClient(cluster, n1, {
    clientId: "laptop-a",
    tunnel: "echo-a",
    port: service.port,
  });
  await using b = await startClient(cluster, n2, {
    clientId: "laptop-b",
    tunnel: "echo-b",
    port: service.port,
  });
  await a.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000);
  await b.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000);

  // n3 reads the others' sessions from the database, where they are written in batches.
  const seen = await eventually("n3 lists both sessions", async () => {
    const sessions = await sessionsSeenBy(n3);
    const [onA, onB] = [sessions.get("laptop-a"), sessions.get("laptop-b")];
    return onA?.tunnels.length && onB?.tunnels.length ? { onA, onB } : undefined;
  }, 20_000);
  assertEquals(
    [seen.onA.node, seen.onA.user, seen.onA.tunnels.map((t) => t.name)],
    ["n1", "admin", ["echo-a"]],
  );
  assertEquals(
    [seen.onB.node, seen.onB.user, seen.onB.tunnels.map((t) => t.name)],
    ["n2", "admin", ["echo-b"]],
  );
  // n1 lists its own from memory, with what only it knows (open connections), and n2's.
  const fromN1 = await eventually("n1 lists both sessions", async () => {
    const sessions = await sessionsSeenBy(n1);
    return sessions.has("laptop-b") ? sessions : undefined;
  }, 20_000);
  assertEquals(fromN1.get("laptop-a")!.node, "n1");
  assertEquals(fromN1.get("laptop-a")!.tunnels[0]!.active_connections, 0);
  assertEquals(fromN1.get("laptop-b")!.id, seen.onB.id);
  // The tunnel list names the node holding each tunnel.
  await eventually("n3's tunnel list names the nodes", async () => {
    const { body } = await api(n3, "GET", "/tunnels");
    const nodes = Object.fromEntries(
      (body.items as Array<{ name: string; nodes: string[] }>).map((t) => [t.name, t.nodes]),
    );
    return nodes["echo-a"]?.[0] === "n1" && nodes["echo-b"]?.[0] === "n2" ? true : undefined;
  }, 20_000);

  // The kick through n3 travels to n1, which closes the session and says so.
  const [fromA, fromN1Log, fromN3Log] = [
    a.events.length,
    n1.proc.events.length,
    n3.proc.events.length,
  ];
  const kick = await api(n3, "DELETE", `/sessions/${seen.onA.id}`);
  assertEquals([kick.status, kick.body], [202, { id: seen.onA.id, node: "n1" }]);
  const kicked = await n1.proc.waitFor(
    (e) => e.msg === "session kicked through the admin API" && e.session_id === seen.onA.id,
    10_000,
    fromN1Log,
  );
  assertEquals([kicked.component, kicked.client_id, kicked.via], ["admin", "laptop-a", "n3"]);
  await n3.proc.waitFor(
    (e) => e.msg === "session kick sent to its node" && e.node === "n1",
    1000,
    fromN3Log,
  );
  // The client is told why, and comes back (to n1, its only address).
  await a.waitFor(
    (e) => e.msg === "server going away" && e.reason === "Disconnected by an administrator",
    10_000,
    fromA,
  );
  await a.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000, fromA);
  const after = await eventually("n3 lists the new session, not the kicked one", async () => {
    const sessions = await sessionsSeenBy(n3);
    const onA = sessions.get("laptop-a");
    return onA && onA.id !== seen.onA.id ? sessions : undefined;
  }, 20_000);
  assert(![...after.values()].some((s) => s.id === seen.onA.id), "the kicked session is gone");
  assertEquals(after.get("laptop-a")!.node, "n1");
  assertEquals(after.get("laptop-b")!.id, seen.onB.id, "n2's session untouched");
  assertEquals((await api(n3, "DELETE", `/sessions/${seen.onA.id}`)).status, 404);
  assertEquals((await api(n3, "DELETE", "/sessions/no-such-session")).status, 404);

  // On the node that holds it, a kick is done at once, as outside cluster mode.
  const fromB = b.events.length;
  assertEquals((await api(n2, "DELETE", `/sessions/${seen.onB.id}`)).status, 204);
  await b.waitFor((e) => e.msg === "tunnels registered" && e.up === 1, 20_000, fromB);
});

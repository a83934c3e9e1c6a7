// The nodes and leases of cluster mode on PostgreSQL, the only database several nodes share.

import { assert, assertEquals, testNeedingPostgres, throwawayDatabase } from "../testing/mod.ts";
import { nullLogger, Secret } from "../util/mod.ts";
import { Store } from "./store.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

const node = (id: string) => ({
  id,
  advertise_addr: `${id}.internal`,
  relay_port: 7001,
  fingerprint: `sha256:${id}`,
  version: "0.1.0",
});

test.postgres("nodes DAO: register, beat, stop, list, claim the dead once", async (t) => {
  await using database = await throwawayDatabase();
  await using store = await Store.open(
    { data_dir: "unused", url: new Secret(database.url) },
    { logger: nullLogger, flushInterval: 60_000 },
  );
  const nodes = store.nodes;
  /** Makes `id`'s last heartbeat `seconds` old, as if it had stopped beating. */
  const age = (id: string, seconds: number) =>
    store.db.query("update nodes set last_seen = now() - $2 * interval '1 second' where id = $1", [
      id,
      seconds,
    ]);
  const states = async () =>
    Object.fromEntries((await nodes.list(10_000)).map((n) => [n.id, [n.state, n.sessions]]));

  await t.step("register and beat", async () => {
    const row = await nodes.register(node("n1"));
    assertEquals(row.advertise_addr, "n1.internal");
    assertEquals(row.stopped_at, null);
    assert(row.started_at instanceof Date);
    await nodes.register(node("n2"));
    assertEquals(await nodes.beat("n1"), true);
    assertEquals(await nodes.beat("nobody"), false);
    const [n1] = await nodes.list(10_000);
    assertEquals(n1!.state, "alive");
    assert(n1!.last_seen_ago_ms >= 0 && n1!.last_seen_ago_ms < 5000, `${n1!.last_seen_ago_ms}`);
  });

  await t.step("a graceful stop keeps the row; a restart takes it over", async () => {
    await nodes.stop("n2");
    assertEquals(await states(), { n1: ["alive", 0], n2: ["stopped", 0] });
    assertEquals(await nodes.beat("n2"), false);
    await nodes.register({ ...node("n2"), relay_port: 7002 });
    assertEquals(await states(), { n1: ["alive", 0], n2: ["alive", 0] });
    assertEquals((await nodes.get("n2"))!.relay_port, 7002);
  });

  const user = await store.users.add("dana");
  const open = (id: string, onNode: string, client = "c-" + id) =>
    store.sessions.open([{
      id,
      user_id: user.id,
      client_id: client,
      remote_addr: "127.0.0.1:1",
      client_version: "burrow/0.1.0",
      node: onNode,
      connected_at: new Date(),
    }]);

  await t.step("a stale node is dead; exactly one claimer closes its sessions", async () => {
    await open("s1", "n1");
    await open("s2", "n1");
    await open("s3", "n2");
    assertEquals(await states(), { n1: ["alive", 2], n2: ["alive", 1] });
    await age("n1", 60);
    assertEquals(await states(), { n1: ["dead", 2], n2: ["alive", 1] });
    // Not stale enough for a minute-long dead_after; nothing claimed.
    assertEquals(await nodes.claimDead("n2", 120_000), []);
    // Three claimers at once (n1 never claims itself): one gets it.
    await nodes.register(node("n3"));
    const claims = await Promise.all([
      nodes.claimDead("n2", 10_000),
      nodes.claimDead("n3", 10_000),
      nodes.claimDead("n1", 10_000),
    ]);
    const lost = claims.flat();
    assertEquals(lost.map((l) => l.id), ["n1"]);
    assertEquals(lost[0]!.sessions.map((s) => s.id).sort(), ["s1", "s2"]);
    const s1 = await store.sessions.get("s1");
    assertEquals(s1!.close_reason, "node n1 lost");
    assert(s1!.disconnected_at !== null);
    assertEquals((await store.sessions.get("s3"))!.disconnected_at, null);
    assertEquals((await nodes.get("n1"))!.lost_by, claims[0]!.length ? "n2" : "n3");
    assertEquals(await states(), { n1: ["dead", 0], n2: ["alive", 1], n3: ["alive", 0] });
    assertEquals(await nodes.claimDead("n2", 10_000), []);
  });

  await t.step("the dead node's tunnels go offline unless their client is back", async () => {
    const make = async (name: string, client: string | null) => {
      const row = await store.tunnels.create(user.id, {
        name,
        type: "tcp",
        local_port: 22,
        ...(client ? { client_id: client } : {}),
      });
      await store.tunnels.setStatus(row.id, "active", 20_000 + row.id, null);
      return row.id;
    };
    const lostOwn = await make("own", "c-s1");
    const movedOn = await make("moved", "c-s2");
    const unbound = await make("unbound", null);
    const otherNode = await make("other", "c-s3");
    // c-s2 reconnected to n2 meanwhile: its tunnel may be held there now.
    await open("s4", "n2", "c-s2");
    const [lost] = await store.db.query<{ id: string; user_id: number; client_id: string }>(
      "select id, user_id, client_id from sessions where id = 's1'",
    );
    const released = await nodes.releaseTunnels(
      [lost!, { id: "s2", user_id: user.id, client_id: "c-s2" }],
      "node n1 lost",
    );
    const status = async (id: number) => {
      const [row] = await store.db.query<{ status: string; active_port: number | null }>(
        "select status, active_port, last_error from tunnels where id = $1",
        [id],
      );
      return row!.status;
    };
    // Unbound tunnels stay: the user has open sessions (s3, s4) that may hold them.
    assertEquals(released, 1);
    assertEquals(await status(lostOwn), "offline");
    assertEquals(await status(movedOn), "active");
    assertEquals(await status(unbound), "active");
    assertEquals(await status(otherNode), "active");
    assertEquals(await nodes.releaseTunnels([], "x"), 0);
  });
});

test.postgres("leases: one holder at a time, renewed by it, taken over once expired", async () => {
  await using database = await throwawayDatabase();
  await using store = await Store.open(
    { data_dir: "unused", url: new Secret(database.url) },
    { logger: nullLogger, flushInterval: 60_000 },
  );
  const nodes = store.nodes;
  assertEquals(await nodes.tryLease("alerts", "n1", 60_000), true);
  assertEquals(await nodes.tryLease("alerts", "n2", 60_000), false);
  assertEquals(await nodes.tryLease("alerts", "n1", 60_000), true);
  assertEquals(await nodes.leaseHolder("alerts"), "n1");
  // Other leases are independent.
  assertEquals(await nodes.tryLease("other", "n2", 60_000), true);
  // Several asking at once for a free lease: one gets it.
  const raced = await Promise.all(
    ["a", "b", "c", "d"].map((n) => nodes.tryLease("race", n, 60_000)),
  );
  assertEquals(raced.filter(Boolean).length, 1);
  // n1 stops renewing: once expired, n2 takes it, and n1 cannot take it back.
  assertEquals(await nodes.tryLease("alerts", "n1", 1), true);
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(await nodes.leaseHolder("alerts"), null);
  assertEquals(await nodes.tryLease("alerts", "n2", 60_000), true);
  assertEquals(await nodes.tryLease("alerts", "n1", 60_000), false);
  // Released by another node: nothing happens; by its holder: free at once.
  await nodes.releaseLease("alerts", "n1");
  assertEquals(await nodes.leaseHolder("alerts"), "n2");
  await nodes.releaseLease("alerts", "n2");
  assertEquals(await nodes.tryLease("alerts", "n1", 60_000), true);
});

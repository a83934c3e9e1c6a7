// Two node registries in one process on one throwaway PostgreSQL database, each with a store
// of its own as two burrowd would have: one stops beating (its database goes away), the other
// finds it dead exactly once, closes its sessions and takes over the alerts lease.

import {
  assert,
  assertEquals,
  testNeedingPostgres,
  throwawayDatabase,
  until,
} from "../testing/mod.ts";
import { type LogFields, nullLogger, Secret } from "../util/mod.ts";
import { Store } from "../storage/mod.ts";
import { Leases } from "./lease.ts";
import { type NodeLostEvent, NodeRegistry } from "./nodes.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

const HEARTBEAT = 100;
const DEAD_AFTER = 300;

/** A logger that keeps its events. */
function recording() {
  const events: Array<{ level: string; msg: string; fields: LogFields | undefined }> = [];
  const logger = {
    ...nullLogger,
    debug: () => {},
    info: (msg: string, fields?: LogFields) => events.push({ level: "info", msg, fields }),
    warn: (msg: string, fields?: LogFields) => events.push({ level: "warn", msg, fields }),
    error: (msg: string, fields?: LogFields) => events.push({ level: "error", msg, fields }),
    child: () => logger,
  };
  return { logger, events };
}

function open(url: string) {
  return Store.open(
    { data_dir: "unused", url: new Secret(url), query_timeout: 1000 },
    { logger: nullLogger, flushInterval: 60_000, probeInterval: 50, pingInterval: 50 },
  );
}

function start(store: Store, id: string, logger = nullLogger) {
  return NodeRegistry.start({
    store,
    logger,
    heartbeatMs: HEARTBEAT,
    deadAfterMs: DEAD_AFTER,
    leases: ["alerts"],
    node: { id, advertise_addr: "127.0.0.1", relay_port: 7001, fingerprint: "", version: "t" },
  });
}

test.postgres("node registry: a node that stops beating is claimed once, its sessions closed", async () => {
  await using database = await throwawayDatabase();
  await using storeA = await open(database.url);
  await using storeB = await open(database.url);
  await using observer = await open(database.url);
  const a = recording();
  const b = recording();
  const registryA = await start(storeA, "a", a.logger);
  const registryB = await start(storeB, "b", b.logger);
  try {
    // The first to start takes the lease; the other waits for it.
    assertEquals([registryA.holds("alerts"), registryB.holds("alerts")], [true, false]);
    await observer.sessions.open([{
      id: "s1",
      user_id: null,
      client_id: "c1",
      remote_addr: "127.0.0.1:1",
      client_version: "burrow/t",
      node: "a",
      connected_at: new Date(),
    }]);
    const lostB: string[] = [];
    const lostA: string[] = [];
    registryB.addEventListener("nodelost", (e) => lostB.push((e as NodeLostEvent).node.id));
    registryA.addEventListener("nodelost", (e) => lostA.push((e as NodeLostEvent).node.id));
    // Both alive for longer than dead_after: nobody is claimed.
    await new Promise((r) => setTimeout(r, DEAD_AFTER + 2 * HEARTBEAT));
    assertEquals([lostA, lostB], [[], []]);
    assertEquals(
      (await observer.nodes.list(DEAD_AFTER)).map((n) => n.state),
      ["alive", "alive"],
    );

    // a's database goes away: its heartbeats fail (one warning), its row goes stale.
    await storeA.close();
    const stoppedAt = performance.now();
    await until("b to find a dead", () => lostB.length > 0, 5000);
    const took = performance.now() - stoppedAt;
    // Within dead_after and a heartbeat of a's last beat (up to a heartbeat before its store
    // closed), and some slack for a busy machine.
    assert(took < DEAD_AFTER + 2 * HEARTBEAT + 250, `took ${Math.round(took)} ms`);
    await until("b to take the lease", () => registryB.holds("alerts"), 5000);
    assert(!registryA.holds("alerts") || performance.now() - stoppedAt < DEAD_AFTER);
    await new Promise((r) => setTimeout(r, 3 * HEARTBEAT));
    assertEquals(lostB, ["a"], "claimed once");
    assertEquals(lostA, []);
    const s1 = await observer.sessions.get("s1");
    assertEquals(s1!.close_reason, "node a lost");
    const warned = b.events.filter((e) => e.msg === "node lost");
    assertEquals(warned.length, 1);
    assertEquals(warned[0]!.level, "warn");
    assertEquals(warned[0]!.fields?.node, "a");
    assert(typeof warned[0]!.fields?.last_seen === "string");
    assertEquals(a.events.filter((e) => e.msg === "node heartbeat failed; retrying").length, 1);
    const listed = await observer.nodes.list(DEAD_AFTER);
    assertEquals(listed.map((n) => [n.id, n.state, n.lost_by]), [
      ["a", "dead", "b"],
      ["b", "alive", null],
    ]);
  } finally {
    await registryA.stop();
    await registryB.stop();
  }
  // A graceful stop keeps the row, marked stopped, and gives the lease up.
  const [, b2] = await observer.nodes.list(DEAD_AFTER);
  assertEquals([b2!.state, b2!.lost_by], ["stopped", null]);
  assertEquals(await observer.nodes.leaseHolder("alerts"), null);
  assertEquals(b.events.at(-1)?.msg, "node stopped");
});

test.postgres("node registry: a node taken for dead registers again and says so", async () => {
  await using database = await throwawayDatabase();
  await using store = await open(database.url);
  const { logger, events } = recording();
  const registry = await start(store, "n1", logger);
  try {
    let evictedBy: string | null | undefined;
    registry.addEventListener("evicted", (e) => evictedBy = (e as unknown as { by: string }).by);
    // Another node found it dead while it could not reach the database.
    await store.db.query("update nodes set stopped_at = now(), lost_by = 'n2' where id = 'n1'");
    await until("the eviction to be noticed", () => evictedBy !== undefined, 5000);
    assertEquals(evictedBy, "n2");
    assert(events.some((e) => e.level === "error" && e.msg.includes("taken for dead")));
    const [row] = await store.nodes.list(DEAD_AFTER);
    assertEquals([row!.state, row!.lost_by], ["alive", null]);
  } finally {
    await registry.stop();
  }
  // Stopping twice is harmless.
  await registry.stop();
});

test.postgres("leases: the holder counts itself the holder no longer than the database", async () => {
  await using database = await throwawayDatabase();
  await using store = await open(database.url);
  const one = new Leases(store, "one");
  const two = new Leases(store, "two");
  assertEquals(await one.try("alerts", 150), true);
  assertEquals(await two.try("alerts", 150), false);
  assert(one.holds("alerts") && !two.holds("alerts"));
  await new Promise((r) => setTimeout(r, 200));
  // Not renewed: expired here, and free in the database.
  assert(!one.holds("alerts"));
  assertEquals(await two.try("alerts", 10_000), true);
  assertEquals(await one.try("alerts", 10_000), false);
  await two.release("alerts");
  assert(!two.holds("alerts"));
  assertEquals(await one.try("alerts", 10_000), true);
});

// What the admin API of one node reads and sends about the others' sessions, on PostgreSQL (the
// only database several nodes share): their open sessions and tunnels, and kicks.

import { assertEquals, testNeedingPostgres, throwawayDatabase, until } from "../testing/mod.ts";
import { nullLogger, Secret } from "../util/mod.ts";
import type { KickNotice } from "./activity_dao.ts";
import { Store } from "./store.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

test.postgres("sessions of the other alive nodes, their tunnels, and kicks", async (t) => {
  await using database = await throwawayDatabase();
  await using store = await Store.open(
    { data_dir: "unused", url: new Secret(database.url) },
    { logger: nullLogger, flushInterval: 60_000 },
  );
  for (const id of ["n1", "n2", "n3"]) {
    await store.nodes.register({
      id,
      advertise_addr: `${id}.internal`,
      relay_port: 7001,
      fingerprint: `sha256:${id}`,
      version: "0.1.0",
    });
  }
  const user = await store.users.add("erin");
  const open = (id: string, node: string, at: Date) =>
    store.sessions.open([{
      id,
      user_id: user.id,
      client_id: `c-${id}`,
      remote_addr: "127.0.0.1:1",
      client_version: "burrow/0.1.0",
      node,
      connected_at: at,
    }]);
  await open("s1", "n1", new Date(Date.now() - 3000));
  await open("s2", "n2", new Date(Date.now() - 2000));
  await open("s2b", "n2", new Date(Date.now() - 1000));
  await open("s3", "n3", new Date());
  await open("old", "n2", new Date(Date.now() - 9000));
  await store.sessions.close([{ id: "old", at: new Date(), reason: "bye" }]);
  const tunnel = await store.tunnels.create(user.id, { name: "db", type: "tcp", local_port: 5432 });
  const place = (node: string, session: string, name: string, port: number) =>
    store.placements.place({
      node_id: node,
      session_id: session,
      tunnel: name,
      user_id: user.id,
      user_name: "erin",
      client_id: `c-${session}`,
      tunnel_id: name === "db" ? tunnel.id : null,
      type: "tcp",
      port,
      request: {},
    });
  await place("n2", "s2", "web", 8080);
  await place("n2", "s2", "db", 15432);
  await place("n1", "s1", "db", 15432);
  // n3 stops beating: a minute-long silence is dead for a 10 s dead_after.
  await store.db.query(
    "update nodes set last_seen = now() - interval '60 seconds' where id = 'n3'",
  );

  await t.step("from n1: n2's open sessions, oldest first, with user and tunnels", async () => {
    const rows = await store.sessions.openElsewhere("n1", 10_000);
    assertEquals(
      rows.map((r) => [r.id, r.node, r.user_name, r.tunnels]),
      [
        ["s2", "n2", "erin", [{ name: "db", port: 15432 }, { name: "web", port: 8080 }]],
        ["s2b", "n2", "erin", []],
      ],
    );
    assertEquals((await store.sessions.openElsewhere("n1", 10_000, "s2b")).map((r) => r.id), [
      "s2b",
    ]);
    // Its own, a closed one and a dead node's are not another alive node's open session.
    for (const id of ["s1", "old", "s3"]) {
      assertEquals(await store.sessions.openElsewhere("n1", 10_000, id), []);
    }
    // A stopped node's neither.
    await store.nodes.stop("n2");
    assertEquals(await store.sessions.openElsewhere("n1", 10_000), []);
    await store.nodes.register({
      id: "n2",
      advertise_addr: "n2.internal",
      relay_port: 7001,
      fingerprint: "sha256:n2",
      version: "0.1.0",
    });
  });

  await t.step("which other alive nodes hold which tunnel rows", async () => {
    assertEquals(await store.placements.holders("n1", 10_000), [
      { node_id: "n2", tunnel_id: tunnel.id },
    ]);
    assertEquals(await store.placements.holders("n2", 10_000), [
      { node_id: "n1", tunnel_id: tunnel.id },
    ]);
  });

  await t.step("a kick reaches every listener; malformed ones are dropped", async () => {
    const heard: KickNotice[] = [];
    const unlisten = await store.listenKicks((kick) => heard.push(kick));
    try {
      await store.db.query("select pg_notify('burrow_kick', 'not json')");
      await store.db.query(`select pg_notify('burrow_kick', '{"node": 1}')`);
      const kick = {
        node: "n2",
        session: "s2",
        reason: "Disconnected by an administrator",
        by: "n1",
      };
      await store.sessions.kick(kick);
      await until("the kick heard", () => heard.length > 0);
      assertEquals(heard, [kick]);
    } finally {
      await unlisten();
    }
  });
});

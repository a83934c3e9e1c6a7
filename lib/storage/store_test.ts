// One conformance suite, run against both backends: PGlite in a temp dir and
// PostgreSQL in a throwaway database.

import {
  assert,
  assertEquals,
  assertRejects,
  eventually,
  testNeedingPostgres,
  throwawayDatabase,
} from "../testing/mod.ts";
import { type Logger, nullLogger, Secret } from "../util/mod.ts";
import { ConflictError, NotFoundError, ValidationError } from "./errors.ts";
import { DatabaseUnavailableError } from "./db.ts";
import { loadMigrations, migrate, MigrationError } from "./migrate.ts";
import type { ConfigChange } from "./models.ts";
import { DataDirLockedError, PGLITE_SETTINGS } from "./pglite.ts";
import { Store } from "./store.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

async function conformance(t: Deno.TestContext, store: Store): Promise<void> {
  await t.step("migrations are idempotent and recorded", async () => {
    const again = await migrate(store.db);
    assertEquals(again.applied, []);
    const rows = await store.db.query<{ version: number }>(
      "select version from schema_migrations order by version",
    );
    assertEquals(rows.map((r) => r.version), (await loadMigrations()).map((m) => m.version));
  });

  await t.step("a newer schema is refused with a clear message", async () => {
    const newest = (await loadMigrations()).at(-1)!.version;
    await store.db.query(
      "insert into schema_migrations (version, name, checksum) values ($1, 'future.sql', 'x')",
      [newest + 1],
    );
    const error = await assertRejects(() => migrate(store.db), MigrationError);
    assert(error.message.includes("upgrade burrowd"), error.message);
    await store.db.query("delete from schema_migrations where version = $1", [newest + 1]);
  });

  const changes: ConfigChange[] = [];
  const unlisten = await store.listenConfig((c) => changes.push(c));

  await t.step("users", async () => {
    const alice = await store.users.add("alice");
    assertEquals(alice.name, "alice");
    assertEquals(alice.disabled, false);
    assert(alice.created_at instanceof Date);
    await assertRejects(() => store.users.add("alice"), ConflictError, "already exists");
    await assertRejects(() => store.users.add("bad name!"), ValidationError, "invalid");
    const admin = await store.users.ensure("admin", { admin: true });
    assertEquals((await store.users.ensure("admin")).id, admin.id);
    assertEquals((await store.users.list()).map((u) => u.name), ["admin", "alice"]);
    assertEquals((await store.users.setDisabled("alice", true)).disabled, true);
    await store.users.setDisabled("alice", false);
    await assertRejects(() => store.users.setDisabled("nobody", true), NotFoundError);
    await eventually("user notification", () => changes.find((c) => c.table === "users"));
  });

  await t.step("api keys and signing keys", async () => {
    const alice = (await store.users.byName("alice"))!;
    const expires = new Date(Date.now() + 86_400_000);
    const key = await store.apiKeys.add("jti-1", alice.id, ["tunnel"], expires);
    assertEquals(key.scopes, ["tunnel"]);
    const found = (await store.apiKeys.withUser("jti-1"))!;
    assertEquals(found.user.name, "alice");
    assertEquals(found.key.expires_at?.getTime(), expires.getTime());
    assertEquals(found.key.revoked_at, null);
    assertEquals(await store.apiKeys.withUser("nope"), null);
    await store.apiKeys.touch(["jti-1"]);
    assert((await store.apiKeys.revoke("jti-1")).revoked_at instanceof Date);
    await assertRejects(() => store.apiKeys.revoke("nope"), NotFoundError);
    assertEquals((await store.apiKeys.list(alice.id)).map((k) => k.user_name), ["alice"]);
    await eventually("api key notification", () => changes.find((c) => c.table === "api_keys"));
    await store.signingKeys.add("k1", "HS256", "c2VjcmV0");
    assertEquals((await store.signingKeys.active()).map((k) => k.kid), ["k1"]);
    await store.signingKeys.retire("k1");
    assertEquals(await store.signingKeys.active(), []);
  });

  await t.step("tunnels: create, conflicts, update, delete, notifications", async () => {
    const alice = (await store.users.byName("alice"))!;
    const admin = (await store.users.byName("admin"))!;
    changes.length = 0;
    const ssh = await store.tunnels.create(alice.id, {
      name: "ssh",
      type: "tcp",
      local_port: 22,
      remote_port: 2222,
    });
    assertEquals([ssh.source, ssh.local_addr, ssh.enabled, ssh.status], [
      "api",
      "127.0.0.1",
      true,
      "offline",
    ]);
    const inserted = await eventually(
      "insert notification",
      () => changes.find((c) => c.table === "tunnels" && c.op === "insert"),
    );
    assertEquals([inserted.id, inserted.user_id], [ssh.id, alice.id]);

    await assertRejects(
      () =>
        store.tunnels.create(admin.id, {
          name: "x",
          type: "tcp",
          local_port: 1,
          remote_port: 2222,
        }),
      ConflictError,
      `Port 2222 is reserved by another user's tunnel; choose another`,
    );
    // UDP ports are a separate space.
    await store.tunnels.create(admin.id, {
      name: "dns",
      type: "udp",
      local_port: 53,
      remote_port: 2222,
    });
    await assertRejects(
      () => store.tunnels.create(alice.id, { name: "ssh", type: "tcp", local_port: 1 }),
      ConflictError,
      "already exists",
    );
    await assertRejects(
      () => store.tunnels.create(alice.id, { name: "t", type: "tcp", local_port: 70000 }),
      ValidationError,
      "local_port",
    );
    await assertRejects(
      () => store.tunnels.create(alice.id, { name: "t", type: "ftp" as "tcp", local_port: 1 }),
      ValidationError,
      "type",
    );
    await store.tunnels.create(alice.id, {
      name: "web",
      type: "http",
      local_port: 8080,
      custom_domains: ["app.example.com"],
    });
    await assertRejects(
      () =>
        store.tunnels.create(admin.id, {
          name: "web2",
          type: "http",
          local_port: 80,
          custom_domains: ["app.example.com"],
        }),
      ConflictError,
      "domain",
    );

    changes.length = 0;
    // Status writes notify nobody; definition changes do.
    await store.tunnels.setStatus(ssh.id, "active", 2222, null);
    const moved = await store.tunnels.update(ssh.id, { remote_port: 2223 });
    assertEquals([moved.remote_port, moved.status, moved.active_port], [2223, "active", 2222]);
    await eventually("update notification", () => changes.find((c) => c.op === "update"));
    assertEquals(changes.length, 1);
    await assertRejects(() => store.tunnels.update(9_999_999, {}), NotFoundError);
    assertEquals(await store.tunnels.remove(ssh.id), true);
    assertEquals(await store.tunnels.remove(ssh.id), false);
    await eventually("delete notification", () => changes.find((c) => c.op === "delete"));
    assertEquals((await store.tunnels.managedFor(alice.id)).map((t) => t.name), ["web"]);
  });

  await t.step("tunnels declared by clients", async () => {
    const alice = (await store.users.byName("alice"))!;
    const admin = (await store.users.byName("admin"))!;
    const db = await store.tunnels.recordDeclared(alice.id, "laptop", {
      name: "db",
      type: "tcp",
      local_port: 5432,
      remote_port: 15432,
    });
    assertEquals([db.source, db.client_id], ["client", "laptop"]);
    // Declaring it again (a reconnect) keeps the row.
    const again = await store.tunnels.recordDeclared(alice.id, "laptop", {
      name: "db",
      type: "tcp",
      local_port: 5432,
      remote_port: 15432,
    });
    assertEquals(again.id, db.id);
    await assertRejects(
      () =>
        store.tunnels.recordDeclared(admin.id, "x", {
          name: "db",
          type: "tcp",
          local_port: 1,
          remote_port: 15432,
        }),
      ConflictError,
      "Port 15432",
    );
    await assertRejects(
      () =>
        store.tunnels.recordDeclared(alice.id, "laptop", {
          name: "web",
          type: "http",
          local_port: 1,
        }),
      ConflictError,
      "managed on the server",
    );
    // Members of one load-balancing group share a port; nobody else may take it.
    const member = (user: number, name: string) =>
      store.tunnels.recordDeclared(user, name, {
        name,
        type: "tcp",
        local_port: 80,
        remote_port: 18080,
        group: "pool",
        options: { group: "pool", load_balance: "round_robin", weight: 1 },
      });
    await member(alice.id, "pool-a");
    await member(admin.id, "pool-b");
    await assertRejects(
      () =>
        store.tunnels.recordDeclared(admin.id, "x", {
          name: "solo",
          type: "tcp",
          local_port: 1,
          remote_port: 18080,
        }),
      ConflictError,
      "Port 18080",
    );
    await store.tunnels.update(db.id, { enabled: false });
    await assertRejects(
      () =>
        store.tunnels.recordDeclared(alice.id, "laptop", {
          name: "db",
          type: "tcp",
          local_port: 5432,
        }),
      ConflictError,
      "disabled",
    );
  });

  await t.step("sessions are written in batches", async () => {
    const alice = (await store.users.byName("alice"))!;
    const before = store.queries;
    const now = new Date();
    for (let i = 0; i < 200; i++) {
      store.sessionOpened({
        id: `s${i}`,
        user_id: alice.id,
        client_id: `c${i}`,
        remote_addr: "127.0.0.1:1",
        client_version: "burrow/test",
        node: "node-a",
        connected_at: now,
      });
      store.sessionBeat({ id: `s${i}`, at: now, rtt_ms: 1.5, bytes_in: i, bytes_out: 2 * i });
    }
    store.sessionClosed("s0", "test");
    await store.flush();
    // The batch's id, then opens, beats and closes: one query each however many rows.
    assert(store.queries - before <= 4, `${store.queries - before} queries for 200 sessions`);
    assertEquals(store.pendingWrites, 0);
    const s7 = (await store.sessions.get("s7"))!;
    assertEquals([s7.bytes_in, s7.bytes_out, s7.rtt_ms, s7.disconnected_at], [7, 14, 1.5, null]);
    assertEquals((await store.sessions.get("s0"))!.close_reason, "test");
    assertEquals((await store.sessions.list({ open: true })).length, 199);
    assertEquals(await store.sessions.closeLeftovers("node-a", "restart"), 199);
  });

  await t.step("metrics, logs and alerts", async () => {
    const alice = (await store.users.byName("alice"))!;
    const web = (await store.tunnels.byName(alice.id, "web"))!;
    const at = new Date("2026-01-01T00:00:30Z");
    store.addMetrics(web.id, { bytes_in: 10, connections: 1 }, at);
    store.addMetrics(web.id, { bytes_in: 5, errors: 1, latency_ms_sum: 3, latency_count: 1 }, at);
    store.addLog({
      level: "info",
      kind: "access",
      tunnel_id: web.id,
      session_id: null,
      message: "hi",
    });
    await store.flush();
    store.addMetrics(web.id, { bytes_out: 7 }, at);
    await store.flush();
    const [m] = await store.metrics.list(web.id);
    assertEquals(
      [m!.bucket.toISOString(), m!.bytes_in, m!.bytes_out, m!.connections, m!.errors],
      ["2026-01-01T00:00:00.000Z", 15, 7, 1, 1],
    );
    const [log] = await store.logs.list({ kind: "access" });
    assertEquals([log!.message, log!.tunnel_id], ["hi", web.id]);
    const alert = await store.alerts.fire("latency", "warning", "slow", { tunnel: "web" });
    assertEquals((await store.alerts.list({ firing: true })).map((a) => a.id), [alert.id]);
    await store.alerts.resolve(alert.id);
    assertEquals(await store.alerts.list({ firing: true }), []);
    // Retention: everything above is older than "now + 1 day".
    const future = new Date(Date.now() + 86_400_000);
    const deleted = await store.prune(future);
    assert(
      deleted.metrics! >= 1 && deleted.logs! >= 1 && deleted.alerts === 1,
      JSON.stringify(deleted),
    );
    assertEquals(await store.metrics.list(web.id), []);
    assertEquals(await store.prune(new Date(0)), { metrics: 0, logs: 0, alerts: 0, sessions: 0 });
  });

  // Cluster mode needs PostgreSQL, but the migration and the statements run on both.
  await t.step("nodes and leases (nodes_dao_test.ts has the details)", async () => {
    const n = { advertise_addr: "a", relay_port: 7001, fingerprint: "", version: "0" };
    await store.nodes.register({ id: "n1", ...n });
    await store.nodes.register({ id: "n2", ...n });
    await store.db.query(
      "update nodes set last_seen = now() - interval '1 minute' where id = 'n2'",
    );
    const lost = await store.nodes.claimDead("n1", 10_000);
    assertEquals(lost.map((l) => [l.id, l.sessions]), [["n2", []]]);
    assertEquals(await store.nodes.releaseTunnels([], "x"), 0);
    await store.nodes.stop("n1");
    const listed = await store.nodes.list(10_000);
    assertEquals(listed.map((l) => [l.id, l.state, l.lost_by]), [
      ["n1", "stopped", null],
      ["n2", "dead", "n1"],
    ]);
    assertEquals(await store.nodes.tryLease("alerts", "n1", 60_000), true);
    assertEquals(await store.nodes.tryLease("alerts", "n2", 60_000), false);
  });

  await unlisten();
}

Deno.test("store conformance: PGlite", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-store-" });
  try {
    const store = await Store.open({ data_dir: dir }, {
      logger: nullLogger,
      flushInterval: 60_000,
    });
    try {
      await conformance(t, store);
      await t.step("PostgreSQL runs with the settings sized for Burrow", async () => {
        for (const [name, value] of Object.entries(PGLITE_SETTINGS)) {
          const [row] = await store.db.query<Record<string, string>>(`show ${name}`);
          assertEquals(row?.[name], value, name);
        }
      });
      await t.step("a second opener of the directory is refused", async () => {
        const error = await assertRejects(
          () => Store.open({ data_dir: dir }, { logger: nullLogger }),
          DataDirLockedError,
        );
        assert(error.message.includes("in use by another burrowd"), error.message);
      });
    } finally {
      await store.close();
    }
    // Reopening after close works and keeps the data.
    await using reopened = await Store.open({ data_dir: dir }, { logger: nullLogger });
    assertEquals((await reopened.users.list()).map((u) => u.name), ["admin", "alice"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A logger that keeps its messages. */
function recorder(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger: Logger & { lines: string[] } = {
    lines,
    debug: (msg) => void lines.push(msg),
    info: (msg) => void lines.push(msg),
    warn: (msg) => void lines.push(msg),
    error: (msg) => void lines.push(msg),
    child: () => logger,
    enabled: () => true,
  };
  return logger;
}

Deno.test("PGlite: new databases start from cached clusters, migrated or blank", async () => {
  const root = await Deno.makeTempDir({ prefix: "burrow-pglite-cache-" });
  const cacheDir = `${root}/cache`;
  const versions = (store: Store) =>
    store.db.query<{ version: number }>("select version from schema_migrations order by 1");
  const expected = (await loadMigrations()).map((m) => ({ version: m.version }));
  try {
    // First start: initdb, then both the blank and the migrated cluster are cached.
    const first = recorder();
    {
      await using store = await Store.open({ data_dir: `${root}/a` }, { logger: first, cacheDir });
      assertEquals(await versions(store), expected);
      await store.users.add("only-in-a");
    }
    assert(first.lines.some((l) => l.startsWith("creating the embedded database (first")));
    const cached = [...Deno.readDirSync(cacheDir)].map((e) => e.name).sort();
    assertEquals(cached.length, 2, cached.join());
    assert(cached.some((n) => n.endsWith("-blank")) && cached.some((n) => n.includes("-schema-")));

    // A new database starts from the migrated copy: nothing to apply, nothing of a's data.
    const second = recorder();
    {
      await using store = await Store.open({ data_dir: `${root}/b` }, { logger: second, cacheDir });
      assertEquals(await versions(store), expected);
      assertEquals(await store.users.byName("only-in-a"), null);
    }
    assert(second.lines.includes("creating the embedded database from the cached cluster"));
    assert(!second.lines.includes("applying migration"), second.lines.join("\n"));

    // A broken migrated copy is passed over for the blank one, and the migrations run.
    const schema = cached.find((n) => n.includes("-schema-"))!;
    await Deno.remove(`${cacheDir}/${schema}/PG_VERSION`);
    const third = recorder();
    {
      await using store = await Store.open({ data_dir: `${root}/c` }, { logger: third, cacheDir });
      assertEquals(await versions(store), expected);
    }
    assert(
      third.lines.includes("the cached cluster is unusable, creating the database without it"),
    );
    assert(third.lines.includes("creating the embedded database from the cached blank cluster"));
    assert(third.lines.includes("applying migration"));
    // …and cached again, whole.
    assert((await Deno.stat(`${cacheDir}/${schema}/PG_VERSION`)).isFile);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

test.postgres("store conformance: PostgreSQL", async (t) => {
  await using database = await throwawayDatabase();
  await using store = await Store.open(
    { data_dir: "unused", url: new Secret(database.url) },
    { logger: nullLogger, flushInterval: 60_000 },
  );
  await conformance(t, store);
});

test.postgres("pending writes: queued tunnel rows first, their counters follow, the bound drops and counts; unanswered queries time out", async (t) => {
  await using database = await throwawayDatabase();
  const lines: string[] = [];
  const logger: Logger = {
    debug() {},
    info: (msg) => lines.push(msg),
    warn: (msg) => lines.push(msg),
    error: (msg) => lines.push(msg),
    child: () => logger,
    enabled: () => true,
  };
  await using store = await Store.open(
    { data_dir: "unused", url: new Secret(database.url) },
    { logger, flushInterval: 60_000, maxPendingWrites: 6, queryTimeout: 200, pingInterval: 60_000 },
  );
  const alice = await store.users.add("alice");
  const at = new Date("2026-01-01T00:00:30Z");

  await t.step(
    "a queued row is written first; its status, counters and events follow",
    async () => {
      const recorded: number[] = [];
      const refused: string[] = [];
      const web = store.queueTunnel(
        {
          userId: alice.id,
          clientId: "laptop",
          tunnel: { name: "web", type: "tcp", local_port: 8080, remote_port: 0 },
        },
        { onRecorded: (row) => recorded.push(row.id) },
      );
      assertEquals([web.id, store.queuedTunnel(alice.id, "web")], [null, web]);
      store.tunnelStatus(web, "active", 41000, null);
      store.addMetrics(web, { connections: 2, bytes_in: 10 }, at);
      store.addLog({
        level: "info",
        kind: "access",
        tunnel_id: null,
        tunnel: web,
        session_id: null,
        message: "during",
      });
      await store.tunnels.create(alice.id, {
        name: "owner",
        type: "tcp",
        local_port: 1,
        remote_port: 42000,
      });
      const clash = store.queueTunnel(
        {
          userId: alice.id,
          clientId: "laptop",
          tunnel: { name: "clash", type: "tcp", local_port: 1, remote_port: 42000 },
        },
        { onRefused: (error) => refused.push(error.message) },
      );
      store.addMetrics(clash, { connections: 1 }, at);
      assertEquals(store.pendingWrites, 6);
      // Full: one more event is dropped, counted and logged once.
      for (let i = 0; i < 2; i++) {
        store.addLog({
          level: "info",
          kind: "access",
          tunnel_id: null,
          session_id: null,
          message: "x",
        });
      }
      assertEquals(store.droppedWrites, 2);
      assertEquals(lines.filter((l) => l.startsWith("pending database writes full")).length, 1);

      await store.flush();
      assertEquals(store.pendingWrites, 0);
      assert(web.id !== null);
      assertEquals(recorded, [web.id]);
      assert(clash.refusal?.includes("Port 42000"), String(clash.refusal));
      assertEquals(refused.length, 1);
      const row = (await store.tunnels.get(web.id!))!;
      assertEquals([row.status, row.active_port, row.client_id], ["active", 41000, "laptop"]);
      const [m] = await store.metrics.list(web.id!);
      assertEquals([m!.connections, m!.bytes_in], [2, 10]);
      const [log] = await store.logs.list({ kind: "access" });
      assertEquals([log!.message, log!.tunnel_id], ["during", web.id]);
      assert(lines.includes("pending database writes flushed after dropping some"));
      // Later counters of the handle go under its id, into the same bucket.
      store.addMetrics(web, { connections: 1 }, at);
      await store.flush();
      assertEquals((await store.metrics.list(web.id!))[0]!.connections, 3);
    },
  );

  await t.step(
    "a query left unanswered fails after the timeout; the ping marks it down",
    async () => {
      const real = store.db.query;
      store.db.query = () => new Promise(() => {});
      try {
        const started = performance.now();
        await assertRejects(
          () => store.run((s) => s.users.list()),
          DatabaseUnavailableError,
          "no answer within 200 ms",
        );
        assert(performance.now() - started < 1000);
        await eventually("the ping to mark it down", () => store.available ? undefined : true);
        store.tunnelStatus(1, "offline", null, null);
        assertEquals(store.pendingWrites, 1);
      } finally {
        store.db.query = real;
      }
      await eventually("the probe to reconnect", () => store.available ? true : undefined);
      await store.flush();
      assertEquals(store.pendingWrites, 0);
    },
  );
});

Deno.test("pending writes: a batch whose commit is in doubt is retried under its id and written once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-store-" });
  try {
    await using store = await Store.open({ data_dir: dir }, {
      logger: nullLogger,
      flushInterval: 60_000,
      pingInterval: 60_000,
      probeInterval: 20,
    });
    const alice = await store.users.add("alice");
    const web = await store.tunnels.create(alice.id, {
      name: "web",
      type: "tcp",
      local_port: 1,
      remote_port: 0,
    });
    const at = new Date("2026-01-01T00:00:30Z");
    const event = (message: string) => ({
      level: "info" as const,
      kind: "access" as const,
      tunnel_id: web.id,
      session_id: null,
      message,
    });
    // The connection is cut right after COMMIT went through: the driver reports it as closed.
    const db = store.db;
    const real = db.transaction.bind(db);
    let cuts = 0;
    db.transaction = async (fn) => {
      const result = await real(fn);
      if (cuts > 0) {
        cuts--;
        throw Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" });
      }
      return result;
    };

    cuts = 1;
    store.addMetrics(web.id, { connections: 3, bytes_in: 30 }, at);
    store.addLog(event("committed, then cut"));
    await store.flush();
    assert(!store.available, "the cut marks the database down");
    assertEquals(store.pendingWrites, 2, "the batch waits, in doubt");
    // Meanwhile more comes; it goes in a batch of its own.
    store.addMetrics(web.id, { connections: 1, bytes_in: 5 }, at);
    store.addLog(event("after the cut"));
    await eventually(
      "the database back and the queue written",
      () => store.available && store.pendingWrites === 0 ? true : undefined,
    );
    await store.flush();

    const [m] = await store.metrics.list(web.id);
    assertEquals([m!.connections, m!.bytes_in], [4, 35], "counted once each");
    const messages = (await store.logs.list({ kind: "access" })).map((l) => l.message).sort();
    assertEquals(messages, ["after the cut", "committed, then cut"]);

    // A cut before COMMIT: the retry writes it (once).
    db.transaction = async (fn) => {
      if (cuts > 0) {
        cuts--;
        throw Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" });
      }
      return await real(fn);
    };
    cuts = 1;
    store.addMetrics(web.id, { connections: 10 }, at);
    await store.flush();
    await eventually(
      "the retried batch written",
      () => store.available && store.pendingWrites === 0 ? true : undefined,
    );
    assertEquals((await store.metrics.list(web.id))[0]!.connections, 14);

    // Ids of batches known written do not pile up.
    for (let i = 0; i < 5; i++) {
      store.addLog(event(`more ${i}`));
      await store.flush();
    }
    const [kept] = await db.query<{ n: number }>("select count(*)::int as n from write_batches");
    assertEquals(kept?.n, 1, "only the last batch's id is kept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

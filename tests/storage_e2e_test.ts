// The database-backed server end to end: real burrowd and burrow processes,
// the local PostgreSQL (a throwaway database per test) or embedded PGlite.

import postgres from "postgres";
import { assert, assertEquals, eventually } from "../lib/testing/mod.ts";
import { testNeedingPostgres, throwawayDatabase } from "../lib/testing/mod.ts";
import { pgProxy } from "./_pg_proxy.ts";
import {
  echo,
  echoThrough,
  freePort,
  localService,
  Proc,
  refused,
  runServerCommand,
  startClient,
  startServer,
  tunnelPort,
} from "./_procs.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

const TOKEN = "storage-e2e-shared-token";

test.postgres("user tokens: issue, log in, tunnel recorded under the user, revoke", async () => {
  await using db = await throwawayDatabase();
  const dir = await Deno.makeTempDir({ prefix: "burrow-e2e-" });
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const extra = `  storage: {url: "${db.url}", data_dir: "${dir}/data"}`;
    const server = await startServer(dir, TOKEN, 0, extra);
    await using _s = server.proc;
    const cfg = `${dir}/server.yaml`;

    const add = await runServerCommand(["user", "add", "alice", "-c", cfg]);
    assertEquals(add.code, 0, add.stderr);
    const dup = await runServerCommand(["user", "add", "alice", "-c", cfg]);
    assertEquals(dup.code, 2);
    assert(dup.stderr.includes(`User "alice" already exists`), dup.stderr);
    const issued = await runServerCommand(["token", "issue", "alice", "--ttl", "30d", "-c", cfg]);
    assertEquals(issued.code, 0, issued.stderr);
    const jwt = issued.stdout.trim();
    assertEquals(jwt.split(".").length, 3);
    const tokenId = /issued token (\S+)/.exec(issued.stderr)![1]!;
    const badScope = await runServerCommand([
      "token",
      "issue",
      "alice",
      "--scope",
      "admin",
      "-c",
      cfg,
    ]);
    assertEquals(badScope.code, 2);
    assert(badScope.stderr.includes("not an administrator"), badScope.stderr);

    await using service = localService(echo);
    await using client = await startClient(dir, {
      port: server.port,
      token: jwt,
      fingerprint: server.fingerprint,
      tunnels: [{ name: "web", local_port: service.port }],
    });
    const port = await tunnelPort(client, "web");
    assertEquals(await echoThrough(port, "hello alice"), "hello alice");
    const opened = await server.proc.waitFor((e) => e.msg === "session opened");
    // The status write is queued: wait for it rather than racing it.
    const row = await eventually("the web tunnel's row to say active", async () => {
      const [r] = await sql`select t.source, t.status, t.active_port, u.name
        from tunnels t join users u on u.id = t.user_id where t.name = 'web'`;
      return r?.status === "active" ? r : undefined;
    });
    assertEquals({ ...row }, {
      source: "client",
      status: "active",
      active_port: port,
      name: "alice",
    });
    const listed = await runServerCommand(["token", "list", "alice", "-c", cfg]);
    assert(listed.stdout.includes(tokenId) && !listed.stdout.includes(jwt), listed.stdout);

    // The session row is written (batched) with its user.
    await eventually("session row", async () => {
      const [s] =
        await sql`select s.client_id, u.name from sessions s join users u on u.id = s.user_id
        where s.id = ${opened.session_id as string}`;
      return s;
    });

    const revoke = await runServerCommand(["token", "revoke", tokenId, "-c", cfg]);
    assertEquals(revoke.code, 0, revoke.stderr);
    await server.proc.waitFor((e) => e.msg === "closing session of a revoked token");
    await client.waitFor((e) => e.msg === "authentication failed");
    assertEquals((await client.status).code, 3);
    assert(!server.proc.lines.some((l) => l.includes(jwt)), "the token must never be logged");
    await server.proc.waitFor((e) =>
      e.msg === "authentication failed" && String(e.reason).includes("revoked")
    );
    // Warnings and errors are also in the logs table (batched).
    await eventually("the refusal in the logs table", async () => {
      const [l] = await sql`select fields->>'reason' as reason from logs
        where kind = 'error' and message = 'authentication failed'`;
      return l;
    });

    // Disabling the user closes its sessions and refuses its other tokens.
    const second = (await runServerCommand(["token", "issue", "alice", "-c", cfg])).stdout.trim();
    await using again = await startClient(dir, {
      port: server.port,
      token: second,
      fingerprint: server.fingerprint,
      tunnels: [],
    });
    await again.waitFor((e) => e.msg === "connected");
    assertEquals((await runServerCommand(["user", "disable", "alice", "-c", cfg])).code, 0);
    await server.proc.waitFor((e) => e.msg === "closing session of a disabled user");
    const failed = await again.waitFor((e) => e.msg === "authentication failed");
    assert(String(failed.reason).includes("disabled"), String(failed.reason));
    assertEquals((await again.status).code, 3);
  } finally {
    await sql.end({ timeout: 1 });
    await Deno.remove(dir, { recursive: true });
  }
});

test.postgres("live change: a tunnel inserted, moved and deleted in SQL reaches the client at once", async () => {
  await using db = await throwawayDatabase();
  const dir = await Deno.makeTempDir({ prefix: "burrow-e2e-" });
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const server = await startServer(
      dir,
      TOKEN,
      0,
      `  storage: {url: "${db.url}", data_dir: "${dir}/data"}`,
    );
    await using _s = server.proc;
    await using service = localService(echo);
    await using client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [],
    });
    await client.waitFor((e) => e.msg === "connected");
    await client.waitFor((e) => e.msg === "connected");

    // Insert: the shared token logs in as the built-in admin user.
    let from = client.events.length;
    const t0 = performance.now();
    const [inserted] = await sql`insert into tunnels (user_id, name, type, local_port, remote_port)
      values ((select id from users where name = 'admin'), 'live', 'tcp', ${service.port}, 0)
      returning id`;
    const port1 = await tunnelPort(client, "live", from);
    assertEquals(await echoThrough(port1, "inserted"), "inserted");
    const insertMs = performance.now() - t0;
    console.log(`insert → traffic through the new port: ${insertMs.toFixed(0)} ms`);
    assert(insertMs < 5000, `took ${insertMs} ms`);

    // Move it to another port.
    const port2 = freePort();
    from = client.events.length;
    const t1 = performance.now();
    await sql`update tunnels set remote_port = ${port2} where id = ${inserted!.id}`;
    assertEquals(await tunnelPort(client, "live", from), port2);
    assertEquals(await echoThrough(port2, "moved"), "moved");
    console.log(
      `update → traffic through the moved port: ${(performance.now() - t1).toFixed(0)} ms`,
    );
    assert(await refused(port1), "the old port must be closed");
    // Status writes are queued (latest wins), so the row follows shortly after the port.
    let seen: unknown;
    await eventually(
      "the row's active_port to follow the move",
      async () => {
        const [row] = await sql`select status, active_port from tunnels where id = ${inserted!.id}`;
        seen = { ...row };
        return row?.status === "active" && row?.active_port === port2 ? true : undefined;
      },
      5_000,
      () => seen,
    );

    // Delete it.
    from = client.events.length;
    await sql`delete from tunnels where id = ${inserted!.id}`;
    await client.waitFor((e) => e.msg === "tunnel removed" && e.tunnel === "live", 10_000, from);
    assert(await refused(port2), "the port must be closed after delete");

    // A port owned by another user's tunnel is refused; the shared token is an administrator,
    // who is told whose it is (other users are not: tests/port_reservation_e2e_test.ts).
    await sql`insert into users (name) values ('bob')`;
    const taken = freePort();
    await sql`insert into tunnels (user_id, name, type, local_port, remote_port)
      values ((select id from users where name = 'bob'), 'bobs', 'tcp', 1, ${taken})`;
    await using clash = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [{ name: "mine", local_port: service.port, remote_port: taken }],
    });
    const failed = await clash.waitFor((e) => e.msg === "tunnel failed" && e.tunnel === "mine");
    assert(
      String(failed.reason).includes(
        `Port ${taken} is reserved by user "bob"'s tunnel "bobs" (offline since `,
      ),
      String(failed.reason),
    );
    assert(String(failed.reason).includes("burrowd tunnel release bobs --user bob"));
  } finally {
    await sql.end({ timeout: 1 });
    await Deno.remove(dir, { recursive: true });
  }
});

test.postgres("database outage: tunnels keep serving, logins needing it fail clearly, writes resume", async () => {
  await using db = await throwawayDatabase();
  const dir = await Deno.makeTempDir({ prefix: "burrow-e2e-" });
  await using proxy = pgProxy(5432);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    const server = await startServer(
      dir,
      TOKEN,
      0,
      `  storage: {url: "${viaProxy}", data_dir: "${dir}/data"}
  heartbeat_interval: 500ms
  heartbeat_timeout: 5s`,
    );
    await using _s = server.proc;
    const cfg = `${dir}/server.yaml`;
    assertEquals((await runServerCommand(["user", "add", "carol", "-c", cfg])).code, 0);
    const jwt = (await runServerCommand(["token", "issue", "carol", "-c", cfg])).stdout.trim();

    await using service = localService(echo);
    await using client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [{ name: "db-outage", local_port: service.port }],
    });
    const port = await tunnelPort(client, "db-outage");
    assertEquals(await echoThrough(port, "before"), "before");
    const admin = (await server.proc.waitFor((e) => e.msg === "admin listening")).port as number;
    const readyz = async () => {
      const r = await fetch(`http://127.0.0.1:${admin}/readyz`);
      return { status: r.status, body: await r.json() };
    };
    assertEquals((await readyz()).status, 200);
    const health = await runServerCommand([
      "healthcheck",
      "--url",
      `http://127.0.0.1:${admin}/healthz`,
    ]);
    assertEquals(health.code, 0, health.stderr);

    proxy.refuse();
    // The liveness ping (or the next write) notices.
    await server.proc.waitFor((e) => e.msg === "database unavailable", 20_000);
    assertEquals(await readyz(), {
      status: 503,
      body: { status: "not ready", checks: { control_listener: "ok", database: "unreachable" } },
    });
    const notReady = await runServerCommand([
      "healthcheck",
      "--url",
      `http://127.0.0.1:${admin}/readyz`,
    ]);
    assertEquals(notReady.code, 1);
    for (let i = 0; i < 20; i++) {
      assertEquals(await echoThrough(port, `during ${i}`), `during ${i}`);
    }

    // A token the server has never seen needs the database: refused with a clear reason.
    await using carol = await startClient(dir, {
      port: server.port,
      token: jwt,
      fingerprint: server.fingerprint,
      tunnels: [],
    });
    const refusedLogin = await carol.waitFor((e) => e.msg === "reconnecting");
    assert(
      String(refusedLogin.error ?? "").includes("database is unreachable"),
      JSON.stringify(refusedLogin),
    );
    await carol.stop();

    // A shared-token client logs in during the outage; its session row is written after recovery.
    await using late = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [],
    });
    await late.waitFor((e) => e.msg === "connected");
    const lateSession = await server.proc.waitFor((e) =>
      e.msg === "session opened" &&
      server.proc.events.filter((x) => x.msg === "session opened").length >= 2
    );
    void lateSession;
    const sessionIds = server.proc.events.filter((e) => e.msg === "session opened").map((e) =>
      e.session_id as string
    );

    proxy.forward();
    await server.proc.waitFor((e) => e.msg === "database reconnected", 20_000);
    assertEquals((await readyz()).status, 200);
    await eventually("sessions written after recovery", async () => {
      const rows = await sql`select id from sessions where id = any(${sessionIds})`;
      return rows.length === sessionIds.length ? rows : undefined;
    }, 15_000);
    await eventually("metrics of the outage written", async () => {
      const [m] = await sql`select sum(connections)::int as n from metrics`;
      return (m?.n ?? 0) >= 21 ? m : undefined;
    }, 15_000);
    assertEquals(await echoThrough(port, "after"), "after");
  } finally {
    await sql.end({ timeout: 1 });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("embedded database: a second burrowd on the same data directory refuses to start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-e2e-" });
  try {
    const first = await startServer(dir, TOKEN);
    await using _f = first.proc;
    const second = new Proc("server", ["--config", `${dir}/server.yaml`, "--bind-port", "0"]);
    const code = (await second.status).code;
    await second.stop();
    assertEquals(code, 1);
    const text = second.lines.join("\n");
    assert(text.includes("is in use by another burrowd"), text);
    // A command the admin API cannot do for it asks for the server to be stopped instead of
    // corrupting the database (the others go through the server: first_minutes_admin_e2e_test).
    const migrate = await runServerCommand(["migrate", "-c", `${dir}/server.yaml`]);
    assertEquals(migrate.code, 1);
    assert(migrate.stderr.includes("so it cannot go through the running burrowd"), migrate.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// PostgreSQL outages of each shape against the real burrowd and burrow:
// connections refused, connections terminated (pg_terminate_backend), and a
// database that stops answering (a proxy that stops forwarding). Each test
// compares the rows of tunnels, metrics and access events before and after;
// a tunnel whose queued row clashes with one written meanwhile is closed.

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
  startClient,
  startServer,
} from "./_procs.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

const TOKEN = "db-outage-e2e-shared-token";

type Sql = postgres.Sql;

/** Tunnel rows with their totals, by name. */
interface TunnelRows {
  [name: string]: {
    id: number;
    status: string;
    active_port: number | null;
    connections: number;
    access: number;
  };
}

async function tunnelRows(sql: Sql): Promise<TunnelRows> {
  const rows = await sql`
    select t.name, t.id::int as id, t.status, t.active_port,
           coalesce((select sum(m.connections) from metrics m where m.tunnel_id = t.id), 0)::int
             as connections,
           (select count(*) from logs l where l.tunnel_id = t.id and l.kind = 'access')::int
             as access
      from tunnels t order by t.name`;
  return Object.fromEntries(rows.map((r) => [r.name, {
    id: r.id,
    status: r.status,
    active_port: r.active_port,
    connections: r.connections,
    access: r.access,
  }]));
}

/** `n` connections through `port`, each echoing its text. */
async function traffic(port: number, n: number, label: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const text = `${label} ${i}`;
    assertEquals(await echoThrough(port, text), text);
  }
}

/**
 * The public port of tunnel `name` once the client reports it (after event
 * `from`). A timeout says whether `server` is still running, and what it
 * logged last: a client that cannot connect has been seen under load, and
 * its own log cannot tell a crashed burrowd from a slow one.
 */
async function ready(client: Proc, name: string, server: Proc, from = 0): Promise<number> {
  try {
    const e = await client.waitFor(
      (e) => e.msg === "tunnel ready" && e.tunnel === name,
      15_000,
      from,
    );
    return e.remote_port as number;
  } catch (error) {
    throw new Error(
      `tunnel ${name} not ready: ${(error as Error).message}\nburrowd ${await stateOf(server)}; ` +
        `its last log lines:\n${server.lines.slice(-30).join("\n")}`,
      { cause: error },
    );
  }
}

/** Whether `proc` has exited (and how), without waiting more than 200 ms. */
async function stateOf(proc: Proc): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const state = await Promise.race([
    proc.status.then((st) => `exited with code ${st.code}${st.signal ? ` (${st.signal})` : ""}`),
    new Promise<string>((done) => (timer = setTimeout(() => done("still running"), 200))),
  ]);
  clearTimeout(timer);
  return state;
}

function count(proc: Proc, msg: string): number {
  return proc.events.filter((e) => e.msg === msg).length;
}

/** A server on `url` with an admin port, a user "dora" and a token of hers. */
async function stack(dir: string, url: string, servicePort: number) {
  const server = await startServer(
    dir,
    TOKEN,
    0,
    `  storage: {url: "${url}", data_dir: "${dir}/data"}
  heartbeat_interval: 500ms
  heartbeat_timeout: 10s`,
  );
  const admin = (await server.proc.waitFor((e) => e.msg === "admin listening")).port as number;
  const api = async (path: string, body?: unknown) => {
    let r: Response;
    try {
      r = await fetch(`http://127.0.0.1:${admin}${path}`, {
        method: body ? "POST" : "GET",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      // Say whether burrowd is gone, and what it logged last: a refused admin port has been
      // seen once in CI, and the fetch error alone cannot tell a crash from a closed listener.
      const state = await stateOf(server.proc);
      throw new Error(
        `${path}: ${(error as Error).message}; burrowd ${state}; last log lines:\n` +
          server.proc.lines.slice(-30).join("\n"),
        { cause: error },
      );
    }
    return { status: r.status, text: await r.text() };
  };
  assertEquals((await api("/api/v1/users", { name: "dora" })).status, 201);
  const issued = await api("/api/v1/tokens", { user: "dora" });
  assertEquals(issued.status, 201, issued.text);
  return {
    server,
    jwt: JSON.parse(issued.text).token as string,
    /** A client logged in with `token`, declaring tcp tunnels to the echo service. */
    client: (token: string, tunnels: Array<string | { name: string; remote_port: number }>) =>
      startClient(dir, {
        port: server.port,
        token,
        fingerprint: server.fingerprint,
        tunnels: tunnels.map((t) =>
          typeof t === "string"
            ? { name: t, local_port: servicePort }
            : { ...t, local_port: servicePort }
        ),
      }),
    api,
    readyz: async () => (await api("/readyz")).status,
    metrics: async () => (await api("/metrics")).text,
  };
}

function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

test.postgres("database refused for a while: tunnels declared meanwhile get their rows, counters and events; cached tokens log in", async () => {
  await using db = await throwawayDatabase();
  const dir = await Deno.makeTempDir({ prefix: "burrow-outage-" });
  await using proxy = pgProxy(5432);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    await using service = localService(echo);
    const s = await stack(dir, viaProxy.toString(), service.port);
    await using _s = s.server.proc;
    const log = s.server.proc;

    await using dora = await s.client(s.jwt, ["a0"]);
    const a0 = await ready(dora, "a0", s.server.proc);
    await traffic(a0, 5, "before");
    const before = await eventually("rows before the outage", async () => {
      const rows = await tunnelRows(sql);
      return rows.a0?.connections === 5 && rows.a0.access === 5 ? rows : undefined;
    });

    // A first short outage: the reconnect resynchronises (it used to empty the token cache).
    proxy.refuse();
    await log.waitFor((e) => e.msg === "database unavailable", 10_000);
    proxy.forward();
    await log.waitFor((e) => e.msg === "database reconnected", 10_000);
    await log.waitFor((e) => e.msg === "config feed re-subscribed; resynchronising", 10_000);

    assertEquals((await s.api("/api/v1/users", { name: "erin" })).status, 201);

    // The outage.
    const mark = log.events.length;
    proxy.refuse();
    await log.waitFor((e) => e.msg === "database unavailable", 10_000, mark);
    assertEquals(await s.readyz(), 503);
    // Meanwhile another burrowd (here: SQL) gives a port to another user's tunnel.
    const taken = freePort();
    await sql`insert into tunnels (user_id, name, type, local_port, remote_port)
      values ((select id from users where name = 'erin'), 'x3', 'tcp', 1, ${taken})`;

    // An admin-token client declares three new tunnels: published, their rows queued.
    await using admin = await s.client(TOKEN, ["n1", "n2", { name: "n3", remote_port: taken }]);
    const n1 = await ready(admin, "n1", s.server.proc);
    const n2 = await ready(admin, "n2", s.server.proc);
    assertEquals(await ready(admin, "n3", s.server.proc), taken);
    await log.waitFor(
      () =>
        log.events.slice(mark).filter((e) => e.msg === "tunnel row queued: database unavailable")
          .length >= 3,
      10_000,
    );
    await traffic(n1, 10, "n1 during");
    await traffic(n2, 10, "n2 during");
    await traffic(a0, 5, "a0 during");

    // dora's client restarts: her token, used before the reconnect, still logs in from cache.
    await dora.stop();
    await using dora2 = await s.client(s.jwt, ["a0"]);
    const a0again = await ready(dora2, "a0", s.server.proc);
    await traffic(a0again, 5, "a0 after restart");
    const metricsText = await s.metrics();
    const pending = gauge(metricsText, "burrow_db_pending_writes");
    assert(pending > 0, `pending writes during the outage: ${pending}`);
    assertEquals(gauge(metricsText, "burrow_db_pending_writes_limit"), 10_000);
    const during = await tunnelRows(sql);
    assertEquals(
      Object.keys(during).sort(),
      ["a0", "x3"],
      "burrowd wrote no row during the outage",
    );

    const back = log.events.length;
    proxy.forward();
    await log.waitFor((e) => e.msg === "database reconnected", 15_000, back);
    assertEquals(await s.readyz(), 200);
    const after = await eventually("rows after recovery", async () => {
      const rows = await tunnelRows(sql);
      return rows.n1?.connections === 10 && rows.n2?.connections === 10 &&
          rows.n1.access === 10 && rows.n2.access === 10 && rows.a0?.connections === 15 &&
          rows.a0.access === 15 && rows.n1.status === "active" && rows.n2.status === "active" &&
          rows.a0.active_port === a0again
        ? rows
        : undefined;
    });
    assertEquals([after.n1!.active_port, after.n2!.active_port], [n1, n2]);
    // The row clashing with what was written meanwhile is refused: its tunnel closes, saying why
    // (and whose the port is: the shared token is an administrator).
    const closed = await admin.waitFor((e) => e.msg === "tunnel closed by server", 10_000);
    assertEquals(closed.tunnel, "n3");
    assert(
      String(closed.reason).includes(`Port ${taken} is reserved by user "erin"'s tunnel "x3"`),
      String(closed.reason),
    );
    assert(await refused(taken), "n3's port is closed");
    assertEquals(after.n3, undefined);
    assertEquals(after.a0!.id, before.a0!.id);
    // Later traffic of a tunnel published during the outage is counted under its row.
    await traffic(n1, 3, "n1 after");
    await eventually("counters after recovery", async () => {
      const rows = await tunnelRows(sql);
      return rows.n1?.connections === 13 ? rows : undefined;
    });
    const [sessions] = await sql`select count(*)::int as n from sessions`;
    assertEquals(sessions!.n, 3);
    console.log("refused:", JSON.stringify({ before, during, after, pending }));
  } finally {
    await sql.end({ timeout: 1 });
    await Deno.remove(dir, { recursive: true });
  }
});

test.postgres("connections terminated every 0.3 s: no impact, every row written, resync logged at most once", async () => {
  await using db = await throwawayDatabase();
  const dir = await Deno.makeTempDir({ prefix: "burrow-outage-" });
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await using service = localService(echo);
    const s = await stack(dir, db.url, service.port);
    await using _s = s.server.proc;
    const log = s.server.proc;
    await using dora = await s.client(s.jwt, ["t0"]);
    const t0 = await ready(dora, "t0", s.server.proc);
    await traffic(t0, 5, "before");
    const before = await eventually("rows before", async () => {
      const rows = await tunnelRows(sql);
      return rows.t0?.connections === 5 ? rows : undefined;
    });

    const mark = log.events.length;
    let killed = 0;
    const killer = (async () => {
      for (let i = 0; i < 20; i++) {
        const rows = await sql`select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and application_name = 'burrowd'`;
        killed += rows.length;
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    await traffic(t0, 10, "during");
    await using admin = await s.client(TOKEN, ["t1"]);
    const t1 = await ready(admin, "t1", s.server.proc);
    await traffic(t1, 10, "t1 during");
    await killer;
    let lastRows: unknown;
    const after = await eventually(
      "rows after",
      async () => {
        const rows = await tunnelRows(sql);
        lastRows = rows;
        return rows.t0?.connections === 15 && rows.t0.access === 15 &&
            rows.t1?.connections === 10 && rows.t1.access === 10 && rows.t1.active_port === t1
          ? rows
          : undefined;
      },
      15_000,
      () => ({ rows: lastRows, expected: "t0 15/15, t1 10/10 on port " + t1 }),
    );
    const resyncs = log.events.slice(mark).filter((e) =>
      e.msg === "config feed re-subscribed; resynchronising"
    ).length;
    assert(killed >= 20, `terminated ${killed} backends`);
    assert(resyncs <= 1, `${resyncs} resynchronising lines`);
    console.log(
      "terminated:",
      JSON.stringify({
        before,
        after,
        killed,
        resyncs,
        unavailable: count(log, "database unavailable"),
      }),
    );
  } finally {
    await sql.end({ timeout: 1 });
    await Deno.remove(dir, { recursive: true });
  }
});

test.postgres("a database that stops answering: /readyz turns 503 within 5 s, cached tunnels publish at once, rows follow", async () => {
  await using db = await throwawayDatabase();
  const dir = await Deno.makeTempDir({ prefix: "burrow-outage-" });
  await using proxy = pgProxy(5432);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    await using service = localService(echo);
    const s = await stack(dir, viaProxy.toString(), service.port);
    await using _s = s.server.proc;
    const log = s.server.proc;
    await using first = await s.client(TOKEN, ["h0"]);
    const h0 = await ready(first, "h0", s.server.proc);
    await traffic(h0, 5, "before");
    const before = await eventually("rows before", async () => {
      const rows = await tunnelRows(sql);
      return rows.h0?.connections === 5 ? rows : undefined;
    });

    const mark = log.events.length;
    proxy.hang();
    const hungAt = performance.now();
    // The admin-token client restarts as the database stops answering.
    await first.stop();
    await using again = await s.client(TOKEN, ["h0"]);
    let readyzMs = -1;
    for (let i = 0; i < 100 && readyzMs < 0; i++) {
      if ((await s.readyz()) === 503) readyzMs = Math.round(performance.now() - hungAt);
      else await new Promise((r) => setTimeout(r, 100));
    }
    assert(readyzMs > 0 && readyzMs <= 5000, `/readyz turned 503 after ${readyzMs} ms`);
    const h0again = await ready(again, "h0", s.server.proc);
    const opened = await log.waitFor((e) => e.msg === "session opened", 10_000, mark);
    const published = await log.waitFor(
      (e) => e.msg === "tunnel opened" && e.tunnel === "h0" && e.client_id === opened.client_id,
      10_000,
      mark,
    );
    const publishMs = Date.parse(published.ts as string) - Date.parse(opened.ts as string);
    assert(publishMs < 1000, `h0 published ${publishMs} ms after login during the hang`);
    await traffic(h0again, 10, "h0 during");
    // A tunnel never seen before waits for the query timeout at most, then is published.
    await using other = await s.client(TOKEN, ["n1"]);
    const n1 = await ready(other, "n1", s.server.proc);
    await traffic(n1, 10, "n1 during");
    assertEquals(proxy.mode, "hang");

    const back = log.events.length;
    proxy.forward();
    await log.waitFor((e) => e.msg === "database reconnected", 15_000, back);
    const after = await eventually("rows after", async () => {
      const rows = await tunnelRows(sql);
      return rows.h0?.connections === 15 && rows.h0.access === 15 &&
          rows.n1?.connections === 10 && rows.n1.access === 10 && rows.n1.active_port === n1 &&
          rows.h0.active_port === h0again
        ? rows
        : undefined;
    });
    console.log("hanging:", JSON.stringify({ before, after, readyzMs, publishMs }));
  } finally {
    await sql.end({ timeout: 1 });
    await Deno.remove(dir, { recursive: true });
  }
});

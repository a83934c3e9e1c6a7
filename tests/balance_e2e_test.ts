// Load balancing across clients: real burrowd and three burrow processes,
// each in front of its own local service that answers with its name.

import { assert, assertEquals } from "../lib/testing/mod.ts";
import {
  freePort,
  localService,
  type Proc,
  runServerCommand,
  startClient,
  startServer,
  tunnelPort,
} from "./_procs.ts";

const TOKEN = "balance-e2e-token";
const KEY = "group-secret-1";

/** A service that writes its one-letter name, then waits for the visitor to close. */
function greeter(name: string, port?: number) {
  const svc = localService(async (conn) => {
    await conn.write(new TextEncoder().encode(name));
    const buf = new Uint8Array(16);
    while ((await conn.read(buf)) !== null) { /* wait for EOF */ }
  });
  void port;
  return svc;
}

/** Connects, reads the member's name; keeps the connection open when asked. */
async function visit(port: number, keep = false): Promise<{ name: string; conn: Deno.TcpConn }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(1);
  const n = await conn.read(buf);
  if (n !== 1) {
    conn.close();
    throw new Error("connection closed without a greeting");
  }
  if (!keep) conn.close();
  return { name: String.fromCharCode(buf[0]!), conn };
}

async function tally(port: number, count: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const { name } = await visit(port);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

async function withGroup(
  members: Array<{ name: string; yaml?: string; service?: { port: number } }>,
  body: (ctx: {
    port: number;
    clients: Proc[];
    server: Proc;
    dir: string;
    serverPort: number;
    fingerprint: string;
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "burrow-balance-" });
  const services = members.map((m) => m.service ? null : greeter(m.name));
  const clients: Proc[] = [];
  try {
    const server = await startServer(dir, TOKEN);
    try {
      let port = 0;
      for (const [i, m] of members.entries()) {
        const client = await startClient(dir, {
          port: server.port,
          token: TOKEN,
          fingerprint: server.fingerprint,
          tunnels: [{
            name: `member-${m.name}`,
            local_port: m.service?.port ?? services[i]!.port,
            remote_port: port,
            yaml: `group: pool, group_key: "${KEY}"${m.yaml ? `, ${m.yaml}` : ""}`,
          }],
          extra: `  client_id: client-${m.name}`,
        });
        clients.push(client);
        port = await tunnelPort(client, `member-${m.name}`);
      }
      await body({
        port,
        clients,
        server: server.proc,
        dir,
        serverPort: server.port,
        fingerprint: server.fingerprint,
      });
    } finally {
      for (const c of clients) await c.stop("SIGKILL");
      await server.proc.stop("SIGKILL");
    }
  } finally {
    for (const s of services) await s?.[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("round robin: 300 connections spread 100/100/100", async () => {
  await withGroup([{ name: "A" }, { name: "B" }, { name: "C" }], async ({ port, server, dir }) => {
    await server.waitFor((e) => e.msg === "group member joined" && e.members === 3);
    const counts = await tally(port, 300);
    for (const name of ["A", "B", "C"]) {
      assert(Math.abs((counts[name] ?? 0) - 100) <= 1, JSON.stringify(counts));
    }
    // The database shows the group, its members and their shares (after a clean stop).
    assertEquals(await server.stop("SIGTERM"), 0);
    const listed = await runServerCommand(["group", "list", "-c", `${dir}/server.yaml`]);
    assertEquals(listed.code, 0, listed.stderr);
    for (const name of ["A", "B", "C"]) {
      assert(
        new RegExp(`pool\\s+member-${name}\\s.*\\s(99|100|101)\\s+3[23]\\.\\d%`).test(
          listed.stdout,
        ),
        listed.stdout,
      );
    }
  });
});

Deno.test("weighted round robin: weights 3 and 1 split 3:1", async () => {
  await withGroup(
    [{ name: "A", yaml: "weight: 3" }, { name: "B", yaml: "weight: 1" }],
    async ({ port }) => {
      const counts = await tally(port, 400);
      const share = (counts.A ?? 0) / 400;
      assert(Math.abs(share - 0.75) <= 0.05, JSON.stringify(counts));
    },
  );
});

Deno.test("least connections: members holding long connections get no new ones", async () => {
  const lc = "load_balance: least_connections";
  await withGroup(
    [{ name: "A", yaml: lc }, { name: "B", yaml: lc }, { name: "C", yaml: lc }],
    async ({ port }) => {
      // Six visitors at once spread 2/2/2; A's two stay open, the rest leave.
      const opened = await Promise.all(Array.from({ length: 6 }, () => visit(port, true)));
      const held = opened.filter((v) => v.name === "A").map((v) => v.conn);
      for (const v of opened) if (v.name !== "A") v.conn.close();
      assertEquals(held.length, 2);
      await new Promise((r) => setTimeout(r, 100));
      const counts = await tally(port, 40);
      assertEquals(counts.A ?? 0, 0, JSON.stringify(counts));
      assert((counts.B ?? 0) >= 15 && (counts.C ?? 0) >= 15, JSON.stringify(counts));
      for (const c of held) c.close();
    },
  );
});

Deno.test("health checks take a failing member out of rotation and bring it back", async () => {
  // B's service is one the test can stop and restart on the same port.
  const bPort = freePort();
  let bService: Deno.TcpListener | null = null;
  const startB = () => {
    bService = Deno.listen({ hostname: "127.0.0.1", port: bPort });
    (async () => {
      for await (const conn of bService!) {
        conn.write(new TextEncoder().encode("B")).then(async () => {
          const buf = new Uint8Array(16);
          while ((await conn.read(buf).catch(() => null)) !== null) { /* until EOF */ }
        }).catch(() => {}).finally(() => {
          try {
            conn.close();
          } catch { /* closed */ }
        });
      }
    })().catch(() => {});
  };
  startB();
  const hc = "health_check: {type: tcp, interval: 200ms, timeout: 200ms, max_failed: 2}";
  try {
    await withGroup(
      [{ name: "A", yaml: hc }, { name: "B", yaml: hc, service: { port: bPort } }],
      async ({ port, clients, server }) => {
        const before = await tally(port, 20);
        assert((before.B ?? 0) >= 9, JSON.stringify(before));
        const t0 = performance.now();
        (bService as Deno.TcpListener | null)?.close();
        await clients[1]!.waitFor((e) => e.msg === "local service unhealthy");
        await server.waitFor((e) => e.msg === "group member unhealthy" && e.tunnel === "member-B");
        const detectMs = performance.now() - t0;
        console.log(`unhealthy after ${detectMs.toFixed(0)} ms (interval 200 ms × max_failed 2)`);
        assert(detectMs < 5000, `${detectMs} ms`);
        const during = await tally(port, 20);
        assertEquals(during, { A: 20 });
        startB();
        await server.waitFor((e) => e.msg === "group member healthy" && e.tunnel === "member-B");
        const after = await tally(port, 20);
        assert((after.B ?? 0) >= 9, JSON.stringify(after));
      },
    );
  } finally {
    try {
      (bService as Deno.TcpListener | null)?.close();
    } catch { /* closed */ }
  }
});

Deno.test("failover: a killed client leaves its group at once; new connections go to the others", async () => {
  await withGroup(
    [{ name: "A" }, { name: "B" }, { name: "C" }],
    async ({ port, clients, server }) => {
      await server.waitFor((e) => e.msg === "group member joined" && e.members === 3);
      assertEquals(Object.keys(await tally(port, 30)).sort(), ["A", "B", "C"]);
      // Visitors keep coming, one after another, while B's client is killed.
      const visits: Array<{ at: number; name: string | null }> = [];
      let running = true;
      const load = (async () => {
        while (running) {
          const at = performance.now();
          try {
            visits.push({ at, name: (await visit(port)).name });
          } catch {
            visits.push({ at, name: null });
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 200));
      await clients[1]!.stop("SIGKILL");
      await server.waitFor((e) => e.msg === "group member left" && e.tunnel === "member-B");
      const mark = performance.now();
      await new Promise((r) => setTimeout(r, 500));
      running = false;
      await load;
      // Visits that started once the member had left: none to B, none failed.
      const after = visits.filter((v) => v.at >= mark);
      assert(after.length >= 10, `only ${after.length} visits after the kill`);
      assertEquals(after.filter((v) => v.name === "B" || v.name === null), []);
      const failed = visits.filter((v) => v.name === null).length;
      assert(failed <= 2, `${failed} visits failed around the kill`);
    },
  );
});

Deno.test("a wrong group_key is refused with a clear error", async () => {
  await withGroup([{ name: "A" }], async ({ port, dir, serverPort, fingerprint }) => {
    await using svc = greeter("X");
    await using intruder = await startClient(dir, {
      port: serverPort,
      token: TOKEN,
      fingerprint,
      tunnels: [{
        name: "intruder",
        local_port: svc.port,
        remote_port: port,
        yaml: `group: pool, group_key: "guess"`,
      }],
    });
    const failed = await intruder.waitFor((e) => e.msg === "tunnel failed");
    assertEquals(failed.reason, `Wrong group_key for group "pool"`);
    assertEquals(await tally(port, 5), { A: 5 });
  });
});

/**
 * The first minutes with quick mode, from outside: the real burrowd and
 * burrow, and what a person sees. A quick-mode tunnel the server refuses
 * ends the client with exit code 2 and the reason, also when the refusal
 * comes after a reconnect; a taken port names its holder to those who may
 * know it; a config file's client keeps its other tunnels and sums up; and
 * quick-mode tunnels get names of their own, so that two live tunnels are
 * two rows.
 */

import { assert, assertEquals, eventually, within } from "../lib/testing/mod.ts";
import {
  echo,
  echoThrough,
  freePort,
  localService,
  Proc,
  startClient,
  startServer,
} from "./_procs.ts";

const TOKEN = "first-minutes-quick-token";

interface Server {
  port: number;
  fingerprint: string;
}

/** `burrow TYPE LOCAL_PORT …` against `server`, logged in with `token`. */
function quick(server: Server, args: string[], token = TOKEN): Proc {
  return new Proc("client", [
    ...args,
    "--server",
    `127.0.0.1:${server.port}`,
    "--fingerprint",
    server.fingerprint,
    "--log-format",
    "json",
  ], { BURROW_TOKEN: token, BURROW_NO_STATUS_LINE: "1" });
}

/** Waits (bounded) for a quick client to exit; its code and the line it ended with. */
async function ended(client: Proc): Promise<{ code: number; said: string }> {
  const { code } = await within(client.status, 45_000, "the quick client to exit");
  await client.stop();
  const said = client.lines.filter((l) => l.startsWith("burrow: ")).join("\n");
  return { code, said: said || client.lines.slice(-20).join("\n") };
}

/** Calls the admin API as the shared token. */
function adminApi(admin: number) {
  // deno-lint-ignore no-explicit-any
  return async (path: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const res = await fetch(`http://127.0.0.1:${admin}/api/v1${path}`, {
      method: body ? "POST" : "GET",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  };
}

interface SessionItem {
  client_id: string;
  remote_addr: string;
  tunnels: Array<{ name: string; port: number }>;
}

interface TunnelRow {
  id: number;
  name: string;
  user_name: string;
  client_id: string;
  status: string;
  updated_at: string;
}

Deno.test("quick mode: a refused tunnel ends the client with exit code 2 and the reason", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-quick-refused-" });
  try {
    const server = await startServer(dir, TOKEN);
    await using _server = server.proc;
    const admin = (await server.proc.waitFor((e) => e.msg === "admin listening")).port as number;
    const api = adminApi(admin);
    const rows = async (): Promise<TunnelRow[]> => (await api("/tunnels")).json.items;
    const tokens: Record<string, string> = {};
    for (const user of ["alice", "bob"]) {
      assertEquals((await api("/users", { name: user })).status, 201);
      const issued = await api("/tokens", { user });
      assertEquals(issued.status, 201);
      tokens[user] = issued.json.token;
    }

    await t.step("a subdomain from a server that gives none", async () => {
      const client = quick(server, ["http", "3000", "--subdomain", "demo"]);
      assertEquals(await ended(client), {
        code: 2,
        said: 'burrow: tunnel "http-3000" refused: This server gives no subdomains ' +
          "(server.subdomain_host is not set); use custom_domains (burrow --domain) instead",
      });
    });

    await t.step("a port another program holds on the server", async () => {
      using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = other.addr.port;
      const client = quick(server, ["tcp", "2000", "--remote-port", String(port)]);
      assertEquals(await ended(client), {
        code: 2,
        said: `burrow: tunnel "tcp-2000" refused: Port ${port} is in use on the server by ` +
          "another program; choose another port",
      });
    });

    await t.step("burrowd's own control port", async () => {
      const client = quick(server, ["tcp", "2001", "--remote-port", String(server.port)]);
      assertEquals(await ended(client), {
        code: 2,
        said: `burrow: tunnel "tcp-2001" refused: Port ${server.port} is burrowd's own control ` +
          "port (server.bind_port); choose another port",
      });
    });

    const port = freePort();
    await t.step("a port a live tunnel holds: named to its user and to an admin only", async () => {
      await using holder = quick(
        server,
        ["tcp", "4000", "--remote-port", String(port)],
        tokens.alice,
      );
      await holder.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "tcp-4000");
      const row = (await rows()).find((r) => r.name === "tcp-4000" && r.user_name === "alice")!;
      const online = `which is online (client id "${row.client_id}")`;

      const again = quick(server, ["tcp", "4001", "--remote-port", String(port)], tokens.alice);
      assertEquals(await ended(again), {
        code: 2,
        said: `burrow: tunnel "tcp-4001" refused: Port ${port} is in use by your tunnel ` +
          `"tcp-4000", ${online}`,
      });
      const asAdmin = quick(server, ["tcp", "4002", "--remote-port", String(port)]);
      assertEquals(await ended(asAdmin), {
        code: 2,
        said: `burrow: tunnel "tcp-4002" refused: Port ${port} is in use by user "alice"'s ` +
          `tunnel "tcp-4000", ${online}`,
      });
      const other = quick(server, ["tcp", "4003", "--remote-port", String(port)], tokens.bob);
      assertEquals(await ended(other), {
        code: 2,
        said: `burrow: tunnel "tcp-4003" refused: Port ${port} is taken by another user's ` +
          "tunnel; choose another port",
      });
      await holder.stop();
    });

    await t.step("a port an offline tunnel keeps in the database", async () => {
      const row = await eventually("alice's tunnel recorded offline", async () => {
        const found = (await rows()).find((r) => r.name === "tcp-4000");
        return found?.status === "offline" ? found : undefined;
      }, 20_000);
      const other = quick(server, ["tcp", "4003", "--remote-port", String(port)], tokens.bob);
      assertEquals(await ended(other), {
        code: 2,
        said: `burrow: tunnel "tcp-4003" refused: Port ${port} is reserved by another user's ` +
          "tunnel; choose another, or ask the server's administrator to release it",
      });
      const since = new Date(row.updated_at).toISOString().replace("T", " ").slice(0, 19);
      const asAdmin = quick(server, ["tcp", "4002", "--remote-port", String(port)]);
      assertEquals(await ended(asAdmin), {
        code: 2,
        said: `burrow: tunnel "tcp-4002" refused: Port ${port} is reserved by user "alice"'s ` +
          `tunnel "tcp-4000" (offline since ${since} UTC); connect that tunnel again or release ` +
          `it with \`burrowd tunnel release tcp-4000 --user alice\` or DELETE /api/v1/tunnels/${row.id}`,
      });
    });

    await t.step("a config file's client keeps its other tunnels and sums up", async () => {
      await using service = localService(echo);
      using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const client = await startClient(dir, {
        ...server,
        token: TOKEN,
        tunnels: [
          { name: "web", local_port: service.port },
          { name: "db", local_port: service.port, remote_port: other.addr.port },
          { name: "ssh", local_port: service.port },
        ],
      });
      const summary = `2 of 3 tunnels up; "db" refused: Port ${other.addr.port} is in use on ` +
        "the server by another program; choose another port";
      const registered = await client.waitFor((e) => e.msg === "tunnels registered");
      assertEquals(registered.summary, summary);
      const ready = await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "web");
      assertEquals(await echoThrough(ready.remote_port as number, "still here"), "still here");
      assertEquals(await client.stop(), 0);
      assert((await client.stdout).split("\n").includes(summary), await client.stdout);
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("quick-mode tunnels have names of their own: two live tunnels are two rows", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-quick-names-" });
  try {
    const server = await startServer(dir, TOKEN);
    await using _server = server.proc;
    const admin = (await server.proc.waitFor((e) => e.msg === "admin listening")).port as number;
    const api = adminApi(admin);
    await using one = localService(echo);
    await using two = localService(echo);
    await using first = quick(server, ["tcp", String(one.port)]);
    await using second = quick(server, ["tcp", String(two.port)]);
    const names = [`tcp-${one.port}`, `tcp-${two.port}`];
    const ports: number[] = [];
    for (const [i, client] of [first, second].entries()) {
      const ready = await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === names[i]);
      ports.push(ready.remote_port as number);
      assertEquals(await echoThrough(ports[i]!, `to ${names[i]}`), `to ${names[i]}`);
    }

    // Every live tunnel is a row of its own, and a metrics label of its own.
    const sessions: SessionItem[] = (await api("/sessions")).json.items;
    const live = sessions.flatMap((s) =>
      s.tunnels.map((t) => ({ name: t.name, port: t.port, client_id: s.client_id }))
    );
    assertEquals(live.length, 2);
    const rows = await eventually("both rows active", async () => {
      const items: TunnelRow[] = (await api("/tunnels")).json.items;
      return items.filter((r) => r.status === "active").length === 2 ? items : undefined;
    });
    for (const tunnel of live) {
      const row = rows.find((r) => r.name === tunnel.name)!;
      assertEquals([row.user_name, row.client_id], ["admin", tunnel.client_id]);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    for (const name of names) assert(metrics.includes(`tunnel="admin/${name}"`), name);

    // A third client asking for a name that is online elsewhere is refused, and takes nothing.
    const holder = live.find((t) => t.name === names[0])!;
    const remote = sessions.find((s) => s.client_id === holder.client_id)!.remote_addr;
    const twin = quick(server, ["tcp", "5999", "--name", names[0]!]);
    assertEquals(await ended(twin), {
      code: 2,
      said: `burrow: tunnel "${names[0]}" refused: Tunnel "${names[0]}" is already online from ` +
        `another client of user "admin" (client id "${holder.client_id}", address ${remote}); ` +
        "stop that client, or give this tunnel another name (burrow --name, or tunnels[].name " +
        "in the client config)",
    });
    const after: TunnelRow[] = (await api("/tunnels")).json.items;
    assertEquals(after.find((r) => r.name === names[0])!.client_id, holder.client_id);
    assertEquals(await echoThrough(ports[0]!, "unmoved"), "unmoved");
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("quick mode refused after a reconnect: the server came back without subdomains", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-quick-reconnect-" });
  try {
    const first = await startServer(
      dir,
      TOKEN,
      0,
      "  vhost_http_port: 0\n  subdomain_host: tunnel.test\n",
    );
    const client = quick(first, ["http", "3000", "--subdomain", "demo"]);
    try {
      await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "http-3000");
      assertEquals(await first.proc.stop(), 0);
      const again = await startServer(dir, TOKEN, first.port, "  vhost_http_port: 0\n");
      await using _again = again.proc;
      const { code, said } = await ended(client);
      assertEquals({ code, said }, {
        code: 2,
        said: 'burrow: tunnel "http-3000" refused: This server gives no subdomains ' +
          "(server.subdomain_host is not set); use custom_domains (burrow --domain) instead",
      });
      assert(
        /Forwarding {2}http:\/\/demo\.tunnel\.test:\d+ -> 127\.0\.0\.1:3000/.test(
          await client.stdout,
        ),
      );
    } finally {
      await client.stop("SIGKILL");
      await first.proc.stop("SIGKILL");
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

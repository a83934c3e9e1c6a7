// Secrets never leak: a full run (server, user and token commands, a client
// logging in with a user token, a wrong token, traffic, the admin API,
// /metrics, shutdown) is captured, and none of the output contains the shared
// token, a user token, the database password, the token signing key or the
// TLS private key. The one place a token may appear is the output of the
// command that issues it.

import postgres from "postgres";
import { assert, assertEquals } from "../lib/testing/mod.ts";
import { testNeedingPostgres, throwawayDatabase } from "../lib/testing/mod.ts";
import {
  echo,
  echoThrough,
  localService,
  runServerCommand,
  startClient,
  startServer,
  tunnelPort,
} from "./_procs.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

test.postgres("no secret appears in logs, errors, command output or the admin API", async () => {
  await using db = await throwawayDatabase();
  const dir = await Deno.makeTempDir({ prefix: "burrow-secrets-" });
  const SHARED = "shared-Secret-7f3a9c1e5b";
  const DB_PASSWORD = "db-Passw0rd-e81c";
  const BASIC_PASSWORD = "basic-Pw-93d1c7a2";
  const API_BASIC_PASSWORD = "api-basic-Pw-5e2b8f";
  const url = new URL(db.url);
  url.password = DB_PASSWORD; // trust auth ignores it, but it must never be shown
  const outputs: string[] = [];
  try {
    const server = await startServer(
      dir,
      SHARED,
      0,
      `  storage: {url: "${url}", data_dir: "${dir}/data"}\n  vhost_http_port: 0\n` +
        `  log: {level: debug, format: json}`,
    );
    await using _s = server.proc;
    const cfg = `${dir}/server.yaml`;
    const commands: string[][] = [["user", "add", "erin"], ["user", "list"], ["token", "list"], [
      "migrate",
    ]];
    for (const args of commands) {
      const r = await runServerCommand([...args, "-c", cfg]);
      outputs.push(r.stdout, r.stderr);
    }
    const issued = await runServerCommand(["token", "issue", "erin", "-c", cfg]);
    const jwt = issued.stdout.trim();
    outputs.push(issued.stderr); // its stdout is the token itself, printed once on purpose
    const keyed = await runServerCommand(["key", "create", "erin", "-c", cfg]);
    assertEquals(keyed.code, 0, keyed.stderr);
    const apiKey = keyed.stdout.trim();
    outputs.push(keyed.stderr);
    outputs.push((await runServerCommand(["token", "list", "-c", cfg])).stdout);

    await using service = localService(echo);
    await using client = await startClient(dir, {
      port: server.port,
      token: jwt,
      fingerprint: server.fingerprint,
      tunnels: [{ name: "web", local_port: service.port }, {
        name: "site",
        type: "http",
        local_port: service.port,
        yaml: `domain: s.test, basic_auth: {user: ann, password: "${BASIC_PASSWORD}"}`,
      }],
      extra: "  log: {level: debug, format: json}",
    });
    await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "site");
    const port = await tunnelPort(client, "web");
    assertEquals(await echoThrough(port, "data"), "data");
    await using keyClient = await startClient(dir, {
      port: server.port,
      token: apiKey,
      fingerprint: server.fingerprint,
      tunnels: [],
    });
    await keyClient.waitFor((e) => e.msg === "connected");
    outputs.push(...keyClient.lines);
    await using wrong = await startClient(dir, {
      port: server.port,
      token: SHARED + "x",
      fingerprint: server.fingerprint,
      tunnels: [],
    });
    assertEquals((await wrong.status).code, 3);

    const admin = (await server.proc.waitFor((e) => e.msg === "admin listening")).port;
    const created = await fetch(`http://127.0.0.1:${admin}/api/v1/tunnels`, {
      method: "POST",
      headers: { authorization: `Bearer ${SHARED}`, "content-type": "application/json" },
      body: JSON.stringify({
        user: "erin",
        name: "guarded",
        type: "http",
        client_id: "nobody-yet",
        local_port: 1,
        custom_domains: ["guarded.test"],
        options: { basic_auth: { user: "bob", password: API_BASIC_PASSWORD } },
      }),
    });
    assertEquals(created.status, 201);
    outputs.push(await created.text());
    for (
      const path of [
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/tunnels",
        "/api/v1/sessions",
        "/api/v1/openapi.json",
      ]
    ) {
      const r = await fetch(`http://127.0.0.1:${admin}${path}`, {
        headers: { authorization: `Bearer ${SHARED}` },
      });
      outputs.push(await r.text());
    }
    const denied = await fetch(`http://127.0.0.1:${admin}/api/v1/users`, {
      headers: { authorization: `Bearer ${jwt}` },
    });
    outputs.push(await denied.text());
    outputs.push(await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text());

    // Key material to look for.
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    const [key] = await sql`select secret from signing_keys limit 1`;
    await sql.end();
    const tlsKey = (await Deno.readTextFile(`${dir}/data/tls/server.key`))
      .split("\n").filter((l) => l && !l.startsWith("-----")).join("");

    await client.stop();
    await server.proc.stop();
    outputs.push(...server.proc.lines, ...client.lines, ...wrong.lines);
    const all = outputs.join("\n");
    assert(all.length > 10_000, `captured only ${all.length} characters`);
    const secrets: Record<string, string> = {
      "shared token": SHARED,
      "user token": jwt,
      "user token signature": jwt.split(".")[2]!,
      "API key": apiKey,
      "API key secret": apiKey.slice(16),
      "database password": DB_PASSWORD,
      "basic auth password": BASIC_PASSWORD,
      "basic auth password set through the API": API_BASIC_PASSWORD,
      "token signing key": key!.secret.startsWith("{") ? JSON.parse(key!.secret).d : key!.secret,
      "TLS private key": tlsKey.slice(0, 40),
    };
    for (const [what, secret] of Object.entries(secrets)) {
      assert(secret.length >= 8, `${what} too short to search for`);
      assert(!all.includes(secret), `the ${what} appears in the output`);
    }
    assert(all.includes("***") || all.includes("authentication failed"), "the run did log");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

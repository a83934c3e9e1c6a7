// The admin API, /metrics and alerts, in process: a BurrowServer with an
// embedded database and its admin listener, real BurrowClients, real sockets.
// Every response is validated against the served OpenAPI document.

import Ajv2020 from "ajv/dist/2020.js";
import { fullFormats } from "ajv-formats/dist/formats.js";
import { assert, assertEquals, until } from "../lib/testing/mod.ts";
import { BurrowClient, type TunnelState } from "../lib/client/mod.ts";
import { clientConfigFromObject, serverConfigFromObject } from "../lib/config/mod.ts";
import { type AdminServer, BurrowServer, startAdmin } from "../lib/server/mod.ts";
import { Store } from "../lib/storage/mod.ts";
import { createLogger } from "../lib/util/mod.ts";

const TOKEN = "admin-api-shared-token";

/** A checker of responses against the OpenAPI document's response schemas. */
function openApiChecker(doc: Record<string, unknown>) {
  // deno-lint-ignore no-explicit-any
  const Ajv = Ajv2020 as any;
  // With ajv-formats' formats, date-time is checked instead of ignored with a warning per schema.
  const ajv = new Ajv({ strict: false, allErrors: true, formats: fullFormats });
  ajv.addSchema({ $id: "doc", ...doc });
  // deno-lint-ignore no-explicit-any
  const paths = doc.paths as Record<string, any>;
  let checked = 0;
  return {
    get checked() {
      return checked;
    },
    check(method: string, path: string, status: number, body: unknown) {
      const template = Object.keys(paths).find((t) =>
        new RegExp("^" + t.replace(/\{\w+\}/g, "[^/]+") + "$").test(path)
      );
      const op = template ? paths[template][method.toLowerCase()] : undefined;
      if (!op) {
        // Undocumented paths and methods must still answer with the Error shape.
        assert(
          status >= 400,
          `${method} ${path} is not in the OpenAPI document but answered ${status}`,
        );
        const validate = ajv.getSchema("doc#/components/schemas/Error");
        assert(validate(body), `${method} ${path}: ${ajv.errorsText(validate.errors)}`);
        checked++;
        return;
      }
      const response = op.responses[String(status)] ?? op.responses.default;
      assert(response, `no OpenAPI response ${status} for ${method} ${template}`);
      const schema = response.content?.["application/json"]?.schema;
      if (!schema) {
        assertEquals(body, null, `${method} ${path} ${status} must have no body`);
        checked++;
        return;
      }
      const pointer = `doc#/paths/${
        template!.replaceAll("~", "~0").replaceAll("/", "~1")
      }/${method.toLowerCase()}/responses/${
        op.responses[String(status)] ? status : "default"
      }/content/application~1json/schema`;
      const validate = ajv.getSchema(pointer);
      assert(validate, `cannot compile ${pointer}`);
      if (!validate(body)) {
        throw new Error(
          `${method} ${path} ${status} does not match its OpenAPI schema: ${
            ajv.errorsText(validate.errors)
          }\n${JSON.stringify(body).slice(0, 500)}`,
        );
      }
      checked++;
    },
  };
}

Deno.test("admin API: auth, users, tokens, live tunnels, sessions, metrics, alerts, CORS", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-api-" });
  const logger = createLogger({ level: "warn", format: "json", sink: () => {} });
  const config = serverConfigFromObject({
    server: {
      bind_addr: "127.0.0.1",
      bind_port: 0,
      auth: { method: "token", token: TOKEN },
      storage: { data_dir: dir },
      admin: { bind_addr: "127.0.0.1", bind_port: 0, cors_origins: ["https://console.example"] },
      alerting: { evaluate_every: "100ms", window: "5s" },
      log: { level: "warn", format: "json", access_file: `${dir}/access.log` },
      alerts: [{
        name: "tunnel_down",
        condition: 'tunnel_status == "disconnected"',
        duration: "300ms",
        severity: "critical",
      }],
    },
  });
  const store = await Store.open(config.storage, { logger, flushInterval: 200 });
  const server = await BurrowServer.start(config, { logger, store });
  const admin: AdminServer = startAdmin(server, config.admin, logger);
  const clients: Array<{ controller: AbortController; done: Promise<unknown> }> = [];
  const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const echoLoop = (async () => {
    for await (const conn of echo) {
      (async () => {
        const buf = new Uint8Array(1024);
        for (let n; (n = await conn.read(buf).catch(() => null)) !== null;) {
          await conn.write(buf.subarray(0, n));
        }
        conn.close();
      })();
    }
  })().catch(() => {});
  try {
    await until("admin port", () => admin.port !== 0);
    const base = `http://127.0.0.1:${admin.port}/api/v1`;
    const doc = await (await fetch(`${base}/openapi.json`)).json();
    assertEquals(doc.openapi, "3.1.0");
    const api = openApiChecker(doc);
    const call = async (
      method: string,
      path: string,
      body?: unknown,
      token: string | null = TOKEN,
      headers: Record<string, string> = {},
    ) => {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        ...(body !== undefined
          ? { body: typeof body === "string" ? body : JSON.stringify(body) }
          : {}),
      });
      const text = await response.text();
      const parsed = text ? JSON.parse(text) : null;
      api.check(method, path.split("?")[0]!, response.status, parsed);
      return { status: response.status, body: parsed, headers: response.headers };
    };

    await t.step("authentication and authorisation", async () => {
      assertEquals((await call("GET", "/users", undefined, null)).status, 401);
      assertEquals((await call("GET", "/users", undefined, "wrong")).status, 401);
      assertEquals((await call("GET", "/users")).status, 200);
      await call("POST", "/users", { name: "ops", admin: true });
      const adminToken =
        (await call("POST", "/tokens", { user: "ops", scopes: ["admin"] })).body.token;
      assertEquals((await call("GET", "/users", undefined, adminToken)).status, 200);
      const apiKey = await call("POST", "/keys", { user: "ops", scopes: ["admin"], ttl: "1d" });
      assertEquals(apiKey.status, 201);
      assert(apiKey.body.key.startsWith("bk_"));
      assertEquals((await call("GET", "/users", undefined, apiKey.body.key)).status, 200);
      const listed = await call("GET", "/tokens?user=ops");
      assertEquals(listed.body.items.map((k: { kind: string }) => k.kind).sort(), ["jwt", "key"]);
      assert(
        !JSON.stringify(listed.body).includes(apiKey.body.key.slice(16)),
        "no secret listed",
      );
      assertEquals((await call("DELETE", `/tokens/${apiKey.body.id}`)).status, 204);
      assertEquals((await call("GET", "/users", undefined, apiKey.body.key)).status, 401);
      await call("POST", "/users", { name: "carol" });
      const plain = (await call("POST", "/tokens", { user: "carol" })).body.token;
      const denied = await call("GET", "/users", undefined, plain);
      assertEquals(denied.status, 403);
      assert(denied.body.error.message.includes("admin"), denied.body.error.message);
    });

    await t.step("errors are consistent and name the problem", async () => {
      const bad = await call("POST", "/users", "{nope");
      assertEquals([bad.status, bad.body.error.code], [400, "bad_request"]);
      const unknown = await call("POST", "/users", { name: "x", colour: "red" });
      assert(unknown.body.error.message.includes(`Unknown field "colour"`));
      assertEquals((await call("POST", "/users", { name: "carol" })).status, 409);
      assertEquals((await call("GET", "/users/nobody")).status, 404);
      assertEquals((await call("PUT", "/users")).status, 405);
      assertEquals((await call("GET", "/nowhere")).status, 404);
      const badName = await call("POST", "/users", { name: "no spaces" });
      assertEquals(badName.status, 400);
      const page = await call("GET", "/users?limit=1&offset=1");
      assertEquals([page.body.items.length, page.body.total, page.body.limit], [1, 3, 1]);
      assertEquals((await call("GET", "/users?limit=-1")).status, 400);
    });

    // A client of user dave, logged in with a token issued through the API.
    const davesToken = await (async () => {
      await call("POST", "/users", { name: "dave" });
      const issued = await call("POST", "/tokens", { user: "dave", ttl: "1h" });
      assertEquals(issued.status, 201);
      return issued.body.token as string;
    })();
    const states = new Map<string, TunnelState>();
    const startDave = () => {
      const controller = new AbortController();
      const client = new BurrowClient(
        clientConfigFromObject({
          client: {
            server_addr: "127.0.0.1",
            server_port: server.port,
            auth_token: davesToken,
            server_fingerprint: server.fingerprint,
            client_id: "daves-laptop",
            reconnect: { initial_delay: "50ms", max_delay: "200ms", enable_jitter: false },
            tunnels: [{ name: "declared", type: "tcp", local_port: echo.addr.port }],
          },
        }),
        { logger, onTunnel: (s) => states.set(s.name, { ...s }) },
      );
      const entry = { controller, done: client.run(controller.signal).catch((e) => e) };
      clients.push(entry);
      return entry;
    };
    const dave = startDave();
    await until("declared tunnel", () => states.get("declared")?.status === "active");

    let tunnelId = 0;
    await t.step(
      "tunnels created, changed and deleted through the API reach the client",
      async () => {
        const created = await call("POST", "/tunnels", {
          user: "dave",
          name: "api-made",
          type: "tcp",
          local_port: echo.addr.port,
        });
        assertEquals(created.status, 201);
        tunnelId = created.body.id;
        await until("managed tunnel active", () => states.get("api-made")?.status === "active");
        const port = states.get("api-made")!.remotePort!;
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(new TextEncoder().encode("ping"));
        const buf = new Uint8Array(4);
        await conn.read(buf);
        conn.close();
        assertEquals(new TextDecoder().decode(buf), "ping");

        const listed = await call("GET", "/tunnels?user=dave");
        assertEquals(listed.body.items.map((r: { name: string }) => r.name).sort(), [
          "api-made",
          "declared",
        ]);
        // Outside cluster mode the one node that can hold a tunnel is this one.
        for (const row of listed.body.items) assertEquals(row.nodes, [server.node]);
        const disabled = await call("PATCH", `/tunnels/${tunnelId}`, { enabled: false });
        assertEquals(disabled.body.enabled, false);
        await until("managed tunnel removed", () => states.get("api-made")?.status === "closed");
        await call("PATCH", `/tunnels/${tunnelId}`, { enabled: true });
        await until("managed tunnel back", () => states.get("api-made")?.status === "active");
        assertEquals(
          (await call("PATCH", `/tunnels/${tunnelId}`, { local_port: 70000 })).status,
          400,
        );
        // Options follow the same tunnel spec as the client's YAML, named as sent.
        const typo = await call("PATCH", `/tunnels/${tunnelId}`, { options: { locatoins: ["/"] } });
        assertEquals([typo.status, typo.body.error.code], [400, "bad_request"]);
        assertEquals(
          typo.body.error.message,
          'Invalid tunnel: options.locatoins: unknown key (did you mean "locations"?)',
        );
        assertEquals((await call("GET", `/tunnels/${tunnelId}`)).body.name, "api-made");
        await until("metrics rows", async () => {
          const m = await call("GET", `/tunnels/${tunnelId}/metrics?since=1h`);
          return m.body.items.length > 0;
        });
        const access = Deno.readTextFileSync(`${dir}/access.log`).trim().split("\n").map((l) =>
          JSON.parse(l)
        );
        const line = access.find((a) => a.tunnel === "api-made")!;
        assertEquals([line.user, line.type, line.bytes_in, line.bytes_out, line.status], [
          "dave",
          "tcp",
          4,
          4,
          "ok",
        ]);
        assertEquals((await call("DELETE", `/tunnels/${tunnelId}`)).status, 204);
        await until("managed tunnel deleted", () => states.get("api-made")?.status === "closed");
        assertEquals((await call("DELETE", `/tunnels/${tunnelId}`)).status, 404);
      },
    );

    await t.step(
      "/metrics exposes traffic, connections, sessions and process metrics",
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
        for (
          const needle of [
            'burrow_connections_total{tunnel="dave/api-made",result="ok"} 1',
            'burrow_tunnel_bytes_total{tunnel="dave/api-made",direction="in"} 4',
            "burrow_clients_online 1",
            "burrow_users_online 1",
            'burrow_logins_total{result="ok"}',
            "burrow_first_byte_seconds_bucket",
            'burrow_cache_lookups_total{cache="tokens"',
            "burrow_db_up 1",
            "process_resident_memory_bytes",
          ]
        ) {
          assert(
            text.includes(needle),
            `missing ${needle} in\n${
              text.split("\n").filter((l) => l.startsWith("burrow_")).join("\n")
            }`,
          );
        }
        assert(
          !/remote|127\.0\.0\.1/.test(
            text.split("\n").filter((l) => l.startsWith("burrow_")).join("\n"),
          ),
          "no per-address labels",
        );
      },
    );

    await t.step(
      "sessions: list and kick; tunnel_down fires and resolves; alerts listed and silenced",
      async () => {
        const sessions = await call("GET", "/sessions");
        const mine = sessions.body.items.find((s: { client_id: string }) =>
          s.client_id === "daves-laptop"
        );
        assertEquals([mine.user, mine.node], ["dave", server.node]);
        assertEquals(mine.tunnels.map((t: { name: string }) => t.name), ["declared"]);
        assertEquals((await call("DELETE", `/sessions/${mine.id}`)).status, 204);
        assertEquals((await call("DELETE", `/sessions/${mine.id}`)).status, 404);
        // The client reconnects by itself.
        await until(
          "reconnected",
          () =>
            [...server.sessions].some((s) =>
              s.clientId === "daves-laptop" && s.sessionId !== mine.id
            ),
        );

        // Stop the client: its tunnel goes down, the rule fires after 300 ms.
        dave.controller.abort();
        await dave.done;
        await until("tunnel_down firing", async () => {
          const a = await call("GET", "/alerts?state=firing");
          return a.body.items.some((x: { rule: string; labels: { tunnel: string } }) =>
            x.rule === "tunnel_down" && x.labels.tunnel === "dave/declared"
          );
        });
        // Status changes are events in the logs table.
        await until("status events in the logs table", async () => {
          await store.flush();
          const events = await store.logs.list({ kind: "event", limit: 1000 });
          return events.some((e) =>
            e.message === "tunnel disconnected" && e.fields.tunnel === "declared"
          ) &&
            events.some((e) => e.message === "tunnel connected" && e.fields.user === "dave");
        });
        const stats = await call("GET", "/stats");
        assertEquals(
          stats.body.items.find((s: { key: string }) => s.key === "dave/declared").status,
          "disconnected",
        );
        const firing = (await call("GET", "/alerts?state=firing")).body.items[0];
        const silenced = await call("POST", `/alerts/${firing.id}/silence`, { duration: "1h" });
        assert(silenced.body.silenced_until, "silenced_until set");
        // Back: resolved.
        startDave();
        await until("tunnel_down resolved", async () => {
          const all = await call("GET", "/alerts");
          return all.body.items.some((x: { id: number; state: string }) =>
            x.id === firing.id && x.state === "resolved"
          );
        });
      },
    );

    await t.step(
      "nodes: none outside cluster mode (tests/cluster_nodes_e2e_test.ts has them)",
      async () => {
        const nodes = await call("GET", "/nodes");
        assertEquals(nodes.status, 200);
        assertEquals(nodes.body, { items: [], total: 0, limit: 100, offset: 0 });
      },
    );

    await t.step("JWKS: the public halves of the signing keys", async () => {
      const jwks = await (await fetch(`http://127.0.0.1:${admin.port}/.well-known/jwks.json`))
        .json();
      assert(jwks.keys.length >= 1);
      for (const k of jwks.keys) {
        assertEquals([k.kty, k.crv, k.alg, k.use, k.d], [
          "OKP",
          "Ed25519",
          "EdDSA",
          "sig",
          undefined,
        ]);
      }
    });

    await t.step("CORS for the configured front-end origin only", async () => {
      const pre = await fetch(`${base}/users`, {
        method: "OPTIONS",
        headers: { origin: "https://console.example", "access-control-request-method": "GET" },
      });
      await pre.body?.cancel();
      assertEquals(pre.status, 204);
      assertEquals(pre.headers.get("access-control-allow-origin"), "https://console.example");
      const evil = await fetch(`${base}/users`, {
        method: "OPTIONS",
        headers: { origin: "https://evil.example" },
      });
      await evil.body?.cancel();
      assertEquals(evil.status, 403);
      const got = await call("GET", "/users", undefined, TOKEN, {
        origin: "https://console.example",
      });
      assertEquals(got.headers.get("access-control-allow-origin"), "https://console.example");
    });

    assert(api.checked >= 30, `only ${api.checked} responses checked against OpenAPI`);
  } finally {
    for (const c of clients) c.controller.abort();
    await Promise.all(clients.map((c) => c.done));
    echo.close();
    await echoLoop;
    await admin.close();
    await server.shutdown(0);
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

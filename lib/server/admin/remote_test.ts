// The subcommands' side of the admin API: requests as the API reads them, answers as the
// service gives them, refusals as the service's errors. Against a stand-in API on 127.0.0.1.

import { ConflictError, NotFoundError, ValidationError } from "../../storage/mod.ts";
import { assert, assertEquals, assertRejects } from "../../testing/mod.ts";
import { Secret } from "../../util/mod.ts";
import { RemoteAdmin } from "./remote.ts";

interface Seen {
  method: string;
  path: string;
  auth: string | null;
  body: unknown;
}

/** A stand-in admin API answering `answer(seen)`, with what it was asked. */
function standIn(answer: (seen: Seen, url: URL) => Response) {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (r) => {
    const url = new URL(r.url);
    const text = await r.text();
    const one = {
      method: r.method,
      path: url.pathname + url.search,
      auth: r.headers.get("authorization"),
      body: text ? JSON.parse(text) : undefined,
    };
    seen.push(one);
    return answer(one, url);
  });
  const admin = new RemoteAdmin({
    pid: 4242,
    url: `http://127.0.0.1:${server.addr.port}`,
    token: new Secret("local-token"),
  }, "/srv/burrow-data");
  return { seen, admin, [Symbol.asyncDispose]: () => server.shutdown() };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const refusal = (status: number, code: string, message: string) =>
  json(status, { error: { code, message } });

Deno.test("remote admin: requests carry the run's token and the API's field names", async () => {
  const created = "2026-01-02T03:04:05.678Z";
  await using api = standIn(({ method, path }) => {
    if (method === "POST" && path === "/api/v1/users") {
      return json(201, { id: 2, name: "alice", is_admin: false, created_at: created });
    }
    if (method === "POST" && path === "/api/v1/tokens") {
      return json(201, { id: "t1", token: "eyJ.x.y", expires_at: created });
    }
    if (method === "POST" && path === "/api/v1/keys") {
      return json(201, { id: "key_1", key: "bk_1_s", expires_at: null });
    }
    if (method === "DELETE") return new Response(null, { status: 204 });
    return json(200, {});
  });
  const user = await api.admin.addUser("alice");
  assertEquals(user.created_at, new Date(created));
  const token = await api.admin.issue("token", "alice", {
    ttlMs: 30 * 86_400_000,
    scopes: ["tunnel"],
    limits: { types: ["tcp"] },
  });
  assertEquals(token, { id: "t1", token: "eyJ.x.y", expiresAt: new Date(created) });
  const key = await api.admin.issue("key", "alice", {
    ttlMs: null,
    scopes: ["tunnel"],
    limits: {},
  });
  assertEquals(key, { id: "key_1", token: "bk_1_s", expiresAt: null });
  await api.admin.setUserPolicy("al/ice", { allow_ports: null, max_bandwidth: 10_000_000 });
  await api.admin.setUserDisabled("alice", true);
  await api.admin.revoke("t1");
  assertEquals(api.seen.map((s) => [s.method, s.path, s.body]), [
    ["POST", "/api/v1/users", { name: "alice", admin: false }],
    ["POST", "/api/v1/tokens", {
      user: "alice",
      ttl: "2592000000ms",
      scopes: ["tunnel"],
      limits: { types: ["tcp"] },
    }],
    ["POST", "/api/v1/keys", { user: "alice", scopes: ["tunnel"], limits: {} }],
    ["PATCH", "/api/v1/users/al%2Fice", { allow_ports: null, max_bandwidth: 10_000_000 }],
    ["PATCH", "/api/v1/users/alice", { disabled: true }],
    ["DELETE", "/api/v1/tokens/t1", undefined],
  ]);
  assert(api.seen.every((s) => s.auth === "Bearer local-token"));
});

Deno.test("remote admin: a zero lifetime is sent, so the server refuses it as the service does", async () => {
  await using api = standIn(() =>
    refusal(400, "bad_request", "A token's lifetime must be positive")
  );
  await assertRejects(() => api.admin.issue("token", "alice", { ttlMs: 0 }), ValidationError);
  assertEquals(api.seen[0]?.body, { user: "alice", ttl: "0ms" });
});

Deno.test("remote admin: lists are read page after page", async () => {
  const names = Array.from({ length: 2500 }, (_, i) => ({ id: i, name: `u${i}` }));
  await using api = standIn((_, url) => {
    const limit = Number(url.searchParams.get("limit"));
    const offset = Number(url.searchParams.get("offset"));
    return json(200, {
      items: names.slice(offset, offset + limit),
      total: names.length,
      limit,
      offset,
    });
  });
  assertEquals((await api.admin.users()).map((u) => u.name), names.map((u) => u.name));
  assertEquals(api.seen.map((s) => s.path), [
    "/api/v1/users?limit=1000&offset=0",
    "/api/v1/users?limit=1000&offset=1000",
    "/api/v1/users?limit=1000&offset=2000",
  ]);
});

Deno.test("remote admin: refusals are the service's errors, word for word", async () => {
  const cases = [
    [400, "bad_request", 'User "bob" is disabled', ValidationError],
    [404, "not_found", 'No user "bob"', NotFoundError],
    [409, "conflict", 'User "bob" already exists', ConflictError],
  ] as const;
  for (const [status, code, message, type] of cases) {
    await using api = standIn(() => refusal(status, code, message));
    const error = await assertRejects(() => api.admin.addUser("bob"), type);
    assertEquals(error.message, message);
  }
  await using api = standIn(() => refusal(401, "unauthorized", "Invalid token"));
  const error = await assertRejects(() => api.admin.users(), Error);
  assertEquals(
    error.message,
    "The burrowd holding the embedded database in /srv/burrow-data (pid 4242) refused the " +
      "request on its admin API (401): Invalid token",
  );
});

Deno.test("remote admin: a server that does not answer is named, with what to do", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const admin = new RemoteAdmin(
    { pid: 4242, url: `http://127.0.0.1:${port}`, token: new Secret("t") },
    "/srv/burrow-data",
  );
  const error = await assertRejects(() => admin.users(), Error);
  assert(
    error.message.startsWith(
      `The burrowd holding the embedded database in /srv/burrow-data (pid 4242) did not answer ` +
        `on its admin API at http://127.0.0.1:${port} (`,
    ),
    error.message,
  );
  assert(
    error.message.endsWith(
      "stop it (kill 4242) and run the command again: with no " +
        "burrowd running, the command opens the database itself",
    ),
    error.message,
  );
});

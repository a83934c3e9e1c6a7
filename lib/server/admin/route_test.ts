import assert from "node:assert/strict";
import { ApiError, checkBody, page, paged } from "./route.ts";
import { closed, ref } from "./schemas.ts";

/** The message of the 400 `checkBody` answers for `body`, or null when it passes. */
function refusal(body: Record<string, unknown>, schema = ref("TunnelCreate")): string | null {
  try {
    checkBody(body, schema);
    return null;
  } catch (error) {
    assert.ok(error instanceof ApiError);
    assert.deepEqual([error.status, error.code], [400, "bad_request"]);
    return error.message;
  }
}

Deno.test("checkBody: unknown, missing and mistyped fields, in the schema's order", () => {
  assert.equal(refusal({ user: "ann", name: "web", type: "http", local_port: 80 }), null);
  assert.equal(
    refusal({ user: "ann", name: "web", type: "http", colour: "red" }),
    'Unknown field "colour"; expected user, name, type, client_id, local_addr, local_port, ' +
      "remote_port, custom_domains, subdomain, options, enabled",
  );
  assert.equal(refusal({ name: "web", type: "http" }), 'Field "user" is required');
  assert.equal(refusal({ user: "ann", name: null, type: "tcp" }), 'Field "name" is required');
  // Integers are JSON numbers; which number is the storage's to judge.
  assert.equal(
    refusal({ user: "ann", name: "web", type: "tcp", local_port: "80" }),
    'Field "local_port" must be a number, got string',
  );
  assert.equal(
    refusal({ user: "ann", name: "web", type: 7 }),
    'Field "type" must be a string, got number',
  );
  assert.equal(
    refusal({ user: "ann", name: "web", type: "tcp", custom_domains: "a.example" }),
    'Field "custom_domains" must be a array, got string',
  );
  // null leaves an optional field out (a change may clear it).
  assert.equal(refusal({ user: "ann", name: "web", type: "tcp", client_id: null }), null);
  assert.equal(refusal({ local_port: null }, ref("TunnelPatch")), null);
});

Deno.test("checkBody: closed objects one level down; fields of several types pass", () => {
  const issue = closed({ user: { type: "string" }, limits: ref("TokenLimits") }, ["user"]);
  assert.equal(refusal({ user: "ann", limits: { ports: "2000-2100" } }, issue), null);
  assert.equal(
    refusal({ user: "ann", limits: { port: "2000" } }, issue),
    'Unknown field "port"; expected types, ports, domains',
  );
  assert.equal(
    refusal({ user: "ann", limits: [] }, issue),
    'Field "limits" must be a object, got array',
  );
  const size = closed({ max_bandwidth: { type: ["string", "integer", "null"] } });
  assert.equal(refusal({ max_bandwidth: "10MB" }, size), null);
  assert.equal(refusal({ max_bandwidth: 10 }, size), null);
});

Deno.test("page and paged: limit and offset, checked", () => {
  const url = (query: string) => new URL(`http://admin/api/v1/users${query}`);
  assert.deepEqual(page(url("")), { limit: 100, offset: 0 });
  assert.deepEqual(page(url("?limit=0")), { limit: 100, offset: 0 });
  assert.deepEqual(paged([1, 2, 3, 4], url("?limit=2&offset=1")), {
    items: [2, 3],
    total: 4,
    limit: 2,
    offset: 1,
  });
  for (const bad of ["?limit=-1", "?limit=1001", "?offset=1.5", "?limit=x"]) {
    assert.throws(() => page(url(bad)), (e) => e instanceof ApiError && e.status === 400);
  }
});

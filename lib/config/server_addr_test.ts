import assert from "node:assert/strict";
import { ConfigError } from "./schema.ts";
import { clientConfigFromObject } from "./schema.ts";
import { formatServerAddr, parseServerAddr } from "./server_addr.ts";

function problems(client: Record<string, unknown>): string[] {
  try {
    clientConfigFromObject({ client: { auth_token: "t", ...client } });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("Expected a ConfigError");
}

Deno.test("parseServerAddr: names, IPv4, bracketed IPv6, the default port", () => {
  assert.deepEqual(parseServerAddr("a.example.com:7100"), { host: "a.example.com", port: 7100 });
  assert.deepEqual(parseServerAddr("a.example.com"), { host: "a.example.com", port: 7000 });
  assert.deepEqual(parseServerAddr("10.0.0.5:1"), { host: "10.0.0.5", port: 1 });
  assert.deepEqual(parseServerAddr("[::1]:7000"), { host: "::1", port: 7000 });
  assert.deepEqual(parseServerAddr("[fe80::1]"), { host: "fe80::1", port: 7000 });
  assert.equal(formatServerAddr({ host: "::1", port: 7000 }), "[::1]:7000");
  assert.throws(() => parseServerAddr("::1:7000"), /IPv6 address in brackets/);
  assert.throws(() => parseServerAddr("a:70000"), /port 1-65535 after "a:", got "70000"/);
  assert.throws(() => parseServerAddr("a:"), /port 1-65535/);
  assert.throws(() => parseServerAddr("tcp://a:7000"), /Expected HOST:PORT/);
  assert.throws(() => parseServerAddr("[nope]:7000"), /not an IPv6 address/);
});

Deno.test("server_addrs: normalised into servers; ha_connections defaults to 1", () => {
  const c = clientConfigFromObject({
    client: { auth_token: "t", server_addrs: ["a:7001", "[::1]", "10.0.0.2:7002"] },
  });
  assert.deepEqual(c.servers, [
    { host: "a", port: 7001 },
    { host: "::1", port: 7000 },
    { host: "10.0.0.2", port: 7002 },
  ]);
  assert.equal(c.ha_connections, 1);
  const single = clientConfigFromObject({
    client: { auth_token: "t", server_addr: "b", server_port: 7100, ha_connections: 2 },
  });
  assert.deepEqual(single.servers, [{ host: "b", port: 7100 }]);
  assert.equal(single.ha_connections, 2);
});

Deno.test("server_addrs: bad entries are named by index, both forms at once refused", () => {
  assert.deepEqual(problems({ server_addrs: ["a:7000", "b:x", "::1", 7, "A:7000"] }), [
    'client.server_addrs[1]: Expected a port 1-65535 after "b:", got "x"',
    'client.server_addrs[2]: "::1": write an IPv6 address in brackets, as in [::1]:7000',
    "client.server_addrs[3]: expected a string HOST:PORT, got 7",
    'client.server_addrs[4]: "A:7000" is the same address as server_addrs[0]',
  ]);
  assert.deepEqual(problems({ server_addrs: [] }), [
    "client.server_addrs: expected a list of at least one HOST:PORT",
  ]);
  const both = problems({ server_addr: "a", server_port: 7000, server_addrs: ["b:7000"] });
  assert.equal(both.length, 2);
  assert.ok(both[0]!.startsWith("client.server_addr: give either client.server_addrs or"));
  assert.ok(both[1]!.startsWith("client.server_port: give either"));
  assert.deepEqual(problems({}), [
    "client.server_addr: required (or client.server_addrs, a list of HOST:PORT)",
  ]);
  assert.deepEqual(problems({ server_addrs: ["a"], ha_connections: 5 }), [
    "client.ha_connections: expected an integer 1-4, got 5",
  ]);
});

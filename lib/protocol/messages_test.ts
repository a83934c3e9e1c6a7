import assert from "node:assert/strict";
import { ProtocolError } from "./frame.ts";
import {
  decodeControl,
  encodeControl,
  type Message,
  negotiateVersion,
  PROTOCOL_VERSION,
} from "./messages.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

Deno.test("every message type round trips", () => {
  const messages: Message[] = [
    { type: "hello", version: 1, min_version: 1, software: "burrow/0.1.0", client_id: "c" },
    { type: "auth", method: "token", token: "t" },
    { type: "ack", session_id: "s", heartbeat_interval: 10000 },
    { type: "error", code: "auth_failed", message: "authentication failed" },
    {
      type: "control",
      action: "create_tunnel",
      tunnel_id: "web",
      config: { protocol: "tcp", local_port: 8080, remote_port: 80 },
    },
    { type: "control", action: "destroy_tunnel", tunnel_id: "web" },
    { type: "tunnel_status", tunnel_id: "web", status: "active", remote_port: 80 },
    { type: "heartbeat", timestamp: 1640995200, status: "online" },
    { type: "error", code: "unavailable", message: "database unreachable" },
    {
      type: "error",
      code: "limit",
      message: "Too many failed logins from 192.0.2.1; retry in 6 s",
      retry_after: 6,
    },
    {
      type: "notice",
      tunnel_id: "web",
      code: "bandwidth_limit",
      message: 'Tunnel "web" reached its bandwidth limit (1000000 B/s per direction)',
    },
    {
      type: "config_push",
      tunnels: [
        {
          name: "ssh",
          type: "tcp",
          local_addr: "127.0.0.1",
          local_port: 22,
          proxy_protocol: "v2",
          remote_port: 2222,
          status: "active",
        },
        {
          name: "db",
          type: "tcp",
          local_addr: "::1",
          local_port: 5432,
          status: "failed",
          error: "x",
        },
      ],
    },
    { type: "config_push", tunnels: [] },
    { type: "tunnel_health", tunnel_id: "web", healthy: false, reason: "3 checks failed" },
    { type: "tunnel_health", tunnel_id: "web", healthy: true },
  ];
  for (const m of messages) assert.deepEqual(decodeControl(encodeControl(m)), m);
});

Deno.test("the seed's control and heartbeat forms are accepted", () => {
  const create = decodeControl(enc({
    type: "control",
    action: "create_tunnel",
    tunnel_id: "x",
    config: { protocol: "tcp", local_port: 8080, remote_port: 80, domain: "example.com", auth: {} },
  }));
  assert.equal(create.type, "control");
  assert.deepEqual(
    decodeControl(enc({ type: "heartbeat", timestamp: 1640995200, status: "online" })),
    {
      type: "heartbeat",
      timestamp: 1640995200,
      status: "online",
    },
  );
  const hb = decodeControl(enc({ type: "control", action: "heartbeat", timestamp: 5 }));
  assert.deepEqual(hb, { type: "heartbeat", timestamp: 5, status: "online" });
});

Deno.test("malformed control messages are rejected with the field named", () => {
  const cases: Array<[Uint8Array, RegExp]> = [
    [Uint8Array.from([0xff, 0xfe]), /not valid UTF-8 JSON/],
    [new TextEncoder().encode("{nope"), /not valid UTF-8 JSON/],
    [enc([1, 2]), /must be a JSON object/],
    [enc("hello"), /must be a JSON object/],
    [enc({ type: "launch" }), /Unknown control message type "launch"/],
    [enc({ type: "auth", method: "token" }), /field "token" must be a string/],
    [
      enc({ type: "error", code: "limit", message: "m", retry_after: "6" }),
      /field "retry_after" must be a number/,
    ],
    [
      enc({ type: "ack", session_id: "s", heartbeat_interval: "10" }),
      /"heartbeat_interval" must be a number/,
    ],
    [enc({ type: "auth", method: "password", token: "t" }), /"method" must be one of token/],
    [enc({ type: "control", action: "explode", tunnel_id: "x" }), /"action" must be one of/],
    [enc({ type: "control", action: "create_tunnel", tunnel_id: "x" }), /needs a "config" object/],
    [
      enc({
        type: "control",
        action: "create_tunnel",
        tunnel_id: "x",
        config: { protocol: "ftp", local_port: 1 },
      }),
      /config.protocol must be one of/,
    ],
  ];
  const push = (t: unknown) => enc({ type: "config_push", tunnels: t });
  const good = { name: "a", type: "tcp", local_addr: "127.0.0.1", local_port: 1, status: "active" };
  cases.push(
    [enc({ type: "config_push" }), /field "tunnels" must be a object/],
    [push({}), /"tunnels" must be an array/],
    [push([1]), /tunnels\[0\] must be an object/],
    [push([{ ...good, name: "" }]), /tunnels\[0\].name/],
    [push([good, { ...good, type: "ftp" }]), /tunnels\[1\].type/],
    [push([{ ...good, local_addr: 1 }]), /local_addr/],
    [push([{ ...good, local_port: -1 }]), /local_port must be an integer 0-65535/],
    [push([{ ...good, status: "maybe" }]), /status must be active or failed/],
    [push([{ ...good, remote_port: "80" }]), /remote_port must be a number/],
    [push([{ ...good, error: 5 }]), /error must be a string/],
    [push([{ ...good, proxy_protocol: "v3" }]), /proxy_protocol must be v1 or v2/],
    [enc({ type: "tunnel_health", tunnel_id: "x", healthy: "yes" }), /"healthy" must be a boolean/],
  );
  for (const port of [-1, 65536, 1.5, "80"]) {
    cases.push([
      enc({
        type: "control",
        action: "create_tunnel",
        tunnel_id: "x",
        config: { protocol: "tcp", local_port: port },
      }),
      /config.local_port must be an integer 0-65535/,
    ]);
  }
  for (const [bytes, pattern] of cases) {
    assert.throws(
      () => decodeControl(bytes),
      (e) => e instanceof ProtocolError && pattern.test(e.message),
    );
  }
});

Deno.test("version negotiation names the side to upgrade", () => {
  assert.deepEqual(negotiateVersion({ version: 1, min_version: 1, software: "x" }, "client"), {
    version: 1,
  });
  assert.deepEqual(negotiateVersion({ version: 5, min_version: 1, software: "x" }, "client"), {
    version: PROTOCOL_VERSION,
  });
  const old = negotiateVersion({ version: 0, min_version: 0, software: "burrow/0.0.1" }, "client");
  assert.match("error" in old ? old.error : "", /too old.*upgrade burrow \(the client\)/);
  const newer = negotiateVersion(
    { version: 3, min_version: 3, software: "burrow/3.0.0" },
    "client",
  );
  assert.match("error" in newer ? newer.error : "", /upgrade burrowd \(the server\)/);
  const newerServer = negotiateVersion(
    { version: 3, min_version: 3, software: "burrowd/3" },
    "server",
  );
  assert.match("error" in newerServer ? newerServer.error : "", /upgrade burrow \(the client\)/);
});

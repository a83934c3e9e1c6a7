/**
 * Request smuggling through the HTTP vhost port, from outside: real burrowd
 * and burrow processes, a raw-TCP origin that records every byte it
 * receives, and a raw-TCP visitor that sends what a browser never would.
 */

import { assert, assertEquals } from "../lib/testing/mod.ts";
import { rawOrigin, vhostWith, visit } from "./_raw_http.ts";

const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: anything.evil\r\n" +
  "X-Forwarded-For: 6.6.6.6\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n" +
  "Authorization: Basic c211Z2dsZWQ6eA==\r\n\r\n0\r\n\r\n";

Deno.test("http: an Upgrade the service refuses never turns the connection into a pipe", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-smuggle-" });
  await using origin = rawOrigin();
  // Debug level: the access events are logged.
  await using burrow = await vhostWith(dir, [
    { name: "web", type: "http", local_port: origin.port, yaml: "custom_domains: [web.test]" },
    {
      name: "locked",
      type: "http",
      local_port: origin.port,
      yaml: "custom_domains: [locked.test], basic_auth: {user: ann, password: secret}",
    },
  ], "  log: {level: debug, format: json}\n");
  const { server, http } = burrow;
  const upgradeTo = (host: string, extra = "") =>
    `GET / HTTP/1.1\r\nHost: ${host}\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n` +
    `HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n${extra}\r\n`;

  // 1. The service answers 200: the visitor gets it, then the connection ends; the follow-up never arrives.
  const plain = await visit(http, upgradeTo("web.test"), /\r\n\r\nok/, SMUGGLED);
  assert(/^HTTP\/1\.1 200 /.test(plain.answer), `200 relayed: ${plain.answer}`);
  assert(/connection: close/i.test(plain.answer), "announced as the last response");
  assert(plain.closed, "the connection ended after the refused upgrade");

  // 2. The same with the smuggled request pipelined behind the upgrade in one write.
  const pipelined = await visit(http, upgradeTo("web.test") + SMUGGLED, /\r\n\r\nok/);
  assert(/^HTTP\/1\.1 200 /.test(pipelined.answer));
  assert(pipelined.closed);

  // 3. Basic auth: the follow-up's Authorization never reaches the service.
  const auth = `Authorization: Basic ${btoa("ann:secret")}\r\n`;
  const locked = await visit(http, upgradeTo("locked.test", auth), /\r\n\r\nok/, SMUGGLED);
  assert(/^HTTP\/1\.1 200 /.test(locked.answer), `200 relayed: ${locked.answer}`);
  assert(locked.closed);

  const seen = origin.received();
  assertEquals(seen.includes("anything.evil"), false, "no smuggled request reached the service");
  assertEquals(seen.includes("/smuggled"), false);
  assertEquals(seen.includes("6.6.6.6"), false, "no forged X-Forwarded-For");
  assertEquals(/authorization/i.test(seen), false, "no Authorization header reached the service");
  assertEquals((seen.match(/^GET \/ HTTP\/1\.1/gm) ?? []).length, 3, "each upgrade request once");
  assertEquals((seen.match(/X-Forwarded-For: 127\.0\.0\.1/g) ?? []).length, 3);

  // 4. A real upgrade that the service accepts still becomes a pipe.
  const key = btoa("0123456789abcdef");
  const ws = await visit(
    http,
    `GET /ws HTTP/1.1\r\nHost: web.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    /101 Switching/,
    "echo-me",
  );
  assert(/^HTTP\/1\.1 101 /.test(ws.answer), ws.answer);
  assert(ws.answer.endsWith("echo-me"), `bytes after the 101 are echoed: ${ws.answer}`);

  // The access log records the real status of each attempt, not 101.
  await server.waitFor((e) => e.msg === "access" && e.path === "/ws");
  const statuses = server.events
    .filter((e) => e.msg === "access" && e.path === "/")
    .map((e) => e.http_status);
  assertEquals(statuses, [200, 200, 200]);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
});

Deno.test("http: absolute-form targets are rewritten or refused; two Host headers are refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-smuggle-" });
  await using origin = rawOrigin();
  await using burrow = await vhostWith(dir, [
    { name: "web", type: "http", local_port: origin.port, yaml: "custom_domains: [web.test]" },
  ]);
  const { http } = burrow;

  const mismatch = await visit(
    http,
    "GET http://evil.test/x HTTP/1.1\r\nHost: web.test\r\n\r\n",
    /\r\n\r\n[\s\S]*\n/,
  );
  assert(/^HTTP\/1\.1 400 /.test(mismatch.answer), mismatch.answer);
  assert(/differs from its Host header/.test(mismatch.answer), mismatch.answer);

  const same = await visit(
    http,
    "GET http://web.test/abs?q=1 HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
    /\r\n\r\nok/,
  );
  assert(/^HTTP\/1\.1 200 /.test(same.answer), same.answer);

  const twoHosts = await visit(
    http,
    "GET / HTTP/1.1\r\nHost: web.test\r\nHost: other.test\r\n\r\n",
    /\r\n\r\n[\s\S]*\n/,
  );
  assert(/^HTTP\/1\.1 400 /.test(twoHosts.answer), twoHosts.answer);
  assert(twoHosts.closed, "closed after the refusal");

  const seen = origin.received();
  assert(seen.includes("GET /abs?q=1 HTTP/1.1"), `origin form reached the service: ${seen}`);
  assertEquals(seen.includes("evil.test"), false);
  assertEquals(seen.includes("other.test"), false);
  assertEquals(seen.includes("http://"), false, "no absolute-form target reached the service");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
});

Deno.test("http: pipelined requests on one connection go to the tunnel of each path, answered in order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-splice-" });
  await using a = rawOrigin("A");
  await using b = rawOrigin("B");
  await using burrow = await vhostWith(dir, [
    { name: "site", type: "http", local_port: a.port, yaml: "custom_domains: [web.test]" },
    {
      name: "api",
      type: "http",
      local_port: b.port,
      yaml: "custom_domains: [web.test], locations: [/api]",
    },
  ]);
  const { http } = burrow;
  const paths = ["/one", "/api/two", "/three", "/api/four", "/five"];
  const pipelined = paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: web.test\r\n\r\n`).join("");
  const last = "GET /api/six HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n";
  const { answer, closed } = await visit(http, pipelined + last, /A:\/five[\s\S]*B:\/api\/six/);
  const bodies = [...answer.matchAll(/\r\n\r\n([AB]:\/[a-z/]+)/g)].map((m) => m[1]);
  assertEquals(bodies, [
    "A:/one",
    "B:/api/two",
    "A:/three",
    "B:/api/four",
    "A:/five",
    "B:/api/six",
  ]);
  assertEquals((answer.match(/HTTP\/1\.1 200 /g) ?? []).length, 6);
  assert(closed, "closed after the request that asked for it");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
});

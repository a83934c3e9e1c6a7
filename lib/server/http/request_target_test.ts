import assert from "node:assert/strict";
import { parseRequestHead } from "./head.ts";
import { originTarget } from "./request_target.ts";

/** `originTarget` of a request `method target` whose Host header is `host`. */
const target = (method: string, requestTarget: string, host: string) =>
  originTarget(
    parseRequestHead(
      new TextEncoder().encode(`${method} ${requestTarget} HTTP/1.1\r\nHost: ${host}\r\n\r\n`),
    )!,
    host,
  );

Deno.test("request target: the origin form passes, the absolute form for the same host is rewritten", () => {
  assert.equal(target("GET", "/a?b=1", "a.test"), "/a?b=1");
  assert.equal(target("OPTIONS", "*", "a.test"), "*");
  assert.equal(target("GET", "http://a.test/x?y=1", "a.test"), "/x?y=1");
  assert.equal(target("GET", "https://A.Test:8443/x", "a.test:8080"), "/x");
  assert.equal(target("GET", "http://[::1]:8080/x", "[::1]"), "/x");
  assert.equal(target("GET", "http://a.test", "a.test"), "/");
});

Deno.test("request target: CONNECT, other schemes, user info and another host are refused", () => {
  const refused: Array<[string, string, string, RegExp]> = [
    ["CONNECT", "a.test:443", "a.test", /CONNECT/],
    ["GET", "*", "a.test", /Invalid request target/],
    ["GET", "ftp://a.test/x", "a.test", /Invalid request target/],
    ["GET", "http://u:p@a.test/x", "a.test", /Invalid request target/],
    ["GET", "http://b.test/x", "a.test", /"b.test" differs from its Host header/],
  ];
  for (const [method, requestTarget, host, reason] of refused) {
    const result = target(method, requestTarget, host);
    assert.ok(
      typeof result !== "string" && reason.test(result.error),
      `${method} ${requestTarget}: ${JSON.stringify(result)}`,
    );
  }
});

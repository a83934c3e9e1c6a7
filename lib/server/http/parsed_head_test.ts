import assert from "node:assert/strict";
import { parseRequestHead, requestFraming } from "./head.ts";
import { HEADER_KIND } from "./header_names.ts";
import type { HeaderList } from "./parsed_head.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
/** A request head carrying `headers`, parsed. */
const requestWith = (headers: HeaderList) =>
  parseRequestHead(
    bytes(`POST / HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`),
  )!;
const assertEquals = <T>(actual: T, expected: T, message?: string) =>
  assert.deepStrictEqual(actual, expected, message);

Deno.test("head: lookups by name read the bytes, in any case, known names or not", () => {
  const head = requestWith([
    ["HOST", "a.test"],
    ["Connection", "Keep-Alive,  Upgrade ,"],
    ["connection", "x-trace"],
    ["X-Trace", "1"],
    ["x-trace", " 2 "],
    ["Content-Length", "0"],
  ]);
  assertEquals(head.kind(0), HEADER_KIND.host);
  assertEquals(head.kind(3), 0);
  assertEquals([head.get("host"), head.countOf("host"), head.countOf("x-trace")], ["a.test", 1, 2]);
  assertEquals(head.get("x-trace"), "1");
  assertEquals(head.value(4), "2");
  assertEquals(head.indexOf("x-trace", 4), 4);
  assertEquals(head.indexOf("x-none"), -1);
  assertEquals(head.tokens("connection"), ["keep-alive", "upgrade", "x-trace"]);
  for (const token of ["keep-alive", "upgrade", "x-trace"]) {
    assertEquals(head.hasToken("connection", token), true, token);
  }
  assertEquals(head.hasToken("connection", "close"), false);
  assertEquals(head.hasToken("connection", "upgrad"), false);
  assertEquals(head.hasToken("x-trace", "2"), true);
  assertEquals(head.headers[1], ["Connection", "Keep-Alive,  Upgrade ,"]);
  assertEquals(head.name(0), "HOST");
  // A name that only looks like a known one.
  const near = requestWith([["Hosts", "x"], ["Content-Lengths", "5"]]);
  assertEquals([near.kind(0), near.kind(1), near.get("host")], [0, 0, undefined]);
  assertEquals(requestFraming(near), { kind: "none" });
});

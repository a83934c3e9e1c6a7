import assert from "node:assert/strict";
import {
  editedSize,
  HttpHeadError,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
  writeEdited,
} from "./head.ts";
import { BodyTracker } from "./framing.ts";

/** `head` (parsed from `wire`) after `edit`, as the engine writes it. */
const edited = (
  wire: Uint8Array,
  head: { starts: number[]; size: number },
  edit: { firstLine: string | null; keep: boolean[]; extra: string },
) => {
  const out = new Uint8Array(editedSize(head, edit));
  assert.equal(writeEdited(out, 0, wire, head, edit), out.length);
  return out;
};
const bytes = (text: string) => new TextEncoder().encode(text);
const assertEquals = <T>(actual: T, expected: T, message?: string) =>
  assert.deepStrictEqual(actual, expected, message);

/** The HttpHeadError that `fn` throws (fails when it throws nothing or something else). */
function assertThrows(
  fn: () => unknown,
  _type: typeof HttpHeadError,
  _includes?: string,
  message?: string,
): HttpHeadError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof HttpHeadError, `${message ?? ""}: ${error}`);
    return error;
  }
  throw new assert.AssertionError({ message: `Nothing thrown: ${message ?? ""}` });
}

Deno.test("head: a request head is parsed once complete", () => {
  assertEquals(parseRequestHead(bytes("GET / HTTP/1.1\r\nHost: a")), null);
  const head = parseRequestHead(bytes("POST /x?y=1 HTTP/1.1\r\nHost: a\r\nX-A:  b \r\n\r\nbody"))!;
  assertEquals(head.method, "POST");
  assertEquals(head.target, "/x?y=1");
  assertEquals(head.version, "1.1");
  assertEquals(head.headers, [["Host", "a"], ["X-A", "b"]]);
  assertEquals(head.size, 43);
});

Deno.test("head: malformed and smuggling heads are refused with a reason", () => {
  const refused: Array<[string, RegExp]> = [
    ["GET / HTTP/1.1\nHost: a\r\n\r\n", /Bare/],
    ["GET / HTTP/1.1\r\nHost: a\n\r\n", /Bare/],
    ["GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", /obs-fold/],
    ["GET  / HTTP/1.1\r\nHost: a\r\n\r\n", /request line/],
    ["GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", /request target/],
    ["GET / HTTP/2.0\r\nHost: a\r\n\r\n", /version/],
    ["G(T / HTTP/1.1\r\nHost: a\r\n\r\n", /method/],
    ["GET / HTTP/1.1\r\nHo st: a\r\n\r\n", /header name/],
    ["GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", /Control character/],
    ["GET / HTTP/1.1\r\nHost a\r\n\r\n", /without a name/],
  ];
  for (const [head, reason] of refused) {
    const error = assertThrows(() => parseRequestHead(bytes(head)), HttpHeadError);
    assertEquals(reason.test(error.message), true, `${JSON.stringify(head)}: ${error.message}`);
  }
});

Deno.test("head: request framing refuses ambiguity", () => {
  assertEquals(requestFraming([]), { kind: "none" });
  assertEquals(requestFraming([["Content-Length", "5"]]), { kind: "length", length: 5 });
  assertEquals(requestFraming([["content-length", "5"], ["Content-Length", "5"]]).kind, "length");
  assertEquals(requestFraming([["Transfer-Encoding", "chunked"]]), { kind: "chunked" });
  for (
    const headers of [
      [["Content-Length", "5"], ["Transfer-Encoding", "chunked"]],
      [["Content-Length", "5"], ["Content-Length", "6"]],
      [["Content-Length", "5, 6"]],
      [["Content-Length", "-1"]],
      [["Content-Length", "0x10"]],
      [["Transfer-Encoding", "gzip"]],
      [["Transfer-Encoding", "chunked, gzip"]],
      [["Transfer-Encoding", "chunked"], ["Transfer-Encoding", "chunked"]],
    ] as Array<Array<[string, string]>>
  ) {
    assertThrows(() => requestFraming(headers), HttpHeadError, undefined, JSON.stringify(headers));
  }
});

Deno.test("head: response heads and their framing", () => {
  const head = parseResponseHead(bytes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"))!;
  assertEquals([head.status, head.reason, head.size], [200, "OK", 38]);
  assertEquals(responseFraming("GET", 200, head.headers), { kind: "length", length: 3 });
  assertEquals(responseFraming("HEAD", 200, head.headers), { kind: "none" });
  assertEquals(responseFraming("GET", 204, []), { kind: "none" });
  assertEquals(responseFraming("GET", 304, head.headers), { kind: "none" });
  assertEquals(responseFraming("GET", 101, []), { kind: "none" });
  assertEquals(responseFraming("GET", 200, []), { kind: "close" });
  assertEquals(responseFraming("GET", 200, [["Transfer-Encoding", "gzip, chunked"]]), {
    kind: "chunked",
  });
  const bad = assertThrows(() => parseResponseHead(bytes("HTTP/1.1 2000\r\n\r\n")), HttpHeadError);
  assertEquals(bad.status, 502);
});

Deno.test("head: heads round-trip through the engine's edit, bytes above 0x7f included", () => {
  const text = "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\u00e9\r\n\r\n";
  const wire = Uint8Array.from(text, (c) => c.charCodeAt(0));
  const head = parseRequestHead(wire)!;
  assertEquals(head.headers, [["Host", "a"], ["X-Name", "caf\u00e9"]]);
  const out = edited(wire, head, { firstLine: null, keep: [true, true], extra: "" });
  assertEquals(out, wire);
  assertEquals(out[out.length - 3], 10);
});

Deno.test("framing: lengths and chunked bodies end where they should, in any split", () => {
  const body = "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n";
  const next = "GET /next HTTP/1.1\r\n";
  const all = bytes(body + next);
  for (let split = 0; split <= all.length; split++) {
    const tracker = new BodyTracker({ kind: "chunked" });
    const first = tracker.feed(all.subarray(0, split));
    const second = tracker.done ? 0 : tracker.feed(all, split);
    assertEquals(first + second, body.length, `split at ${split}`);
    assertEquals(tracker.done, true);
  }
  const length = new BodyTracker({ kind: "length", length: 5 });
  assertEquals(length.feed(bytes("abc")), 3);
  assertEquals(length.feed(bytes("defgh")), 2);
  assertEquals(length.done, true);
  const close = new BodyTracker({ kind: "close" });
  assertEquals(close.feed(bytes("abc")), 3);
  assertEquals([close.done, close.untilClose], [false, true]);
});

Deno.test("framing: invalid chunked bodies are refused", () => {
  for (
    const body of [
      "x\r\n",
      "4\nWiki\r\n",
      "4\r\nWikiX\r\n",
      "-1\r\n",
      "fffffffffffffffff\r\n",
      "0\r\n\n",
      "0\r\nTrailer: x\n\r\n",
      "4;\x01\r\n",
    ]
  ) {
    const tracker = new BodyTracker({ kind: "chunked" });
    assertThrows(() => tracker.feed(bytes(body)), HttpHeadError, undefined, JSON.stringify(body));
  }
});

Deno.test("head edit: kept lines cross as bytes, dropped lines go, first line and extras replace", () => {
  // A value with obs-text (0xe9) must cross byte for byte.
  const wire = new Uint8Array([
    ...new TextEncoder().encode(
      "GET http://a/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-N: caf",
    ),
    0xe9,
    ...new TextEncoder().encode("\r\nTE: trailers\r\n\r\n"),
  ]);
  const head = parseRequestHead(wire)!;
  assert.deepEqual(head.starts.length, head.headers.length);
  const edit = {
    firstLine: "GET /x HTTP/1.1",
    keep: [true, false, true, false],
    extra: "Via: b\r\n",
  };
  const out = edited(wire, head, edit);
  assert.equal(out.length, editedSize(head, edit));
  const text = Array.from(out, (b) => String.fromCharCode(b)).join("");
  assert.equal(text, "GET /x HTTP/1.1\r\nHost: a\r\nX-N: caf\u00e9\r\nVia: b\r\n\r\n");
  // Nothing changed: the same bytes; written at an offset of a larger buffer.
  const same = { firstLine: null, keep: [true, true, true, true], extra: "" };
  const into = new Uint8Array(wire.length + 5);
  assert.equal(writeEdited(into, 5, wire, head, same), into.length);
  assert.deepEqual(into.subarray(5), wire);
  // A head without fields.
  const bare = new TextEncoder().encode("HTTP/1.0 204 No Content\r\n\r\n");
  const response = parseResponseHead(bare)!;
  const upgraded = edited(bare, response, {
    firstLine: "HTTP/1.1 204 No Content",
    keep: [],
    extra: "Connection: keep-alive\r\n",
  });
  assert.equal(
    new TextDecoder().decode(upgraded),
    "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n",
  );
});

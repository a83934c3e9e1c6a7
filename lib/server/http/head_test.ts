import assert from "node:assert/strict";
import {
  HttpHeadError,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
} from "./head.ts";
import type { HeaderList } from "./parsed_head.ts";
import { BodyTracker } from "./framing.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
/** A request head carrying `headers`, parsed. */
const requestWith = (headers: HeaderList) =>
  parseRequestHead(
    bytes(`POST / HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`),
  )!;
/** A response head carrying `headers`, parsed. */
const responseWith = (headers: HeaderList) =>
  parseResponseHead(
    bytes(`HTTP/1.1 200 OK\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`),
  )!;
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
  assertEquals(requestFraming(requestWith([])), { kind: "none" });
  assertEquals(requestFraming(requestWith([["Content-Length", "5"]])), {
    kind: "length",
    length: 5,
  });
  assertEquals(
    requestFraming(requestWith([["content-length", "5"], ["Content-Length", "5"]])).kind,
    "length",
  );
  assertEquals(requestFraming(requestWith([["Transfer-Encoding", "chunked"]])), {
    kind: "chunked",
  });
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
    assertThrows(
      () => requestFraming(requestWith(headers)),
      HttpHeadError,
      undefined,
      JSON.stringify(headers),
    );
  }
});

Deno.test("head: response heads and their framing", () => {
  const head = parseResponseHead(bytes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"))!;
  assertEquals([head.status, head.reason, head.size], [200, "OK", 38]);
  assertEquals(responseFraming("GET", 200, head), { kind: "length", length: 3 });
  assertEquals(responseFraming("HEAD", 200, head), { kind: "none" });
  assertEquals(responseFraming("GET", 204, responseWith([])), { kind: "none" });
  assertEquals(responseFraming("GET", 304, head), { kind: "none" });
  assertEquals(responseFraming("GET", 101, responseWith([])), { kind: "none" });
  assertEquals(responseFraming("GET", 200, responseWith([])), { kind: "close" });
  assertEquals(
    responseFraming("GET", 200, responseWith([["Transfer-Encoding", "gzip, chunked"]])),
    { kind: "chunked" },
  );
  assertEquals(
    responseFraming("GET", 200, responseWith([["Transfer-Encoding", "chunked, gzip"]])),
    { kind: "close" },
  );
  const lengths = responseWith([["Content-Length", "7, 7"], ["content-LENGTH", " 7"]]);
  assertEquals(responseFraming("GET", 200, lengths), { kind: "length", length: 7 });
  const differing = responseWith([["Content-Length", "7"], ["Content-Length", "8"]]);
  assertEquals(
    assertThrows(() => responseFraming("GET", 200, differing), HttpHeadError).status,
    502,
  );
  const bad = assertThrows(() => parseResponseHead(bytes("HTTP/1.1 2000\r\n\r\n")), HttpHeadError);
  assertEquals(bad.status, 502);
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

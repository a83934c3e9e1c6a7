import { assert, assertEquals } from "../../testing/mod.ts";
import { xorshift32 } from "../../util/mod.ts";
import { headerFields, HttpTap, MAX_HEAD, type RecordedExchange } from "./http_tap.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function tapped(maxBody = 1024): { tap: HttpTap; seen: RecordedExchange[] } {
  const seen: RecordedExchange[] = [];
  return { tap: new HttpTap({ maxBody, onExchange: (x) => seen.push(x) }), seen };
}

/** Feeds `text` in pieces of `size` bytes. */
function feed(into: (b: Uint8Array, now: number) => void, text: string, size = 1 << 30, now = 0) {
  const bytes = enc.encode(text);
  for (let i = 0; i < bytes.length; i += size) into(bytes.subarray(i, i + size), now);
}

Deno.test("HttpTap: keep-alive and pipelined requests pair with their responses in order", () => {
  const { tap, seen } = tapped();
  feed(
    (b, t) => tap.request(b, t),
    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
      "GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
    1 << 30,
    10,
  );
  assertEquals(seen.length, 0);
  feed(
    (b, t) => tap.response(b, t),
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" +
      "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n" +
      "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!",
    1 << 30,
    25,
  );
  assertEquals(seen.map((x) => [x.request.method, x.request.path, x.response?.status]), [
    ["GET", "/a", 200],
    ["POST", "/b", 201],
    ["GET", "/c", 404],
  ]);
  assertEquals(dec.decode(seen[1]!.request.body), "hello");
  assertEquals(dec.decode(seen[0]!.response!.body), "ok");
  assertEquals(seen[0]!.end - seen[0]!.start, 15);
  assertEquals(headerFields(seen[0]!.request.head), [["Host", "x"]]);
  assertEquals(tap.stopped, null);
});

Deno.test("HttpTap: a head split byte by byte, and a body split across chunks", () => {
  const { tap, seen } = tapped();
  feed((b, t) => tap.request(b, t), "PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", 1);
  feed((b, t) => tap.response(b, t), "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", 1);
  assertEquals(seen.length, 1);
  assertEquals(dec.decode(seen[0]!.request.body), "0123456789");
  assertEquals(seen[0]!.request.head, "PUT /x HTTP/1.1\r\nContent-Length: 10");
  assertEquals(headerFields(seen[0]!.response!.head), [["X-A", "1"]]);
});

Deno.test("HttpTap: chunked bodies are de-chunked, trailers skipped, and kept up to maxBody", () => {
  const { tap, seen } = tapped(8);
  const chunked =
    "4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n";
  feed(
    (b, t) => tap.request(b, t),
    `POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`,
    3,
  );
  feed(
    (b, t) => tap.response(b, t),
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}` +
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!",
    5,
  );
  assertEquals(seen.length, 1);
  const x = seen[0]!;
  assertEquals(dec.decode(x.request.body), "Wikipedi");
  assertEquals(x.request.bodySize, 24);
  assertEquals(dec.decode(x.response!.body), "Wikipedi");
  assertEquals(x.response!.bodySize, 24);
  // The extra response has no request: not HTTP as expected, recording stops.
  assertEquals(tap.stopped, "broken");
});

Deno.test("HttpTap: 100 Continue is skipped, the final response recorded", () => {
  const { tap, seen } = tapped();
  feed((b, t) => tap.request(b, t), "POST /up HTTP/1.1\r\nExpect: 100-continue\r\n");
  feed((b, t) => tap.request(b, t), "Content-Length: 3\r\n\r\n");
  feed((b, t) => tap.response(b, t), "HTTP/1.1 100 Continue\r\n\r\n");
  feed((b, t) => tap.request(b, t), "abc");
  feed((b, t) => tap.response(b, t), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  assertEquals(seen.length, 1);
  assertEquals(seen[0]!.response!.status, 200);
  assertEquals(dec.decode(seen[0]!.request.body), "abc");
});

Deno.test("HttpTap: an upgrade is recorded, then parsing stops", () => {
  const { tap, seen } = tapped();
  feed(
    (b, t) => tap.request(b, t),
    "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
  );
  feed(
    (b, t) => tap.response(b, t),
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
  );
  tap.request(new Uint8Array([0x81, 0x85, 1, 2, 3, 4, 0, 0, 0, 0, 0]), 0);
  assertEquals(seen.length, 1);
  assertEquals(seen[0]!.response!.status, 101);
  assertEquals(seen[0]!.upgraded, true);
  assertEquals(tap.stopped, "upgraded");
  tap.end(1);
  assertEquals(seen.length, 1);
});

Deno.test("HttpTap: a body until close ends with the connection; unanswered requests are reported", () => {
  const { tap, seen } = tapped();
  feed((b, t) => tap.request(b, t), "GET /old HTTP/1.0\r\n\r\n");
  feed((b, t) => tap.response(b, t), "HTTP/1.0 200 OK\r\n\r\nall of it");
  assertEquals(seen.length, 0);
  tap.end(7);
  assertEquals(dec.decode(seen[0]!.response!.body), "all of it");

  const other = tapped();
  feed((b, t) => other.tap.request(b, t), "GET /lost HTTP/1.1\r\n\r\n");
  other.tap.end(3);
  assertEquals(other.seen.length, 1);
  assertEquals(other.seen[0]!.response, null);
});

Deno.test("HttpTap: garbage stops recording the connection and never throws", () => {
  for (
    const text of [
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", // a TLS ClientHello
      "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]
  ) {
    const { tap, seen } = tapped();
    feed((b, t) => tap.request(b, t), text);
    assertEquals(tap.stopped, "broken", text);
    feed((b, t) => tap.response(b, t), "HTTP/1.1 200 OK\r\n\r\n");
    tap.end(1);
    assert(seen.every((x) => x.response === null), text);
  }
  const { tap } = tapped();
  tap.request(new Uint8Array(MAX_HEAD + 10).fill(65), 0);
  assertEquals(tap.stopped, "broken");
});

Deno.test("HttpTap: HEAD and 304 responses have no body", () => {
  const { tap, seen } = tapped();
  feed((b, t) => tap.request(b, t), "HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  feed(
    (b, t) => tap.response(b, t),
    "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
  );
  assertEquals(seen.map((x) => x.response?.status), [200, 304]);
  assertEquals(tap.stopped, null);
});

Deno.test("HttpTap: framing headers are read in any case, with spaces, split anywhere", () => {
  const request =
    "POST /p?q=1 HTTP/1.1\r\ncOnTeNt-LeNgTh: \t3 \r\nX-Y: content-length: 9\r\n\r\nabc";
  const response = "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n" +
    "3\r\nxyz\r\n0\r\n\r\n";
  for (const size of [1, 2, 3, 7, 1 << 30]) {
    const { tap, seen } = tapped();
    feed((b, t) => tap.request(b, t), request, size);
    feed((b, t) => tap.response(b, t), response, size);
    assertEquals(tap.stopped, null, `pieces of ${size}`);
    assertEquals(seen.length, 1);
    assertEquals(seen[0]!.request.method, "POST");
    assertEquals(seen[0]!.request.path, "/p?q=1");
    assertEquals(dec.decode(seen[0]!.request.body), "abc");
    assertEquals(dec.decode(seen[0]!.response!.body), "xyz");
    assertEquals(seen[0]!.response!.head, "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked");
  }
});

Deno.test("HttpTap: a part of a chunk is read as asked, the bytes around it untouched", () => {
  const { tap, seen } = tapped();
  const bytes = enc.encode("xxGET /a HTTP/1.1\r\nHost: h\r\n\r\nyy");
  tap.request(bytes, 1, 2, bytes.length - 2);
  const answer = enc.encode("HTTP/1.1 204 No Content\r\n\r\n!!");
  tap.response(answer, 2, 0, answer.length - 2);
  assertEquals(tap.stopped, null);
  assertEquals(seen.map((x) => [x.request.path, x.response?.status, x.start, x.end]), [
    ["/a", 204, 1, 2],
  ]);
});

Deno.test("HttpTap: start lines and framing that are not HTTP stop recording", () => {
  for (
    const [request, response] of <Array<[string, string]>> [
      ["GET /a HTTP/2.0\r\n\r\n", ""],
      ["GET  /a HTTP/1.1\r\n\r\n", ""],
      ["GET /a\tb HTTP/1.1\r\n\r\n", ""],
      ["G(T /a HTTP/1.1\r\n\r\n", ""],
      ["POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", ""],
      ["POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\nab", ""],
      ["GET / HTTP/1.1\n\n", ""],
      ["GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n"],
      ["GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n"],
      ["GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n"],
      ["GET / HTTP/1.1\r\n\r\n", "HTTP/3 200 OK\r\n\r\n"],
    ]
  ) {
    const { tap } = tapped();
    feed((b, t) => tap.request(b, t), request);
    feed((b, t) => tap.response(b, t), response);
    assertEquals(tap.stopped, "broken", JSON.stringify([request, response]));
  }
});

Deno.test("HttpTap: any split of the same bytes records the same exchanges", () => {
  // Each request with its answer; the answer's bytes come only after its request's head.
  const pairs: Array<[string, string, string]> = [
    ["GET /a HTTP/1.1\r\nHost: h\r\n\r\n", "", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    [
      "POST /b HTTP/1.1\r\ncontent-length: 11\r\n\r\n",
      "hello world",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew",
    ],
    [
      "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "5\r\nabcde\r\n3;x=y\r\nfgh\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nT: 1\r\n\r\n",
    ],
    ["HEAD /d HTTP/1.1\r\n\r\n", "", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"],
  ];
  const up = enc.encode(pairs.map(([head, body]) => head + body).join(""));
  const down = enc.encode(pairs.map(([, , answer]) => answer).join(""));
  // Bytes of `up` to have fed before the answer starting at each offset of `down` may come.
  const headEnds: number[] = [];
  const answerStarts: number[] = [];
  let u = 0;
  let d = 0;
  for (const [head, body, answer] of pairs) {
    headEnds.push(u + enc.encode(head).length);
    answerStarts.push(d);
    u += enc.encode(head + body).length;
    d += enc.encode(answer).length;
  }
  const summary = (seen: RecordedExchange[]) =>
    seen.map((x) => [
      x.request.method,
      x.request.path,
      x.request.head,
      dec.decode(x.request.body),
      x.response?.status,
      x.response?.head,
      dec.decode(x.response?.body),
      x.response?.bodySize,
    ]);
  const whole = tapped();
  whole.tap.request(up, 0);
  whole.tap.response(down, 0);
  assertEquals(whole.seen.length, 4);
  const expected = summary(whole.seen);
  const next = xorshift32(17);
  for (let round = 0; round < 300; round++) {
    const { tap, seen } = tapped();
    let i = 0;
    let j = 0;
    while (i < up.length || j < down.length) {
      const n = 1 + Math.floor(next() * 40);
      // How far the answers may go: up to the start of the first answer whose request's
      // head has not been fed whole.
      const k = headEnds.findIndex((end) => end > i);
      const limit = k < 0 ? down.length : answerStarts[k]!;
      if (j < limit && (i >= up.length || next() < 0.5)) {
        const to = Math.min(limit, j + n);
        tap.response(down.subarray(j, to), 0);
        j = to;
      } else if (i < up.length) {
        const to = Math.min(up.length, i + n);
        tap.request(up.subarray(i, to), 0);
        i = to;
      }
    }
    assertEquals(tap.stopped, null, `round ${round}`);
    assertEquals(summary(seen), expected, `round ${round}`);
  }
});

Deno.test("HttpTap: random bytes after a valid start never throw and stay bounded", () => {
  const next = xorshift32(99);
  for (let round = 0; round < 300; round++) {
    const { tap, seen } = tapped(256);
    const junk = new Uint8Array(1 + Math.floor(next() * 4000));
    for (let k = 0; k < junk.length; k++) {
      // Mostly header-ish bytes, with the characters that matter to framing thrown in.
      const r = next();
      junk[k] = r < 0.1 ? 10 : r < 0.2 ? 13 : r < 0.25 ? 58 : 32 + Math.floor(next() * 95);
    }
    const prefix = round % 2 === 0 ? "POST /x HTTP/1.1\r\n" : "";
    const bytes = new Uint8Array([...enc.encode(prefix), ...junk]);
    for (let i = 0; i < bytes.length;) {
      const n = 1 + Math.floor(next() * 64);
      tap.request(bytes.subarray(i, i + n), 0);
      tap.response(bytes.subarray(i, i + n), 0);
      i += n;
    }
    tap.end(1);
    for (const x of seen) {
      assert(x.request.body.length <= 256 && (x.response?.body.length ?? 0) <= 256);
    }
  }
});

import { assert, assertEquals } from "../../testing/mod.ts";
import type { RelayConn } from "../../mux/mod.ts";
import { BodyArena, HttpTap, MAX_HEAD, type RecordedExchange, releaseMessage } from "./http_tap.ts";
import { RecordedConn } from "./recorded_conn.ts";
import { Recorder } from "./recorder.ts";

const enc = new TextEncoder();
const local = { hostname: "127.0.0.1", port: 1 };

/** Bytes the ring holds in bodies and heads. */
function heldBytes(recorder: Recorder): number {
  let n = 0;
  for (const x of recorder.ring.list()) {
    n += x.request.body.length + x.request.head.length;
    n += (x.response?.body.length ?? 0) + (x.response?.head.length ?? 0);
  }
  return n;
}

Deno.test("Recorder: a flood of large requests stays within max_requests and max_body", () => {
  const recorder = new Recorder({ maxRequests: 50, maxBody: 1024 });
  const body = new Uint8Array(100_000).fill(120);
  for (let c = 0; c < 40; c++) {
    const conn = recorder.connection({ tunnel: "web", remote: `10.0.0.${c}:1`, local });
    for (let r = 0; r < 25; r++) {
      conn.request(
        enc.encode(`POST /f/${c}/${r} HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`),
      );
      conn.request(body);
      conn.response(enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`));
      conn.response(body);
      // The recorder drains between the relay's reads.
      recorder.drain();
    }
    conn.end();
    recorder.drain();
  }
  const list = recorder.ring.list();
  assertEquals(list.length, 50);
  assertEquals(list[0]!.request.path, "/f/39/24");
  assertEquals(list[0]!.id, 1000);
  for (const x of list) {
    assertEquals(x.request.body.length, 1024);
    assertEquals(x.request.bodySize, 100_000);
    assertEquals(x.response?.bodySize, 100_000);
    // Copies in a body arena (at most 256 KiB), not views of the slab or of a large chunk,
    // which would keep all of it alive.
    assert(x.request.body.buffer !== body.buffer);
    assert(x.request.body.buffer.byteLength <= 256 * 1024);
    assert(x.response!.body.buffer.byteLength <= 256 * 1024);
  }
  // The stated bound: entries × 2 × (max_body + MAX_HEAD).
  assert(heldBytes(recorder) <= 50 * 2 * (1024 + MAX_HEAD));
  recorder.close();
});

Deno.test("Recorder: a full queue drops chunks, stops recording that connection, marks what it cut", () => {
  const recorder = new Recorder({ queueBytes: 64 * 1024 });
  const conn = recorder.connection({ tunnel: "web", remote: "10.0.0.1:1", local });
  const other = recorder.connection({ tunnel: "web", remote: "10.0.0.2:1", local });
  conn.request(enc.encode("GET /whole HTTP/1.1\r\n\r\n"));
  conn.response(enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  conn.request(enc.encode("GET /a HTTP/1.1\r\n\r\n"));
  conn.response(enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n"));
  for (let i = 0; i < 4; i++) conn.response(new Uint8Array(50_000));
  assertEquals(recorder.dropped, 1);
  assert(conn.off);
  // The cut shows at the next drain, while the connection is still open.
  recorder.drain();
  const cut = recorder.ring.list();
  assertEquals(cut.map((x) => [x.request.path, x.incomplete]), [
    ["/a", "queue_full"],
    ["/whole", undefined],
  ]);
  // Nothing more of it is recorded; its end adds nothing; other connections go on whole.
  conn.request(enc.encode("GET /after HTTP/1.1\r\n\r\n"));
  conn.end();
  other.request(enc.encode("GET /b HTTP/1.1\r\n\r\n"));
  other.response(enc.encode("HTTP/1.1 204 No Content\r\n\r\n"));
  recorder.drain();
  assertEquals(recorder.ring.list().map((x) => [x.request.path, x.incomplete]), [
    ["/b", undefined],
    ["/a", "queue_full"],
    ["/whole", undefined],
  ]);
  recorder.close();
});

Deno.test("Recorder: clear, get and subscribe", () => {
  const recorder = new Recorder();
  const seen: number[] = [];
  const stop = recorder.ring.subscribe((e) => seen.push(e.type === "add" ? e.entry.id : 0));
  const conn = recorder.connection({ tunnel: "web", remote: "10.0.0.1:1", local });
  conn.request(enc.encode("GET /a HTTP/1.1\r\n\r\n"));
  conn.response(enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  recorder.drain();
  assertEquals(seen, [1]);
  assertEquals(recorder.ring.get(1)?.remote, "10.0.0.1:1");
  recorder.ring.clear();
  assertEquals(recorder.ring.list(), []);
  assertEquals(seen, [1, 0]);
  stop();
  recorder.close();
});

Deno.test("RecordedConn: hands each request byte over once across partial writes", async () => {
  const written: number[] = [];
  const inner: RelayConn = {
    read: () => Promise.resolve(null),
    // Writes at most 3 bytes at a time.
    write: (p) => {
      const n = Math.min(3, p.length);
      written.push(n);
      return Promise.resolve(n);
    },
    closeWrite: () => {},
    close: () => {},
  };
  const recorder = new Recorder();
  const recording = recorder.connection({ tunnel: "web", remote: "r", local });
  const conn = new RecordedConn(inner, recording);
  const text = enc.encode("GET /partial HTTP/1.1\r\n\r\n");
  let off = await conn.write(text);
  while (off < text.length) off += await conn.write(text.subarray(off));
  conn.close();
  recording.response(enc.encode("HTTP/1.1 204 No Content\r\n\r\n"));
  recorder.drain();
  assertEquals(recorder.ring.list().map((x) => x.request.path), ["/partial"]);
  recorder.close();
});

Deno.test("Recorder: blocks of dropped entries are filled again, and kept entries read what was sent", () => {
  const recorder = new Recorder({ maxRequests: 20, maxBody: 4096 });
  const conns = Array.from(
    { length: 5 },
    (_, c) => recorder.connection({ tunnel: "web", remote: `10.0.0.${c}`, local }),
  );
  // Each body says which request it belongs to, so a block reused under a kept entry would show.
  const bodyOf = (n: number) => enc.encode(String(n).padStart(8, "0").repeat(300));
  let n = 0;
  for (let round = 0; round < 400; round++) {
    for (const conn of conns) {
      const body = bodyOf(n);
      conn.request(enc.encode(`POST /n/${n} HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`));
      conn.request(body);
      // The answer's body in two chunks: kept in two parts, joined, the parts given back.
      conn.response(enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`));
      conn.response(body.subarray(0, 1000));
      conn.response(body.subarray(1000));
      n++;
    }
    recorder.drain();
    for (const x of recorder.ring.list()) {
      const id = Number(x.request.path.slice(3));
      const expected = new TextDecoder().decode(bodyOf(id));
      assertEquals(new TextDecoder().decode(x.request.body), expected);
      assertEquals(new TextDecoder().decode(x.response!.body), expected);
      assertEquals(x.request.head.split("\r\n")[0], `POST /n/${id} HTTP/1.1`);
    }
  }
  // 2,000 exchanges of ~7 KiB kept: 55 blocks' worth, and no more than a few blocks ever made.
  const list = recorder.ring.list();
  assertEquals(list.length, 20);
  assertEquals(list[0]!.request.path, `/n/${n - 1}`);
  const blocks = new Set<ArrayBufferLike>();
  for (const x of list) blocks.add(x.request.body.buffer).add(x.response!.body.buffer);
  assert(blocks.size <= 4, `${blocks.size} blocks`);
  // What the ring drops reads empty (never another request's bytes).
  const kept = list.at(-1)!;
  recorder.ring.clear();
  assertEquals([kept.request.head, kept.request.body.length], ["", 0]);
  recorder.close();
});

Deno.test("BodyArena: a block is reused only once every message with a copy in it is given back", () => {
  const arena = new BodyArena();
  const seen: RecordedExchange[] = [];
  const tap = new HttpTap({ maxBody: 64 * 1024, arena, onExchange: (x) => seen.push(x) });
  const post = (n: number) => {
    const body = new Uint8Array(60 * 1024).fill(n);
    tap.request(enc.encode(`POST /${n} HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`), 0);
    tap.request(body, 0);
    tap.response(enc.encode("HTTP/1.1 204 No Content\r\n\r\n"), 0);
  };
  // Four requests fill most of the first 256 KiB block; the fifth's body goes to a second.
  for (let n = 0; n < 5; n++) post(n);
  const first = seen[0]!.request.body.buffer;
  assert(seen[3]!.request.body.buffer === first && seen[4]!.request.body.buffer !== first);
  for (const x of seen.slice(0, 4)) {
    releaseMessage(x.request);
    releaseMessage(x.response!);
  }
  // The fifth request's head is still in the first block.
  assertEquals(arena.spare, 0);
  releaseMessage(seen[4]!.request);
  assertEquals(arena.spare, 1);
  // Given back twice, or a message of no arena: nothing changes.
  releaseMessage(seen[4]!.request);
  releaseMessage({ head: "GET / HTTP/1.1", body: new Uint8Array(1), bodySize: 1 });
  assertEquals(arena.spare, 1);
  // The second block fills up, and the first is filled again.
  for (let n = 5; n < 9; n++) post(n);
  assertEquals(seen[8]!.request.body.buffer, first);
  assertEquals([seen[8]!.request.body[0], seen[8]!.request.body.length], [8, 60 * 1024]);
  assertEquals(arena.spare, 0);
});

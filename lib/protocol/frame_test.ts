import assert from "node:assert/strict";
import {
  DEFAULT_MAX_PAYLOAD,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  HEADER_SIZE,
  ProtocolError,
} from "./frame.ts";

const ALL_TYPES = [
  FrameType.Control,
  FrameType.Open,
  FrameType.Data,
  FrameType.Window,
  FrameType.Fin,
  FrameType.Reset,
  FrameType.Ping,
  FrameType.Pong,
  FrameType.GoAway,
];

function copy(frames: Iterable<Frame>) {
  return [...frames].map((f) => ({ ...f, payload: f.payload.slice() }));
}

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("every frame type round trips with empty, tiny and large payloads", () => {
  for (const type of ALL_TYPES) {
    for (const size of [0, 1, 70_000]) {
      const payload = new Uint8Array(size).map((_, i) => i * 7);
      const bytes = encodeFrame(type, 0xdeadbeef, payload);
      assert.equal(bytes.length, HEADER_SIZE + size);
      const [frame, ...rest] = copy(new FrameDecoder().push(bytes));
      assert.equal(rest.length, 0);
      assert.equal(frame!.type, type);
      assert.equal(frame!.streamId, 0xdeadbeef);
      assert.deepEqual(frame!.payload, payload);
    }
  }
});

Deno.test("a stream split at every byte boundary and at random decodes the same", () => {
  const frames = ALL_TYPES.map((t, i) => encodeFrame(t, i, new Uint8Array(i * 300).fill(i)));
  const whole = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let off = 0;
  for (const f of frames) {
    whole.set(f, off);
    off += f.length;
  }
  const expected = copy(new FrameDecoder().push(whole));
  assert.equal(expected.length, ALL_TYPES.length);

  const byteByByte = new FrameDecoder();
  const got: ReturnType<typeof copy> = [];
  for (let i = 0; i < whole.length; i++) {
    got.push(...copy(byteByByte.push(whole.subarray(i, i + 1))));
  }
  assert.deepEqual(got, expected);

  const random = prng(42);
  for (let round = 0; round < 50; round++) {
    const decoder = new FrameDecoder();
    const out: ReturnType<typeof copy> = [];
    for (let i = 0; i < whole.length;) {
      const n = 1 + Math.floor(random() * 2000);
      // Half the time use the zero-copy writable/commit path.
      if (random() < 0.5) {
        out.push(...copy(decoder.push(whole.subarray(i, i + n))));
      } else {
        const part = whole.subarray(i, i + n);
        decoder.writable(part.length).set(part);
        decoder.commit(part.length);
        out.push(...copy(decoder.frames()));
      }
      i += n;
    }
    assert.deepEqual(out, expected);
    assert.equal(decoder.pending, 0);
  }
});

Deno.test("bad magic is rejected, naming HTTP and random bytes, and keeps what arrived", () => {
  const http = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.throws(() => [...new FrameDecoder().push(http)], /HTTP request.*not HTTP/);
  const junk = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  assert.throws(
    () => [...new FrameDecoder().push(junk)],
    (e) => e instanceof ProtocolError && /Bad magic 0x01020304/.test(e.message),
  );
  const answer = new TextEncoder().encode(`HTTP/1.1 400 Bad Request\r\n${"x".repeat(100)}`);
  assert.throws(
    () => [...new FrameDecoder().push(answer)],
    (e) => e instanceof ProtocolError && e.received?.length === 64 && e.received[0] === 0x48,
    "the bytes that broke framing travel with the error, up to 64",
  );
});

Deno.test("unknown frame types 0, 10 and 255 are rejected", () => {
  for (const type of [0, 10, 255]) {
    const bytes = encodeFrame(FrameType.Data, 1);
    bytes[4] = type;
    assert.throws(
      () => [...new FrameDecoder().push(bytes)],
      (e) => e instanceof ProtocolError && e.message.includes(`Unknown frame type ${type}`),
    );
  }
});

Deno.test("length over the maximum is rejected before the payload arrives; the limit itself is fine", () => {
  const header = encodeFrame(FrameType.Data, 1).slice(0, HEADER_SIZE);
  new DataView(header.buffer).setUint32(5, 0xffffffff);
  assert.throws(() => [...new FrameDecoder().push(header)], /exceeds the maximum of 1048576/);
  const small = new FrameDecoder({ maxPayload: 100 });
  assert.equal([...small.push(encodeFrame(FrameType.Data, 1, new Uint8Array(100)))].length, 1);
  assert.throws(
    () => [...small.push(encodeFrame(FrameType.Data, 1, new Uint8Array(101)))],
    ProtocolError,
  );
  assert.equal(DEFAULT_MAX_PAYLOAD, 1 << 20);
});

Deno.test("a truncated frame stays pending", () => {
  const decoder = new FrameDecoder();
  const bytes = encodeFrame(FrameType.Control, 0, new Uint8Array(100));
  assert.equal([...decoder.push(bytes.subarray(0, 40))].length, 0);
  assert.equal(decoder.pending, 40);
});

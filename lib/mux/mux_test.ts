import assert from "node:assert/strict";
import { encodeFrame, FrameType, HEADER_SIZE, ProtocolError } from "../protocol/mod.ts";
import { memoryPipe } from "../transport/mod.ts";
import { Mux, type MuxOptions } from "./mux.ts";
import { type MuxStream, StreamResetError } from "./stream.ts";

async function readAll(stream: MuxStream): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let c; (c = await stream.read()) !== null;) parts.push(c);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function pair(
  onStream: (s: MuxStream) => void,
  extra: Partial<MuxOptions> = {},
  latency = 0,
): [Mux, Mux] {
  const [a, b] = memoryPipe({ latency });
  const server = new Mux(a, { role: "server", pingInterval: 0, onStream, ...extra });
  const client = new Mux(b, { role: "client", pingInterval: 0, ...extra });
  return [client, server];
}

const echo = async (s: MuxStream) => {
  for (let c; (c = await s.read()) !== null;) await s.write(c);
  s.closeWrite();
};

Deno.test("open carries metadata; 100 concurrent streams echo distinct data intact", async () => {
  const metas: unknown[] = [];
  const [client, server] = pair((s) => {
    metas.push(s.meta);
    echo(s);
  });
  try {
    const results = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const s = client.open({ n: i });
      const data = new Uint8Array(20_000 + i).fill(i);
      const back = readAll(s);
      await s.write(data);
      s.closeWrite();
      assert.deepEqual(await back, data);
      return i;
    }));
    assert.equal(results.length, 100);
    assert.equal(metas.length, 100);
    assert.deepEqual(metas[0], { n: 0 });
    assert.equal(client.streamCount, 0);
    assert.equal(server.streamCount, 0);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("half-close: one side's FIN leaves the other direction open", async () => {
  let serverSide!: MuxStream;
  const [client, server] = pair((s) => (serverSide = s));
  try {
    const s = client.open({});
    await s.write(new TextEncoder().encode("request"));
    s.closeWrite();
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(new TextDecoder().decode(await readAll(serverSide)), "request");
    // The server can still answer after the client's FIN.
    await serverSide.write(new TextEncoder().encode("reply"));
    serverSide.closeWrite();
    assert.equal(new TextDecoder().decode(await readAll(s)), "reply");
    assert.equal(client.streamCount, 0);
    assert.equal(server.streamCount, 0);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("reset reaches the peer's read and write with its reason; other streams go on", async () => {
  const streams: MuxStream[] = [];
  const [client, server] = pair((s) => streams.push(s));
  try {
    const a = client.open({ a: 1 });
    const b = client.open({ b: 1 });
    await a.write(new Uint8Array([1]));
    await b.write(new Uint8Array([2]));
    await new Promise((r) => setTimeout(r, 10));
    a.reset("local service unavailable");
    await new Promise((r) => setTimeout(r, 10));
    await assert.rejects(
      () => streams[0]!.read(),
      (e) => e instanceof StreamResetError && e.message === "local service unavailable",
    );
    await assert.rejects(() => streams[0]!.write(new Uint8Array(1)), StreamResetError);
    assert.deepEqual(await streams[1]!.read(), new Uint8Array([2]));
    await streams[1]!.write(new Uint8Array([3]));
    assert.deepEqual(await b.read(), new Uint8Array([3]));
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("a slow reader blocks neither other streams nor memory", async () => {
  const streams: MuxStream[] = [];
  const [client, server] = pair((s) => streams.push(s));
  try {
    const slow = client.open({ slow: true });
    const fast = client.open({ fast: true });
    // The slow stream's reader never reads; its writer stalls at the window.
    const stalled = slow.write(new Uint8Array(4 * 1024 * 1024));
    stalled.catch(() => {});
    const data = new Uint8Array(20 * 1024 * 1024);
    const writing = (async () => {
      await fast.write(data);
      fast.closeWrite();
    })();
    await new Promise((r) => setTimeout(r, 5));
    const received = await readAll(streams[1]!);
    await writing;
    assert.equal(received.length, data.length);
    assert.ok(streams[0]!.buffered <= streams[0]!.window, `${streams[0]!.buffered} buffered`);
    assert.ok(streams[0]!.buffered > 0);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("a peer sending past the window is cut off with a ProtocolError", async () => {
  const [a, b] = memoryPipe();
  const mux = new Mux(a, { role: "client", pingInterval: 0 });
  try {
    mux.open({});
    // Hand-written peer: data on stream 1 well past the initial 256 KiB window.
    const chunk = encodeFrame(FrameType.Data, 1, new Uint8Array(64 * 1024));
    for (let i = 0; i < 5; i++) await b.write(chunk);
    const error = await mux.closed;
    assert.ok(error instanceof ProtocolError);
    assert.match(error.message, /exceeded its flow-control window/);
  } finally {
    mux.close();
    b.close();
  }
});

Deno.test("garbage from a raw peer closes the mux with a ProtocolError", async () => {
  const cases: Array<[string, Uint8Array[], RegExp]> = [
    ["bad magic", [new TextEncoder().encode("SSH-2.0-OpenSSH_9.2\r\n")], /Bad magic/],
    ["control off stream 0", [encodeFrame(FrameType.Control, 3, new Uint8Array(2))], /stream 3/],
    [
      "open with own parity",
      [encodeFrame(FrameType.Open, 1, new TextEncoder().encode("{}"))],
      /not a valid new stream/,
    ],
    ["open reused id", [
      encodeFrame(FrameType.Open, 2, new TextEncoder().encode("{}")),
      encodeFrame(FrameType.Open, 2, new TextEncoder().encode("{}")),
    ], /not a valid new stream/],
    ["open without JSON", [encodeFrame(FrameType.Open, 2, new Uint8Array([1]))], /valid JSON/],
    ["short ping", [encodeFrame(FrameType.Ping, 0, new Uint8Array(3))], /8 bytes/],
    [
      "truncated then closed",
      [encodeFrame(FrameType.Data, 2, new Uint8Array(50)).subarray(0, 20)],
      /ended inside a frame/,
    ],
  ];
  for (const [name, frames, pattern] of cases) {
    const [a, b] = memoryPipe();
    const mux = new Mux(a, { role: "client", pingInterval: 0, onStream: () => {} });
    for (const f of frames) await b.write(f);
    b.closeWrite();
    const error = await mux.closed;
    assert.ok(error instanceof ProtocolError, `${name}: ${error}`);
    assert.match(error.message, pattern, name);
    mux.close();
    mux.close(); // twice is safe
    b.close();
  }
});

Deno.test("ping measures the round trip; the window grows on a 50 ms link", async () => {
  let receiver!: MuxStream;
  const [client, server] = pair((s) => (receiver = s), {}, 25);
  try {
    const rtt = await client.ping();
    assert.ok(rtt >= 49, `rtt ${rtt}`);
    const s = client.open({});
    const size = 16 * 1024 * 1024;
    const writing = (async () => {
      await s.write(new Uint8Array(size));
      s.closeWrite();
    })();
    await new Promise((r) => setTimeout(r, 60));
    await server.ping();
    const received = await readAll(receiver);
    await writing;
    assert.equal(received.length, size);
    assert.ok(receiver.window > 256 * 1024, `window stayed at ${receiver.window}`);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("go-away: the peer hears the reason, opens nothing new, finishes open streams", async () => {
  const streams: MuxStream[] = [];
  let reason = "";
  const [a, b] = memoryPipe();
  const server = new Mux(a, { role: "server", pingInterval: 0, onStream: (s) => streams.push(s) });
  const client = new Mux(b, { role: "client", pingInterval: 0, onGoAway: (r) => (reason = r) });
  try {
    const open = client.open({});
    await open.write(new Uint8Array([1]));
    server.goAway("Server shutting down");
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(reason, "Server shutting down");
    assert.throws(() => client.open({}), /going away/);
    await streams[0]!.write(new Uint8Array([9]));
    assert.deepEqual(await open.read(), new Uint8Array([9]));
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("after close, control reads end and stream reads reject", async () => {
  const [client, server] = pair(() => {});
  const s = client.open({});
  client.close();
  assert.equal(await client.recvControl(), null);
  await assert.rejects(() => s.read(), StreamResetError);
  assert.equal(await client.closed, null);
  server.close();
});

Deno.test("frames queued by several streams in one turn go out in one write", async () => {
  const writes: number[] = [];
  let release!: () => void;
  const blocked = new Promise<void>((r) => (release = r));
  const conn = {
    read: async () => {
      await blocked;
      return null;
    },
    write: (p: Uint8Array) => {
      writes.push(p.length);
      return Promise.resolve(p.length);
    },
    close: () => release(),
  };
  const mux = new Mux(conn, { role: "client", pingInterval: 0 });
  try {
    const streams = [0, 1, 2].map((i) => mux.open({ n: i }));
    await mux.flush();
    const opens = writes.splice(0);
    // As a visitor engine does: each stream writes in the same turn of the event loop.
    await Promise.all(streams.map((s) => s.write(new Uint8Array(100))));
    assert.equal(opens.length, 1, `the three open frames took ${opens.length} writes`);
    assert.deepEqual(writes, [3 * (HEADER_SIZE + 100)], "three data frames in one write");
  } finally {
    mux.close();
  }
});

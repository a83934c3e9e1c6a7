import { assert, assertEquals, assertRejects } from "../testing/mod.ts";
import { memoryPipe } from "../transport/mod.ts";
import { DatagramWriter, MAX_DATAGRAM, readDatagrams } from "./datagram.ts";
import { Mux, type MuxOptions } from "./mux.ts";
import type { MuxStream } from "./stream.ts";
import { ProtocolError } from "../protocol/mod.ts";

async function pair(
  options: Partial<MuxOptions> = {},
): Promise<{ a: MuxStream; b: MuxStream; close(): void }> {
  const [x, y] = memoryPipe();
  const accepted = Promise.withResolvers<MuxStream>();
  const server = new Mux(x, {
    role: "server",
    pingInterval: 0,
    onStream: accepted.resolve,
    ...options,
  });
  const client = new Mux(y, { role: "client", pingInterval: 0, ...options });
  const a = client.open({});
  return { a, b: await accepted.promise, close: () => (client.close(), server.close()) };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("datagrams keep their boundaries, from empty to the largest", async () => {
  const { a, b, close } = await pair();
  try {
    const sizes = [0, 1, 2, 1000, 16_384, MAX_DATAGRAM];
    const sent = sizes.map((n) =>
      crypto.getRandomValues(new Uint8Array(Math.min(n, 65_536))).subarray(0, n)
    );
    const writer = new DatagramWriter(a, { maxQueued: 1 << 20 });
    for (const d of sent) assert(writer.send(d));
    assertEquals(writer.send(new Uint8Array(MAX_DATAGRAM + 1)), false, "oversize is dropped");
    assertEquals(writer.dropped, 1);
    writer.close();
    const got: Uint8Array[] = [];
    for await (const d of readDatagrams(b)) got.push(d.slice());
    assertEquals(got, sent);
  } finally {
    close();
  }
});

Deno.test("datagrams that queue up share frames", async () => {
  const { a, b, close } = await pair();
  try {
    const writer = new DatagramWriter(a);
    for (let i = 0; i < 500; i++) writer.send(new Uint8Array([i & 0xff, i >> 8]));
    writer.close();
    let n = 0;
    for await (const d of readDatagrams(b)) {
      assertEquals(d[0]! | (d[1]! << 8), n++);
    }
    assertEquals(n, 500);
    assertEquals(writer.sent, 500);
    // Two frames go out at once; the rest wait for them and travel together.
    assert(writer.frames <= 3, `${writer.frames} frames for 500 datagrams`);
  } finally {
    close();
  }
});

Deno.test("without credit the writer drops the oldest, bounded, and delivers the newest", async () => {
  const { a, b, close } = await pair({ initialWindow: 16 * 1024 });
  try {
    const writer = new DatagramWriter(a, { maxQueued: 100 * 1024 });
    const datagram = new Uint8Array(1000);
    const total = 2000; // 2 MB against a 16 KiB window and a 100 KiB queue
    for (let i = 0; i < total; i++) {
      new DataView(datagram.buffer).setUint32(0, i);
      writer.send(datagram);
      if (i % 100 === 0) await tick(); // time for frames and window updates to move
    }
    // Nothing read yet: at most the window went out, the queue holds the rest.
    assert(writer.queued * 1000 <= 100 * 1024, `${writer.queued} queued`);
    assert(writer.dropped >= total - 16 - 103, `${writer.dropped} dropped`);
    writer.close();
    const got: number[] = [];
    for await (const d of readDatagrams(b)) {
      got.push(new DataView(d.buffer, d.byteOffset).getUint32(0));
    }
    assertEquals(got.length + writer.dropped, total, "each datagram delivered or counted");
    assert(got.every((n, i) => i === 0 || n > got[i - 1]!), "in order");
    assertEquals(got.at(-1), total - 1, "the newest got through");
  } finally {
    close();
  }
});

Deno.test("a reset stream takes no more datagrams and keeps none", async () => {
  const { a, close } = await pair({ initialWindow: 4096 });
  try {
    const writer = new DatagramWriter(a);
    for (let i = 0; i < 20; i++) writer.send(new Uint8Array(1000));
    assert(writer.queued > 0);
    a.reset("done");
    await tick();
    assertEquals(writer.queued, 0);
    assertEquals(writer.send(new Uint8Array(10)), false);
  } finally {
    close();
  }
});

Deno.test("an oversize length prefix is a protocol error", async () => {
  const { a, b, close } = await pair();
  try {
    const bad = new Uint8Array(8);
    new DataView(bad.buffer).setUint32(0, MAX_DATAGRAM + 1);
    await a.write(bad);
    await assertRejects(
      async () => {
        for await (const _ of readDatagrams(b)) { /* none */ }
      },
      ProtocolError,
      "exceeds",
    );
  } finally {
    close();
  }
});

Deno.test("a datagram split across frames is put back together", async () => {
  const { a, b, close } = await pair();
  try {
    const whole = new Uint8Array(4 + 5);
    new DataView(whole.buffer).setUint32(0, 5);
    whole.set([1, 2, 3, 4, 5], 4);
    await a.write(whole.subarray(0, 2));
    await a.write(whole.subarray(2, 6));
    await a.write(whole.subarray(6));
    a.closeWrite();
    const got: Uint8Array[] = [];
    for await (const d of readDatagrams(b)) got.push(d.slice());
    assertEquals(got, [new Uint8Array([1, 2, 3, 4, 5])]);
  } finally {
    close();
  }
});

import { assert, assertEquals } from "../testing/mod.ts";
import { DatagramQueue } from "./datagram_queue.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("datagrams come out in order, as copies, with their boundaries", () => {
  const queue = new DatagramQueue();
  const buf = bytes(1, 2, 3);
  queue.push(buf);
  buf[0] = 9; // the caller reuses its buffer
  queue.push(bytes());
  queue.push(new Uint8Array(40_000).fill(7)); // larger ones get their own copy
  assertEquals(queue.length, 3);
  assertEquals(queue.bytes, 40_003);
  assertEquals(queue.peek(), bytes(1, 2, 3));
  assertEquals(queue.shift(), bytes(1, 2, 3));
  assertEquals(queue.shift(), bytes());
  assertEquals(queue.shift()?.length, 40_000);
  assertEquals(queue.shift(), undefined);
  assertEquals([queue.length, queue.bytes, queue.dropped], [0, 0, 0]);
});

Deno.test("when full, the oldest datagrams are dropped and counted", () => {
  const queue = new DatagramQueue({ maxBytes: 10 });
  for (let i = 0; i < 5; i++) assertEquals(queue.push(bytes(i, i)), 0);
  assertEquals(queue.push(bytes(5, 5, 5, 5)), 2, "two of 2 bytes make room for 4");
  assertEquals(queue.push(new Uint8Array(11)), 1, "larger than the queue: itself dropped");
  assertEquals(queue.dropped, 3);
  const out: number[] = [];
  for (let d; (d = queue.shift()) !== undefined;) out.push(d[0]!);
  assertEquals(out, [2, 3, 4, 5]);

  const counted = new DatagramQueue({ maxCount: 3 });
  for (let i = 0; i < 10; i++) counted.push(bytes(i));
  assertEquals([counted.length, counted.dropped, counted.shift()?.[0]], [3, 7, 7]);
});

Deno.test("a long overload keeps memory bounded and the newest datagrams", () => {
  const queue = new DatagramQueue({ maxBytes: 64 * 1024 });
  const datagram = new Uint8Array(1400);
  for (let i = 0; i < 200_000; i++) {
    new DataView(datagram.buffer).setUint32(0, i);
    queue.push(datagram);
    if (i % 3 === 0) queue.shift(); // a consumer at a third of the rate
  }
  assert(queue.bytes <= 64 * 1024, `${queue.bytes} bytes queued`);
  assertEquals(queue.length + queue.dropped + Math.ceil(200_000 / 3), 200_000);
  let last = -1;
  for (let d; (d = queue.shift()) !== undefined;) {
    const n = new DataView(d.buffer, d.byteOffset).getUint32(0);
    assert(n > last, "in order");
    last = n;
  }
  assertEquals(last, 199_999, "the newest survived");
  queue.push(bytes(1));
  queue.clear();
  assertEquals([queue.length, queue.bytes], [0, 0]);
});

Deno.test("the ring wraps, grows and keeps every datagram intact, empty ones included", () => {
  const queue = new DatagramQueue({ maxBytes: 64 * 1024 });
  let next = 0;
  let expect = 0;
  const make = (n: number) => {
    const size = (n * 7919) % 3000; // 0 to 2999 bytes, 0 now and then
    const d = new Uint8Array(size);
    for (let i = 0; i < size; i++) d[i] = (n + i) & 0xff;
    return d;
  };
  for (let round = 0; round < 5000; round++) {
    const pushes = round % 7;
    for (let i = 0; i < pushes; i++) {
      const dropped = queue.push(make(next++));
      expect += dropped; // dropped ones are the oldest: skip them
    }
    const pops = (round * 5) % 6;
    for (let i = 0; i < pops; i++) {
      const d = queue.shift();
      if (!d) break;
      const want = make(expect++);
      assertEquals(d.length, want.length, `datagram ${expect - 1}`);
      assert(d.every((b, j) => b === want[j]), `datagram ${expect - 1} intact`);
    }
    assert(queue.bytes <= 64 * 1024);
  }
  assertEquals(expect + queue.length, next);
});

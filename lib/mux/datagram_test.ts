import { assert, assertEquals, assertRejects } from "../../tests/_assert.ts";
import { memoryPipe } from "../transport/memory.ts";
import { DatagramWriter, MAX_DATAGRAM, readDatagrams } from "./datagram.ts";
import { Mux } from "./mux.ts";
import type { MuxStream } from "./stream.ts";
import { ProtocolError } from "../protocol/mod.ts";

async function pair(): Promise<{ a: MuxStream; b: MuxStream; close(): void }> {
  const [x, y] = memoryPipe();
  const accepted = Promise.withResolvers<MuxStream>();
  const server = new Mux(x, { role: "server", pingInterval: 0, onStream: accepted.resolve });
  const client = new Mux(y, { role: "client", pingInterval: 0 });
  const a = client.open({});
  return { a, b: await accepted.promise, close: () => (client.close(), server.close()) };
}

Deno.test("datagrams keep their boundaries, from empty to the largest", async () => {
  const { a, b, close } = await pair();
  try {
    const sizes = [0, 1, 2, 1000, 16_384, MAX_DATAGRAM];
    const sent = sizes.map((n) =>
      crypto.getRandomValues(new Uint8Array(Math.min(n, 65_536))).subarray(0, n)
    );
    const writer = new DatagramWriter(a, 1 << 20);
    for (const d of sent) assert(writer.send(d));
    assertEquals(writer.send(new Uint8Array(MAX_DATAGRAM + 1)), false, "oversize is dropped");
    a.closeWrite();
    const got: Uint8Array[] = [];
    for await (const d of readDatagrams(b)) got.push(d.slice());
    assertEquals(got, sent);
  } finally {
    close();
  }
});

Deno.test("a backed-up stream drops datagrams instead of queueing them", async () => {
  const { a, close } = await pair();
  try {
    const writer = new DatagramWriter(a, 10_000);
    let accepted = 0;
    for (let i = 0; i < 100; i++) if (writer.send(new Uint8Array(1000))) accepted++;
    assert(accepted < 100 && writer.dropped === 100 - accepted, `${accepted} accepted`);
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

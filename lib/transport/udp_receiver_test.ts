import { assert, assertEquals } from "../testing/mod.ts";
import { raiseSocketBuffers } from "../util/mod.ts";
import { sockopt } from "../util/mod.ts";
import { UdpReceiver, type UdpReceiverOptions } from "./udp_receiver.ts";

const MODES: Array<[string, UdpReceiverOptions]> = [
  ["FFI", {}],
  ["Deno ops", { sockopt: null }],
];

function bound(hostname = "127.0.0.1"): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
}

/** Collects `count` datagrams as [first byte, key], then stops. */
async function collect(
  receiver: UdpReceiver,
  socket: Deno.DatagramConn,
  count: number,
  send: () => Promise<void>,
): Promise<Array<[number, string, number]>> {
  const got: Array<[number, string, number]> = [];
  const done = Promise.withResolvers<void>();
  const running = receiver.run((data, from, key) => {
    got.push([data[0] ?? -1, key, from.port]);
    if (got.length === count) done.resolve();
  });
  await send();
  const timer = setTimeout(() => done.reject(new Error(`${got.length} of ${count} arrived`)), 5000);
  try {
    await done.promise;
  } finally {
    clearTimeout(timer);
    receiver.stop();
    socket.close();
    await running;
  }
  return got;
}

for (const [mode, options] of MODES) {
  Deno.test(`${mode}: datagrams arrive in order with their source and a steady key`, async () => {
    const socket = bound();
    raiseSocketBuffers(socket, 1 << 20);
    const a = bound();
    const b = bound();
    try {
      const receiver = new UdpReceiver(socket, options);
      assertEquals(receiver.batched, mode === "FFI" && sockopt.available());
      const got = await collect(receiver, socket, 200, async () => {
        // A burst while the receiver waits: with FFI most of it is drained in batches.
        for (let i = 0; i < 200; i++) {
          await (i % 50 < 40 ? a : b).send(new Uint8Array([i % 256, 0, 0]), socket.addr);
        }
      });
      assertEquals(got.map(([n]) => n), Array.from({ length: 200 }, (_, i) => i % 256));
      const keyOf = (s: Deno.DatagramConn) => `127.0.0.1:${(s.addr as Deno.NetAddr).port}`;
      got.forEach(([, key, port], i) => {
        const from = i % 50 < 40 ? a : b;
        assertEquals(key, keyOf(from));
        assertEquals(port, (from.addr as Deno.NetAddr).port);
      });
      assertEquals(receiver.received, 200);
      if (receiver.batched) assert(receiver.calls < 200, `${receiver.calls} receive calls`);
    } finally {
      a.close();
      b.close();
    }
  });

  Deno.test(`${mode}: an IPv6 socket names IPv4 senders [::ffff:a.b.c.d]:port`, async () => {
    let socket: Deno.DatagramConn;
    try {
      socket = bound("::");
    } catch {
      return; // no IPv6 here
    }
    const a = bound();
    try {
      const got = await collect(new UdpReceiver(socket, options), socket, 3, async () => {
        const to = { transport: "udp" as const, hostname: "127.0.0.1", port: 0 };
        to.port = (socket.addr as Deno.NetAddr).port;
        for (let i = 0; i < 3; i++) await a.send(new Uint8Array([i]), to);
      });
      const port = (a.addr as Deno.NetAddr).port;
      assertEquals(got, [0, 1, 2].map((i) => [i, `[::ffff:127.0.0.1]:${port}`, port]));
    } finally {
      a.close();
    }
  });
}

Deno.test("the loop ends when the socket closes", async () => {
  const socket = bound();
  const receiver = new UdpReceiver(socket);
  const running = receiver.run(() => {});
  receiver.stop();
  socket.close();
  await running;
});

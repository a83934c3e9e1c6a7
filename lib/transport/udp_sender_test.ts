import { assert, assertEquals } from "../testing/mod.ts";
import { UdpSender, type UdpSenderOptions } from "./udp_sender.ts";
import { raiseSocketBuffers } from "../util/mod.ts";
import { sockopt } from "../util/mod.ts";

/** Every test runs through FFI (when this process has it) and through Deno's ops only. */
const MODES: Array<[string, UdpSenderOptions]> = [
  ["FFI", {}],
  ["Deno ops", { sockopt: null }],
];

function udpPair() {
  const from = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  return {
    from,
    to,
    addr: to.addr as Deno.NetAddr,
    close() {
      from.close();
      to.close();
    },
  };
}

/** Receives until `last` arrives or nothing comes for 500 ms; returns the counters seen. */
async function receiveAll(socket: Deno.DatagramConn, last: number): Promise<number[]> {
  const got: number[] = [];
  const buf = new Uint8Array(2048);
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const quiet = new Promise<null>((r) => (timer = setTimeout(() => r(null), 500)));
    const next = await Promise.race([socket.receive(buf), quiet]);
    clearTimeout(timer);
    if (!next) return got;
    const n = new DataView(next[0].buffer, next[0].byteOffset).getUint32(0);
    got.push(n);
    if (n === last) return got;
  }
}

for (const [mode, options] of MODES) {
  Deno.test(`${mode}: datagrams go out in order, each send awaited`, async () => {
    const p = udpPair();
    try {
      const sender = new UdpSender(p.from, p.addr, options);
      const datagram = new Uint8Array(100);
      for (let i = 0; i < 100; i++) {
        new DataView(datagram.buffer).setUint32(0, i);
        sender.send(datagram); // copied: the buffer is reused at once
      }
      const got = await receiveAll(p.to, 99);
      await sender.flushed();
      assertEquals(got, Array.from({ length: 100 }, (_, i) => i));
      assertEquals([sender.sent, sender.dropped, sender.queued], [100, 0, 0]);
      await sender.close();
    } finally {
      p.close();
    }
  });

  Deno.test(`${mode}: an overload drops the oldest, counts them, stays bounded and ends with the newest`, async () => {
    const p = udpPair();
    try {
      const sender = new UdpSender(p.from, p.addr, { ...options, maxQueued: 64 * 1024 });
      const datagram = new Uint8Array(1000);
      const total = 50_000; // 50 MB offered in one go
      let maxQueued = 0;
      for (let i = 0; i < total; i++) {
        new DataView(datagram.buffer).setUint32(0, i);
        sender.send(datagram);
        maxQueued = Math.max(maxQueued, sender.queued);
      }
      assert(maxQueued <= 65, `${maxQueued} queued at most`);
      const received = receiveAll(p.to, total - 1);
      await sender.flushed();
      const got = await received;
      assertEquals(sender.sent + sender.dropped, total);
      assert(sender.dropped > total / 2, `${sender.dropped} dropped`);
      assert(got.every((n, i) => i === 0 || n > got[i - 1]!), "in order");
      assertEquals(got.at(-1), total - 1, "the newest got through");
      await sender.close();
    } finally {
      p.close();
    }
  });

  Deno.test(`${mode}: close drops what is queued; later sends are ignored`, async () => {
    const p = udpPair();
    try {
      const sender = new UdpSender(p.from, p.addr, options);
      for (let i = 0; i < 100; i++) sender.send(new Uint8Array(10));
      await sender.close();
      await sender.close();
      assert(sender.sent < 100);
      sender.send(new Uint8Array(10));
      assertEquals(sender.queued, 0);
    } finally {
      p.close();
    }
  });

  Deno.test(`${mode}: a failing send is reported and the sender goes on`, async () => {
    const p = udpPair();
    try {
      const errors: Error[] = [];
      // Port 0 cannot be sent to.
      const sender = new UdpSender(p.from, { ...p.addr, port: 0 }, {
        ...options,
        onError: (e) => errors.push(e),
      });
      sender.send(new Uint8Array(1));
      sender.send(new Uint8Array(1));
      await sender.flushed();
      assertEquals(errors.length, 2);
      await sender.close();
    } finally {
      p.close();
    }
  });
}

Deno.test({
  name: "FFI: runs of equal datagrams go out in one call and arrive with their boundaries",
  ignore: !sockopt.available(),
  async fn() {
    const p = udpPair();
    try {
      // Room for the whole burst in the receiver's buffer.
      assert(raiseSocketBuffers(p.to, 1 << 20) !== null);
      const sender = new UdpSender(p.from, p.addr);
      assert(sender.direct, "sends through FFI");
      const sizes = [
        ...Array(100).fill(1400),
        700, // a shorter one closes a run
        1400,
        1400,
        9000, // larger than a segment: alone
        0,
        3,
      ];
      sizes.forEach((n, i) => {
        const d = new Uint8Array(n);
        if (n >= 4) new DataView(d.buffer).setUint32(0, i);
        sender.send(d);
      });
      await sender.flushed();
      assertEquals(sender.sent, sizes.length);
      // Batches of 64 queued: 46 (65 000 bytes at most per call) + 18; then 36 with
      // the 700, the two 1400, and 9000, 0 and 3 alone.
      assertEquals(sender.calls, 7);
      const got: number[] = [];
      const buf = new Uint8Array(65_536);
      for (let i = 0; i < sizes.length; i++) {
        const [d] = await p.to.receive(buf);
        got.push(d.length);
        if (d.length >= 4) assertEquals(new DataView(d.buffer, d.byteOffset).getUint32(0), i);
      }
      assertEquals(got, sizes);
      await sender.close();
    } finally {
      p.close();
    }
  },
});

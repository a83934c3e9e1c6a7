// A UDP tunnel under overload: a sender far faster than the tunnel for a
// few seconds. Memory of burrowd and burrow stays bounded (the per-session
// queues drop the oldest datagrams), delivery goes on all along, the drops
// are counted in /metrics, and a fresh visitor gets an answer right after.

import { assert } from "../lib/testing/mod.ts";
import { type Proc, startClient, startServer, tunnelPort } from "./_procs.ts";

const TOKEN = "udp-overload-token";
const BLAST_SECONDS = 4;
const MAX_GROWTH_MIB = 64;

function rssMiB(proc: Proc): number {
  const status = Deno.readTextFileSync(`/proc/${proc.child.pid}/status`);
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN) / 1024;
}

/** Counts the "B" datagrams it receives and echoes "P" ones. */
function sinkAndEcho() {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const state = { delivered: 0 };
  const loop = (async () => {
    const buf = new Uint8Array(65_536);
    for (;;) {
      const [data, from] = await socket.receive(buf);
      if (data[0] === 0x42) state.delivered++;
      else await socket.send(data, from);
    }
  })().catch(() => {});
  return {
    port: (socket.addr as Deno.NetAddr).port,
    state,
    async [Symbol.asyncDispose]() {
      socket.close();
      await loop;
    },
  };
}

/** One ping-pong from a fresh socket (a new visitor session); retried, false after `ms`. */
async function pingPong(port: number, ms: number): Promise<boolean> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const deadline = performance.now() + ms;
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  const payload = new TextEncoder().encode(`P-${crypto.randomUUID()}`);
  let pending: Promise<[Uint8Array, Deno.Addr]> | null = null;
  try {
    while (performance.now() < deadline) {
      await socket.send(payload, to);
      pending ??= socket.receive();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const reply = await Promise.race([
        pending,
        new Promise<null>((r) => (timer = setTimeout(() => r(null), 200))),
      ]);
      clearTimeout(timer);
      if (reply) {
        pending = null;
        if (new TextDecoder().decode(reply[0]) === new TextDecoder().decode(payload)) return true;
      }
    }
    return false;
  } finally {
    socket.close();
    await pending?.catch(() => {});
  }
}

Deno.test({
  name: "a UDP tunnel overloaded for seconds keeps memory bounded and keeps delivering",
  ignore: Deno.build.os !== "linux", // RSS from /proc
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "burrow-udp-overload-" });
    try {
      await using sink = sinkAndEcho();
      const server = await startServer(dir, TOKEN);
      await using _s = server.proc;
      await using client = await startClient(dir, {
        port: server.port,
        token: TOKEN,
        fingerprint: server.fingerprint,
        tunnels: [{ name: "flood", type: "udp", local_port: sink.port }],
      });
      const port = await tunnelPort(client, "flood");
      const admin = Number(
        (await server.proc.waitFor((e) => e.msg === "admin listening")).port,
      );
      assert(await pingPong(port, 5000), "a ping-pong before the overload");

      const blast = (seconds: number) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--allow-net",
            "--unstable-net",
            new URL("./_udp_blast.ts", import.meta.url).pathname,
            String(port),
            String(seconds),
          ],
          stdout: "piped",
          stderr: "inherit",
        }).output();
      // Warm up (sessions, JIT, buffers), then take the baseline.
      await blast(0.5);
      await new Promise((r) => setTimeout(r, 500));
      const base = { server: rssMiB(server.proc), client: rssMiB(client) };

      const before = sink.state.delivered;
      const started = performance.now();
      const running = blast(BLAST_SECONDS);
      const peak = { ...base };
      const perSecond: number[] = [];
      let last = sink.state.delivered;
      for (let tick = 1; tick <= BLAST_SECONDS * 4; tick++) {
        await new Promise((r) => setTimeout(r, started + tick * 250 - performance.now()));
        peak.server = Math.max(peak.server, rssMiB(server.proc));
        peak.client = Math.max(peak.client, rssMiB(client));
        if (tick % 4 === 0) {
          perSecond.push(sink.state.delivered - last);
          last = sink.state.delivered;
        }
      }
      const out = await running;
      assert(out.success, "the load generator ran");
      const sent = JSON.parse(new TextDecoder().decode(out.stdout)).sent as number;
      // Delivery drains, then a new visitor is answered at once.
      await new Promise((r) => setTimeout(r, 300));
      peak.server = Math.max(peak.server, rssMiB(server.proc));
      peak.client = Math.max(peak.client, rssMiB(client));
      const delivered = sink.state.delivered - before;
      const pong = await pingPong(port, 3000);

      // Drops are reported to /metrics once a second.
      await new Promise((r) => setTimeout(r, 1100));
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      const drops = metrics.split("\n").filter((l) => l.startsWith("burrow_udp_dropped_total{"));
      const growth = { server: peak.server - base.server, client: peak.client - base.client };
      console.log(
        `offered ${sent} datagrams in ${BLAST_SECONDS}s, delivered ${delivered} ` +
          `(${perSecond.join(", ")} per second); RSS growth server ${growth.server.toFixed(1)} ` +
          `MiB (from ${base.server.toFixed(0)}), client ${growth.client.toFixed(1)} MiB ` +
          `(from ${base.client.toFixed(0)}); ${drops.join(", ") || "no drops in /metrics"}`,
      );
      assert(
        sent > delivered,
        `the tunnel was overloaded (${sent} offered, ${delivered} delivered)`,
      );
      assert(perSecond.every((n) => n >= 1000), `delivery went on every second: ${perSecond}`);
      assert(growth.server < MAX_GROWTH_MIB, `burrowd grew ${growth.server.toFixed(1)} MiB`);
      assert(growth.client < MAX_GROWTH_MIB, `burrow grew ${growth.client.toFixed(1)} MiB`);
      assert(pong, "a fresh visitor is answered after the overload");
      for (const line of drops) {
        assert(
          /^burrow_udp_dropped_total\{tunnel="admin\/flood",direction="(in|out)",reason="[a-z_]+"\} \d+$/
            .test(line),
          line,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// UDP tunnels end to end: real burrowd and burrow, dig against dnsmasq,
// datagram boundaries, many peers, idle expiry, a UDP load-balancing group.

import { assert, assertEquals, testNeeding } from "../lib/testing/mod.ts";
import { freePort, type Proc, startClient, startServer, tunnelPort } from "./_procs.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { dig: testNeeding("dig", "dnsmasq"), iperf3: testNeeding("iperf3") };

const TOKEN = "udp-e2e-token";

/** A local UDP echo service that records the source of every datagram. */
function udpEcho(tag = "") {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const sources: string[] = [];
  const loop = (async () => {
    const buf = new Uint8Array(65_536);
    for (;;) {
      const [data, addr] = await socket.receive(buf);
      const from = addr as Deno.NetAddr;
      sources.push(`${from.hostname}:${from.port}`);
      const reply = tag ? new Uint8Array([...new TextEncoder().encode(tag), ...data]) : data;
      await socket.send(reply, addr);
    }
  })().catch(() => {});
  return {
    port: (socket.addr as Deno.NetAddr).port,
    sources,
    async [Symbol.asyncDispose]() {
      socket.close();
      await loop;
    },
  };
}

/** Sends `payload` to the tunnel from a fresh socket (or `socket`) and waits for one reply. */
async function ask(
  port: number,
  payload: Uint8Array,
  socket?: Deno.DatagramConn,
  timeoutMs = 3000,
): Promise<Uint8Array> {
  const own = socket ?? Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
    const buf = new Uint8Array(65_536);
    // UDP may lose the first datagram while the session is set up: retry a few times.
    for (let attempt = 0; attempt < 5; attempt++) {
      await own.send(payload, to);
      const timer = new Promise<null>((r) => setTimeout(() => r(null), timeoutMs / 5));
      const got = await Promise.race([own.receive(buf).then(([d]) => d.slice()), timer]);
      if (got) return got;
    }
    throw new Error("no reply");
  } finally {
    if (!socket) own.close();
  }
}

async function withUdp(
  tunnels: Array<{ name: string; local_port: number; yaml?: string }>,
  body: (
    ports: Map<string, number>,
    ctx: { dir: string; port: number; fingerprint: string; server: Proc; client: Proc },
  ) => Promise<void>,
  denoFlags?: string[],
) {
  const dir = await Deno.makeTempDir({ prefix: "burrow-udp-" });
  try {
    const server = await startServer(dir, TOKEN, 0, "", denoFlags);
    await using _s = server.proc;
    await using client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: tunnels.map((t) => ({ ...t, type: "udp" as const })),
      ...(denoFlags ? { denoFlags } : {}),
    });
    const ports = new Map<string, number>();
    for (const t of tunnels) ports.set(t.name, await tunnelPort(client, t.name));
    await body(ports, {
      dir,
      port: server.port,
      fingerprint: server.fingerprint,
      server: server.proc,
      client,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

test.dig("dig through a UDP tunnel to a local dnsmasq", async () => {
  const dnsPort = freePort();
  const dnsmasq = new Deno.Command("dnsmasq", {
    args: [
      "--no-daemon",
      "--keep-in-foreground",
      `--port=${dnsPort}`,
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      "--no-resolv",
      "--no-hosts",
      "--address=/burrow.test/10.9.8.7",
      "--pid-file=",
      "--user=root",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    await new Promise((r) => setTimeout(r, 300));
    await withUdp([{ name: "dns", local_port: dnsPort }], async (ports) => {
      const out = await new Deno.Command("dig", {
        args: [
          "@127.0.0.1",
          "-p",
          String(ports.get("dns")),
          "burrow.test",
          "A",
          "+short",
          "+tries=3",
          "+time=2",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(new TextDecoder().decode(out.stdout).trim(), "10.9.8.7");
    });
  } finally {
    dnsmasq.kill("SIGTERM");
    await dnsmasq.status;
    await dnsmasq.stderr.cancel().catch(() => {});
  }
});

Deno.test("datagram boundaries, 100 concurrent peers and idle expiry through a UDP tunnel", async () => {
  await using echo = udpEcho();
  await withUdp(
    [{ name: "echo", local_port: echo.port, yaml: "session_timeout: 500ms" }],
    async (ports) => {
      const port = ports.get("echo")!;
      // 1 byte and the largest IPv4 UDP payload arrive whole.
      assertEquals(await ask(port, new Uint8Array([42])), new Uint8Array([42]));
      const big = crypto.getRandomValues(new Uint8Array(65_507));
      assertEquals(await ask(port, big), big);

      // 100 peers at once, each gets its own replies.
      const replies = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
        const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
        try {
          const a = await ask(port, new TextEncoder().encode(`peer-${i}-a`), socket);
          const b = await ask(port, new TextEncoder().encode(`peer-${i}-b`), socket);
          return new TextDecoder().decode(a) + "," + new TextDecoder().decode(b);
        } finally {
          socket.close();
        }
      }));
      replies.forEach((r, i) => assertEquals(r, `peer-${i}-a,peer-${i}-b`));

      // A session idle past session_timeout expires: the next datagram of the
      // same peer arrives at the local service from a new socket.
      const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      try {
        await ask(port, new TextEncoder().encode("first"), socket);
        const firstSource = echo.sources.at(-1);
        await ask(port, new TextEncoder().encode("second"), socket);
        assertEquals(echo.sources.at(-1), firstSource, "same session while active");
        await new Promise((r) => setTimeout(r, 1500));
        await ask(port, new TextEncoder().encode("third"), socket);
        assert(echo.sources.at(-1) !== firstSource, "a new session after expiry");
      } finally {
        socket.close();
      }
    },
  );
});

Deno.test({
  name: "without --allow-ffi both sides say so once and UDP tunnels work the same",
  // Compiled binaries have --allow-ffi baked in.
  ignore: Boolean(Deno.env.get("BURROWD_BIN") || Deno.env.get("BURROW_BIN")),
  async fn() {
    await using echo = udpEcho();
    await withUdp([{ name: "echo", local_port: echo.port }], async (ports, ctx) => {
      const port = ports.get("echo")!;
      assertEquals(await ask(port, new Uint8Array([7])), new Uint8Array([7]));
      const big = crypto.getRandomValues(new Uint8Array(65_507));
      assertEquals(await ask(port, big), big);
      const burst = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      try {
        // A burst on one session: replies come back in order through the Deno-only paths.
        const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
        for (let i = 0; i < 50; i++) await burst.send(new Uint8Array([i, 1, 2, 3]), to);
        const got: number[] = [];
        const buf = new Uint8Array(64);
        while (got.length < 50) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const next = await Promise.race([
            burst.receive(buf),
            new Promise<null>((r) => (timer = setTimeout(() => r(null), 2000))),
          ]);
          clearTimeout(timer);
          if (!next) break;
          got.push(next[0][0]!);
        }
        assert(got.length >= 45, `${got.length} of 50 replies`);
        assert(got.every((n, i) => i === 0 || n > got[i - 1]!), "in order");
      } finally {
        burst.close();
      }
      for (const proc of [ctx.server, ctx.client]) {
        const notices = proc.events.filter((e) => e.msg === "FFI socket options off");
        assertEquals(notices.length, 1, proc.lines.slice(-20).join("\n"));
        assertEquals(notices[0]!.reason, "no FFI permission (run with --allow-ffi)");
      }
    }, ["-A", "--deny-ffi"]);
  },
});

Deno.test("a UDP load-balancing group spreads visitor sessions across clients", async () => {
  await using a = udpEcho("A:");
  await using b = udpEcho("B:");
  await withUdp(
    [{ name: "ua", local_port: a.port, yaml: `group: upool, group_key: "k"` }],
    async (ports, ctx) => {
      const port = ports.get("ua")!;
      await using second = await startClient(ctx.dir, {
        port: ctx.port,
        token: TOKEN,
        fingerprint: ctx.fingerprint,
        tunnels: [{
          name: "ub",
          type: "udp",
          local_port: b.port,
          remote_port: port,
          yaml: `group: upool, group_key: "k"`,
        }],
      });
      assertEquals(await tunnelPort(second, "ub"), port);
      const seen: Record<string, number> = {};
      for (let i = 0; i < 20; i++) {
        const reply = new TextDecoder().decode(await ask(port, new TextEncoder().encode(`v${i}`)));
        const member = reply.slice(0, 1);
        assertEquals(reply.slice(2), `v${i}`);
        seen[member] = (seen[member] ?? 0) + 1;
      }
      // Round robin per visitor session; a retried datagram under heavy load may
      // land once more on the same member, so allow a small skew.
      assert((seen.A ?? 0) >= 8 && (seen.B ?? 0) >= 8, JSON.stringify(seen));
    },
  );
});

test.iperf3("iperf3 -u through a UDP tunnel (its control connection through a TCP tunnel on the same port number)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-iperf-udp-" });
  const iperfPort = freePort();
  const iperf = new Deno.Command("iperf3", {
    args: ["-s", "-p", String(iperfPort), "-B", "127.0.0.1"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const server = await startServer(dir, TOKEN);
    await using _s = server.proc;
    // TCP and UDP ports are separate spaces: one public number for iperf3's two channels.
    let remote = 0;
    let client;
    for (let attempt = 0; attempt < 5 && !remote; attempt++) {
      const candidate = freePort();
      client = await startClient(dir, {
        ...server,
        token: TOKEN,
        tunnels: [
          { name: "data", type: "udp", local_port: iperfPort, remote_port: candidate },
          { name: "ctl", local_port: iperfPort, remote_port: candidate },
        ],
      });
      const ready = await client.waitFor(
        (e) => e.msg === "tunnel failed" || (e.msg === "tunnel ready" && e.tunnel === "ctl"),
      );
      if (ready.msg === "tunnel ready") {
        await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "data");
        remote = candidate;
      } else {
        await client[Symbol.asyncDispose]();
      }
    }
    assert(remote, "a port number free for both TCP and UDP");
    await using _c = client!;
    const out = await new Deno.Command("iperf3", {
      args: [
        "-c",
        "127.0.0.1",
        "-p",
        String(remote),
        "-u",
        "-b",
        "20M",
        "-l",
        "1200",
        "-t",
        "2",
        "--json",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const report = JSON.parse(new TextDecoder().decode(out.stdout));
    assert(out.success, JSON.stringify(report.error ?? report).slice(0, 500));
    const sum = report.end.sum;
    console.log(
      `iperf3 -u at 20 Mbit/s: ${(sum.bits_per_second / 1e6).toFixed(1)} Mbit/s received, ` +
        `${sum.lost_percent.toFixed(2)}% lost, jitter ${sum.jitter_ms.toFixed(3)} ms`,
    );
    assert(sum.packets > 3000, `${sum.packets} datagrams measured`);
    assert(sum.lost_percent < 5, `${sum.lost_percent}% lost at 20 Mbit/s`);
  } finally {
    iperf.kill("SIGTERM");
    await iperf.status;
    await Deno.remove(dir, { recursive: true });
  }
});

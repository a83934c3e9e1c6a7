// Alert rules driven to fire and resolve by real traffic, and end-to-end
// probes (the grammar, state machine and notifier are unit-tested in
// lib/monitor/alerts_test.ts).

import { assert, assertEquals, until } from "../lib/testing/mod.ts";
import { BurrowClient, type TunnelState } from "../lib/client/mod.ts";
import { clientConfigFromObject, serverConfigFromObject } from "../lib/config/mod.ts";
import { BurrowServer } from "../lib/server/mod.ts";
import { createLogger } from "../lib/util/mod.ts";

const quiet = createLogger({ level: "error", format: "json", sink: () => {} });

Deno.test("high_latency and high_error_rate fire on real traffic and resolve when it recovers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-alerts-" });
  const received: Array<{ status: string; rule: string; tunnel: string }> = [];
  const hook = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const body = await request.json();
    for (const a of body.alerts) {
      received.push({ status: a.status, rule: a.labels.alertname, tunnel: a.labels.tunnel });
    }
    return new Response(null, { status: 200 });
  });
  // A service that answers after 300 ms, and a port where nothing listens (yet).
  const slow = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const slowLoop = (async () => {
    for await (const conn of slow) {
      setTimeout(
        () => conn.write(new Uint8Array([1])).catch(() => {}).finally(() => conn.close()),
        300,
      );
    }
  })().catch(() => {});
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const brokenPort = probe.addr.port;
  probe.close();
  const config = serverConfigFromObject({
    server: {
      bind_addr: "127.0.0.1",
      bind_port: 0,
      auth: { method: "token", token: "t" },
      storage: { data_dir: dir },
      alerting: {
        webhook_url: `http://127.0.0.1:${hook.addr.port}/`,
        evaluate_every: "100ms",
        window: "2s",
        default_rules: false,
      },
      alerts: [
        {
          name: "high_latency",
          condition: "avg_latency > 200ms",
          duration: "300ms",
          severity: "warning",
        },
        {
          name: "high_error_rate",
          condition: "error_rate > 5%",
          duration: "300ms",
          severity: "warning",
        },
      ],
    },
  });
  const server = await BurrowServer.start(config, { logger: quiet });
  const states = new Map<string, TunnelState>();
  const controller = new AbortController();
  const client = new BurrowClient(
    clientConfigFromObject({
      client: {
        server_addr: "127.0.0.1",
        server_port: server.port,
        auth_token: "t",
        server_fingerprint: server.fingerprint,
        tunnels: [
          { name: "slow", type: "tcp", local_port: slow.addr.port },
          { name: "broken", type: "tcp", local_port: brokenPort },
        ],
      },
    }),
    { logger: quiet, onTunnel: (s) => states.set(s.name, { ...s }) },
  );
  const done = client.run(controller.signal);
  let fixed: Deno.TcpListener | null = null;
  try {
    await until(
      "tunnels",
      () => ["slow", "broken"].every((n) => states.get(n)?.status === "active"),
    );
    const visit = async (port: number) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.read(new Uint8Array(1)).catch(() => null);
      conn.close();
    };
    const fires = (rule: string, tunnel: string, status: string) => () =>
      received.some((r) => r.rule === rule && r.tunnel === tunnel && r.status === status);

    // Slow first bytes for a while: high_latency fires.
    for (let i = 0; i < 4; i++) await visit(states.get("slow")!.remotePort!);
    await until("high_latency firing", fires("high_latency", "admin/slow", "firing"));
    // Refused connections: high_error_rate fires.
    for (let i = 0; i < 5; i++) await visit(states.get("broken")!.remotePort!);
    await until("high_error_rate firing", fires("high_error_rate", "admin/broken", "firing"));
    assertEquals(
      received.some((r) => r.tunnel === "admin/slow" && r.rule === "high_error_rate"),
      false,
    );

    // Recovery: the service comes up and serves; old samples leave the window.
    fixed = Deno.listen({ hostname: "127.0.0.1", port: brokenPort });
    const fixedLoop = (async () => {
      for await (const conn of fixed!) {
        await conn.write(new Uint8Array([1])).catch(() => {});
        conn.close();
      }
    })().catch(() => {});
    const deadline = performance.now() + 10_000;
    while (
      !fires("high_error_rate", "admin/broken", "resolved")() && performance.now() < deadline
    ) {
      await visit(states.get("broken")!.remotePort!);
      await new Promise((r) => setTimeout(r, 50));
    }
    await until("high_error_rate resolved", fires("high_error_rate", "admin/broken", "resolved"));
    await until("high_latency resolved", fires("high_latency", "admin/slow", "resolved"));
    void fixedLoop;
  } finally {
    controller.abort();
    await done.catch(() => {});
    await server.shutdown(0);
    slow.close();
    fixed?.close();
    await slowLoop;
    await hook.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("end-to-end probes: a tunnel with probe: true is probed; failures and recovery are logged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-probe-" });
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: "info",
    format: "json",
    sink: (l) => lines.push(JSON.parse(l)),
  });
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const server = await BurrowServer.start(
    serverConfigFromObject({
      server: {
        bind_addr: "127.0.0.1",
        bind_port: 0,
        auth: { method: "token", token: "t" },
        storage: { data_dir: dir },
        alerting: { probe_interval: "150ms", default_rules: false },
      },
    }),
    { logger },
  );
  const controller = new AbortController();
  const states = new Map<string, TunnelState>();
  const done = new BurrowClient(
    clientConfigFromObject({
      client: {
        server_addr: "127.0.0.1",
        server_port: server.port,
        auth_token: "t",
        server_fingerprint: server.fingerprint,
        tunnels: [
          { name: "watched", type: "tcp", local_port: port, probe: true },
          { name: "unwatched", type: "tcp", local_port: port },
        ],
      },
    }),
    { logger: quiet, onTunnel: (s) => states.set(s.name, { ...s }) },
  ).run(controller.signal);
  let service: Deno.TcpListener | null = null;
  try {
    await until("probe failure", () => lines.some((l) => l.msg === "tunnel probe failed"));
    const failed = lines.find((l) => l.msg === "tunnel probe failed")!;
    assertEquals(failed.tunnel, "watched");
    assert(String(failed.reason).includes("unavailable"), String(failed.reason));
    const stats = server.stats.snapshot().find((s) => s.name === "watched")!;
    assert(stats.errors >= 1, JSON.stringify(stats));
    assertEquals(server.stats.snapshot().find((s) => s.name === "unwatched")!.errors, 0);
    service = Deno.listen({ hostname: "127.0.0.1", port });
    const loop = (async () => {
      for await (const c of service!) c.close();
    })().catch(() => {});
    await until("probe recovery", () => lines.some((l) => l.msg === "tunnel probe recovered"));
    assertEquals(
      lines.filter((l) => l.msg === "tunnel probe failed").length,
      1,
      "logged once per outage",
    );
    void loop;
  } finally {
    controller.abort();
    await done.catch(() => {});
    await server.shutdown(0);
    service?.close();
    await Deno.remove(dir, { recursive: true });
  }
});

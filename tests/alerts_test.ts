// Alert rules: the condition grammar, the state machine, the webhook
// notifier, and the seed's rules driven to fire and resolve by real traffic.

import { assert, assertEquals, until } from "../lib/testing/mod.ts";
import { BurrowClient, type TunnelState } from "../lib/client/mod.ts";
import { clientConfigFromObject, serverConfigFromObject } from "../lib/config/mod.ts";
import {
  AlertEngine,
  type AlertEvent,
  ConditionError,
  holds,
  parseCondition,
  TunnelStats,
  webhookNotifier,
} from "../lib/monitor/mod.ts";
import { BurrowServer } from "../lib/server/mod.ts";
import { createLogger } from "../lib/util/mod.ts";

const quiet = createLogger({ level: "error", format: "json", sink: () => {} });

Deno.test("conditions: the seed's forms parse; bad ones say what is wrong", () => {
  assertEquals(parseCondition('tunnel_status == "disconnected"'), {
    metric: "tunnel_status",
    op: "==",
    value: "disconnected",
  });
  assertEquals(parseCondition("avg_latency > 1000ms").value, 1000);
  assertEquals(parseCondition("avg_latency >= 2s").value, 2000);
  assertEquals(parseCondition("error_rate > 5%").value, 0.05);
  assertEquals(parseCondition("error_rate > 0.5").value, 0.5);
  assertEquals(parseCondition("connections<=3").op, "<=");
  const bad: Array<[string, string]> = [
    ["latency > 1", 'unknown metric "latency"'],
    ["avg_latency 1000", "expected METRIC OP VALUE"],
    ["avg_latency > fast", "is not a number"],
    ["avg_latency > 5%", "is a time"],
    ["error_rate > 5ms", "percentage"],
    ['tunnel_status > "up"', "is one of"],
    ["tunnel_status == disconnected", "quoted string"],
    ['tunnel_status > "disconnected"', "takes == or !="],
    ["connections > 5s", "plain count"],
  ];
  for (const [text, message] of bad) {
    try {
      parseCondition(text);
      throw new Error(`${text} parsed`);
    } catch (error) {
      assert(error instanceof ConditionError, String(error));
      assert(error.message.includes(message), `${text}: ${error.message}`);
    }
  }
  const snapshot = {
    key: "u/t",
    user: "u",
    name: "t",
    type: "tcp",
    status: "connected" as const,
    since: 0,
    connections: 0,
    errors: 0,
    error_rate: 0,
    avg_latency: null,
  };
  assertEquals(holds(parseCondition("avg_latency > 1ms"), snapshot), false, "no data never holds");
  assertEquals(holds(parseCondition("error_rate >= 0%"), snapshot), false);
});

Deno.test("state machine: pending → firing after the duration → resolved; silenced alerts stay quiet", () => {
  let now = 1_000_000;
  const stats = new TunnelStats({ windowMs: 60_000, now: () => now });
  const events: AlertEvent[] = [];
  const engine = new AlertEngine({
    rules: [{
      name: "tunnel_down",
      condition: 'tunnel_status == "disconnected"',
      duration: 30_000,
      severity: "critical",
    }],
    stats,
    notifiers: [{ notify: (e) => Promise.resolve(void events.push(e)) }],
    logger: quiet,
    intervalMs: 1000,
    now: () => now,
  });
  stats.connected("alice", "ssh", "tcp");
  engine.evaluate();
  assertEquals(engine.active, []);
  stats.disconnected("alice", "ssh");
  now += 10_000;
  engine.evaluate();
  assertEquals(engine.active.map((a) => a.state), ["pending"]);
  now += 19_000;
  engine.evaluate();
  assertEquals(events, [], "not before 30 s");
  now += 1_000;
  engine.evaluate();
  assertEquals(events.map((e) => [e.status, e.labels.tunnel, e.severity]), [[
    "firing",
    "alice/ssh",
    "critical",
  ]]);
  stats.connected("alice", "ssh", "tcp");
  now += 1_000;
  engine.evaluate();
  assertEquals(events.map((e) => e.status), ["firing", "resolved"]);
  // A short outage never fires; a removed tunnel never fires.
  stats.disconnected("alice", "ssh");
  engine.evaluate();
  now += 5_000;
  stats.connected("alice", "ssh", "tcp");
  engine.evaluate();
  stats.forget("alice", "ssh");
  now += 60_000;
  engine.evaluate();
  assertEquals(events.length, 2);
  // Silenced: no notification while silenced.
  stats.connected("bob", "db", "tcp");
  stats.disconnected("bob", "db");
  engine.silence({ rule: "tunnel_down", labels: { tunnel: "bob/db" } }, new Date(now + 3_600_000));
  now += 31_000;
  engine.evaluate();
  assertEquals(engine.active.map((a) => [a.tunnel, a.state]), [["bob/db", "firing"]]);
  assertEquals(events.length, 2);
});

Deno.test("webhook notifier: Alertmanager body, retries with backoff, failures logged", async () => {
  const bodies: Array<Record<string, unknown>> = [];
  let calls = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    calls++;
    bodies.push(await request.json());
    return new Response(null, { status: calls <= 2 ? 500 : 200 });
  });
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: "info",
    format: "json",
    sink: (l) => lines.push(JSON.parse(l)),
  });
  try {
    const event: AlertEvent = {
      rule: "high_latency",
      severity: "warning",
      status: "firing",
      labels: { alertname: "high_latency", severity: "warning", tunnel: "a/web", user: "a" },
      summary: "slow",
      startsAt: new Date("2026-01-01T00:00:00Z"),
      id: 7,
    };
    await webhookNotifier(`http://127.0.0.1:${server.addr.port}/hook`, logger, { firstDelayMs: 20 })
      .notify(event);
    assertEquals(calls, 3);
    const body = bodies[2] as {
      version: string;
      status: string;
      alerts: Array<Record<string, unknown>>;
    };
    assertEquals([body.version, body.status], ["4", "firing"]);
    assertEquals(body.alerts[0]!.labels, event.labels);
    assertEquals(body.alerts[0]!.startsAt, "2026-01-01T00:00:00.000Z");
    assert(lines.some((l) => l.msg === "alert delivered after retries"));
    // A receiver that never answers well: logged once, with the reason.
    await webhookNotifier("http://127.0.0.1:1/hook", logger, { attempts: 2, firstDelayMs: 10 })
      .notify(event);
    const failed = lines.find((l) => l.msg === "alert delivery failed")!;
    assertEquals([failed.rule, failed.attempts], ["high_latency", 2]);
  } finally {
    await server.shutdown();
  }
});

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

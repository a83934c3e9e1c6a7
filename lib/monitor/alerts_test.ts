// The alert rules' condition grammar, state machine and webhook notifier, in
// memory (the rules driven by real traffic are in tests/alerts_test.ts).

import { assert, assertEquals } from "../testing/mod.ts";
import { createLogger } from "../util/mod.ts";
import { AlertEngine, type AlertEvent, ConditionError, holds, parseCondition } from "./alerts.ts";
import { TunnelStats } from "./stats.ts";
import { notifiersFor, webhookNotifier } from "./notifiers.ts";

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
    held: true,
    latency_sum: 0,
    latency_count: 0,
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

Deno.test("notifiers: the log always, the webhook when a URL is configured", () => {
  assertEquals(notifiersFor({}, quiet).length, 1);
  assertEquals(notifiersFor({ webhook_url: "http://127.0.0.1:9/hook" }, quiet).length, 2);
});

Deno.test("the timer evaluates only while `evaluating` says so (cluster mode: the lease holder)", async () => {
  const stats = new TunnelStats({ windowMs: 60_000 });
  let leads = false;
  const engine = new AlertEngine({
    rules: [{ name: "down", condition: 'tunnel_status == "disconnected"', duration: 0 }]
      .map((r) => ({ ...r, severity: "warning" as const })),
    stats,
    notifiers: [],
    logger: quiet,
    intervalMs: 10,
    evaluating: () => leads,
  });
  stats.connected("alice", "ssh", "tcp");
  stats.disconnected("alice", "ssh");
  engine.start();
  try {
    await new Promise((r) => setTimeout(r, 60));
    assertEquals(engine.active, [], "another node evaluates");
    leads = true;
    const deadline = performance.now() + 5000;
    while (!engine.active.length && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assertEquals(engine.active.map((a) => a.state), ["firing"]);
  } finally {
    await engine.stop();
  }
});

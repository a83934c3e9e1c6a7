import assert from "node:assert/strict";
import client from "prom-client";
import { FastHistogram } from "./_histogram.ts";
import { ServerMetrics } from "./metrics.ts";

Deno.test("FastHistogram renders exactly as prom-client's Histogram", async () => {
  const buckets = [0.0005, 0.001, 0.01, 0.5, 1];
  const ours = new client.Registry();
  const theirs = new client.Registry();
  const fast = new FastHistogram({
    name: "h_seconds",
    help: "h",
    label: "type",
    buckets,
    registry: ours,
  });
  const reference = new client.Histogram({
    name: "h_seconds",
    help: "h",
    labelNames: ["type"],
    buckets,
    registers: [theirs],
  });
  const values = [0, 0.0005, 0.0004, 0.001, 0.3, 0.5, 0.9, 1, 7, 1e-9];
  for (const [i, v] of values.entries()) {
    const type = i % 3 === 0 ? "tcp" : "http";
    fast.observe(type, v);
    reference.observe({ type }, v);
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
  fast.reset();
  reference.reset();
  assert.equal(await ours.metrics(), await theirs.metrics());
});

Deno.test("metrics: ended connections reach the counters at the scrape, bytes counted once", async () => {
  const metrics = new ServerMetrics();
  const live = { sent: 10, received: 20 };
  let open = true;
  metrics.bind({
    sessions: () => [{
      user: "alice",
      tunnels: [{
        name: "web",
        type: "http",
        activeConnections: open ? 1 : 0,
        liveTransfers: open ? [live] : [],
      }],
    }],
    caches: () => ({}),
    database: () => null,
    alerts: () => [],
  });
  metrics.connectionEnded("alice", "web", false, { sent: 1, received: 2 }, 1, 2);
  metrics.connectionEnded("alice", "web", true, undefined, 3, 4);
  metrics.firstByte("http", 2);
  // The open connection's 10/20 bytes are counted at this scrape ...
  let text = await metrics.render();
  const value = (line: string) =>
    Number(text.split("\n").find((l) => l.startsWith(line))?.split(" ").pop());
  assert.equal(value('burrow_connections_total{tunnel="alice/web",result="ok"}'), 1);
  assert.equal(value('burrow_connections_total{tunnel="alice/web",result="error"}'), 1);
  assert.equal(value('burrow_errors_total{kind="connection_failed"}'), 1);
  assert.equal(value('burrow_tunnel_bytes_total{tunnel="alice/web",direction="in"}'), 14);
  assert.equal(value('burrow_user_bytes_total{user="alice",direction="out"}'), 26);
  assert.equal(value('burrow_first_byte_seconds_bucket{le="0.002",type="http"}'), 1);
  // ... and when it ends with 15/20, only the 5 new bytes in are added.
  live.sent = 15;
  open = false;
  metrics.connectionEnded("alice", "web", false, live, 15, 20);
  text = await metrics.render();
  assert.equal(value('burrow_connections_total{tunnel="alice/web",result="ok"}'), 2);
  assert.equal(value('burrow_tunnel_bytes_total{tunnel="alice/web",direction="in"}'), 19);
  assert.equal(value('burrow_tunnel_bytes_total{tunnel="alice/web",direction="out"}'), 26);
});

Deno.test("metrics: in cluster mode every series carries the node's label", async () => {
  const metrics = new ServerMetrics({ node: "n1" });
  metrics.bind({
    sessions: () => [],
    caches: () => ({}),
    database: () => null,
    alerts: () => [],
  });
  metrics.firstByte("http", 2);
  metrics.error("auth_failed");
  const series = (await metrics.render()).split("\n").filter((l) => l && !l.startsWith("#"));
  assert.ok(series.length > 20);
  assert.deepEqual(series.filter((l) => !/[{,]node="n1"[,}]/.test(l)), []);
  assert.ok(series.some((l) => l.startsWith("burrow_first_byte_seconds_count{")), "fast histogram");
  assert.ok(series.some((l) => l.startsWith("process_cpu_seconds_total{")), "process metrics");
  // Outside cluster mode nothing changes: no node label.
  const alone = await new ServerMetrics().render();
  assert.ok(!alone.includes('node="'));
});

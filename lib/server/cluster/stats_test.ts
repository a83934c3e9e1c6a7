import { assertEquals } from "../../testing/mod.ts";
import { type TunnelSnapshot, TunnelStats } from "../../monitor/mod.ts";
import { ClusterStats, type PublishedStats } from "./stats.ts";

/** Node-local windows on a clock the test moves. */
function node(now: () => number) {
  return new TunnelStats({ windowMs: 60_000, now });
}

const view = (snap: TunnelSnapshot[]) =>
  Object.fromEntries(
    snap.map((s) => [s.key, [s.status, s.connections, s.errors, s.avg_latency]]),
  );

Deno.test("ClusterStats: counts add up over the nodes; the holder says the status", () => {
  let t = 1_000_000;
  const now = () => t;
  const a = node(now), b = node(now);
  // The tunnel is held on a; b relays visitors to it.
  a.connected("ann", "web", "tcp");
  b.relayed("ann", "web", "tcp");
  a.recordConnection("ann", "web", false);
  a.recordLatency("ann", "web", 10);
  b.recordConnection("ann", "web", true);
  b.recordConnection("ann", "web", false);
  b.recordLatency("ann", "web", 30);
  // b is the node that evaluates: it merges what a published.
  const peers: PublishedStats[] = [{ id: "a", stats: JSON.parse(JSON.stringify(a.snapshot())) }];
  const merged = new ClusterStats("b", b, () => peers, now);
  assertEquals(view(merged.snapshot()), { "ann/web": ["connected", 3, 1, 20] });
  const [web] = merged.snapshot();
  assertEquals([web!.held, web!.error_rate], [true, 1 / 3]);

  // a's client goes away: disconnected, from a's word.
  t += 1000;
  a.disconnected("ann", "web");
  peers[0]!.stats = a.snapshot();
  const [down] = merged.snapshot();
  assertEquals([down!.status, down!.since], ["disconnected", t]);
});

Deno.test("ClusterStats: a client with sessions to two nodes is connected while either holds it", () => {
  const t = 1_000_000;
  const a = node(() => t), b = node(() => t), c = node(() => t);
  a.connected("ann", "web", "tcp");
  b.connected("ann", "web", "tcp");
  b.disconnected("ann", "web");
  const merged = new ClusterStats("c", c, () => [
    { id: "a", stats: a.snapshot() },
    { id: "b", stats: b.snapshot() },
  ]);
  assertEquals(view(merged.snapshot()), { "ann/web": ["connected", 0, 0, null] });
});

Deno.test("ClusterStats: a tunnel whose node died is down from then; one removed on purpose is forgotten", () => {
  let t = 1_000_000;
  const now = () => t;
  const a = node(now), b = node(now), c = node(now);
  a.connected("ann", "web", "tcp");
  a.connected("ann", "old", "tcp");
  let peers: PublishedStats[] = [{ id: "a", stats: a.snapshot() }];
  const merged = new ClusterStats("c", c, () => peers, now);
  assertEquals(Object.keys(view(merged.snapshot())).sort(), ["ann/old", "ann/web"]);

  // "old" is removed on purpose on a (alive): forgotten, no alert.
  a.forget("ann", "old");
  peers = [{ id: "a", stats: a.snapshot() }];
  assertEquals(view(merged.snapshot()), { "ann/web": ["connected", 0, 0, null] });

  // a dies (no longer among the alive): its tunnel is down from when that was seen.
  t += 5000;
  peers = [];
  const [down] = merged.snapshot();
  assertEquals([down!.key, down!.status, down!.since], ["ann/web", "disconnected", t]);
  t += 5000;
  assertEquals(merged.snapshot()[0]!.since, t - 5000, "the time it went down stays");

  // Its client comes back on b: connected again.
  b.connected("ann", "web", "tcp");
  peers = [{ id: "b", stats: b.snapshot() }];
  assertEquals(view(merged.snapshot()), { "ann/web": ["connected", 0, 0, null] });
});

Deno.test("ClusterStats: what a node published that is not windows is ignored", () => {
  const c = node(Date.now);
  c.connected("ann", "web", "tcp");
  const merged = new ClusterStats("c", c, () => [
    { id: "a", stats: "nonsense" },
    { id: "b", stats: [{ key: 1 }, null, { key: "x/y", user: "x" }] },
  ]);
  assertEquals(Object.keys(view(merged.snapshot())), ["ann/web"]);
});

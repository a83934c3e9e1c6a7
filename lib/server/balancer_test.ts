import { assertEquals } from "../testing/mod.ts";
import { Balancer, type BalancerMember } from "./balancer.ts";

const member = (weight = 1): BalancerMember => ({ weight, active: 0, healthy: true });

function spread(b: Balancer<BalancerMember>, n: number): number[] {
  const counts = new Map<BalancerMember, number>();
  for (let i = 0; i < n; i++) {
    const m = b.pick()!;
    counts.set(m, (counts.get(m) ?? 0) + 1);
  }
  return b.members.map((m) => counts.get(m) ?? 0);
}

Deno.test("round robin spreads evenly and skips unhealthy members", () => {
  const b = new Balancer<BalancerMember>("round_robin");
  const [x, y, z] = [member(), member(), member()];
  b.add(x);
  b.add(y);
  b.add(z);
  assertEquals(spread(b, 300), [100, 100, 100]);
  y.healthy = false;
  assertEquals(spread(b, 100), [50, 0, 50]);
  x.healthy = z.healthy = false;
  assertEquals(b.pick(), null);
  y.healthy = true;
  b.remove(y);
  assertEquals(b.pick(), null);
});

Deno.test("weighted round robin follows the weights, interleaved", () => {
  const b = new Balancer<BalancerMember>("round_robin");
  const heavy = member(3);
  const light = member(1);
  b.add(heavy);
  b.add(light);
  assertEquals(spread(b, 400), [300, 100]);
  // Smooth: the light member is not starved for long runs.
  const seq = Array.from({ length: 8 }, () => (b.pick() === heavy ? "H" : "L")).join("");
  assertEquals(seq.includes("HHHH"), false, seq);
});

Deno.test("least connections prefers the idle members", () => {
  const b = new Balancer<BalancerMember>("least_connections");
  const [x, y, z] = [member(), member(), member()];
  b.add(x);
  b.add(y);
  b.add(z);
  x.active = 10;
  for (let i = 0; i < 20; i++) {
    const m = b.pick()!;
    assertEquals(m === x, false);
    m.active++;
  }
  assertEquals([y.active, z.active], [10, 10]);
  // Equal load: shared evenly.
  assertEquals(spread(b, 30), [10, 10, 10]);
});

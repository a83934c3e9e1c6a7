import { assert, assertEquals } from "../testing/mod.ts";
import { Bandwidth } from "./bandwidth.ts";

// At 1 MB/s a bucket holds a tenth of a second: 100 kB (taken a little short of it, as the
// bucket's clock arithmetic is in floating point).
const RATE = 1_000_000;
const BURST = 99_000;
const alice = { userId: 1, userName: "alice", tokenId: null, maxBandwidth: RATE };

Deno.test("bandwidth: nothing limits a tunnel without a server or user limit", () => {
  assertEquals(new Bandwidth(0).forTunnel(null), undefined);
  assertEquals(new Bandwidth(0).forTunnel({ ...alice, maxBandwidth: null }), undefined);
});

Deno.test("bandwidth: each tunnel has its own server limit", () => {
  const bw = new Bandwidth(RATE);
  const a = bw.forTunnel(null)!;
  const b = bw.forTunnel(null)!;
  assert(a.in.tryTake(BURST) && !a.in.tryTake(BURST / 2), "a's bucket is spent");
  assert(b.in.tryTake(BURST), "b has its own bucket");
  assert(a.out.tryTake(BURST), "each direction has its own bucket");
});

Deno.test("bandwidth: a user's tunnels share the user's limit, on top of their own", () => {
  const bw = new Bandwidth(5 * RATE);
  const a = bw.forTunnel(alice)!;
  const b = bw.forTunnel(alice)!;
  assert(a.in.tryTake(0.8 * BURST), "within both limits");
  assert(!b.in.tryTake(0.8 * BURST), "the user's bucket is shared: a fifth is left");
  assert(b.in.tryTake(0.1 * BURST));
  const bob = bw.forTunnel({ ...alice, userId: 2, userName: "bob" })!;
  assert(bob.in.tryTake(BURST), "another user has buckets of their own");
});

Deno.test("bandwidth: a changed user limit starts new buckets", () => {
  const bw = new Bandwidth(0);
  const a = bw.forTunnel(alice)!;
  assert(a.in.tryTake(BURST) && !a.in.tryTake(BURST / 2));
  const raised = bw.forTunnel({ ...alice, maxBandwidth: 4 * RATE })!;
  assert(raised.in.tryTake(4 * BURST), "the raised limit is in force for new tunnels");
});

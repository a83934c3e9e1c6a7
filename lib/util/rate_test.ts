import { assert, assertEquals } from "../testing/mod.ts";
import { TokenBucket } from "./rate.ts";

Deno.test("token bucket: bursts, then paces to the rate; tryTake refuses instead of waiting", () => {
  let now = 0;
  const bucket = new TokenBucket(1000, 500, () => now);
  assertEquals(bucket.tryTake(500), true, "the burst passes at once");
  assertEquals(bucket.tryTake(100), false, "then the rate applies");
  now += 100;
  assertEquals(bucket.tryTake(100), true, "100 ms later, 100 bytes");
  assertEquals(bucket.tryTake(1), false);
  now += 10_000;
  assertEquals(bucket.tryTake(500), true, "idle time refills only up to the burst");
  assertEquals(bucket.tryTake(10), false);
  assertEquals(bucket.throttled, 3);
});

Deno.test("token bucket: take() waits so the long-run rate holds", async () => {
  const bucket = new TokenBucket(200_000, 10_000);
  const started = performance.now();
  for (let i = 0; i < 10; i++) await bucket.take(10_000);
  const seconds = (performance.now() - started) / 1000;
  // 100 KB at 200 KB/s with a 10 KB burst: at least 0.45 s.
  assert(seconds >= 0.44, `${seconds} s`);
});

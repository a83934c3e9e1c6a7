import { assertEquals } from "../testing/mod.ts";
import { Backoff, sleep } from "./backoff.ts";

const seed = {
  max_retries: 0,
  initial_delay: 1000,
  max_delay: 30_000,
  backoff_factor: 2,
  enable_jitter: false,
};

Deno.test("backoff: the seed's reconnect defaults double from 1 s up to 30 s and retry forever", () => {
  const b = new Backoff(seed);
  const delays = Array.from({ length: 8 }, () => b.next());
  assertEquals(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  assertEquals(b.attempt, 8);
  b.reset();
  assertEquals([b.attempt, b.next()], [0, 1000], "a success starts over");
});

Deno.test("backoff: max_retries gives up; jitter draws from [delay/2, delay]", () => {
  const limited = new Backoff({ ...seed, max_retries: 2 });
  assertEquals([limited.next(), limited.next(), limited.next(), limited.next()], [
    1000,
    2000,
    null,
    null,
  ]);
  const draws = [0, 0.5, 0.999_999];
  const jittered = new Backoff({ ...seed, enable_jitter: true }, () => draws.shift()!);
  assertEquals([jittered.next(), jittered.next(), jittered.next()], [500, 1500, 4000]);
});

Deno.test("backoff: sleep ends at once when its signal aborts, and leaves no timer", async () => {
  const controller = new AbortController();
  const started = performance.now();
  const slept = sleep(60_000, controller.signal);
  controller.abort();
  await slept;
  assertEquals(performance.now() - started < 1000, true);
  await sleep(1, AbortSignal.abort());
});

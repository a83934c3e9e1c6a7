import { assertEquals } from "../../tests/_assert.ts";
import { LoginLimiter } from "./login_limiter.ts";

Deno.test("failed logins: delays double per failure up to 10 s, reset by success or quiet time", () => {
  let now = 0;
  const limiter = new LoginLimiter(() => now);
  assertEquals(limiter.delayFor("10.0.0.1"), 0);
  const delays = [];
  for (let i = 0; i < 10; i++) {
    limiter.failed("10.0.0.1");
    delays.push(limiter.delayFor("10.0.0.1"));
  }
  assertEquals(delays, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
  assertEquals(limiter.delayFor("10.0.0.2"), 0, "per address");
  limiter.succeeded("10.0.0.1");
  assertEquals(limiter.delayFor("10.0.0.1"), 0);
  limiter.failed("10.0.0.3");
  now += 11 * 60_000;
  assertEquals(limiter.delayFor("10.0.0.3"), 0, "forgotten after ten quiet minutes");
  assertEquals(limiter.failed("10.0.0.3"), 1);
});

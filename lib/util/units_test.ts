import assert from "node:assert/strict";
import { parseDuration, parsePortRanges, parseSize } from "./units.ts";
import { Backoff } from "./backoff.ts";
import { Secret } from "./secret.ts";

Deno.test("durations in the seed's notation", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("1d"), 86_400_000);
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration(5), 5000);
  assert.equal(parseDuration("5"), 5000);
  for (const bad of ["30x", "", "s", "-1s", "1 m"]) {
    assert.throws(() => parseDuration(bad), /Invalid duration .*expected a number followed by/);
  }
});

Deno.test("sizes in decimal and binary units", () => {
  assert.equal(parseSize("100MB"), 100_000_000);
  assert.equal(parseSize("1.5GB"), 1_500_000_000);
  assert.equal(parseSize("512KiB"), 512 * 1024);
  assert.equal(parseSize("10kb"), 10_000);
  assert.equal(parseSize("2 MiB"), 2 * 1024 * 1024);
  assert.equal(parseSize(42), 42);
  for (const bad of ["100XB", "MB", "-5MB"]) assert.throws(() => parseSize(bad), /Invalid size/);
});

Deno.test("port ranges", () => {
  assert.deepEqual(parsePortRanges("2000-3000,3306"), [[2000, 3000], [3306, 3306]]);
  assert.deepEqual(parsePortRanges(""), []);
  assert.throws(() => parsePortRanges("3000-2000"), /runs backwards/);
  assert.throws(() => parsePortRanges("0-10"), /outside 1-65535/);
  assert.throws(() => parsePortRanges("a-b"), /expected PORT or LOW-HIGH/);
});

Deno.test("backoff: exponential, capped, jittered within [d/2, d], bounded retries", () => {
  const b = new Backoff({
    max_retries: 5,
    initial_delay: 100,
    max_delay: 500,
    backoff_factor: 2,
    enable_jitter: false,
  });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [
    100,
    200,
    400,
    500,
    500,
    null,
  ]);
  b.reset();
  assert.equal(b.next(), 100);
  const forever = new Backoff({
    max_retries: 0,
    initial_delay: 1000,
    max_delay: 1000,
    backoff_factor: 2,
    enable_jitter: true,
  }, () => 0);
  for (let i = 0; i < 1000; i++) assert.equal(forever.next(), 500);
});

Deno.test("secrets print masked everywhere", () => {
  const s = new Secret("hunter2");
  assert.equal(`${s}`, "***");
  assert.equal(JSON.stringify({ s }), '{"s":"***"}');
  assert.ok(!Deno.inspect({ s }).includes("hunter2"));
  assert.equal(s.reveal(), "hunter2");
});

import assert from "node:assert/strict";
import { IpPolicy, type LogFields, nullLogger, TokenBucket } from "../../util/mod.ts";
import { VisitorGuard } from "./guards.ts";

Deno.test("visitor guard: an empty policy admits everyone and counts nothing", () => {
  let denied = 0;
  const guard = new VisitorGuard("t", {
    logger: nullLogger,
    policy: IpPolicy.parse([], []),
    onDenied: () => denied++,
  });
  assert.ok(guard.admits("192.0.2.1") && guard.admits("::1") && guard.admits("not an address"));
  assert.equal(denied, 0);
  assert.equal(guard.denied, 0);
});

Deno.test("visitor guard: refusals by policy are counted always, logged at the first and every 1000th", () => {
  const warnings: LogFields[] = [];
  let denied = 0;
  const guard = new VisitorGuard("ssh", {
    logger: { ...nullLogger, warn: (_msg, fields) => warnings.push(fields ?? {}) },
    policy: IpPolicy.parse(["10.0.0.0/8"], ["10.9.0.0/16"]),
    onDenied: () => denied++,
  });
  assert.ok(guard.admits("10.1.2.3"));
  assert.ok(!guard.admits("10.9.1.1", "10.9.1.1:4000"));
  for (let i = 0; i < 1999; i++) guard.admits("192.0.2.1");
  assert.equal(denied, 2000);
  assert.equal(guard.denied, 2000);
  assert.deepEqual(warnings.map((w) => w.refused_so_far), [1, 1000, 2000]);
  assert.deepEqual(warnings[0], { tunnel: "ssh", remote: "10.9.1.1:4000", refused_so_far: 1 });
});

Deno.test("visitor guard: the connection limit refuses at the limit, and 0 means none", () => {
  let refused = 0;
  const limited = new VisitorGuard("t", {
    logger: nullLogger,
    maxConnections: 2,
    onConnectionLimit: () => refused++,
  });
  assert.ok(!limited.full(0) && !limited.full(1));
  assert.ok(limited.full(2) && limited.full(3));
  assert.equal(refused, 2);
  const unlimited = new VisitorGuard("t", { logger: nullLogger, maxConnections: 0 });
  assert.ok(!unlimited.full(1_000_000));
});

Deno.test("visitor guard: a bandwidth hit is reported when traffic was held back since a mark", () => {
  let hits = 0;
  const limit = { in: new TokenBucket(1000, 1000), out: new TokenBucket(1000, 1000) };
  const guard = new VisitorGuard("t", { logger: nullLogger, limit, onLimit: () => hits++ });
  const before = guard.throttled;
  assert.ok(limit.in.tryTake(500));
  guard.limitedSince(before);
  assert.equal(hits, 0, "within the burst");
  assert.ok(!limit.in.tryTake(2000));
  guard.limitedSince(before);
  assert.equal(hits, 1);
  guard.limited();
  assert.equal(hits, 2);
  const free = new VisitorGuard("t", { logger: nullLogger, onLimit: () => hits++ });
  assert.equal(free.throttled, 0);
  free.limitedSince(0);
  assert.equal(hits, 2);
});

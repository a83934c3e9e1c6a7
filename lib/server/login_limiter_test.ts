import { assert, assertEquals } from "../testing/mod.ts";
import { limitKey, type LoginAttempt, LoginLimiter, type LoginRefusal } from "./login_limiter.ts";

const refused = (x: LoginAttempt | LoginRefusal | Disposable): x is LoginRefusal => "reason" in x;

/** A limiter on a clock the test moves. */
function fixture(options: ConstructorParameters<typeof LoginLimiter>[0] = {}) {
  const clock = { now: 0 };
  const limiter = new LoginLimiter({ ...options, now: () => clock.now });
  return { clock, limiter };
}

Deno.test("failed logins: a burst of maxFailures, then refused at once with the seconds to wait", () => {
  const { clock, limiter } = fixture({ maxFailures: 10, failureInterval: 6_000 });
  for (let i = 0; i < 10; i++) assert(!refused(limiter.attempt("10.0.0.1")), `attempt ${i}`);
  const no = limiter.attempt("10.0.0.1");
  assert(refused(no));
  assertEquals(no.reason, "rate");
  assertEquals(no.retryAfter, 6);
  assertEquals(no.message, "Too many failed logins from 10.0.0.1; retry in 6 s");
  assertEquals(no.refusedSinceQuiet, 1);
  clock.now += 4_500;
  const later = limiter.attempt("10.0.0.1");
  assert(refused(later));
  assertEquals(later.retryAfter, 2, "1.5 s left, rounded up");
  assertEquals(later.refusedSinceQuiet, 2);
  clock.now += 1_500;
  assert(!refused(limiter.attempt("10.0.0.1")), "one attempt regained per interval");
  const third = limiter.attempt("10.0.0.1");
  assert(refused(third));
  assertEquals(third.refusedSinceQuiet, 3, "a flood still going on keeps counting");
  clock.now += 60_000;
  for (let i = 0; i < 10; i++) assert(!refused(limiter.attempt("10.0.0.1")), "refilled");
  const again = limiter.attempt("10.0.0.1");
  assert(refused(again), "never above maxFailures");
  assertEquals(again.refusedSinceQuiet, 1, "counted afresh once the address was quiet");
});

Deno.test("failed logins: parallel attempts cannot overdraw the bucket", () => {
  const { limiter } = fixture({ maxFailures: 3 });
  // Attempts are taken before their tokens are checked, so slow checks in flight still count.
  const results = Array.from({ length: 200 }, () => limiter.attempt("10.0.0.1"));
  assertEquals(results.filter((r) => !refused(r)).length, 3);
});

Deno.test("failed logins: a success gives back its own attempt only, never another address's", () => {
  const { clock, limiter } = fixture({ maxFailures: 5, failureInterval: 10_000 });
  for (let i = 0; i < 4; i++) limiter.attempt("10.0.0.1"); // four wrong tokens
  const owner = limiter.attempt("10.0.0.1");
  assert(!refused(owner));
  owner.succeeded();
  owner.succeeded(); // settling twice changes nothing
  const next = limiter.attempt("10.0.0.1");
  assert(!refused(next), "the owner's success returned its attempt");
  assert(refused(limiter.attempt("10.0.0.1")), "the four failures are not forgotten");

  for (let i = 0; i < 5; i++) limiter.attempt("10.0.0.2");
  const other = limiter.attempt("10.0.0.3");
  assert(!refused(other));
  other.succeeded();
  assert(refused(limiter.attempt("10.0.0.2")), "another address's success does not reset it");
  clock.now += 10_000;
  assert(!refused(limiter.attempt("10.0.0.2")));
});

Deno.test("failed logins: the owner from the attacker's address gets in while the flood stays under the refill rate", () => {
  const { clock, limiter } = fixture({ maxFailures: 10, failureInterval: 6_000 });
  // One wrong token every 7 s for ten minutes, the owner logging in every 30 s.
  for (let t = 0; t < 600_000; t += 1_000) {
    clock.now = t;
    if (t % 7_000 === 0) assert(!refused(limiter.attempt("10.0.0.1")), `flood at ${t}`);
    if (t % 30_000 === 0) {
      const owner = limiter.attempt("10.0.0.1");
      assert(!refused(owner), `owner at ${t}`);
      owner.succeeded();
    }
  }
});

Deno.test("handshakes: at most maxHandshakes open per address; closing one frees its slot once", () => {
  const { limiter } = fixture({ maxHandshakes: 2 });
  const a = limiter.enter("10.0.0.1");
  const b = limiter.enter("10.0.0.1");
  assert(!refused(a) && !refused(b));
  const c = limiter.enter("10.0.0.1");
  assert(refused(c));
  assertEquals(c.reason, "concurrent");
  assertEquals(c.message, "Too many logins in progress from 10.0.0.1 (at most 2 at once)");
  assert(!refused(limiter.enter("10.0.0.2")), "per address");
  a[Symbol.dispose]();
  a[Symbol.dispose]();
  const d = limiter.enter("10.0.0.1");
  assert(!refused(d));
  assert(refused(limiter.enter("10.0.0.1")), "a slot closed twice is freed once");
  {
    using _held = d;
  }
  assert(!refused(limiter.enter("10.0.0.1")), "`using` closes the slot");
});

Deno.test("addresses: IPv4-mapped is IPv4, IPv6 is limited per /64, the table is bounded", () => {
  assertEquals(limitKey("::ffff:10.1.2.3"), "10.1.2.3");
  assertEquals(limitKey("10.1.2.3"), "10.1.2.3");
  assertEquals(limitKey("[2001:db8:a:b:1::2]"), "2001:db8:a:b::/64");
  assertEquals(limitKey("::1"), "::/64");
  assertEquals(limitKey("not-an-ip"), "not-an-ip");

  const { limiter } = fixture({ maxFailures: 1, maxTracked: 100 });
  limiter.attempt("2001:db8:a:b::1");
  assert(refused(limiter.attempt("2001:db8:a:b::ffff")), "same /64: same bucket");
  assert(!refused(limiter.attempt("2001:db8:a:c::1")));
  for (let i = 0; i < 1000; i++) limiter.attempt(`10.0.${i >> 8}.${i & 255}`);
  assertEquals(limiter.size, 100);
  // The most recent ones are still remembered.
  assert(refused(limiter.attempt("10.0.3.231")));
});

Deno.test("options: nonsense limits are a RangeError", () => {
  let error: unknown;
  try {
    new LoginLimiter({ failureInterval: 0 });
  } catch (e) {
    error = e;
  }
  assert(error instanceof RangeError);
});

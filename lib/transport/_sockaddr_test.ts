import { assert, assertEquals } from "../testing/mod.ts";
import { parseIp } from "../util/mod.ts";
import { sameSource, sourceAddr, toSockaddr } from "./_sockaddr.ts";

const roundTrip = (host: string, v6 = true) =>
  sourceAddr(toSockaddr(parseIp(host)!, 5353, v6)).hostname;

Deno.test("addresses read back are written as Deno writes them (RFC 5952, mapped IPv4)", () => {
  assertEquals(roundTrip("127.0.0.1", false), "127.0.0.1");
  assertEquals(roundTrip("127.0.0.1"), "::ffff:127.0.0.1");
  assertEquals(roundTrip("::ffff:10.1.2.3", false), "10.1.2.3");
  assertEquals(roundTrip("::1"), "::1");
  assertEquals(roundTrip("::"), "::");
  assertEquals(roundTrip("1::"), "1::");
  assertEquals(roundTrip("2001:0DB8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
  assertEquals(roundTrip("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1", "the first of equal runs");
  assertEquals(roundTrip("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1", "the longest run");
  assertEquals(roundTrip("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1", "one zero stays");
  assertEquals(roundTrip("fe80::1:2"), "fe80::1:2");
  assertEquals(sourceAddr(toSockaddr(parseIp("10.0.0.1")!, 53, false)).port, 53);
});

Deno.test("sources compare on family, address and port only", () => {
  const a = toSockaddr(parseIp("::1")!, 53, true);
  const b = toSockaddr(parseIp("::1")!, 53, true);
  b[4] = 7; // flow label
  b[24] = 9; // scope id
  assert(sameSource(a, b));
  assert(!sameSource(a, toSockaddr(parseIp("::1")!, 54, true)));
  assert(!sameSource(a, toSockaddr(parseIp("::2")!, 53, true)));
  const v4 = toSockaddr(parseIp("10.0.0.1")!, 53, false);
  assert(sameSource(v4, toSockaddr(parseIp("10.0.0.1")!, 53, false)));
  assert(!sameSource(v4, toSockaddr(parseIp("10.0.0.2")!, 53, false)));
  assert(!sameSource(v4, toSockaddr(parseIp("10.0.0.1")!, 53, true)), "another family");
});

import { assert, assertEquals } from "../testing/mod.ts";
import { IpPolicy, parseCidr, parseIp } from "./cidr.ts";

Deno.test("IP parsing: v4, v6, compressed, mapped, zones; junk refused", () => {
  assertEquals(parseIp("10.1.2.3"), { version: 4, value: 0x0a010203n });
  assertEquals(parseIp("::1"), { version: 6, value: 1n });
  assertEquals(parseIp("[2001:db8::1]")?.value, 0x20010db8000000000000000000000001n);
  assertEquals(parseIp("::ffff:10.1.2.3"), { version: 4, value: 0x0a010203n });
  assertEquals(parseIp("fe80::1%eth0")?.version, 6);
  assertEquals(parseIp("64:ff9b::1.2.3.4")?.value, 0x0064ff9b000000000000000001020304n);
  assertEquals(parseIp("2001:db8:0:0:0:0:0:1")?.value, parseIp("2001:db8::1")?.value);
  for (
    const bad of [
      "",
      "1.2.3",
      "256.1.1.1",
      "1.2.3.4.5",
      "::1::2",
      "2001:db8::g",
      "example.com",
      "1:2:3:4:5:6:7:8:9",
    ]
  ) {
    assertEquals(parseIp(bad), null, bad);
  }
});

Deno.test("CIDR blocks and policies: deny wins, empty allow allows all, v4 and v6", () => {
  assertEquals(parseCidr("10.0.0.0/8").prefix, 8);
  assertEquals(parseCidr("10.1.2.3").prefix, 32);
  for (const bad of ["10.0.0.0/33", "10.0.0.0/x", "nope/8", "::/129", "1.2.3.4/8/1"]) {
    let threw = false;
    try {
      parseCidr(bad);
    } catch (error) {
      threw = true;
      assert(
        (error as Error).message.includes(bad.split("/")[0]!) ||
          (error as Error).message.includes("prefix"),
      );
    }
    assert(threw, bad);
  }
  const p = IpPolicy.parse(["10.0.0.0/8", "2001:db8::/32"], ["10.9.0.0/16", "127.0.0.2"]);
  assertEquals(
    [
      "10.1.2.3",
      "10.9.1.1",
      "192.0.2.1",
      "2001:db8:1::5",
      "2001:db9::1",
      "::ffff:10.1.1.1",
      "127.0.0.2",
    ].map((a) => p.allows(a)),
    [true, false, false, true, false, true, false],
  );
  const denyOnly = IpPolicy.parse([], ["127.0.0.2/32"]);
  assertEquals(
    [denyOnly.allows("127.0.0.1"), denyOnly.allows("127.0.0.2"), denyOnly.allows("::1")],
    [true, false, true],
  );
  assertEquals(IpPolicy.parse().allows("anything"), true);
  assertEquals(IpPolicy.parse(["0.0.0.0/0"]).allows("203.0.113.9"), true);
});

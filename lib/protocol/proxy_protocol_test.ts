import { assert, assertEquals } from "../testing/mod.ts";
import {
  decodeProxyHeaderV2,
  encodeProxyHeader,
  parseEndpoint,
  type ProxyEndpoints,
} from "./proxy_protocol.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

const v4: ProxyEndpoints = {
  source: { hostname: "192.168.0.1", port: 56324 },
  destination: { hostname: "192.168.0.11", port: 443 },
};
const v6: ProxyEndpoints = {
  source: { hostname: "2001:db8::1", port: 4242 },
  destination: { hostname: "::1", port: 80 },
};

Deno.test("proxy protocol v1: the spec's text lines", () => {
  assertEquals(
    text(encodeProxyHeader("v1", v4)),
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
  );
  assertEquals(text(encodeProxyHeader("v1", v6)), "PROXY TCP6 2001:db8::1 ::1 4242 80\r\n");
  assertEquals(text(encodeProxyHeader("v1", null)), "PROXY UNKNOWN\r\n");
  // Mixed families: the IPv4 side becomes IPv4-mapped IPv6; a mapped address alone is IPv4.
  assertEquals(
    text(encodeProxyHeader("v1", {
      source: { hostname: "10.0.0.1", port: 1 },
      destination: { hostname: "::1", port: 2 },
    })),
    "PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n",
  );
  assertEquals(
    text(encodeProxyHeader("v1", {
      source: { hostname: "::ffff:127.0.0.1", port: 1 },
      destination: { hostname: "127.0.0.1", port: 2 },
    })),
    "PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\n",
  );
  // The spec allows lines of up to 107 bytes; the longest Burrow can write is 104.
  const longest = encodeProxyHeader("v1", {
    source: { hostname: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", port: 65535 },
    destination: { hostname: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", port: 65535 },
  });
  assertEquals(longest.length, 104);
});

Deno.test("proxy protocol v2: signature, command, family, length and address blocks", () => {
  assertEquals(
    [...encodeProxyHeader("v2", v4)],
    [
      ...SIG,
      0x21, // version 2, PROXY
      0x11, // AF_INET, STREAM
      0x00,
      0x0c, // 12 bytes of addresses
      192,
      168,
      0,
      1,
      192,
      168,
      0,
      11,
      0xdc,
      0x04, // 56324
      0x01,
      0xbb, // 443
    ],
  );
  const udp4 = encodeProxyHeader("v2", v4, "udp");
  assertEquals(udp4[13], 0x12);
  const tcp6 = encodeProxyHeader("v2", v6);
  assertEquals([...tcp6.subarray(0, 16)], [...SIG, 0x21, 0x21, 0x00, 0x24]);
  assertEquals(tcp6.length, 16 + 36);
  assertEquals(
    [...tcp6.subarray(16, 32)],
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
  );
  assertEquals([...tcp6.subarray(32, 48)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  assertEquals([...tcp6.subarray(48)], [0x10, 0x92, 0x00, 0x50]);
  assertEquals(encodeProxyHeader("v2", v6, "udp")[13], 0x22);
  // LOCAL: no addresses, family UNSPEC, length 0.
  assertEquals([...encodeProxyHeader("v2", null)], [...SIG, 0x20, 0x00, 0x00, 0x00]);
  assertEquals([...encodeProxyHeader("v2", null, "udp")], [...SIG, 0x20, 0x00, 0x00, 0x00]);
});

Deno.test("proxy protocol v2: what is encoded decodes to the same addresses", () => {
  for (const transport of ["tcp", "udp"] as const) {
    const header = encodeProxyHeader("v2", v4, transport);
    const withPayload = new Uint8Array([...header, 1, 2, 3]);
    assertEquals(decodeProxyHeaderV2(withPayload), {
      command: "proxy",
      transport,
      endpoints: v4,
      length: 28,
    });
  }
  const six = decodeProxyHeaderV2(encodeProxyHeader("v2", v6));
  assertEquals(six?.endpoints?.source, { hostname: "2001:db8:0:0:0:0:0:1", port: 4242 });
  assertEquals(decodeProxyHeaderV2(encodeProxyHeader("v2", null))?.command, "local");
  assertEquals(decodeProxyHeaderV2(new TextEncoder().encode("hello, not a header")), null);
  assertEquals(decodeProxyHeaderV2(encodeProxyHeader("v2", v4).subarray(0, 20)), null);
});

Deno.test("proxy protocol: bad input is refused, not written", () => {
  const refused = (f: () => unknown, includes: string) => {
    try {
      f();
    } catch (error) {
      assert(error instanceof RangeError && error.message.includes(includes), String(error));
      return;
    }
    throw new Error(`not refused: ${includes}`);
  };
  refused(() => encodeProxyHeader("v1", v4, "udp"), "use v2 for UDP");
  refused(() => encodeProxyHeader("v1", null, "udp"), "use v2 for UDP");
  refused(
    () => encodeProxyHeader("v2", { ...v4, source: { hostname: "example.com", port: 1 } }),
    "Not an IP address",
  );
  refused(
    () => encodeProxyHeader("v2", { ...v4, destination: { hostname: "10.0.0.1", port: 70000 } }),
    "Not a port",
  );
});

Deno.test("proxy protocol: the open frame's addresses parse; anything else is no address", () => {
  assertEquals(parseEndpoint("127.0.0.1:5000"), { hostname: "127.0.0.1", port: 5000 });
  assertEquals(parseEndpoint("[2001:db8::1]:443"), { hostname: "2001:db8::1", port: 443 });
  for (const bad of ["probe", "", "1.2.3.4", "1.2.3.4:99999", "[::1]", "host:80", 5, undefined]) {
    assertEquals(parseEndpoint(bad), null, String(bad));
  }
});

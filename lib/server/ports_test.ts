import { assert, assertEquals } from "../testing/mod.ts";
import { candidatePorts, formatPortRanges, portAllowed, portsFor } from "./ports.ts";

const any = { server: [], user: null, token: null, userName: "ann" } as const;

Deno.test("ports: ranges, their text, and random candidates inside them", () => {
  assertEquals(portAllowed(5, []), true, "no ranges: every port");
  assertEquals([portAllowed(1999, [[2000, 3000]]), portAllowed(3000, [[2000, 3000]])], [
    false,
    true,
  ]);
  assertEquals(formatPortRanges([[2000, 3000], [3306, 3306]]), "2000-3000,3306");
  assertEquals(candidatePorts([]), [0], "the OS picks when every port is allowed");
  const picked = candidatePorts([[7000, 7002], [9000, 9000]]);
  assertEquals([...picked].sort(), [7000, 7001, 7002, 9000], "small ranges: every port, once");
  assert(candidatePorts([[1024, 65535]]).length === 64);
});

Deno.test("ports: a requested port must be in the server's, the user's and the token's ranges", () => {
  assertEquals(portsFor(2222, any), [2222]);
  assertEquals(
    portsFor(22, { ...any, server: [[2000, 3000]] }),
    "Port 22 is not allowed on this server (allowed: 2000-3000)",
  );
  assertEquals(
    portsFor(2500, { ...any, server: [[2000, 3000]], user: [[2100, 2200]] }),
    'Port 2500 is not allowed for user "ann" (allowed: 2100-2200)',
  );
  assertEquals(
    portsFor(2150, { ...any, user: [[2100, 2200]], token: [[2300, 2400]] }),
    "Port 2150 is not allowed for this token (allowed: 2300-2400)",
  );
  assertEquals(portsFor(2150, { ...any, user: [[2100, 2200]], token: [[2000, 2160]] }), [2150]);
  assertEquals(
    portsFor(2050, { ...any, user: [[2100, 2200]], token: [[2000, 2160]] }),
    'Port 2050 is not allowed for user "ann" (allowed: 2100-2160)',
    "the token narrows the user's ranges",
  );
});

Deno.test("ports: any port (0) picks inside every limit, or says that none is left", () => {
  assertEquals(portsFor(0, any), [0]);
  const ports = portsFor(0, { ...any, server: [[2000, 3000]], user: [[2990, 3100]] });
  assert(Array.isArray(ports) && ports.length > 0);
  for (const p of ports as number[]) assert(p >= 2990 && p <= 3000, `${p}`);
  assertEquals(
    portsFor(0, { ...any, server: [[2000, 3000]], user: [[4000, 4001]] }),
    'No port is allowed both for user "ann" (4000-4001) and on this server (2000-3000)',
  );
});

import { assert, assertEquals } from "../testing/mod.ts";
import {
  checkTunnel,
  checkTunnelField,
  checkTunnelRelations,
  formatProblems,
  TUNNEL_SPEC_FIELDS,
  type TunnelField,
  type TunnelSubField,
} from "./tunnel_spec.ts";
import { type SpecProblem, TUNNEL_LIMITS } from "./tunnel_rules.ts";
import { checkTunnelRequest } from "./messages.ts";

const huge = "a".repeat(1_000_000);
/** A value of every JSON/YAML kind but `keep`. */
const wrongKinds = (keep: string): unknown[] =>
  [
    ["string", "x"],
    ["number", 7],
    ["boolean", true],
    ["null", null],
    ["list", ["x"]],
    ["mapping", { x: "y" }],
  ].filter(([kind]) => kind !== keep).map(([, v]) => v);

/** Every field: values it takes, and values it refuses with (part of) the message. */
const CASES: Record<
  TunnelField | TunnelSubField,
  { valid: unknown[]; invalid: Array<[unknown, string]>; kind: string }
> = {
  name: {
    kind: "string",
    valid: ["web", "a", "ssh-22", "my_db.2", "A".repeat(64)],
    invalid: [
      ["", "expected 1-64 letters"],
      ["-web", "starting with a letter or digit"],
      [".hidden", "starting with a letter or digit"],
      ["a b", "expected 1-64 letters"],
      ["web/1", "expected 1-64 letters"],
      ["A".repeat(65), "expected 1-64 letters"],
      ["wéb", "expected 1-64 letters"],
      ["web\n", "expected 1-64 letters"],
    ],
  },
  type: {
    kind: "string",
    valid: ["tcp", "udp", "http", "https"],
    invalid: [
      ["tpc", 'expected one of tcp, udp, http, https, got "tpc"'],
      ["TCP", "expected one of tcp, udp, http, https"],
      ["toString", "expected one of"],
      ["", "expected one of"],
    ],
  },
  local_addr: {
    kind: "string",
    valid: ["127.0.0.1", "localhost", "db.internal", "::1", "fe80::1", "10.0.0.5"],
    invalid: [
      ["", "expected a host name or IP address"],
      ["[::1]", "IPv6 without brackets"],
      ["local host", "expected a host name or IP address"],
      ["127.0.0.1:80", "expected a host name or IP address"],
      ["a".repeat(254), "expected a host name or IP address"],
    ],
  },
  local_port: {
    kind: "number",
    valid: [1, 22, 65535],
    invalid: [
      [0, "expected an integer 1-65535, got 0"],
      [65536, "expected an integer 1-65535, got 65536"],
      [-1, "expected an integer 1-65535"],
      [22.5, "expected an integer 1-65535"],
      ["22", 'expected an integer 1-65535, got "22"'],
      [NaN, "got NaN"],
      [Infinity, "got Infinity"],
    ],
  },
  remote_port: {
    kind: "number",
    valid: [0, 80, 65535],
    invalid: [
      [65536, "expected an integer 0-65535 (0: the server picks)"],
      [-1, "expected an integer 0-65535"],
      [1.5, "expected an integer 0-65535"],
    ],
  },
  domain: {
    kind: "string",
    valid: ["example.com", "App.Example.COM", "*.example.com", "localhost", "a-b.c"],
    invalid: [
      ["not a host", "expected a host name"],
      ["*example.com", "expected a host name"],
      ["*", "expected a host name"],
      ["a.*.com", "expected a host name"],
      ["-a.com", "expected a host name"],
      ["example.com.", "expected a host name"],
      ["a_b.com", "expected a host name"],
      [`${"a".repeat(64)}.com`, "expected a host name"],
      [`${"a.".repeat(127)}com`, "expected a host name"],
      ["exa\u0000mple.com", "expected a host name"],
    ],
  },
  custom_domains: {
    kind: "list",
    valid: [[], ["a.test"], ["a.test", "*.b.test"], Array(100).fill("a.test")],
    invalid: [
      [["ok.test", "not ok"], "expected a host name"],
      [[7], "expected a host name"],
      ["a.test", 'expected a list of host names, got "a.test"'],
      [Array(101).fill("a.test"), "lists 101 host names; at most 100 are allowed"],
    ],
  },
  subdomain: {
    kind: "string",
    valid: ["app", "a", "a-1", "A".repeat(63)],
    invalid: [
      ["a.b", "expected a DNS label"],
      ["-a", "expected a DNS label"],
      ["a-", "expected a DNS label"],
      ["", "expected a DNS label"],
      ["A".repeat(64), "expected a DNS label"],
      ["*", "expected a DNS label"],
    ],
  },
  locations: {
    kind: "list",
    valid: [["/"], ["/api", "/static/"], ["/a%20b"], [`/${"p".repeat(1023)}`]],
    invalid: [
      [["api"], 'expected a path starting with "/"'],
      [["/a b"], "without spaces"],
      [["/a\u0001"], "control characters"],
      [["/a\u0085"], "control characters"],
      [[`/${"p".repeat(1024)}`], "(1025 characters)"],
      [[""], 'expected a path starting with "/"'],
      ["/", "expected a list of paths"],
      [Array(101).fill("/"), "at most 100"],
    ],
  },
  custom_headers: {
    kind: "mapping",
    valid: [{}, { Host: "myapp.local" }, { "X-Id": "a\tb", "X-Empty": "" }],
    invalid: [
      [{ "Bad Name": "x" }, "not a valid header name"],
      [{ "X-A": "a\r\nX-Evil: 1" }, "cannot contain line breaks"],
      [{ "X-A": "a\u0000" }, "control characters"],
      [{ "X-A": 7 }, "expected a string, got 7"],
      [{ "Content-Length": "5" }, "Content-Length frames the message or is hop-by-hop"],
      [{ "transfer-encoding": "chunked" }, "Burrow manages it"],
      [{ Connection: "close" }, "hop-by-hop"],
      [{ "X-A": "v".repeat(8193) }, "at most 8192"],
      [{ ["H".repeat(257)]: "v" }, "not a valid header name"],
      [Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`X-${i}`, "v"])), "at most 100"],
      [["X-A"], "expected a mapping of header names to values, got a list"],
      ["X-A: 1", "expected a mapping of header names to values"],
    ],
  },
  request_headers: {
    kind: "mapping",
    valid: [{}, { set: { "X-A": "1" } }, { remove: ["Cookie"] }, { set: {}, remove: [] }],
    invalid: [
      [{ sett: {} }, 'unknown key (did you mean "set"?)'],
      [{ add: {} }, "unknown key; use set or remove"],
      [{ set: { "X-A": "1\n" } }, "cannot contain line breaks"],
      [{ remove: "Cookie" }, "expected a list of header names"],
      [{ remove: ["Bad Name"] }, 'not a valid header name: "Bad Name"'],
      [{ remove: ["Content-Length"] }, "frames the message"],
      [[], "expected a mapping with set"],
    ],
  },
  response_headers: {
    kind: "mapping",
    valid: [{ set: { "Cache-Control": "no-store" }, remove: ["Server"] }],
    invalid: [
      [{ remove: ["Transfer-Encoding"] }, "frames the message"],
      [{ set: { "X-B": "\u007f" } }, "control characters"],
    ],
  },
  basic_auth: {
    kind: "mapping",
    valid: [{ user: "bob", password: "s3cret" }, { user: "b ob", password: "p:a ss" }],
    invalid: [
      [{ user: "bob" }, "basic_auth.password: required"],
      [{ password: "x" }, "basic_auth.user: required"],
      [{ user: "b:ob", password: "x" }, 'without ":"'],
      [{ user: "", password: "x" }, "expected a user name"],
      [{ user: "bob", password: "" }, "got an empty string"],
      [{ user: "bob", password: "x\n" }, "contains a line break"],
      [{ user: "bob", password: "x", realm: "y" }, "basic_auth.realm: unknown key"],
      ["bob:x", "expected a mapping with user and password"],
    ],
  },
  "basic_auth.user": {
    kind: "string",
    valid: ["bob", "u".repeat(256)],
    invalid: [["u".repeat(257), "expected a user name"], ["b\u0000ob", "expected a user name"]],
  },
  "basic_auth.password": {
    kind: "string",
    valid: ["x", "p".repeat(1024), "sp ace and ünïcode"],
    invalid: [["p".repeat(1025), "at most 1024"], [7, "got a number"]],
  },
  "request_headers.set": {
    kind: "mapping",
    valid: [{ "X-A": "1" }],
    invalid: [[{ "X A": "1" }, "not a valid header name"]],
  },
  "request_headers.remove": {
    kind: "list",
    valid: [["X-A", "cookie"]],
    invalid: [[["Upgrade"], "hop-by-hop"], [[7], "expected a header name, got 7"]],
  },
  "response_headers.set": {
    kind: "mapping",
    valid: [{ "X-A": "1" }],
    invalid: [[{ "Keep-Alive": "1" }, "hop-by-hop"]],
  },
  "response_headers.remove": {
    kind: "list",
    valid: [["Server"]],
    invalid: [[Array(101).fill("X-A"), "at most 100"]],
  },
  ssl_cert: {
    kind: "string",
    valid: ["auto", "none"],
    invalid: [["yes", "expected one of auto, none"]],
  },
  tls_passthrough: {
    kind: "boolean",
    valid: [true, false],
    invalid: [["true", 'expected true or false, got "true"']],
  },
  session_timeout: {
    kind: "number",
    valid: [100, 30_000, 86_400_000],
    invalid: [
      [99, "expected an integer 100-86400000 milliseconds (100ms to 1d), got 99"],
      [86_400_001, "expected an integer 100-86400000"],
      ["30s", 'got "30s"'],
      [NaN, "got NaN"],
    ],
  },
  allow_ips: {
    kind: "list",
    valid: [[], ["10.0.0.0/8", "192.168.1.1", "::1", "2001:db8::/32"]],
    invalid: [
      [["10.0.0.0/33"], 'the prefix length of "10.0.0.0/33" must be 0-32'],
      [["::1/129"], 'the prefix length of "::1/129" must be 0-128'],
      [["10.0.0.0/x"], "the prefix length"],
      [["not-an-ip"], "expected an IP address or CIDR block"],
      [["10.0.0.0/8/8"], "expected an IP address or CIDR block"],
      [[huge], "(1000000 characters)"],
      ["10.0.0.0/8", "expected a list of IP addresses or CIDR blocks"],
      [Array(1001).fill("10.0.0.1"), "at most 1000"],
    ],
  },
  deny_ips: {
    kind: "list",
    valid: [["10.9.0.0/16"]],
    invalid: [[[null], "expected an IP address or CIDR block"]],
  },
  compression: {
    kind: "string",
    valid: ["none", "gzip"],
    invalid: [["zstd", "expected one of none, gzip"]],
  },
  group: {
    kind: "string",
    valid: ["pool", "web.1", "G".repeat(64)],
    invalid: [["my pool", "expected 1-64 letters"], ["_pool", "starting with a letter or digit"]],
  },
  group_key: {
    kind: "string",
    valid: ["k", "k".repeat(1024), "with spaces and ümlauts"],
    invalid: [
      ["", "expected a group key (a non-empty string), got an empty string"],
      ["k".repeat(1025), "a group key is 1025 characters long; at most 1024 are allowed"],
      ["key\n", "contains a line break"],
      [12345, "got a number"],
    ],
  },
  load_balance: {
    kind: "string",
    valid: ["round_robin", "least_connections"],
    invalid: [["random", "expected one of round_robin, least_connections"]],
  },
  weight: {
    kind: "number",
    valid: [1, 1000],
    invalid: [[0, "expected an integer 1-1000, got 0"], [1001, "expected an integer 1-1000"]],
  },
  probe: {
    kind: "boolean",
    valid: [true, false],
    invalid: [[1, "expected true or false, got 1"]],
  },
  proxy_protocol: {
    kind: "string",
    valid: ["v1", "v2"],
    invalid: [["v3", "expected one of v1, v2"], ["V1", "expected one of v1, v2"]],
  },
};

const messages = (problems: SpecProblem[]) => problems.map((p) => `${p.field}: ${p.message}`);

Deno.test("tunnel spec: every field takes its valid values", () => {
  for (const [field, { valid }] of Object.entries(CASES)) {
    for (const value of valid) {
      const found = checkTunnelField(field as TunnelField, value);
      assertEquals(found, [], `${field} = ${JSON.stringify(value)?.slice(0, 80)}`);
    }
  }
});

Deno.test("tunnel spec: every field refuses bad values, naming the field and what to write", () => {
  for (const [field, { invalid }] of Object.entries(CASES)) {
    for (const [value, wanted] of invalid) {
      const found = messages(checkTunnelField(field as TunnelField, value));
      assert(found.length > 0, `${field} = ${String(value).slice(0, 80)} passed`);
      assert(
        found.some((m) => m.startsWith(field) && m.includes(wanted)),
        `${field}: wanted "${wanted}" in ${JSON.stringify(found)}`,
      );
    }
  }
});

Deno.test("tunnel spec: every field refuses the wrong kind of value, and every field has cases", () => {
  assertEquals(
    TUNNEL_SPEC_FIELDS.filter((f) => !Object.hasOwn(CASES, f)),
    [],
    "fields without cases",
  );
  for (const [field, { kind }] of Object.entries(CASES)) {
    for (const value of wrongKinds(kind)) {
      const found = checkTunnelField(field as TunnelField, value);
      assert(found.length > 0, `${field} took ${JSON.stringify(value)}`);
    }
  }
});

Deno.test("tunnel spec: a whole tunnel, required keys and unknown keys", () => {
  const web = {
    name: "web",
    type: "http",
    local_port: 8080,
    custom_domains: ["app.example.com"],
    subdomain: "app",
    locations: ["/"],
    custom_headers: { Host: "myapp.local" },
    basic_auth: { user: "bob", password: "pw" },
    group: "web",
    group_key: "k",
    load_balance: "least_connections",
    weight: 3,
  };
  assertEquals(checkTunnel(web), []);
  assertEquals(messages(checkTunnel({})), [
    "name: required",
    "type: required",
    "local_port: required",
  ]);
  assertEquals(messages(checkTunnel({ ...web, locatoins: ["/"] })), [
    'locatoins: unknown key (did you mean "locations"?)',
  ]);
  assertEquals(checkTunnel({ ...web, later_setting: 1 }, { unknownKeys: "ignore" }), []);
  assertEquals(messages(checkTunnel(null)), [": expected a mapping of tunnel settings, got null"]);
  assertEquals(messages(checkTunnel(["web"])), [
    ": expected a mapping of tunnel settings, got a list",
  ]);
  // A field that fails its own rule does not also trip the rules between fields.
  assertEquals(messages(checkTunnel({ ...web, type: "tpc" })), [
    'type: expected one of tcp, udp, http, https, got "tpc"',
  ]);
});

Deno.test("tunnel spec: the rules between fields", () => {
  const base = { name: "t", local_port: 1 };
  const problems = (t: Record<string, unknown>, withoutSecrets = false) =>
    messages(checkTunnel({ ...base, ...t }, { withoutSecrets }));
  // HTTP keys on tcp/udp.
  for (
    const key of [
      "domain",
      "custom_domains",
      "subdomain",
      "locations",
      "custom_headers",
      "request_headers",
      "response_headers",
      "basic_auth",
      "ssl_cert",
      "tls_passthrough",
    ]
  ) {
    const value = CASES[key as TunnelField].valid.at(-1);
    assertEquals(problems({ type: "tcp", [key]: value }), [
      `${key}: only meaningful for http and https tunnels`,
    ]);
    assertEquals(problems({ type: "udp", [key]: value }).length, 1);
    assertEquals(problems({ type: "https", [key]: value }), []);
  }
  // No rule that HTTP needs a domain: without one it serves every host (the seed's example).
  assertEquals(problems({ type: "http", remote_port: 80 }), []);
  assertEquals(problems({ type: "udp", session_timeout: 500 }), []);
  assertEquals(problems({ type: "tcp", session_timeout: 500 }), [
    "session_timeout: only meaningful for udp tunnels",
  ]);
  assertEquals(problems({ type: "https", tls_passthrough: true }), []);
  assertEquals(problems({ type: "http", tls_passthrough: false }), []);
  assertEquals(problems({ type: "http", tls_passthrough: true }), [
    "tls_passthrough: only https tunnels pass TLS through",
  ]);
  const passthrough = problems({
    type: "https",
    tls_passthrough: true,
    basic_auth: { user: "u", password: "p" },
    locations: ["/api"],
    custom_headers: { "X-A": "1" },
    request_headers: { set: {} },
    response_headers: { remove: [] },
    custom_domains: ["ok.test"],
  });
  assertEquals(passthrough.length, 5, passthrough.join("\n"));
  assert(passthrough.every((m) => m.includes("remove") && m.includes("or tls_passthrough")));
  assertEquals(problems({ type: "tcp", compression: "gzip" }), []);
  assertEquals(problems({ type: "udp", compression: "none" }), []);
  for (const type of ["udp", "http", "https"]) {
    assertEquals(problems({ type, compression: "gzip" }), [
      "compression: gzip applies to tcp tunnels",
    ]);
  }
  assertEquals(problems({ type: "tcp", group: "g" }), [
    "group_key: required with group (the secret its members share)",
  ]);
  assertEquals(problems({ type: "tcp", group: "g" }, true), []);
  assertEquals(problems({ type: "tcp", group: "g", group_key: "k", weight: 2 }), []);
  assertEquals(problems({ type: "tcp", group_key: "k", load_balance: "round_robin", weight: 2 }), [
    "group_key: only meaningful with group",
    "load_balance: only meaningful with group",
    "weight: only meaningful with group",
  ]);
  assertEquals(problems({ type: "tcp", probe: true }), []);
  assertEquals(problems({ type: "udp", probe: false }), []);
  assertEquals(problems({ type: "http", probe: true }), ["probe: only tcp tunnels are probed"]);
  assertEquals(problems({ type: "tcp", probe: true, group: "g", group_key: "k" }), [
    "probe: group members are not probed; remove probe or group",
  ]);
  assertEquals(problems({ type: "tcp", proxy_protocol: "v1" }), []);
  assertEquals(problems({ type: "tcp", proxy_protocol: "v2" }), []);
  assertEquals(problems({ type: "udp", proxy_protocol: "v2" }), []);
  assertEquals(problems({ type: "udp", proxy_protocol: "v1" }), [
    "proxy_protocol: v1 carries TCP only; use v2 for udp tunnels",
  ]);
  // HTTP(S): a header per local connection, before TLS passed through too.
  for (const type of ["http", "https"]) {
    for (const proxy_protocol of ["v1", "v2"]) {
      assertEquals(problems({ type, proxy_protocol }), []);
    }
  }
  assertEquals(problems({ type: "https", tls_passthrough: true, proxy_protocol: "v1" }), []);
  // Without a known type, no rule that depends on it is guessed at.
  assertEquals(checkTunnelRelations({ custom_domains: ["a.test"], compression: "gzip" }), []);
  // null counts as not set (the config and the database both say "absent" so).
  assertEquals(checkTunnelRelations({ type: "tcp", subdomain: null, group_key: null }), []);
});

Deno.test("tunnel spec: hostile input is refused cheaply, in short messages that leak no secret", () => {
  const started = performance.now();
  const hostile: Record<string, unknown> = {
    name: huge,
    type: huge,
    local_addr: huge,
    local_port: huge,
    remote_port: { valueOf: () => 80 },
    domain: `${"a-".repeat(500_000)}!`,
    custom_domains: Array(100).fill(`${"a".repeat(100_000)}.com`),
    subdomain: huge,
    locations: [huge, `/${" ".repeat(100)}`],
    custom_headers: { [huge]: huge, "X-Ok": huge, "__proto__": "x", "X-Nul": "\u0000" },
    request_headers: { set: { ["\r\n"]: "v" }, remove: [huge] },
    response_headers: JSON.parse('{"__proto__": {"polluted": true}}'),
    basic_auth: { user: huge, password: `hunter2-${huge}` },
    ssl_cert: huge,
    tls_passthrough: huge,
    session_timeout: 1e308,
    allow_ips: [`10.0.0.0/${"9".repeat(100_000)}`, "1".repeat(60) + "/8"],
    deny_ips: Array(5).fill(huge),
    compression: huge,
    group: `\u202e${"g".repeat(10)}\u2028\u0085\u007f`,
    group_key: `topsecret\n${"k".repeat(2000)}`,
    load_balance: huge,
    weight: -Infinity,
    probe: huge,
    proxy_protocol: huge,
    [huge]: "an unknown key that is itself huge",
  };
  const problems = checkTunnel(hostile);
  const elapsed = performance.now() - started;
  assert(elapsed < 2_000, `took ${elapsed} ms`);
  for (const p of problems) {
    assert(p.field.length <= 200, `long field ${p.field.slice(0, 100)}`);
    assert(p.message.length <= 300, `long message for ${p.field}: ${p.message.slice(0, 100)}`);
    const text = p.field + p.message;
    assert(!/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(text), `invisible character in ${p.field}`);
    assert(!p.message.includes("hunter2") && !p.message.includes("topsecret"), p.message);
  }
  const fields = new Set(problems.map((p) => p.field.split(/[.[]/)[0]));
  for (const key of TUNNEL_SPEC_FIELDS) assert(fields.has(key), `${key} not reported`);
  assert(problems.some((p) => p.message.startsWith("unknown key")));
  assertEquals(({} as Record<string, unknown>).polluted, undefined);
  // The one-line form is bounded however many problems there are.
  const line = formatProblems(problems);
  assert(line.length < 2_000, `${line.length} characters`);
  assert(line.endsWith(`and ${problems.length - 5} more`), line.slice(-80));
});

Deno.test("tunnel spec: the wire form (protocol, tunnel_id) is checked the same way", () => {
  assertEquals(checkTunnelRequest("web", { protocol: "http", local_port: 80 }), []);
  assertEquals(
    messages(checkTunnelRequest("-web", { protocol: "tcp", local_port: 0, subdomain: "x" })),
    [
      'name: expected 1-64 letters, digits, "_", "." or "-", starting with a letter or digit, got "-web"',
      "local_port: expected an integer 1-65535, got 0",
      "subdomain: only meaningful for http and https tunnels",
    ],
  );
  // A newer client's settings are ignored, not refused; `name` and `type` are the message's own.
  assertEquals(
    checkTunnelRequest("db", {
      protocol: "tcp",
      local_port: 1,
      future_setting: true,
      name: "-x",
      type: "ftp",
    }),
    [],
  );
});

Deno.test("formatProblems: the first few problems on one line", () => {
  const p = (n: number): SpecProblem => ({ field: `f${n}`, message: `m${n}` });
  assertEquals(formatProblems([]), "");
  assertEquals(formatProblems([p(1)]), "f1: m1");
  assertEquals(formatProblems([p(1), p(2), p(3)], 2), "f1: m1; f2: m2; and 1 more");
  assertEquals(TUNNEL_LIMITS.maxSessionTimeout, 86_400_000);
});

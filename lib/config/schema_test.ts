import assert from "node:assert/strict";
import { parse } from "yaml";
import { clientConfigFromObject, ConfigError, serverConfigFromObject } from "./schema.ts";
import { loadClientConfig, loadServerConfig } from "./load.ts";

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("Expected a ConfigError");
}

function withoutEnv<T>(fn: () => T): T {
  const names = ["BURROW_TOKEN", "DATABASE_URL", "BURROW_CLUSTER_SECRET"];
  const saved = names.map((n) => [n, Deno.env.get(n)] as const);
  for (const n of names) Deno.env.delete(n);
  try {
    return fn();
  } finally {
    for (const [n, v] of saved) if (v !== undefined) Deno.env.set(n, v);
  }
}

const SEED_SERVER = `
server:
  bind_port: 7000
  bind_addr: 0.0.0.0
  max_clients: 1000
  tls:
    cert_file: server.crt
    key_file: server.key
  auth:
    method: token
    token: "your-auth-token"
  limits:
    max_tunnels_per_client: 10
    max_bandwidth: "100MB"
`;

const SEED_CLIENT = `
client:
  server_addr: tunnel.example.com
  server_port: 7000
  auth_token: "your-auth-token"
  tunnels:
    - name: web
      type: http
      local_port: 8080
      remote_port: 80
      custom_domains: [app.example.com]
    - name: ssh
      type: tcp
      local_port: 22
      remote_port: 2222
`;

Deno.test("the seed's server YAML loads key for key", () => {
  const c = withoutEnv(() => serverConfigFromObject(parse(SEED_SERVER)));
  assert.equal(c.bind_port, 7000);
  assert.equal(c.bind_addr, "0.0.0.0");
  assert.equal(c.max_clients, 1000);
  assert.equal(c.tls.cert_file, "server.crt");
  assert.equal(c.auth.method, "token");
  assert.equal(c.auth.token?.reveal(), "your-auth-token");
  assert.equal(c.limits.max_tunnels_per_client, 10);
  assert.equal(c.limits.max_bandwidth, 100_000_000);
  assert.equal(c.heartbeat_timeout, 30_000);
  assert.equal(c.storage.data_dir, "./burrow-data");
});

Deno.test("the seed's client YAML and DESIGN.md's full tunnel list load", () => {
  const c = withoutEnv(() => clientConfigFromObject(parse(SEED_CLIENT)));
  assert.equal(c.server_addr, "tunnel.example.com");
  assert.equal(c.tunnels[1]!.local_addr, "127.0.0.1");
  assert.equal(c.reconnect.max_retries, 0);
  const full = withoutEnv(() =>
    clientConfigFromObject(parse(`
client:
  server_addr: tunnel.example.com
  server_port: 7000
  auth_token: "t"
  server_fingerprint: "sha256:${"AB:".repeat(31)}AB"
  tls: {ca_file: ca.crt, cert_file: c.crt, key_file: c.key, insecure_skip_verify: false}
  reconnect: {max_retries: 0, initial_delay: 1s, max_delay: 30s, backoff_factor: 2, enable_jitter: true}
  tunnels:
    - {name: web, type: http, local_port: 8080, custom_domains: [app.example.com], subdomain: app,
       custom_headers: {Host: myapp.local}}
    - {name: ssh, type: tcp, local_addr: 127.0.0.1, local_port: 22, remote_port: 2222}
    - {name: dns, type: udp, local_port: 53, remote_port: 5353, session_timeout: 30s}
    - {name: db, type: tcp, local_port: 5432, remote_port: 15432,
       allow_ips: ["10.0.0.0/8"], deny_ips: ["10.9.0.0/16"], compression: gzip,
       group: pg, group_key: "k", load_balance: round_robin, weight: 1,
       health_check: {type: tcp, interval: 10s, timeout: 3s, max_failed: 3}}
    - {name: legacy, type: http, local_port: 8081, domain: old.example.com}
`))
  );
  assert.equal(full.server_fingerprint, "sha256:" + "ab".repeat(32));
  assert.equal(full.tunnels[2]!.session_timeout, 30_000);
  assert.deepEqual(full.tunnels[4]!.custom_domains, ["old.example.com"]);
  assert.equal(full.tunnels[3]!.health_check!.interval, 10_000);
});

Deno.test("a misspelt top-level key gets a did-you-mean, like nested ones", () => {
  assert.deepEqual(problems(() => serverConfigFromObject({ sever: { bind_port: 7000 } })), [
    'sever: unknown top-level key (did you mean "server"?)',
    'no "server:" section',
  ]);
  assert.deepEqual(problems(() => serverConfigFromObject({ server: {}, colour: 1 })), [
    "colour: unknown top-level key",
  ]);
  assert.deepEqual(problems(() => clientConfigFromObject({ cleint: {} })), [
    'cleint: unknown top-level key (did you mean "client"?)',
    'no "client:" section',
  ]);
});

Deno.test("every problem is reported with its YAML path", () => {
  const server = withoutEnv(() =>
    problems(() =>
      serverConfigFromObject({
        server: { bind_port: "abc", limts: {}, allow_ports: "3000-2000", heartbeat_interval: "5x" },
      })
    )
  );
  assert.ok(
    server.includes('server.bind_port: expected an integer 0-65535, got "abc"'),
    server.join("\n"),
  );
  assert.ok(server.includes('server.limts: unknown key (did you mean "limits"?)'));
  assert.ok(server.some((p) => p.startsWith("server.allow_ports: Port range")));
  assert.ok(server.some((p) => p.startsWith('server.heartbeat_interval: Invalid duration "5x"')));

  const client = withoutEnv(() =>
    problems(() =>
      clientConfigFromObject({
        client: {
          server_port: 99999,
          server_fingerprint: "md5:abc",
          tunnels: [
            { name: "a", type: "tcp", local_port: 1, remote_port: 5000 },
            { name: "a", type: "tpc", local_port: 1 },
          ],
        },
      })
    )
  );
  assert.ok(
    client.includes("client.server_addr: required (or client.server_addrs, a list of HOST:PORT)"),
    client.join("\n"),
  );
  assert.ok(client.includes("client.server_port: expected an integer 1-65535, got 99999"));
  assert.ok(client.some((p) => p.startsWith('client.server_fingerprint: expected "sha256:"')));
  assert.ok(
    client.includes('client.tunnels[1].type: expected one of tcp, udp, http, https, got "tpc"'),
  );
});

Deno.test("duplicates, missing tokens and misplaced HTTP keys are refused", () => {
  const p = withoutEnv(() =>
    problems(() =>
      clientConfigFromObject({
        client: {
          server_addr: "x",
          tunnels: [
            { name: "a", type: "tcp", local_port: 1, remote_port: 5000 },
            { name: "a", type: "tcp", local_port: 2, remote_port: 5000 },
            { name: "w", type: "http", local_port: 80, tls_passthrough: true },
            { name: "t", type: "tcp", local_port: 3, custom_domains: ["a.test"] },
            { name: "u", type: "udp", local_port: 4, compression: "gzip" },
          ],
        },
      })
    )
  );
  assert.ok(p.includes("client.auth_token: required (or set BURROW_TOKEN)"), p.join("\n"));
  assert.ok(p.includes('client.tunnels[1].name: "a" is used twice'));
  assert.ok(p.includes('client.tunnels[1].remote_port: 5000 is also used by "a"'));
  assert.ok(p.includes("client.tunnels[2].tls_passthrough: only https tunnels pass TLS through"));
  assert.ok(
    p.includes("client.tunnels[3].custom_domains: only meaningful for http and https tunnels"),
  );
  assert.ok(p.includes("client.tunnels[4].compression: gzip applies to tcp tunnels"));
  const fields = withoutEnv(() =>
    problems(() =>
      clientConfigFromObject({
        client: {
          server_addr: "x",
          auth_token: "t",
          tunnels: [
            { name: "h", type: "http", local_port: 5, custom_headers: { "Bad Name": "x" } },
            { name: "d", type: "http", local_port: 6, domain: "not a host" },
          ],
        },
      })
    )
  );
  assert.ok(fields.includes("client.tunnels[0].custom_headers.Bad Name: not a valid header name"));
  assert.ok(fields.some((x) => x.startsWith("client.tunnels[1].domain: expected a host name")));
  // The seed's example: an http tunnel with a remote_port and no domain is valid.
  const seed = withoutEnv(() =>
    clientConfigFromObject({
      client: {
        server_addr: "x",
        auth_token: "t",
        tunnels: [{ name: "web", type: "http", local_port: 8080, remote_port: 80 }],
      },
    })
  );
  assert.equal(seed.tunnels[0]!.remote_port, 80);
  const s = withoutEnv(() => serverConfigFromObject({ server: {} }));
  assert.equal(s.auth.token, undefined, "burrowd generates one at start");
});

Deno.test("tunnels follow the tunnel spec: the server and the admin API refuse the same", () => {
  const refused = (tunnels: unknown[]) =>
    withoutEnv(() =>
      problems(() =>
        clientConfigFromObject({ client: { server_addr: "x", auth_token: "t", tunnels } })
      )
    );
  const at = (i: number, rest: string) => `client.tunnels[${i}].${rest}`;
  const expectAll = (found: string[], wanted: string[]) => {
    for (const w of wanted) {
      assert.ok(found.some((x) => x.startsWith(w)), `${w}\nin\n${found.join("\n")}`);
    }
    assert.equal(found.length, wanted.length, found.join("\n"));
  };
  // Each field alone.
  const fields = refused([
    { name: "-web", type: "tcp", local_port: 1 },
    { name: "a", type: "tcp", local_port: 1, local_addr: "[::1]" },
    { name: "b", type: "udp", local_port: 1, session_timeout: "50ms" },
    { name: "c", type: "http", local_port: 1, custom_headers: { "Content-Length": "5" } },
    { name: "d", type: "http", local_port: 1, basic_auth: { user: "a:b", password: "pw-d\n" } },
    { name: "e", type: "http", local_port: 1, request_headers: { remove: ["Transfer-Encoding"] } },
  ]);
  expectAll(fields, [
    at(0, 'name: expected 1-64 letters, digits, "_", "." or "-", starting with a letter or digit'),
    at(1, "local_addr: expected a host name or IP address"),
    at(2, "session_timeout: expected an integer 100-86400000 milliseconds (100ms to 1d), got 50"),
    at(3, "custom_headers.Content-Length: Content-Length frames the message or is hop-by-hop"),
    at(4, 'basic_auth.user: expected a user name of 1-256 characters without ":"'),
    at(4, "basic_auth.password: a password contains a line break"),
    at(5, "request_headers.remove[0]: Transfer-Encoding frames the message"),
  ]);
  assert.ok(!fields.some((x) => x.includes("pw-d")), "the password is not shown");
  // The fields together.
  const together = refused([
    { name: "c", type: "tcp", local_port: 1, session_timeout: "30s" },
    { name: "d", type: "http", local_port: 1, probe: true },
    { name: "f", type: "https", local_port: 1, tls_passthrough: true, locations: ["/a"] },
    { name: "g", type: "tcp", local_port: 1, group_key: "k", weight: 2 },
    { name: "h", type: "tcp", local_port: 1, group: "pool", group_key: "k", probe: true },
    // `domain` is reported as written, not as the custom_domains it becomes.
    { name: "i", type: "tcp", local_port: 1, domain: "a.test" },
    { name: "j", type: "udp", local_port: 1, proxy_protocol: "v1" },
  ]);
  expectAll(together, [
    at(0, "session_timeout: only meaningful for udp tunnels"),
    at(1, "probe: only tcp tunnels are probed"),
    at(2, "locations: a tls_passthrough tunnel relays TLS untouched"),
    at(3, "group_key: only meaningful with group"),
    at(3, "weight: only meaningful with group"),
    at(4, "probe: group members are not probed; remove probe or group"),
    at(5, "domain: only meaningful for http and https tunnels"),
    at(6, "proxy_protocol: v1 carries TCP only; use v2 for udp tunnels"),
  ]);
});

Deno.test("BURROW_TOKEN overrides the file; secrets never print", () => {
  Deno.env.set("BURROW_TOKEN", "from-env");
  try {
    const c = serverConfigFromObject({ server: { auth: { token: "from-file" } } });
    assert.equal(c.auth.token?.reveal(), "from-env");
    assert.ok(!JSON.stringify(c).includes("from-env"));
    assert.ok(!Deno.inspect(c, { depth: 10 }).includes("from-env"));
  } finally {
    Deno.env.delete("BURROW_TOKEN");
  }
});

Deno.test("files: missing file, YAML syntax error with line, overrides on top", async () => {
  await assert.rejects(() => loadServerConfig("/nonexistent/burrow.yaml"), /not found/);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/bad.yaml`, "server:\n  bind_port: [1,\n");
    await assert.rejects(() => loadServerConfig(`${dir}/bad.yaml`), /line \d+, column \d+/);
    await Deno.writeTextFile(`${dir}/c.yaml`, SEED_CLIENT);
    await assert.rejects(() => loadServerConfig(`${dir}/c.yaml`), /no "server:" section/);
    const c = await withoutEnv(() =>
      loadClientConfig(`${dir}/c.yaml`, { client: { server_port: 7100 } })
    );
    assert.equal(c.server_port, 7100);
    assert.equal(c.server_addr, "tunnel.example.com");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server.auth login limits: defaults, values and exact errors", () => {
  const d = withoutEnv(() => serverConfigFromObject({ server: {} }));
  assert.equal(d.auth.max_failures, 10);
  assert.equal(d.auth.failure_interval, 6_000);
  assert.equal(d.auth.max_handshakes, 8);
  const set = withoutEnv(() =>
    serverConfigFromObject({
      server: { auth: { token: "t", max_failures: 3, failure_interval: "1m", max_handshakes: 2 } },
    })
  );
  assert.equal(set.auth.token?.reveal(), "t");
  assert.deepEqual(
    [set.auth.max_failures, set.auth.failure_interval, set.auth.max_handshakes],
    [3, 60_000, 2],
  );
  const p = withoutEnv(() =>
    problems(() =>
      serverConfigFromObject({
        server: { auth: { max_failures: 0, failure_interval: "soon", max_handshake: 4 } },
      })
    )
  );
  assert.deepEqual(p, [
    'server.auth.max_handshake: unknown key (did you mean "max_handshakes"?)',
    "server.auth.max_failures: expected an integer 1-1000000, got 0",
    'server.auth.failure_interval: Invalid duration "soon": expected a number followed by ms, s, ' +
    'm, h or d (e.g. "30s")',
  ]);
  const zero = withoutEnv(() =>
    problems(() => serverConfigFromObject({ server: { auth: { failure_interval: "0s" } } }))
  );
  assert.deepEqual(zero, ["server.auth.failure_interval: must be longer than 0s"]);
});

Deno.test("udp.socket_buffer: 4 MiB by default, size units, exact paths for bad values", () => {
  const server = withoutEnv(() => serverConfigFromObject(parse(SEED_SERVER)));
  assert.equal(server.udp.socket_buffer, 4 * 1024 * 1024);
  const client = withoutEnv(() => clientConfigFromObject(parse(SEED_CLIENT)));
  assert.equal(client.udp.socket_buffer, 4 * 1024 * 1024);
  const set = (value: unknown) =>
    withoutEnv(() =>
      serverConfigFromObject({ server: { udp: { socket_buffer: value } } }).udp.socket_buffer
    );
  assert.equal(set("4MB"), 4_000_000);
  assert.equal(set("8MiB"), 8 * 1024 * 1024);
  assert.equal(set(0), 0, "0 keeps the kernel's default");
  assert.equal(set(65536), 65536);
  assert.deepEqual(
    withoutEnv(() =>
      problems(() => serverConfigFromObject({ server: { udp: { socket_buffer: "4 parsecs" } } }))
    ),
    [
      'server.udp.socket_buffer: Invalid size "4 parsecs": expected a number with B, KB, MB, GB, ' +
      'KiB, MiB or GiB (e.g. "100MB")',
    ],
  );
  assert.deepEqual(
    withoutEnv(() =>
      problems(() => serverConfigFromObject({ server: { udp: { socket_buffer: "2GiB" } } }))
    ),
    ['server.udp.socket_buffer: expected 0 or a size from 4KiB to 1GiB, got "2GiB"'],
  );
  assert.deepEqual(
    withoutEnv(() =>
      problems(() =>
        clientConfigFromObject({
          client: { server_addr: "x", auth_token: "t", udp: { socket_buffer: 100, sockbuf: 1 } },
        })
      )
    ),
    [
      "client.udp.sockbuf: unknown key",
      "client.udp.socket_buffer: expected 0 or a size from 4KiB to 1GiB, got 100",
    ],
  );
});

Deno.test("server.cluster: defaults, the secret from the environment, exact errors", () => {
  const PG = "postgres://db.example/burrow";
  const server = (cluster: unknown, more: Record<string, unknown> = {}) =>
    serverConfigFromObject({
      server: { auth: { token: "t" }, storage: { url: PG }, cluster, ...more },
    });
  withoutEnv(() => {
    assert.equal(server(undefined).cluster, undefined);
    const c = server({ secret: "0123456789abcdef" }, { bind_addr: "10.0.0.5" }).cluster!;
    assert.equal(c.node_id, Deno.hostname());
    assert.equal(c.advertise_addr, "10.0.0.5");
    assert.equal(c.relay_port, 7001);
    assert.equal(c.heartbeat, 5000);
    assert.equal(c.dead_after, 15_000);
    assert.equal(String(c.secret), "***");
    const d = server({
      node_id: "n1",
      advertise_addr: "n1.internal:7101",
      heartbeat: "1s",
      dead_after: "2s",
    }, { tls: { client_ca_file: "ca.crt" } }).cluster!;
    assert.deepEqual({ ...d }, {
      node_id: "n1",
      advertise_addr: "n1.internal:7101",
      relay_port: 7001,
      heartbeat: 1000,
      dead_after: 2000,
    });

    Deno.env.set("BURROW_CLUSTER_SECRET", "from-the-environment");
    try {
      const e = server({ node_id: "n1", advertise_addr: "a" }).cluster!;
      assert.equal(e.secret?.reveal(), "from-the-environment");
    } finally {
      Deno.env.delete("BURROW_CLUSTER_SECRET");
    }

    const p = problems(() =>
      serverConfigFromObject({
        server: {
          auth: { token: "t" },
          cluster: { node_id: "-bad", secret: "short", heartbeat: "2s", dead_after: "3s" },
        },
      })
    );
    assert.deepEqual(p, [
      'server.cluster.node_id: expected a name of letters, digits, _ . or -, got "-bad"',
    ]);
    const q = problems(() =>
      serverConfigFromObject({
        server: {
          auth: { token: "t" },
          cluster: { node_id: "n1", secret: "short", heartbeat: "2s", dead_after: "3s" },
        },
      })
    );
    assert.deepEqual(q, [
      "server.cluster.advertise_addr: required when server.bind_addr is a wildcard " +
      '("0.0.0.0"): the host or host:port the other nodes reach this one at',
      "server.cluster.secret: must be 16 characters at least",
      "server.cluster.dead_after: must be at least twice server.cluster.heartbeat",
      "server.cluster: cluster mode needs PostgreSQL, which all the nodes share: set " +
      "server.storage.url (or env DATABASE_URL) to a postgres:// URL; the embedded database " +
      "serves one burrowd alone",
    ]);
    const r = problems(() => server({ node_id: "n1", advertise_addr: "a" }));
    assert.equal(r.length, 1);
    assert.match(
      r[0]!,
      /^server\.cluster\.secret: required.*BURROW_CLUSTER_SECRET.*client_ca_file/,
    );
  });
});

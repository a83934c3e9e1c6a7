/**
 * The schema of `client:` and of each of its tunnels: every key with its
 * check, default and the line of the configuration reference that
 * documents it.
 *
 * @module
 */

import {
  checkTunnelField,
  TUNNEL_TYPES,
  type TunnelField,
  type TunnelSubField,
} from "../protocol/mod.ts";
import { Secret } from "../util/mod.ts";

import { parseServerAddr, type ServerAddr } from "./server_addr.ts";
import {
  bool,
  type Check,
  duration,
  f,
  int,
  list,
  logFields,
  num,
  object,
  oneOf,
  PORT,
  req,
  secret,
  size,
  str,
  tag,
  udpFields,
} from "./checks.ts";

/**
 * The check of the tunnel spec's `field` (`protocol/tunnel_spec.ts`, the
 * rules the server's wire check and the tunnel DAO apply too), reporting
 * each problem at its YAML path; `what` is its type in the reference.
 */
function spec<T>(field: TunnelField | TunnelSubField, what: string): Check<T> {
  return tag((v, path, p) => {
    const problems = checkTunnelField(field, v);
    for (const problem of problems) {
      p.push(`${path}${problem.field.slice(field.length)}: ${problem.message}`);
    }
    return problems.length ? undefined : v as T;
  }, what);
}

/** A secret of the tunnel spec, kept masked once checked. */
function specSecret(field: "group_key" | "basic_auth.password"): Check<Secret> {
  const check = spec<string>(field, "secret string");
  return tag((v, path, p) => {
    const text = check(v, path, p);
    return text === undefined ? undefined : new Secret(text);
  }, "secret string");
}

/** `server_addrs`: a non-empty list of `HOST[:PORT]`, each reported at its index. */
const serverAddrList: Check<ServerAddr[]> = tag((v, path, p) => {
  if (!Array.isArray(v) || v.length === 0) {
    p.push(`${path}: expected a list of at least one HOST:PORT`);
    return undefined;
  }
  const seen = new Map<string, number>();
  let ok = true;
  const out = v.map((item, i) => {
    const at = `${path}[${i}]`;
    if (typeof item !== "string") {
      p.push(`${at}: expected a string HOST:PORT, got ${JSON.stringify(item)}`);
      ok = false;
      return null;
    }
    let parsed: ServerAddr;
    try {
      parsed = parseServerAddr(item);
    } catch (error) {
      p.push(`${at}: ${(error as Error).message}`);
      ok = false;
      return null;
    }
    const key = `${parsed.host.toLowerCase()}:${parsed.port}`;
    if (seen.has(key)) {
      p.push(`${at}: "${item}" is the same address as server_addrs[${seen.get(key)}]`);
      ok = false;
    }
    seen.set(key, i);
    return parsed;
  });
  return ok ? out as ServerAddr[] : undefined;
}, "list of `HOST:PORT`");

/** `session_timeout`: a duration as YAML writes it, in the spec's range. */
const sessionTimeout: Check<number> = tag((v, path, p) => {
  const ms = duration(v, path, p);
  return ms === undefined ? undefined : spec<number>("session_timeout", "")(ms, path, p);
}, "duration 100ms-1d");

const headerRules = (side: "request_headers" | "response_headers") =>
  object({
    set: f(
      spec(`${side}.set`, "mapping of header names to values"),
      {},
      "headers set, replacing any the message had",
    ),
    remove: f(spec(`${side}.remove`, "list of header name"), [], "headers removed"),
  });

export const healthCheck = object({
  type: f(oneOf("tcp", "http"), "tcp", "`tcp`: connect; `http`: GET `path`, 2xx/3xx is healthy"),
  path: f(str(), undefined, "path of the HTTP check", "/"),
  interval: f(duration, 10_000, "time between checks", "10s"),
  timeout: f(duration, 3_000, "time one check may take", "3s"),
  max_failed: f(int(1, 1000), 3, "failures in a row before the service counts as down"),
});

/**
 * One tunnel. The values follow the tunnel spec, checked field by field
 * here and between fields in `schema.ts`; what only the YAML has (durations
 * as text, masked secrets, defaults, health checks) is the config's own.
 */
export const tunnelSchema = object({
  name: req(
    spec("name", "name: 1-64 letters, digits, _ . -"),
    "unique per client (and per user on the server); starts with a letter or digit",
  ),
  type: req(spec("type", TUNNEL_TYPES.map((x) => `\`${x}\``).join(" \\| ")), "tunnel type"),
  local_addr: f(
    spec("local_addr", "host name or IP address"),
    "127.0.0.1",
    "local service address",
  ),
  local_port: req(spec("local_port", "integer 1-65535"), "local service port"),
  remote_port: f(
    spec("remote_port", "integer 0-65535"),
    undefined,
    "public port on the server; `0`: the server picks",
    "0",
  ),
  domain: f(
    spec("domain", "host name or *.wildcard"),
    undefined,
    "the seed's single domain; same as `custom_domains: [domain]`",
  ),
  custom_domains: f(
    spec("custom_domains", "list of host name or *.wildcard"),
    undefined,
    "host names routed to an HTTP(S) tunnel (`*.example.com` covers its subdomains)",
  ),
  subdomain: f(spec("subdomain", "DNS label"), undefined, "label under `server.subdomain_host`"),
  locations: f(
    spec("locations", "list of path starting with /"),
    undefined,
    "HTTP: path prefixes served, so tunnels can share a domain (longest prefix wins)",
    "`[/]`",
  ),
  custom_headers: f(
    spec("custom_headers", "mapping of header names to values"),
    undefined,
    "HTTP: request headers set on the way to the service, e.g. `{Host: myapp.local}`",
  ),
  request_headers: f(
    headerRules("request_headers"),
    undefined,
    "HTTP: `set` (mapping) and `remove` (list) of request headers",
  ),
  response_headers: f(
    headerRules("response_headers"),
    undefined,
    "HTTP: `set` (mapping) and `remove` (list) of response headers",
  ),
  basic_auth: f(
    object({
      user: req(spec("basic_auth.user", "string"), "user name"),
      password: req(specSecret("basic_auth.password"), "password"),
    }),
    undefined,
    "HTTP: visitors must log in with this user and password (checked on the server)",
  ),
  ssl_cert: f(
    spec("ssl_cert", "`auto` \\| `none`"),
    undefined,
    "HTTP(S): `auto` gets certificates for the tunnel's domains over ACME (an `http` tunnel " +
      "is then also served on the HTTPS port)",
    "`none`",
  ),
  tls_passthrough: f(
    spec("tls_passthrough", "boolean"),
    undefined,
    "HTTPS: relay TLS untouched (chosen by SNI) to a local service that terminates it",
    "false",
  ),
  session_timeout: f(
    sessionTimeout,
    undefined,
    "UDP: a visitor session silent this long expires",
    "30s",
  ),
  allow_ips: f(
    spec("allow_ips", "list of CIDR"),
    undefined,
    "visitor addresses allowed (CIDR, IPv4 or IPv6); others are dropped before any byte reaches the client",
  ),
  deny_ips: f(
    spec("deny_ips", "list of CIDR"),
    undefined,
    "visitor addresses refused; wins over `allow_ips`",
  ),
  compression: f(
    spec("compression", "`none` \\| `gzip`"),
    undefined,
    "gzip the data streams between server and client (flushed per write, so interactive " +
      "traffic is not held back)",
    "`none`",
  ),
  group: f(
    spec("group", "name"),
    undefined,
    "load-balancing group: members share the public port",
  ),
  group_key: f(
    specSecret("group_key"),
    undefined,
    "the group's shared secret; required with `group`",
  ),
  load_balance: f(
    spec("load_balance", "`round_robin` \\| `least_connections`"),
    undefined,
    "how the group spreads connections; its first member decides",
    "`round_robin`",
  ),
  weight: f(spec("weight", "integer 1-1000"), undefined, "share of the group's connections", "1"),
  health_check: f(healthCheck, undefined, "probe of the local service (see below)"),
  probe: f(
    spec("probe", "boolean"),
    undefined,
    "let the server probe this tunnel end to end every `server.alerting.probe_interval` " +
      "(tcp tunnels outside groups)",
    "false",
  ),
  proxy_protocol: f(
    spec("proxy_protocol", "`v1` \\| `v2`"),
    undefined,
    "write a PROXY protocol header with the visitor's address to the local service before " +
      "its first byte (tcp/http/https: `v1` or `v2`; udp: `v2`, per datagram)",
    "none",
  ),
});

export const clientSchema = object({
  server_addr: f(
    str(),
    undefined,
    "burrowd host name or address (the single-address form; or `server_addrs`)",
    "required",
  ),
  server_port: f(int(1, 65535), 7000, "burrowd control port (with `server_addr`)"),
  server_addrs: f(
    serverAddrList,
    undefined,
    "several burrowd nodes, `HOST:PORT` each (`[::1]:7000`; port 7000 when left out); a name " +
      "counts as each address it resolves to; tried from a random one, the next on failure",
  ),
  ha_connections: f(
    int(1, 4),
    1,
    "sessions held at once, each to a different address and carrying every tunnel",
  ),
  auth_token: f(
    secret,
    undefined,
    "shared token or a user token (`burrowd token issue`); env `BURROW_TOKEN` overrides",
    "required",
  ),
  server_fingerprint: f(
    str(
      /^sha256:([0-9a-f]{64}|([0-9a-f]{2}:){31}[0-9a-f]{2})$/i,
      '"sha256:" followed by 64 hex digits',
    ),
    undefined,
    "pin the server certificate (`burrowd fingerprint` prints it)",
  ),
  tls: f(
    object({
      ca_file: f(str(), undefined, "verify the server against this CA instead"),
      cert_file: f(str(), undefined, "client certificate for mutual TLS"),
      key_file: f(str(), undefined, "key of `cert_file`"),
      insecure_skip_verify: f(bool, false, "accept any certificate; only when set explicitly"),
    }),
    { insecure_skip_verify: false },
  ),
  reconnect: f(
    object({
      max_retries: f(
        int(0, 1_000_000),
        0,
        "attempts before giving up; `0` retries forever (written out, also an address that is " +
          "not burrowd; else exit code 2)",
      ),
      initial_delay: f(duration, 1000, "first delay", "1s"),
      max_delay: f(duration, 30_000, "delay cap", "30s"),
      backoff_factor: f(num(1), 2, "multiplier per attempt"),
      enable_jitter: f(bool, true, "draw each delay from [delay/2, delay]"),
      retry_auth_failures: f(
        bool,
        false,
        "keep retrying a refused token instead of exiting with code 3",
      ),
    }),
    undefined,
  ),
  log: f(logFields(), undefined),
  client_id: f(
    str(),
    undefined,
    "stable id; a reconnecting client replaces its own stale session",
    "host name + random",
  ),
  tunnels: f(list(tunnelSchema), [], "the tunnels to open"),
  udp: udpFields("local"),
  status: f(
    object({
      bind_addr: f(
        str(),
        "127.0.0.1",
        "address of the local status endpoint `burrow status` reads",
      ),
      bind_port: f(PORT, 0, "its port; `0` picks one and records it for `burrow status`"),
    }),
    { bind_addr: "127.0.0.1", bind_port: 0 },
  ),
  inspect: f(
    object({
      addr: f(
        str(/^(\[[^\]]+\]|[^:\[\]]+):\d{1,5}$/, "HOST:PORT"),
        "127.0.0.1:4040",
        "address of the inspector's API; one that is not loopback requires `auth`",
      ),
      max_requests: f(int(1, 100_000), 200, "exchanges kept in memory; the oldest go first"),
      max_body: f(
        size,
        64 * 1024,
        "body bytes kept per request and per response; the rest is counted",
        "64KiB",
      ),
      auth: f(
        object({
          user: req(str(), "user name"),
          password: req(secret, "password"),
        }),
        undefined,
        "basic auth for the inspector",
      ),
    }),
    undefined,
    "request inspector of the HTTP tunnels; off unless present (quick `burrow http` turns it on)",
  ),
});

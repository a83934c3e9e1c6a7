/**
 * The schema of `client:` and of each of its tunnels: every key with its
 * check, default and the line of the configuration reference that
 * documents it.
 *
 * @module
 */

import { DNS_LABEL, HEADER_NAME, HOST_PATTERN } from "../util/mod.ts";

import {
  bool,
  type Check,
  cidr,
  duration,
  f,
  int,
  list,
  logFields,
  NAME,
  num,
  object,
  oneOf,
  PORT,
  req,
  secret,
  str,
  stringMap,
  tag,
  udpFields,
} from "./checks.ts";

/** Header names and values that are safe to send (no CR/LF smuggling). */
export const headerMap: Check<Record<string, string>> = tag((v, path, p) => {
  const map = stringMap(v, path, p);
  if (!map) return undefined;
  let ok = true;
  for (const [k, x] of Object.entries(map)) {
    if (!HEADER_NAME.test(k)) {
      p.push(`${path}.${k}: not a valid header name`);
      ok = false;
    } else if (/[\r\n\0]/.test(x)) {
      p.push(`${path}.${k}: header values cannot contain line breaks`);
      ok = false;
    }
  }
  return ok ? map : undefined;
}, "mapping of header names to values");

export const headerRules = object({
  set: f(headerMap, {}, "headers set, replacing any the message had"),
  remove: f(list(str(HEADER_NAME, "a header name")), [], "headers removed"),
});

export const healthCheck = object({
  type: f(oneOf("tcp", "http"), "tcp", "`tcp`: connect; `http`: GET `path`, 2xx/3xx is healthy"),
  path: f(str(), undefined, "path of the HTTP check", "/"),
  interval: f(duration, 10_000, "time between checks", "10s"),
  timeout: f(duration, 3_000, "time one check may take", "3s"),
  max_failed: f(int(1, 1000), 3, "failures in a row before the service counts as down"),
});

export const tunnelSchema = object({
  name: req(NAME, "unique per client (and per user on the server)"),
  type: req(oneOf("tcp", "udp", "http", "https"), "tunnel type"),
  local_addr: f(str(), "127.0.0.1", "local service address"),
  local_port: req(int(1, 65535), "local service port"),
  remote_port: f(PORT, undefined, "public port on the server; `0`: the server picks", "0"),
  domain: f(
    str(HOST_PATTERN, "a host name"),
    undefined,
    "the seed's single domain; same as `custom_domains: [domain]`",
  ),
  custom_domains: f(
    list(str(HOST_PATTERN, "a host name or *.wildcard")),
    undefined,
    "host names routed to an HTTP(S) tunnel (`*.example.com` covers its subdomains)",
  ),
  subdomain: f(
    str(DNS_LABEL, "a DNS label"),
    undefined,
    "label under `server.subdomain_host`",
  ),
  locations: f(
    list(str(/^\/\S*$/, "a path starting with /")),
    undefined,
    "HTTP: path prefixes served, so tunnels can share a domain (longest prefix wins)",
    "`[/]`",
  ),
  custom_headers: f(
    headerMap,
    undefined,
    "HTTP: request headers set on the way to the service, e.g. `{Host: myapp.local}`",
  ),
  request_headers: f(
    headerRules,
    undefined,
    "HTTP: `set` (mapping) and `remove` (list) of request headers",
  ),
  response_headers: f(
    headerRules,
    undefined,
    "HTTP: `set` (mapping) and `remove` (list) of response headers",
  ),
  basic_auth: f(
    object({
      user: req(str(), "user name"),
      password: req(secret, "password"),
    }),
    undefined,
    "HTTP: visitors must log in with this user and password (checked on the server)",
  ),
  ssl_cert: f(
    oneOf("auto", "none"),
    undefined,
    "HTTP(S): `auto` gets certificates for the tunnel's domains over ACME (an `http` tunnel " +
      "is then also served on the HTTPS port)",
    "`none`",
  ),
  tls_passthrough: f(
    bool,
    undefined,
    "HTTPS: relay TLS untouched (chosen by SNI) to a local service that terminates it",
    "false",
  ),
  session_timeout: f(duration, undefined, "UDP: a visitor session silent this long expires", "30s"),
  allow_ips: f(
    list(cidr),
    undefined,
    "visitor addresses allowed (CIDR, IPv4 or IPv6); others are dropped before any byte reaches the client",
  ),
  deny_ips: f(list(cidr), undefined, "visitor addresses refused; wins over `allow_ips`"),
  compression: f(
    oneOf("none", "gzip"),
    undefined,
    "gzip the data streams between server and client (flushed per write, so interactive " +
      "traffic is not held back)",
    "`none`",
  ),
  group: f(str(), undefined, "load-balancing group: members share the public port"),
  group_key: f(secret, undefined, "the group's shared secret; required with `group`"),
  load_balance: f(
    oneOf("round_robin", "least_connections"),
    undefined,
    "how the group spreads connections; its first member decides",
    "`round_robin`",
  ),
  weight: f(int(1, 1000), undefined, "share of the group's connections", "1"),
  health_check: f(healthCheck, undefined, "probe of the local service (see below)"),
  probe: f(
    bool,
    undefined,
    "let the server probe this tunnel end to end every `server.alerting.probe_interval`",
    "false",
  ),
});

export const clientSchema = object({
  server_addr: req(str(), "burrowd host name or address"),
  server_port: f(int(1, 65535), 7000, "burrowd control port"),
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
      max_retries: f(int(0, 1_000_000), 0, "attempts before giving up; `0` retries forever"),
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
});

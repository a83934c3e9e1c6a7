/**
 * Validation of parsed YAML into {@linkcode ServerConfig} and
 * {@linkcode ClientConfig}: defaults, the seed's units, environment
 * overrides, and errors that name the exact YAML path. Every problem in a
 * document is reported at once.
 *
 * @example
 * ```ts
 * import { serverConfigFromObject } from "./schema.ts";
 * const config = serverConfigFromObject({ server: { auth: { token: "t" } } });
 * console.assert(config.bind_port === 7000);
 * ```
 *
 * @module
 */

import { Secret } from "../util/mod.ts";
import { parseDuration, parsePortRanges, parseSize } from "../util/mod.ts";
import { parseCidr } from "../util/mod.ts";
import { DNS_LABEL, ENTITY_NAME, HEADER_NAME, HOST_NAME, HOST_PATTERN } from "../util/mod.ts";
import type { ClientConfig, LogConfig, ServerConfig, TunnelConfig } from "./types.ts";

/** One or more problems in a configuration, each with its YAML path. */
export class ConfigError extends Error {
  /** The problems, one line each. */
  readonly problems: string[];

  /** Creates the error from its problems. */
  constructor(problems: string[], source = "configuration") {
    super(
      problems.length === 1
        ? `Invalid ${source}: ${problems[0]}`
        : `Invalid ${source}:\n  ${problems.join("\n  ")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

type Problems = string[];
/** Checks one value; returns `undefined` after recording a problem. */
type Check<T> = ((value: unknown, path: string, problems: Problems) => T | undefined) & {
  /** What the value must be, for the generated reference. */
  what?: string;
  /** The keys of a mapping. */
  fields?: Record<string, Field>;
  /** The item check of a list. */
  item?: Check<unknown>;
};

function tag<T>(check: Check<T>, what: string): Check<T> {
  check.what = what;
  return check;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return JSON.stringify(value);
}

function fail(problems: Problems, path: string, expected: string, value: unknown): undefined {
  problems.push(`${path}: expected ${expected}, got ${describe(value)}`);
  return undefined;
}

const str = (pattern?: RegExp, what = "a string"): Check<string> =>
  tag(
    (v, path, p) =>
      typeof v === "string" && v !== "" && (!pattern || pattern.test(v))
        ? v
        : fail(p, path, what, v),
    pattern ? what.replace(/^an? /, "") : "string",
  );

const int = (min: number, max: number): Check<number> =>
  tag(
    (v, path, p) =>
      typeof v === "number" && Number.isInteger(v) && v >= min && v <= max
        ? v
        : fail(p, path, `an integer ${min}-${max}`, v),
    `integer ${min}-${max}`,
  );

const num = (min: number): Check<number> =>
  tag(
    (v, path, p) =>
      typeof v === "number" && Number.isFinite(v) && v >= min
        ? v
        : fail(p, path, `a number >= ${min}`, v),
    `number ≥ ${min}`,
  );

const bool: Check<boolean> = tag(
  (v, path, p) => typeof v === "boolean" ? v : fail(p, path, "true or false", v),
  "boolean",
);

const oneOf = <T extends string>(...values: T[]): Check<T> =>
  tag(
    (v, path, p) =>
      values.includes(v as T) ? v as T : fail(p, path, `one of ${values.join(", ")}`, v),
    values.map((x) => `\`${x}\``).join(" \\| "),
  );

function converted<T>(convert: (v: string | number) => T, what: string): Check<T> {
  return (v, path, p) => {
    if (typeof v !== "string" && typeof v !== "number") return fail(p, path, what, v);
    try {
      return convert(v);
    } catch (error) {
      p.push(`${path}: ${(error as Error).message}`);
      return undefined;
    }
  };
}

const duration = tag(converted(parseDuration, 'a duration such as "30s"'), "duration");
const cidr = tag(
  converted((v) => {
    parseCidr(String(v));
    return String(v);
  }, 'an IP address or CIDR block such as "10.0.0.0/8"'),
  "CIDR",
);
const size = tag(converted(parseSize, 'a size such as "100MB"'), "size");

const MIB = 1024 * 1024;
/** A socket buffer size: 0 (the kernel's default), or 4 KiB to 1 GiB. */
const socketBuffer: Check<number> = tag((v, path, p) => {
  const bytes = size(v, path, p);
  if (bytes === undefined) return undefined;
  if (bytes !== 0 && (bytes < 4096 || bytes > 1024 * MIB)) {
    p.push(`${path}: expected 0 or a size from 4KiB to 1GiB, got ${describe(v)}`);
    return undefined;
  }
  return bytes;
}, "size");

/** `server.udp` and `client.udp`: the same keys on both sides. */
const udpFields = (side: "public" | "local") =>
  f(
    object({
      socket_buffer: f(
        socketBuffer,
        4 * MIB,
        `SO_RCVBUF/SO_SNDBUF of each ${side} UDP socket (FFI: Linux, \`--allow-ffi\`); capped ` +
          "by `net.core.rmem_max`/`wmem_max` (logged once); `0`: kernel default",
        "4MiB",
      ),
    }),
    { socket_buffer: 4 * MIB },
  );
const portRanges = tag(
  converted(parsePortRanges, 'port ranges such as "2000-3000,3306"'),
  "port ranges",
);
const secret: Check<Secret> = tag(
  (v, path, p) =>
    typeof v === "string" && v !== "" ? new Secret(v) : fail(p, path, "a non-empty string", v),
  "secret string",
);

const list = <T>(item: Check<T>): Check<T[]> => {
  const check: Check<T[]> = tag((v, path, p) => {
    if (!Array.isArray(v)) return fail(p, path, "a list", v);
    const out = v.map((x, i) => item(x, `${path}[${i}]`, p));
    return out.every((x) => x !== undefined) ? out as T[] : undefined;
  }, `list of ${item.what ?? "values"}`);
  check.item = item as Check<unknown>;
  return check;
};

const stringMap: Check<Record<string, string>> = tag((v, path, p) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(p, path, "a mapping", v);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") fail(p, `${path}.${k}`, "a string", x);
    else out[k] = x;
  }
  return out;
}, "mapping of strings");

interface Field {
  check: Check<unknown>;
  default?: unknown;
  required?: boolean;
  /** One line for the generated reference. */
  doc?: string;
  /** The default as users write it (e.g. `30s`), when the stored form differs. */
  shown?: string;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

/** A mapping with known keys; unknown keys are errors with a did-you-mean. */
function object(fields: Record<string, Field>): Check<Record<string, unknown>> {
  const check: Check<Record<string, unknown>> = (v, path, p) => {
    const value = v ?? {};
    if (typeof value !== "object" || Array.isArray(value)) return fail(p, path, "a mapping", v);
    const input = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    let ok = true;
    for (const key of Object.keys(input)) {
      if (Object.hasOwn(fields, key)) continue;
      const near = Object.keys(fields)
        .map((k) => [k, editDistance(k, key)] as const)
        .filter(([, d]) => d <= 2)
        .sort((a, b) => a[1] - b[1])[0];
      p.push(`${path}.${key}: unknown key${near ? ` (did you mean "${near[0]}"?)` : ""}`);
      ok = false;
    }
    for (const [key, field] of Object.entries(fields)) {
      const raw = input[key];
      if (raw === undefined || raw === null) {
        if (field.required) {
          p.push(`${path}.${key}: required`);
          ok = false;
        } else if (field.default !== undefined) {
          out[key] = field.default;
        }
        continue;
      }
      const checked = field.check(raw, `${path}.${key}`, p);
      if (checked === undefined) ok = false;
      else out[key] = checked;
    }
    return ok ? out : undefined;
  };
  check.what = "mapping";
  check.fields = fields;
  return check;
}

/** An optional key: its check, default, one line of documentation, and the default as written. */
const f = (check: Check<unknown>, defaultValue?: unknown, doc?: string, shown?: string): Field => ({
  check,
  default: defaultValue,
  ...(doc ? { doc } : {}),
  ...(shown ? { shown } : {}),
});
/** A required key. */
const req = (check: Check<unknown>, doc?: string): Field => ({
  check,
  required: true,
  ...(doc ? { doc } : {}),
});

const defaultFormat = (): "json" | "text" => {
  try {
    return Deno.stderr.isTerminal() ? "text" : "json";
  } catch {
    return "json";
  }
};

const logFields = () =>
  object({
    level: f(oneOf("debug", "info", "warn", "error"), "info", "lowest level written"),
    format: f(
      oneOf("json", "text"),
      defaultFormat(),
      "JSON lines, or text for people",
      "`text` on a terminal, else `json`",
    ),
    file: f(str(), undefined, "also append log lines to this file"),
    levels: f(
      levelMap,
      undefined,
      "per-component levels, e.g. `{storage: warn, alerts: debug}`",
    ),
    error_file: f(str(), undefined, "also append warnings and errors to this file"),
    access_file: f(
      str(),
      undefined,
      "one JSON line per TCP connection / UDP session (tunnel, user, remote, bytes, duration, " +
        "status); without it access events are debug lines of the main log",
    ),
    max_size: f(size, 100_000_000, "rotate a log file when it reaches this size", "100MB"),
    max_files: f(int(1, 1000), 5, "rotated files kept per log file (`file.1` … `file.N`)"),
  });

const levelMap: Check<Record<string, string>> = tag((v, path, p) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(p, path, "a mapping", v);
  const out: Record<string, string> = {};
  let ok = true;
  for (const [k, x] of Object.entries(v)) {
    if (!["debug", "info", "warn", "error"].includes(x as string)) {
      fail(p, `${path}.${k}`, "one of debug, info, warn, error", x);
      ok = false;
    } else out[k] = x as string;
  }
  return ok ? out : undefined;
}, "mapping of component → level");

const PORT = int(0, 65535);
const NAME = str(/^[A-Za-z0-9_.-]+$/, "a name of letters, digits, _ . or -");

const serverSchema = object({
  bind_addr: f(str(), "0.0.0.0", "address of the control channel and of tunnel ports"),
  bind_port: f(PORT, 7000, "control channel port; `0` picks a free one (logged)"),
  max_clients: f(
    int(1, 1_000_000),
    1000,
    "connected clients at most; more are refused with `server_busy`",
  ),
  tls: f(
    object({
      cert_file: f(str(), undefined, "PEM certificate; none: self-signed in `<data_dir>/tls/`"),
      key_file: f(str(), undefined, "PEM private key of `cert_file`"),
      client_ca_file: f(
        str(),
        undefined,
        "mutual TLS: client certificates must chain to it (implies TLS 1.3 only)",
      ),
      min_version: f(
        oneOf("1.2", "1.3"),
        "1.2",
        "oldest TLS version accepted on the control port: `1.2` uses Deno's TLS (faster; two " +
          "Burrow ends always agree on 1.3), `1.3` uses node:tls and refuses TLS 1.2 hellos",
      ),
    }),
    { min_version: "1.2" },
  ),
  auth: f(
    object({
      method: f(oneOf("token"), "token", "how clients authenticate"),
      token: f(
        secret,
        undefined,
        "shared (admin) token; env `BURROW_TOKEN` overrides; none: generated into " +
          "`<data_dir>/token`",
        "generated",
      ),
      max_failures: f(
        int(1, 1_000_000),
        10,
        "failed logins (control port and admin API) one address (IPv6: one /64) may make in a " +
          "burst; then it is refused at once, before its token is checked, and told when to retry",
      ),
      failure_interval: f(
        duration,
        6_000,
        "one more failed login per address is allowed after this long (`6s`: 10 a minute)",
        "6s",
      ),
      max_handshakes: f(
        int(1, 10_000),
        8,
        "unauthenticated control connections one address may have open at once; more are " +
          "refused at once",
      ),
    }),
    { method: "token", max_failures: 10, failure_interval: 6_000, max_handshakes: 8 },
  ),
  limits: f(
    object({
      max_tunnels_per_client: f(int(1, 100_000), 10, "tunnels one session may declare"),
      max_connections_per_tunnel: f(
        int(0, 10_000_000),
        0,
        "open public connections (or UDP sessions) per tunnel; more are refused; `0`: unlimited",
      ),
      max_bandwidth: f(
        size,
        0,
        'bytes per second per tunnel and direction, e.g. `"100MB"` (TCP is paced, UDP datagrams ' +
          "over it are dropped)",
        "unlimited",
      ),
    }),
    { max_tunnels_per_client: 10, max_bandwidth: 0, max_connections_per_tunnel: 0 },
  ),
  allow_ports: f(portRanges, [], 'ports tunnels may take, e.g. `"2000-3000,3306"`', "any"),
  udp: udpFields("public"),
  allow_ips: f(
    list(cidr),
    [],
    "client addresses allowed on the control port (CIDR); empty allows all",
  ),
  deny_ips: f(
    list(cidr),
    [],
    "client addresses refused on the control port; wins over `allow_ips`",
  ),
  vhost_http_port: f(
    PORT,
    undefined,
    "public port of `http` tunnels, routed by `Host`; `0` picks a free one; unset: no HTTP port",
  ),
  vhost_https_port: f(
    PORT,
    undefined,
    "public TLS port of `https` tunnels (and `http` ones with `ssl_cert: auto`), routed by SNI " +
      "and `Host`; HTTP/2 and HTTP/1.1",
  ),
  subdomain_host: f(
    str(HOST_NAME, "a host name"),
    undefined,
    "domain under which tunnels get subdomains: `subdomain: app` serves `app.<subdomain_host>`",
  ),
  vhost_https_certs: f(
    list(object({
      domains: req(list(str(HOST_PATTERN, "a host name or *.wildcard")), "names it covers"),
      cert_file: req(str(), "PEM certificate chain"),
      key_file: req(str(), "PEM private key"),
    })),
    [],
    "certificates of the HTTPS port by name (re-read on reload); names without one use ACME " +
      "(tunnels with `ssl_cert: auto`) or the control port's certificate",
  ),
  acme: f(
    object({
      directory_url: f(
        str(/^https?:\/\/\S+$/, "an http(s) URL"),
        "https://acme-v02.api.letsencrypt.org/directory",
        "ACME directory (Let's Encrypt production by default)",
      ),
      email: f(str(), undefined, "contact address given to the ACME account"),
      ca_file: f(str(), undefined, "PEM CA trusted for the ACME server's own HTTPS (test servers)"),
      renew_before: f(
        duration,
        30 * 86_400_000,
        "renew certificates this long before expiry",
        "30d",
      ),
    }),
    {
      directory_url: "https://acme-v02.api.letsencrypt.org/directory",
      renew_before: 30 * 86_400_000,
    },
    "automatic certificates (HTTP-01 challenges answered on the HTTP port; stored in " +
      "`<data_dir>/certs`)",
  ),
  admin: f(
    object({
      bind_addr: f(str(), "127.0.0.1", "admin listener address"),
      bind_port: f(
        PORT,
        7500,
        "admin port: REST API `/api/v1`, `/metrics`, `/healthz`, `/readyz`; `0` picks a free one",
      ),
      cors_origins: f(
        list(str()),
        [],
        "browser origins allowed to call the API (the front end), e.g. `https://console.example.com`",
      ),
    }),
    { bind_addr: "127.0.0.1", bind_port: 7500, cors_origins: [] },
  ),
  storage: f(
    object({
      url: f(
        secret,
        undefined,
        "PostgreSQL URL, used instead of the embedded database; env `DATABASE_URL` overrides",
      ),
      data_dir: f(
        str(),
        "./burrow-data",
        "embedded database (`db/`), certificate (`tls/`), generated token",
      ),
      retention: f(
        duration,
        30 * 86_400_000,
        "metrics, logs, resolved alerts and closed sessions older than this are deleted " +
          "(hourly); `0` keeps everything",
        "30d",
      ),
      query_timeout: f(
        duration,
        3000,
        "a PostgreSQL query unanswered for this long fails as if the database were down " +
          "(writes are queued, cached tokens and tunnels serve); `0` waits forever",
        "3s",
      ),
    }),
    { data_dir: "./burrow-data", retention: 30 * 86_400_000, query_timeout: 3000 },
  ),
  log: f(logFields(), undefined),
  metrics: f(bool, true, "collect Prometheus metrics (served at `/metrics` on the admin port)"),
  heartbeat_interval: f(duration, 10_000, "how often clients send heartbeats", "10s"),
  handshake_timeout: f(
    duration,
    10_000,
    "a new control connection must log in within this (slow or silent ones are closed)",
    "10s",
  ),
  heartbeat_timeout: f(duration, 30_000, "a session silent this long is closed", "30s"),
  alerts: f(
    list(object({
      name: req(NAME, "rule name, unique"),
      condition: req(str(), "expression over the metrics, e.g. `avg_latency > 1000ms`"),
      duration: f(duration, 0, "how long the condition must hold before firing", "0s"),
      severity: f(oneOf("critical", "warning", "info"), "warning", "how urgent"),
    })),
    [],
    undefined,
  ),
  alerting: f(
    object({
      webhook_url: f(
        str(/^https?:\/\/\S+$/, "an http(s) URL"),
        undefined,
        "POST firing and resolved alerts here (Alertmanager webhook JSON); retried with backoff",
      ),
      evaluate_every: f(duration, 5_000, "how often alert rules are evaluated", "5s"),
      window: f(duration, 60_000, "window of `avg_latency` and `error_rate`", "1m"),
      probe_interval: f(
        duration,
        30_000,
        "how often tunnels with `probe: true` are probed end to end (a failure counts as an error)",
        "30s",
      ),
      default_rules: f(
        bool,
        true,
        "add the seed's `tunnel_down`, `high_latency`, `high_error_rate` unless `alerts` " +
          "defines a rule of the same name",
      ),
    }),
    { evaluate_every: 5_000, window: 60_000, default_rules: true, probe_interval: 30_000 },
  ),
});

/** Header names and values that are safe to send (no CR/LF smuggling). */
const headerMap: Check<Record<string, string>> = tag((v, path, p) => {
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

const headerRules = object({
  set: f(headerMap, {}, "headers set, replacing any the message had"),
  remove: f(list(str(HEADER_NAME, "a header name")), [], "headers removed"),
});

const healthCheck = object({
  type: f(oneOf("tcp", "http"), "tcp", "`tcp`: connect; `http`: GET `path`, 2xx/3xx is healthy"),
  path: f(str(), undefined, "path of the HTTP check", "/"),
  interval: f(duration, 10_000, "time between checks", "10s"),
  timeout: f(duration, 3_000, "time one check may take", "3s"),
  max_failed: f(int(1, 1000), 3, "failures in a row before the service counts as down"),
});

const tunnelSchema = object({
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

const clientSchema = object({
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

/** One row of the generated configuration reference. */
export interface ReferenceRow {
  /** YAML path below `server:` or `client:`, e.g. `tls.cert_file`, `tunnels[].name`. */
  key: string;
  /** What the value must be. */
  type: string;
  /** Default as users write it, `required`, or `—`. */
  default: string;
  /** What it does. */
  doc: string;
}

function shownDefault(field: Field): string {
  if (field.shown) {
    // Values (`30s`, `/`) in code font; words (`generated`, `any`) as they are.
    return /^[\d./]/.test(field.shown) ? `\`${field.shown}\`` : field.shown;
  }
  if (field.required) return "required";
  const v = field.default;
  if (v === undefined || typeof v === "object") return "—";
  return `\`${String(v)}\``;
}

function walk(check: Check<unknown>, prefix: string, rows: ReferenceRow[]): void {
  for (const [key, field] of Object.entries(check.fields ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    const inner = field.check;
    if (inner.fields) {
      walk(inner, path, rows);
      continue;
    }
    if (inner.item?.fields) {
      walk(inner.item, `${path}[]`, rows);
      continue;
    }
    rows.push({
      key: path,
      type: inner.what ?? "",
      default: shownDefault(field),
      doc: field.doc ?? "",
    });
  }
}

/**
 * The configuration reference of `server:` or `client:`, generated from the
 * same schema that validates it (the README's tables come from here).
 */
export function configReference(section: "server" | "client"): ReferenceRow[] {
  const rows: ReferenceRow[] = [];
  walk(section === "server" ? serverSchema : clientSchema, "", rows);
  return rows;
}

function section(doc: unknown, key: "server" | "client", source: string): unknown {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new ConfigError([`expected a mapping with a "${key}:" section`], source);
  }
  const top = doc as Record<string, unknown>;
  if (!(key in top)) throw new ConfigError([`no "${key}:" section`], source);
  const other = key === "server" ? "client" : "server";
  const unknown = Object.keys(top).filter((k) => k !== key && k !== other);
  if (unknown.length) {
    throw new ConfigError(unknown.map((k) => `${k}: unknown top-level key`), source);
  }
  return top[key] ?? {};
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // no --allow-env: environment overrides are off
  }
}

/**
 * Validates `{server: {...}}`. Env `BURROW_TOKEN` overrides `auth.token`
 * and `DATABASE_URL` overrides `storage.url`.
 *
 * @throws {ConfigError} listing every problem with its path.
 */
export function serverConfigFromObject(
  doc: unknown,
  source = "server configuration",
): ServerConfig {
  const problems: Problems = [];
  const checked = serverSchema(section(doc, "server", source), "server", problems);
  if (!checked) throw new ConfigError(problems, source);
  const config = checked as unknown as ServerConfig;
  config.log ??= logFields()({}, "server.log", problems) as unknown as LogConfig;
  const token = env("BURROW_TOKEN");
  if (token) config.auth.token = new Secret(token);
  const url = env("DATABASE_URL");
  if (url) config.storage.url = new Secret(url);
  if ((config.tls.cert_file === undefined) !== (config.tls.key_file === undefined)) {
    problems.push("server.tls: cert_file and key_file go together");
  }
  if (config.auth.failure_interval <= 0) {
    problems.push("server.auth.failure_interval: must be longer than 0s");
  }
  if (config.heartbeat_timeout <= config.heartbeat_interval) {
    problems.push("server.heartbeat_timeout: must be longer than heartbeat_interval");
  }
  if (problems.length) throw new ConfigError(problems, source);
  return config;
}

/**
 * Validates `{client: {...}}`. Env `BURROW_TOKEN` overrides `auth_token`.
 *
 * @throws {ConfigError} listing every problem with its path.
 */
export function clientConfigFromObject(
  doc: unknown,
  source = "client configuration",
): ClientConfig {
  const problems: Problems = [];
  const checked = clientSchema(section(doc, "client", source), "client", problems);
  if (!checked) throw new ConfigError(problems, source);
  const config = checked as unknown as ClientConfig;
  config.log ??= logFields()({}, "client.log", problems) as unknown as LogConfig;
  config.reconnect ??= {
    max_retries: 0,
    initial_delay: 1000,
    max_delay: 30_000,
    backoff_factor: 2,
    enable_jitter: true,
    retry_auth_failures: false,
  };
  const token = env("BURROW_TOKEN");
  if (token) config.auth_token = new Secret(token);
  if (!config.auth_token) problems.push("client.auth_token: required (or set BURROW_TOKEN)");
  if (config.server_fingerprint) {
    config.server_fingerprint = "sha256:" +
      config.server_fingerprint.slice(7).replaceAll(":", "").toLowerCase();
  }
  if (config.reconnect.initial_delay > config.reconnect.max_delay) {
    problems.push("client.reconnect.initial_delay: must not exceed max_delay");
  }
  const names = new Set<string>();
  const ports = new Map<number, string>();
  config.tunnels.forEach((tunnel: TunnelConfig & { domain?: string }, i) => {
    const path = `client.tunnels[${i}]`;
    if (names.has(tunnel.name)) problems.push(`${path}.name: "${tunnel.name}" is used twice`);
    names.add(tunnel.name);
    if (tunnel.domain) {
      tunnel.custom_domains = [...(tunnel.custom_domains ?? []), tunnel.domain];
      delete tunnel.domain;
    }
    if (tunnel.group !== undefined && !ENTITY_NAME.test(tunnel.group)) {
      problems.push(`${path}.group: use 1-64 letters, digits, "_", "." or "-"`);
    }
    if (tunnel.group !== undefined && tunnel.group_key === undefined) {
      problems.push(`${path}.group_key: required with group (the secret members share)`);
    }
    if (tunnel.group === undefined) {
      for (const key of ["group_key", "load_balance", "weight"] as const) {
        if (tunnel[key] !== undefined) problems.push(`${path}.${key}: only meaningful with group`);
      }
    }
    if (tunnel.type === "tcp" || tunnel.type === "udp") {
      tunnel.remote_port ??= 0;
      const key = tunnel.remote_port + (tunnel.type === "udp" ? 65536 : 0);
      if (tunnel.remote_port !== 0 && ports.has(key)) {
        problems.push(
          `${path}.remote_port: ${tunnel.remote_port} is also used by "${ports.get(key)}"`,
        );
      }
      ports.set(key, tunnel.name);
      if (tunnel.type === "udp") tunnel.session_timeout ??= 30_000;
    } else {
      if (tunnel.tls_passthrough && tunnel.type !== "https") {
        problems.push(`${path}.tls_passthrough: only https tunnels pass TLS through`);
      }
      if (tunnel.tls_passthrough && (tunnel.locations || tunnel.basic_auth)) {
        problems.push(
          `${path}: a tls_passthrough tunnel cannot see paths or headers (locations, basic_auth)`,
        );
      }
    }
    if (tunnel.compression === "gzip" && tunnel.type !== "tcp") {
      problems.push(`${path}.compression: gzip applies to tcp tunnels`);
    }
    if (tunnel.type === "tcp" || tunnel.type === "udp") {
      for (
        const key of [
          "custom_domains",
          "subdomain",
          "locations",
          "custom_headers",
          "request_headers",
          "response_headers",
          "basic_auth",
          "ssl_cert",
          "tls_passthrough",
        ] as const
      ) {
        if (tunnel[key] !== undefined) {
          problems.push(`${path}.${key}: only meaningful for http and https tunnels`);
        }
      }
    }
  });
  if (problems.length) throw new ConfigError(problems, source);
  return config;
}

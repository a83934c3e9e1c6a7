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

import { Secret } from "../util/secret.ts";
import { parseDuration, parsePortRanges, parseSize } from "../util/units.ts";
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
type Check<T> = (value: unknown, path: string, problems: Problems) => T | undefined;

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

const str = (pattern?: RegExp, what = "a string"): Check<string> => (v, path, p) =>
  typeof v === "string" && v !== "" && (!pattern || pattern.test(v)) ? v : fail(p, path, what, v);

const int = (min: number, max: number): Check<number> => (v, path, p) =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= max
    ? v
    : fail(p, path, `an integer ${min}-${max}`, v);

const num = (min: number): Check<number> => (v, path, p) =>
  typeof v === "number" && Number.isFinite(v) && v >= min
    ? v
    : fail(p, path, `a number >= ${min}`, v);

const bool: Check<boolean> = (v, path, p) =>
  typeof v === "boolean" ? v : fail(p, path, "true or false", v);

const oneOf = <T extends string>(...values: T[]): Check<T> => (v, path, p) =>
  values.includes(v as T) ? v as T : fail(p, path, `one of ${values.join(", ")}`, v);

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

const duration = converted(parseDuration, 'a duration such as "30s"');
const size = converted(parseSize, 'a size such as "100MB"');
const portRanges = converted(parsePortRanges, 'port ranges such as "2000-3000,3306"');
const secret: Check<Secret> = (v, path, p) =>
  typeof v === "string" && v !== "" ? new Secret(v) : fail(p, path, "a non-empty string", v);

const list = <T>(item: Check<T>): Check<T[]> => (v, path, p) => {
  if (!Array.isArray(v)) return fail(p, path, "a list", v);
  const out = v.map((x, i) => item(x, `${path}[${i}]`, p));
  return out.every((x) => x !== undefined) ? out as T[] : undefined;
};

const stringMap: Check<Record<string, string>> = (v, path, p) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(p, path, "a mapping", v);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") fail(p, `${path}.${k}`, "a string", x);
    else out[k] = x;
  }
  return out;
};

interface Field {
  check: Check<unknown>;
  default?: unknown;
  required?: boolean;
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
  return (v, path, p) => {
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
}

const f = (check: Check<unknown>, defaultValue?: unknown): Field => ({
  check,
  default: defaultValue,
});
const req = (check: Check<unknown>): Field => ({ check, required: true });

const defaultFormat = (): "json" | "text" => {
  try {
    return Deno.stderr.isTerminal() ? "text" : "json";
  } catch {
    return "json";
  }
};

const logFields = () =>
  object({
    level: f(oneOf("debug", "info", "warn", "error"), "info"),
    format: f(oneOf("json", "text"), defaultFormat()),
    file: f(str()),
  });

const PORT = int(0, 65535);
const NAME = str(/^[A-Za-z0-9_.-]+$/, "a name of letters, digits, _ . or -");

const serverSchema = object({
  bind_addr: f(str(), "0.0.0.0"),
  bind_port: f(PORT, 7000),
  max_clients: f(int(1, 1_000_000), 1000),
  tls: f(object({ cert_file: f(str()), key_file: f(str()), client_ca_file: f(str()) }), {}),
  auth: f(object({ method: f(oneOf("token"), "token"), token: f(secret) }), { method: "token" }),
  limits: f(
    object({
      max_tunnels_per_client: f(int(1, 100_000), 10),
      max_bandwidth: f(size, 0),
    }),
    { max_tunnels_per_client: 10, max_bandwidth: 0 },
  ),
  allow_ports: f(portRanges, []),
  vhost_http_port: f(int(1, 65535)),
  vhost_https_port: f(int(1, 65535)),
  subdomain_host: f(str()),
  admin: f(object({ bind_addr: f(str(), "127.0.0.1"), bind_port: f(PORT, 7500) }), {
    bind_addr: "127.0.0.1",
    bind_port: 7500,
  }),
  storage: f(object({ url: f(secret), data_dir: f(str(), "./burrow-data") }), {
    data_dir: "./burrow-data",
  }),
  log: f(logFields(), undefined),
  heartbeat_interval: f(duration, 10_000),
  heartbeat_timeout: f(duration, 30_000),
  alerts: f(
    list(object({
      name: req(NAME),
      condition: req(str()),
      duration: f(duration, 0),
      severity: f(oneOf("critical", "warning", "info"), "warning"),
    })),
    [],
  ),
});

const healthCheck = object({
  type: f(oneOf("tcp", "http"), "tcp"),
  path: f(str()),
  interval: f(duration, 10_000),
  timeout: f(duration, 3_000),
  max_failed: f(int(1, 1000), 3),
});

const tunnelSchema = object({
  name: req(NAME),
  type: req(oneOf("tcp", "udp", "http", "https")),
  local_addr: f(str(), "127.0.0.1"),
  local_port: req(int(1, 65535)),
  remote_port: f(PORT),
  domain: f(str()),
  custom_domains: f(list(str())),
  subdomain: f(str(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i, "a DNS label")),
  custom_headers: f(stringMap),
  session_timeout: f(duration),
  allow_ips: f(list(str())),
  deny_ips: f(list(str())),
  compression: f(oneOf("none", "gzip")),
  group: f(str()),
  group_key: f(secret),
  load_balance: f(oneOf("round_robin", "least_connections")),
  weight: f(int(1, 1000)),
  health_check: f(healthCheck),
});

const clientSchema = object({
  server_addr: req(str()),
  server_port: f(int(1, 65535), 7000),
  auth_token: f(secret),
  server_fingerprint: f(str(
    /^sha256:([0-9a-f]{64}|([0-9a-f]{2}:){31}[0-9a-f]{2})$/i,
    '"sha256:" followed by 64 hex digits',
  )),
  tls: f(
    object({
      ca_file: f(str()),
      cert_file: f(str()),
      key_file: f(str()),
      insecure_skip_verify: f(bool, false),
    }),
    { insecure_skip_verify: false },
  ),
  reconnect: f(
    object({
      max_retries: f(int(0, 1_000_000), 0),
      initial_delay: f(duration, 1000),
      max_delay: f(duration, 30_000),
      backoff_factor: f(num(1), 2),
      enable_jitter: f(bool, true),
      retry_auth_failures: f(bool, false),
    }),
    undefined,
  ),
  log: f(logFields(), undefined),
  client_id: f(str()),
  tunnels: f(list(tunnelSchema), []),
});

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
    if (tunnel.group !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(tunnel.group)) {
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
    } else if (!tunnel.custom_domains?.length && !tunnel.subdomain) {
      problems.push(`${path}: ${tunnel.type} tunnels need custom_domains, domain or subdomain`);
    }
  });
  if (problems.length) throw new ConfigError(problems, source);
  return config;
}

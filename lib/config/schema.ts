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

import { checkTunnelRelations } from "../protocol/mod.ts";
import { closestWord, ENTITY_NAME, isLoopbackHost, Secret, splitHostPort } from "../util/mod.ts";
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

import { type Check, type Field, logFields, type Problems } from "./checks.ts";
import { serverSchema } from "./server_schema.ts";
import { clientSchema } from "./client_schema.ts";

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
  const other = key === "server" ? "client" : "server";
  // Checked before the missing section: `sever:` is a misspelt `server:`, say so first.
  const problems = Object.keys(top).filter((k) => k !== key && k !== other).map((k) => {
    const near = closestWord(k, [key, other]);
    return `${k}: unknown top-level key${near ? ` (did you mean "${near}"?)` : ""}`;
  });
  if (!(key in top)) problems.push(`no "${key}:" section`);
  if (problems.length) throw new ConfigError(problems, source);
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
 * Validates `{server: {...}}`. Env `BURROW_TOKEN` overrides `auth.token`,
 * `DATABASE_URL` overrides `storage.url` and `BURROW_CLUSTER_SECRET`
 * overrides `cluster.secret`.
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
  if (config.cluster) checkCluster(config, problems);
  if (problems.length) throw new ConfigError(problems, source);
  return config;
}

/** Addresses that listen everywhere: no other node can dial them. */
const WILDCARDS = new Set(["0.0.0.0", "::", "[::]", ""]);

/**
 * Fills in and checks `server.cluster`: the node id from the host name, the
 * advertised address from `bind_addr`, the secret from the environment,
 * `dead_after` from the heartbeat; and that the database is one several
 * nodes can share.
 */
function checkCluster(config: ServerConfig, problems: Problems): void {
  const cluster = config.cluster!;
  if (!cluster.node_id) {
    const host = hostName();
    if (host && ENTITY_NAME.test(host)) cluster.node_id = host;
    else {
      problems.push(
        `server.cluster.node_id: required, since the host name (${
          JSON.stringify(host ?? "unknown")
        }) is not a valid node id (1-64 letters, digits, _ . or -)`,
      );
    }
  }
  if (!cluster.advertise_addr) {
    if (WILDCARDS.has(config.bind_addr)) {
      problems.push(
        `server.cluster.advertise_addr: required when server.bind_addr is a wildcard ` +
          `("${config.bind_addr}"): the host or host:port the other nodes reach this one at`,
      );
    } else cluster.advertise_addr = config.bind_addr;
  }
  const secret = env("BURROW_CLUSTER_SECRET");
  if (secret) cluster.secret = new Secret(secret);
  if (cluster.secret && cluster.secret.reveal().length < 16) {
    problems.push("server.cluster.secret: must be 16 characters at least");
  }
  if (!cluster.secret && !config.tls.client_ca_file) {
    problems.push(
      "server.cluster.secret: required, so that the nodes can authenticate each other: set it " +
        "(or env BURROW_CLUSTER_SECRET), or set server.tls.client_ca_file for mutual TLS " +
        "between the nodes",
    );
  }
  if (cluster.dead_after === undefined) cluster.dead_after = 3 * cluster.heartbeat;
  if (cluster.heartbeat <= 0) problems.push("server.cluster.heartbeat: must be longer than 0s");
  else if (cluster.dead_after < 2 * cluster.heartbeat) {
    problems.push("server.cluster.dead_after: must be at least twice server.cluster.heartbeat");
  }
  if (!config.storage.url) {
    problems.push(
      "server.cluster: cluster mode needs PostgreSQL, which all the nodes share: set " +
        "server.storage.url (or env DATABASE_URL) to a postgres:// URL; the embedded database " +
        "serves one burrowd alone",
    );
  }
}

function hostName(): string | undefined {
  try {
    return Deno.hostname();
  } catch {
    return undefined; // no --allow-sys
  }
}

/**
 * Which form of the server address `raw` uses: `server_addr` (+
 * `server_port`) or the `server_addrs` list, never both.
 */
function addressForm(raw: unknown, problems: Problems): "single" | "list" {
  const client = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const written = (key: string) => client[key] !== undefined && client[key] !== null;
  if (!written("server_addrs")) {
    if (!written("server_addr")) {
      problems.push("client.server_addr: required (or client.server_addrs, a list of HOST:PORT)");
    }
    return "single";
  }
  for (const key of ["server_addr", "server_port"]) {
    if (!written(key)) continue;
    problems.push(
      `client.${key}: give either client.server_addrs or client.server_addr (with ` +
        "server_port), not both; with server_addrs each entry carries its port (HOST:PORT)",
    );
  }
  return "list";
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
  const raw = section(doc, "client", source);
  const checked = clientSchema(raw, "client", problems);
  // Said even when other keys are wrong: which form of the address is a question of its own.
  const form = addressForm(raw, problems);
  if (!checked) throw new ConfigError(problems, source);
  const config = checked as unknown as ClientConfig;
  config.servers = form === "list"
    ? config.server_addrs ?? []
    : [{ host: config.server_addr ?? "", port: config.server_port }];
  config.log ??= logFields()({}, "client.log", problems) as unknown as LogConfig;
  config.reconnect ??= {
    max_retries: 0,
    initial_delay: 1000,
    max_delay: 30_000,
    backoff_factor: 2,
    enable_jitter: true,
    retry_auth_failures: false,
  };
  const reconnect = (raw as { reconnect?: unknown }).reconnect;
  config.reconnect.max_retries_written = typeof reconnect === "object" && reconnect !== null &&
    "max_retries" in reconnect;
  const token = env("BURROW_TOKEN");
  if (token) config.auth_token = new Secret(token);
  if (!config.auth_token) problems.push("client.auth_token: required (or set BURROW_TOKEN)");
  if (config.server_fingerprint) {
    config.server_fingerprint = "sha256:" +
      config.server_fingerprint.slice(7).replaceAll(":", "").toLowerCase();
  }
  const inspect = config.inspect;
  if (inspect && !inspect.auth && !isLoopbackHost(splitHostPort(inspect.addr)?.hostname ?? "")) {
    problems.push(
      `client.inspect.auth: required when client.inspect.addr ("${inspect.addr}") is not a ` +
        "loopback address",
    );
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
    // The tunnel spec's rules between fields, on the keys as written (before `domain` is folded).
    for (const { field, message } of checkTunnelRelations({ ...tunnel })) {
      problems.push(`${path}${field ? `.${field}` : ""}: ${message}`);
    }
    if (tunnel.domain) {
      tunnel.custom_domains = [...(tunnel.custom_domains ?? []), tunnel.domain];
      delete tunnel.domain;
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
    }
  });
  if (problems.length) throw new ConfigError(problems, source);
  return config;
}

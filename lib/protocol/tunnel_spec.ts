/**
 * The tunnel spec: the settings a tunnel declares (name, type, ports, host
 * names, HTTP rules, visitor addresses, load-balancing group) and the rules
 * they follow, each field alone and the fields together.
 *
 * A tunnel comes from three places, and all three check it here: the
 * client's YAML (`config/`), a client's `create_tunnel` request (the
 * server's wire check, {@linkcode checkTunnelRequest}), and the admin API
 * and CLI (`storage/`'s tunnel DAO). Each place reports in its own way (a
 * YAML path, a tunnel failure sent to the client, a `ValidationError`); the
 * problems themselves, the field and what to write instead, come from here.
 *
 * Tunnels are checked in the wire's units: durations in milliseconds and
 * secrets as strings. What depends on the server's own settings (ports it
 * allows, `subdomain_host`, its vhost ports) or on other tunnels (names
 * and ports used twice, domains taken) is checked where that is known.
 *
 * @example
 * ```ts
 * import { checkTunnel, formatProblems } from "./tunnel_spec.ts";
 * const problems = checkTunnel({ name: "ssh", type: "tcp", local_port: 22, subdomain: "app" });
 * console.assert(
 *   formatProblems(problems) === "subdomain: only meaningful for http and https tunnels",
 * );
 * ```
 *
 * @module
 */

import { closestWord, DNS_LABEL, ENTITY_NAME } from "../util/mod.ts";
import { PROXY_PROTOCOL_VERSIONS, type ProxyProtocolVersion } from "./proxy_protocol.ts";
import {
  basicAuthPassword,
  basicAuthUser,
  boolean,
  ENTITY,
  headerMap,
  headerNames,
  headerRules,
  hostOrIp,
  hostPattern,
  integer,
  ipBlocks,
  isMapping,
  keyText,
  listOf,
  location,
  mappingOf,
  oneOf,
  type Rule,
  secret,
  shown,
  type SpecProblem,
  text,
  TUNNEL_LIMITS,
} from "./tunnel_rules.ts";

/** The tunnel types. */
export const TUNNEL_TYPES = ["tcp", "udp", "http", "https"] as const;

/** A tunnel type. */
export type TunnelType = typeof TUNNEL_TYPES[number];

/** Header rules of an HTTP tunnel, on the way to the service or back. */
export interface HeaderRulesSpec {
  /** Headers set, replacing any the message had. */
  set?: Record<string, string>;
  /** Headers removed. */
  remove?: string[];
}

/** A tunnel's settings as the spec checks them (the wire's units). */
export interface TunnelSpec {
  /** Unique per client, and per user on the server. */
  name: string;
  /** Tunnel type. */
  type: TunnelType;
  /** Host or IP address of the local service. */
  local_addr?: string;
  /** Port of the local service. */
  local_port: number;
  /** Public port; 0 lets the server choose. */
  remote_port?: number;
  /** The seed's single domain, the same as `custom_domains: [domain]`. */
  domain?: string;
  /** Host names (or `*.` wildcards) routed to an HTTP(S) tunnel. */
  custom_domains?: string[];
  /** Label under the server's `subdomain_host`. */
  subdomain?: string;
  /** HTTP: path prefixes served. */
  locations?: string[];
  /** HTTP: request headers set on the way to the service. */
  custom_headers?: Record<string, string>;
  /** HTTP: request header rules. */
  request_headers?: HeaderRulesSpec;
  /** HTTP: response header rules. */
  response_headers?: HeaderRulesSpec;
  /** HTTP: the user and password visitors must log in with. */
  basic_auth?: { user: string; password: string };
  /** HTTP(S): `auto` obtains certificates over ACME. */
  ssl_cert?: "auto" | "none";
  /** HTTPS: relay TLS untouched to a service that terminates it. */
  tls_passthrough?: boolean;
  /** UDP: milliseconds after which a silent visitor session ends. */
  session_timeout?: number;
  /** Visitor addresses allowed (CIDR). */
  allow_ips?: string[];
  /** Visitor addresses refused (CIDR); wins over `allow_ips`. */
  deny_ips?: string[];
  /** TCP: gzip the data streams. */
  compression?: "none" | "gzip";
  /** Load-balancing group. */
  group?: string;
  /** The group's shared secret. */
  group_key?: string;
  /** How the group spreads visitors. */
  load_balance?: "round_robin" | "least_connections";
  /** This member's share of the group's visitors. */
  weight?: number;
  /** TCP: probed end to end by the server. */
  probe?: boolean;
  /**
   * The PROXY protocol header the client writes to the local service: TCP, HTTP and HTTPS
   * (TLS passthrough included) v1 or v2, once per local connection; UDP v2, before each datagram.
   */
  proxy_protocol?: ProxyProtocolVersion;
}

/** A key of {@linkcode TunnelSpec}. */
export type TunnelField = keyof TunnelSpec;

/** A field inside one of the spec's mappings, checked alone (the config schema's nested keys). */
export type TunnelSubField =
  | "basic_auth.user"
  | "basic_auth.password"
  | "request_headers.set"
  | "request_headers.remove"
  | "response_headers.set"
  | "response_headers.remove";

/** Options of {@linkcode checkTunnel}. */
export interface TunnelCheckOptions {
  /**
   * Keys the spec does not know: refused (the YAML, the admin API: a typo
   * should not be silently ignored) or ignored (the wire: settings of a
   * newer client). Default `"refuse"`.
   */
  unknownKeys?: "refuse" | "ignore";
  /**
   * The tunnel comes without its secrets (the database's row of a tunnel a
   * client declared, whose group key the server never stores): `group_key`
   * is not required with `group`. Default false.
   */
  withoutSecrets?: boolean;
}

/** The rule of each field, in the order problems are reported. */
const FIELDS: { readonly [K in TunnelField]-?: Rule } = {
  name: text(64, (s) => ENTITY_NAME.test(s), ENTITY),
  type: oneOf(...TUNNEL_TYPES),
  local_addr: hostOrIp,
  local_port: integer(1, 65535),
  remote_port: integer(0, 65535, " (0: the server picks)"),
  domain: hostPattern,
  custom_domains: listOf(hostPattern, TUNNEL_LIMITS.domains, "host names"),
  subdomain: text(
    63,
    (s) => DNS_LABEL.test(s),
    'a DNS label such as "app" (letters, digits and "-", at most 63)',
  ),
  locations: listOf(location, TUNNEL_LIMITS.locations, "paths"),
  custom_headers: headerMap,
  request_headers: headerRules,
  response_headers: headerRules,
  basic_auth: mappingOf(
    { user: basicAuthUser, password: basicAuthPassword },
    ["user", "password"],
    "a mapping with user and password",
  ),
  ssl_cert: oneOf("auto", "none"),
  tls_passthrough: boolean,
  session_timeout: integer(
    TUNNEL_LIMITS.minSessionTimeout,
    TUNNEL_LIMITS.maxSessionTimeout,
    " milliseconds (100ms to 1d)",
  ),
  allow_ips: ipBlocks,
  deny_ips: ipBlocks,
  compression: oneOf("none", "gzip"),
  group: text(64, (s) => ENTITY_NAME.test(s), ENTITY),
  group_key: secret("a group key"),
  load_balance: oneOf("round_robin", "least_connections"),
  weight: integer(1, TUNNEL_LIMITS.maxWeight),
  probe: boolean,
  proxy_protocol: oneOf(...PROXY_PROTOCOL_VERSIONS),
};

const SUB_FIELDS: { readonly [K in TunnelSubField]: Rule } = {
  "basic_auth.user": basicAuthUser,
  "basic_auth.password": basicAuthPassword,
  "request_headers.set": headerMap,
  "request_headers.remove": headerNames,
  "response_headers.set": headerMap,
  "response_headers.remove": headerNames,
};

/** The keys of the spec, in the order problems are reported. */
export const TUNNEL_SPEC_FIELDS: readonly TunnelField[] = Object.keys(FIELDS) as TunnelField[];

/** The keys every tunnel has. */
const REQUIRED: readonly TunnelField[] = ["name", "type", "local_port"];

// ------------------------------------------------------------ rules between fields

/** Keys only HTTP(S) tunnels have. */
const HTTP_ONLY: readonly TunnelField[] = [
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
];

/** Keys that need to see the HTTP inside TLS, which a passthrough tunnel never does. */
const SEES_HTTP: readonly TunnelField[] = [
  "locations",
  "custom_headers",
  "request_headers",
  "response_headers",
  "basic_auth",
];

/** Keys that only mean something in a group. */
const GROUP_ONLY: readonly TunnelField[] = ["group_key", "load_balance", "weight"];

/**
 * The rules between fields, for a tunnel whose fields each passed their
 * own rule (absent or `null` counts as not set). {@linkcode checkTunnel}
 * runs them; the config schema, which checks fields one by one, runs them
 * after.
 *
 * @example
 * ```ts
 * import { checkTunnelRelations } from "./tunnel_spec.ts";
 * const [p] = checkTunnelRelations({ type: "udp", compression: "gzip" });
 * console.assert(p?.field === "compression" && p.message === "gzip applies to tcp tunnels");
 * ```
 */
export function checkTunnelRelations(
  tunnel: Readonly<Record<string, unknown>>,
  options: Pick<TunnelCheckOptions, "withoutSecrets"> = {},
): SpecProblem[] {
  const out: SpecProblem[] = [];
  const has = (key: TunnelField) => tunnel[key] !== undefined && tunnel[key] !== null;
  const say = (field: TunnelField, message: string) => out.push({ field, message });
  const type = tunnel.type;
  const known = TUNNEL_TYPES.includes(type as TunnelType);
  if (known && type !== "http" && type !== "https") {
    for (const key of HTTP_ONLY) {
      if (has(key)) say(key, "only meaningful for http and https tunnels");
    }
  }
  if (known && type !== "udp" && has("session_timeout")) {
    say("session_timeout", "only meaningful for udp tunnels");
  }
  if (tunnel.tls_passthrough === true && type === "http") {
    say("tls_passthrough", "only https tunnels pass TLS through");
  }
  if (tunnel.tls_passthrough === true && type === "https") {
    for (const key of SEES_HTTP) {
      if (has(key)) {
        say(
          key,
          "a tls_passthrough tunnel relays TLS untouched and cannot see paths or headers; " +
            `remove ${key} or tls_passthrough`,
        );
      }
    }
  }
  if (known && tunnel.compression === "gzip" && type !== "tcp") {
    say("compression", "gzip applies to tcp tunnels");
  }
  if (!has("group")) {
    for (const key of GROUP_ONLY) if (has(key)) say(key, "only meaningful with group");
  } else if (!has("group_key") && !options.withoutSecrets) {
    say("group_key", "required with group (the secret its members share)");
  }
  if (tunnel.probe === true && known) {
    if (type !== "tcp") say("probe", "only tcp tunnels are probed");
    else if (has("group")) say("probe", "group members are not probed; remove probe or group");
  }
  if (known && has("proxy_protocol")) {
    if (type === "udp" && tunnel.proxy_protocol === "v1") {
      say("proxy_protocol", "v1 carries TCP only; use v2 for udp tunnels");
    }
  }
  return out;
}

// ------------------------------------------------------------ checks

/**
 * Checks one field's value alone (a key of the spec, or a key inside one
 * of its mappings such as `basic_auth.user`); problems name `field` or a
 * path below it.
 *
 * @example
 * ```ts
 * import { checkTunnelField } from "./tunnel_spec.ts";
 * const [p] = checkTunnelField("custom_domains", ["ok.test", "not a host"]);
 * console.assert(p?.field === "custom_domains[1]" && p.message.startsWith("expected a host name"));
 * ```
 */
export function checkTunnelField(
  field: TunnelField | TunnelSubField,
  value: unknown,
): SpecProblem[] {
  const rule = Object.hasOwn(FIELDS, field)
    ? FIELDS[field as TunnelField]
    : SUB_FIELDS[field as TunnelSubField];
  const out: SpecProblem[] = [];
  rule(value, field, out);
  return out;
}

/**
 * Checks a whole tunnel: each field, the required ones, unknown keys
 * (unless told to ignore them), then the rules between the fields that
 * passed. An empty list means the tunnel follows the spec.
 *
 * @example
 * ```ts
 * import { checkTunnel } from "./tunnel_spec.ts";
 * console.assert(checkTunnel({ name: "web", type: "http", local_port: 80 }).length === 0);
 * const [p] = checkTunnel({ name: "web", type: "http", local_port: 0 });
 * console.assert(p?.field === "local_port" && p.message === "expected an integer 1-65535, got 0");
 * ```
 */
export function checkTunnel(tunnel: unknown, options: TunnelCheckOptions = {}): SpecProblem[] {
  if (!isMapping(tunnel)) {
    return [{ field: "", message: `expected a mapping of tunnel settings, got ${shown(tunnel)}` }];
  }
  const out: SpecProblem[] = [];
  if ((options.unknownKeys ?? "refuse") === "refuse") {
    for (const key of Object.keys(tunnel)) {
      if (Object.hasOwn(FIELDS, key)) continue;
      const near = closestWord(key, TUNNEL_SPEC_FIELDS);
      out.push({
        field: keyText(key),
        message: `unknown key${near ? ` (did you mean "${near}"?)` : ""}`,
      });
    }
  }
  const passed: Record<string, unknown> = {};
  for (const key of TUNNEL_SPEC_FIELDS) {
    const value = tunnel[key];
    if (value === undefined) {
      if (REQUIRED.includes(key)) out.push({ field: key, message: "required" });
      continue;
    }
    const before = out.length;
    FIELDS[key](value, key, out);
    if (out.length === before) passed[key] = value;
  }
  out.push(...checkTunnelRelations(passed, options));
  return out;
}

/**
 * The problems as one line: `field: message`, separated by `; `, the
 * first `max` (default 5) of them and how many more there are.
 *
 * @example
 * ```ts
 * import { formatProblems } from "./tunnel_spec.ts";
 * const line = formatProblems([
 *   { field: "weight", message: "expected an integer 1-1000, got 0" },
 *   { field: "", message: "expected a mapping of tunnel settings, got null" },
 * ]);
 * console.assert(line === "weight: expected an integer 1-1000, got 0; " +
 *   "expected a mapping of tunnel settings, got null");
 * ```
 */
export function formatProblems(problems: readonly SpecProblem[], max = 5): string {
  const parts = problems.slice(0, max).map((p) => p.field ? `${p.field}: ${p.message}` : p.message);
  if (problems.length > max) parts.push(`and ${problems.length - max} more`);
  return parts.join("; ");
}

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

import {
  closestWord,
  DNS_LABEL,
  ENTITY_NAME,
  HEADER_NAME,
  HOST_NAME,
  HOST_PATTERN,
  parseCidr,
  parseIp,
} from "../util/mod.ts";

/** The tunnel types. */
export const TUNNEL_TYPES = ["tcp", "udp", "http", "https"] as const;

/** A tunnel type. */
export type TunnelType = typeof TUNNEL_TYPES[number];

/** Sizes the spec allows: generous for people, small enough that hostile input stays cheap. */
export const TUNNEL_LIMITS = {
  /** Host names in `custom_domains`. */
  domains: 100,
  /** Path prefixes in `locations`. */
  locations: 100,
  /** Characters of one path prefix. */
  locationLength: 1024,
  /** Headers in one mapping (`custom_headers`, `set`) or list (`remove`). */
  headers: 100,
  /** Characters of a header name. */
  headerNameLength: 256,
  /** Characters of a header value. */
  headerValueLength: 8192,
  /** Blocks in `allow_ips` or in `deny_ips`. */
  ipBlocks: 1000,
  /** Characters of a basic-auth user name. */
  userLength: 256,
  /** Characters of a basic-auth password or a group key. */
  secretLength: 1024,
  /** Shortest `session_timeout`, in milliseconds. */
  minSessionTimeout: 100,
  /** Longest `session_timeout`, in milliseconds (a day). */
  maxSessionTimeout: 86_400_000,
  /** Largest `weight`. */
  maxWeight: 1000,
} as const;

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

/** One thing wrong with a tunnel. */
export interface SpecProblem {
  /**
   * Where, below the tunnel: `local_port`, `custom_domains[2]`,
   * `request_headers.set.X-Id`; empty for the tunnel as a whole.
   */
  field: string;
  /** What is wrong and what to write instead, e.g. `expected an integer 1-65535, got 0`. */
  message: string;
}

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

/** Checks one value, adding what is wrong with it, at `field`, to `out`. */
type Rule = (value: unknown, field: string, out: SpecProblem[]) => void;

// ------------------------------------------------------------ wording

/** Characters JSON leaves as they are that could still bend a log line: DEL, C1, bidi, separators. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** `text` as a JSON string, with the invisible characters escaped too. */
function quoted(text: string): string {
  return JSON.stringify(text).replace(
    INVISIBLE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** How a value is shown in a message: short, escaped, never more than a line. */
function shown(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") {
    if (value.length <= 64) return quoted(value);
    return `${quoted(value.slice(0, 40))}… (${value.length} characters)`;
  }
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return typeof value;
}

/** How a key is shown in a field path: as it is when printable and short, else quoted. */
function keyText(key: string): string {
  return key.length <= 64 && /^[\x20-\x7e]+$/.test(key) && !/["\\]/.test(key) ? key : shown(key);
}

function expected(out: SpecProblem[], field: string, what: string, value: unknown): void {
  out.push({ field, message: `expected ${what}, got ${shown(value)}` });
}

/** Whether `text` holds a control character (C0, DEL or C1); a tab only when `tab` is false. */
function hasControl(text: string, tab = false): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && !(tab && c === 9)) || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ------------------------------------------------------------ rules of one value

const oneOf = (...values: string[]): Rule => (v, field, out) => {
  if (!values.includes(v as string)) expected(out, field, `one of ${values.join(", ")}`, v);
};

const integer = (min: number, max: number, note = ""): Rule => (v, field, out) => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    expected(out, field, `an integer ${min}-${max}${note}`, v);
  }
};

const boolean: Rule = (v, field, out) => {
  if (typeof v !== "boolean") expected(out, field, "true or false", v);
};

/** A string of at most `max` characters that `test` accepts. */
const text = (max: number, test: (s: string) => boolean, what: string): Rule => (v, field, out) => {
  if (typeof v !== "string" || v.length > max || !test(v)) expected(out, field, what, v);
};

/** A list of at most `max` items, each checked by `item`. */
const listOf = (item: Rule, max: number, what: string): Rule => (v, field, out) => {
  if (!Array.isArray(v)) return expected(out, field, `a list of ${what}`, v);
  if (v.length > max) {
    out.push({ field, message: `lists ${v.length} ${what}; at most ${max} are allowed` });
    return;
  }
  for (let i = 0; i < v.length; i++) item(v[i], `${field}[${i}]`, out);
};

/** A mapping with the keys of `rules`, those in `required` present; unknown keys refused. */
const mappingOf =
  (rules: Record<string, Rule>, required: string[], what: string): Rule => (v, field, out) => {
    if (!isMapping(v)) return expected(out, field, what, v);
    for (const key of Object.keys(v)) {
      if (Object.hasOwn(rules, key)) continue;
      const near = closestWord(key, Object.keys(rules));
      out.push({
        field: `${field}.${keyText(key)}`,
        message: near
          ? `unknown key (did you mean "${near}"?)`
          : `unknown key; use ${Object.keys(rules).join(" or ")}`,
      });
    }
    for (const [key, rule] of Object.entries(rules)) {
      if (v[key] === undefined) {
        if (required.includes(key)) out.push({ field: `${field}.${key}`, message: "required" });
      } else rule(v[key], `${field}.${key}`, out);
    }
  };

/**
 * A secret (a password, a group key): never shown in messages, not even in
 * part, since messages reach logs and the other side.
 */
const secret = (what: string): Rule => (v, field, out) => {
  const max = TUNNEL_LIMITS.secretLength;
  if (typeof v !== "string" || v === "") {
    const got = v === ""
      ? "an empty string"
      : Array.isArray(v)
      ? "a list"
      : v === null
      ? "null"
      : typeof v === "object"
      ? "a mapping"
      : `a ${typeof v}`;
    out.push({ field, message: `expected ${what} (a non-empty string), got ${got}` });
  } else if (v.length > max) {
    out.push({
      field,
      message: `${what} is ${v.length} characters long; at most ${max} are allowed`,
    });
  } else if (hasControl(v)) {
    out.push({
      field,
      message: `${what} contains a line break or another control character; remove it ` +
        "(a YAML block scalar such as `|` adds a line break at the end)",
    });
  }
};

/** `*.example.com` or `app.example.com`, each label at most 63 characters. */
function isHostPattern(s: string): boolean {
  return HOST_PATTERN.test(s) && s.split(".").every((label) => label.length <= 63);
}

const hostPattern = text(
  255,
  isHostPattern,
  'a host name such as "app.example.com" or a wildcard such as "*.example.com"',
);

/** A host name or an IP address (IPv6 without brackets: the client dials it as it is). */
const hostOrIp = text(
  253,
  (s) => !s.includes("[") && (HOST_NAME.test(s) || parseIp(s) !== null),
  'a host name or IP address such as "127.0.0.1" (IPv6 without brackets)',
);

const ENTITY = '1-64 letters, digits, "_", "." or "-", starting with a letter or digit';

const location = text(
  TUNNEL_LIMITS.locationLength,
  (s) => s.startsWith("/") && !/\s/.test(s) && !hasControl(s),
  'a path starting with "/", without spaces or control characters, such as "/api"',
);

/**
 * Headers Burrow manages itself: hop-by-hop ones and those that frame the
 * body. A rule that set or removed them would cut requests apart
 * differently on the two sides of the tunnel.
 */
const MANAGED_HEADERS = new Set([
  "connection",
  "content-length",
  "http2-settings",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** A header name a rule may set or remove; `""` when it may, else the message. */
function headerNameProblem(name: string): string {
  if (name.length > TUNNEL_LIMITS.headerNameLength || !HEADER_NAME.test(name)) {
    return "not a valid header name";
  }
  if (MANAGED_HEADERS.has(name.toLowerCase())) {
    return `${name} frames the message or is hop-by-hop; Burrow manages it, remove this rule`;
  }
  return "";
}

const headerMap: Rule = (v, field, out) => {
  if (!isMapping(v)) return expected(out, field, "a mapping of header names to values", v);
  const entries = Object.entries(v);
  const max = TUNNEL_LIMITS.headers;
  if (entries.length > max) {
    out.push({ field, message: `sets ${entries.length} headers; at most ${max} are allowed` });
    return;
  }
  for (const [name, value] of entries) {
    const at = `${field}.${keyText(name)}`;
    const bad = headerNameProblem(name);
    if (bad) out.push({ field: at, message: bad });
    else if (typeof value !== "string") expected(out, at, "a string", value);
    else if (value.length > TUNNEL_LIMITS.headerValueLength) {
      out.push({
        field: at,
        message: `the value is ${value.length} characters long; at most ` +
          `${TUNNEL_LIMITS.headerValueLength} are allowed`,
      });
    } else if (hasControl(value, true)) {
      out.push({
        field: at,
        message: "header values cannot contain line breaks or control characters",
      });
    }
  }
};

const headerName: Rule = (v, field, out) => {
  if (typeof v !== "string") return expected(out, field, "a header name", v);
  const bad = headerNameProblem(v);
  if (bad) {
    out.push({ field, message: bad === "not a valid header name" ? `${bad}: ${shown(v)}` : bad });
  }
};

const headerNames = listOf(headerName, TUNNEL_LIMITS.headers, "header names");

const headerRules = mappingOf(
  { set: headerMap, remove: headerNames },
  [],
  "a mapping with set (header names to values) and remove (a list of header names)",
);

const basicAuthUser = text(
  TUNNEL_LIMITS.userLength,
  (s) => s !== "" && !s.includes(":") && !hasControl(s),
  `a user name of 1-${TUNNEL_LIMITS.userLength} characters without ":" or control characters`,
);

const basicAuthPassword = secret("a password");

const cidr: Rule = (v, field, out) => {
  const what = 'an IP address or CIDR block such as "10.0.0.0/8"';
  if (typeof v !== "string" || v.length > 64) return expected(out, field, what, v);
  try {
    parseCidr(v);
  } catch {
    // An address and one "/": only the prefix length can be wrong.
    const parts = v.trim().split("/");
    const ip = parts.length === 2 ? parseIp(parts[0]!) : null;
    if (!ip) return expected(out, field, what, v);
    const bits = ip.version === 4 ? 32 : 128;
    out.push({ field, message: `the prefix length of ${shown(v)} must be 0-${bits}` });
  }
};

const ipBlocks = listOf(cidr, TUNNEL_LIMITS.ipBlocks, "IP addresses or CIDR blocks");

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

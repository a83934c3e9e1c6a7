/**
 * The rules a tunnel's settings follow one value at a time: the wording of
 * problems (short, escaped, never a secret), the rule combinators (integers,
 * strings, lists, mappings) and the rules of the spec's kinds of value (host
 * names, header rules, CIDR blocks, secrets). The tunnel spec
 * (`tunnel_spec.ts`) puts them in a table by field and adds the rules
 * between fields.
 *
 * @module
 */

import {
  closestWord,
  HEADER_NAME,
  HOST_NAME,
  HOST_PATTERN,
  parseCidr,
  parseIp,
} from "../util/mod.ts";

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

/** Checks one value, adding what is wrong with it, at `field`, to `out`. */
export type Rule = (value: unknown, field: string, out: SpecProblem[]) => void;

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
export function shown(value: unknown): string {
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
export function keyText(key: string): string {
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

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ------------------------------------------------------------ rules of one value

export const oneOf = (...values: string[]): Rule => (v, field, out) => {
  if (!values.includes(v as string)) expected(out, field, `one of ${values.join(", ")}`, v);
};

export const integer = (min: number, max: number, note = ""): Rule => (v, field, out) => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    expected(out, field, `an integer ${min}-${max}${note}`, v);
  }
};

export const boolean: Rule = (v, field, out) => {
  if (typeof v !== "boolean") expected(out, field, "true or false", v);
};

/** A string of at most `max` characters that `test` accepts. */
export const text =
  (max: number, test: (s: string) => boolean, what: string): Rule => (v, field, out) => {
    if (typeof v !== "string" || v.length > max || !test(v)) expected(out, field, what, v);
  };

/** A list of at most `max` items, each checked by `item`. */
export const listOf = (item: Rule, max: number, what: string): Rule => (v, field, out) => {
  if (!Array.isArray(v)) return expected(out, field, `a list of ${what}`, v);
  if (v.length > max) {
    out.push({ field, message: `lists ${v.length} ${what}; at most ${max} are allowed` });
    return;
  }
  for (let i = 0; i < v.length; i++) item(v[i], `${field}[${i}]`, out);
};

/** A mapping with the keys of `rules`, those in `required` present; unknown keys refused. */
export const mappingOf =
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
export const secret = (what: string): Rule => (v, field, out) => {
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

export const hostPattern = text(
  255,
  isHostPattern,
  'a host name such as "app.example.com" or a wildcard such as "*.example.com"',
);

/** A host name or an IP address (IPv6 without brackets: the client dials it as it is). */
export const hostOrIp = text(
  253,
  (s) => !s.includes("[") && (HOST_NAME.test(s) || parseIp(s) !== null),
  'a host name or IP address such as "127.0.0.1" (IPv6 without brackets)',
);

export const ENTITY = '1-64 letters, digits, "_", "." or "-", starting with a letter or digit';

export const location = text(
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

export const headerMap: Rule = (v, field, out) => {
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

export const headerNames = listOf(headerName, TUNNEL_LIMITS.headers, "header names");

export const headerRules = mappingOf(
  { set: headerMap, remove: headerNames },
  [],
  "a mapping with set (header names to values) and remove (a list of header names)",
);

export const basicAuthUser = text(
  TUNNEL_LIMITS.userLength,
  (s) => s !== "" && !s.includes(":") && !hasControl(s),
  `a user name of 1-${TUNNEL_LIMITS.userLength} characters without ":" or control characters`,
);

export const basicAuthPassword = secret("a password");

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

export const ipBlocks = listOf(cidr, TUNNEL_LIMITS.ipBlocks, "IP addresses or CIDR blocks");

/**
 * The building blocks of the configuration schema: checks that validate
 * one value and report a problem with its YAML path, and the object check
 * that applies defaults, names unknown keys (with the nearest known one)
 * and documents each field for the generated reference.
 *
 * @module
 */

import { closestWord, ENTITY_NAME, Secret } from "../util/mod.ts";
import { parseDuration, parsePortRanges, parseSize } from "../util/mod.ts";
import { parseCidr } from "../util/mod.ts";

export type Problems = string[];
/** Checks one value; returns `undefined` after recording a problem. */
export type Check<T> = ((value: unknown, path: string, problems: Problems) => T | undefined) & {
  /** What the value must be, for the generated reference. */
  what?: string;
  /** The keys of a mapping. */
  fields?: Record<string, Field>;
  /** The item check of a list. */
  item?: Check<unknown>;
};

export function tag<T>(check: Check<T>, what: string): Check<T> {
  check.what = what;
  return check;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return JSON.stringify(value);
}

function fail(
  problems: Problems,
  path: string,
  expected: string,
  value: unknown,
): undefined {
  problems.push(`${path}: expected ${expected}, got ${describe(value)}`);
  return undefined;
}

export const str = (pattern?: RegExp, what = "a string"): Check<string> =>
  tag(
    (v, path, p) =>
      typeof v === "string" && v !== "" && (!pattern || pattern.test(v))
        ? v
        : fail(p, path, what, v),
    pattern ? what.replace(/^an? /, "") : "string",
  );

export const int = (min: number, max: number): Check<number> =>
  tag(
    (v, path, p) =>
      typeof v === "number" && Number.isInteger(v) && v >= min && v <= max
        ? v
        : fail(p, path, `an integer ${min}-${max}`, v),
    `integer ${min}-${max}`,
  );

export const num = (min: number): Check<number> =>
  tag(
    (v, path, p) =>
      typeof v === "number" && Number.isFinite(v) && v >= min
        ? v
        : fail(p, path, `a number >= ${min}`, v),
    `number ≥ ${min}`,
  );

export const bool: Check<boolean> = tag(
  (v, path, p) => typeof v === "boolean" ? v : fail(p, path, "true or false", v),
  "boolean",
);

export const oneOf = <T extends string>(...values: T[]): Check<T> =>
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

export const duration = tag(converted(parseDuration, 'a duration such as "30s"'), "duration");
export const cidr = tag(
  converted((v) => {
    parseCidr(String(v));
    return String(v);
  }, 'an IP address or CIDR block such as "10.0.0.0/8"'),
  "CIDR",
);
export const size = tag(converted(parseSize, 'a size such as "100MB"'), "size");

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
export const udpFields = (side: "public" | "local") =>
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
export const portRanges = tag(
  converted(parsePortRanges, 'port ranges such as "2000-3000,3306"'),
  "port ranges",
);
export const secret: Check<Secret> = tag(
  (v, path, p) =>
    typeof v === "string" && v !== "" ? new Secret(v) : fail(p, path, "a non-empty string", v),
  "secret string",
);

export const list = <T>(item: Check<T>): Check<T[]> => {
  const check: Check<T[]> = tag((v, path, p) => {
    if (!Array.isArray(v)) return fail(p, path, "a list", v);
    const out = v.map((x, i) => item(x, `${path}[${i}]`, p));
    return out.every((x) => x !== undefined) ? out as T[] : undefined;
  }, `list of ${item.what ?? "values"}`);
  check.item = item as Check<unknown>;
  return check;
};

export const stringMap: Check<Record<string, string>> = tag((v, path, p) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return fail(p, path, "a mapping", v);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") fail(p, `${path}.${k}`, "a string", x);
    else out[k] = x;
  }
  return out;
}, "mapping of strings");

export interface Field {
  check: Check<unknown>;
  default?: unknown;
  required?: boolean;
  /** One line for the generated reference. */
  doc?: string;
  /** The default as users write it (e.g. `30s`), when the stored form differs. */
  shown?: string;
}

/** A mapping with known keys; unknown keys are errors with a did-you-mean. */
export function object(fields: Record<string, Field>): Check<Record<string, unknown>> {
  const check: Check<Record<string, unknown>> = (v, path, p) => {
    const value = v ?? {};
    if (typeof value !== "object" || Array.isArray(value)) return fail(p, path, "a mapping", v);
    const input = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    let ok = true;
    for (const key of Object.keys(input)) {
      if (Object.hasOwn(fields, key)) continue;
      const near = closestWord(key, Object.keys(fields));
      p.push(`${path}.${key}: unknown key${near ? ` (did you mean "${near}"?)` : ""}`);
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
export const f = (
  check: Check<unknown>,
  defaultValue?: unknown,
  doc?: string,
  shown?: string,
): Field => ({
  check,
  default: defaultValue,
  ...(doc ? { doc } : {}),
  ...(shown ? { shown } : {}),
});
/** A required key. */
export const req = (check: Check<unknown>, doc?: string): Field => ({
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

export const logFields = () =>
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

export const PORT = int(0, 65535);
/** A node's name: the rules of a tunnel's name, since it appears in the same places. */
export const NODE_ID = str(ENTITY_NAME, "a name of letters, digits, _ . or -");
export const NAME = str(/^[A-Za-z0-9_.-]+$/, "a name of letters, digits, _ . or -");

/**
 * The seed's notation for durations (`30s`, `2m`, `1m30s`), sizes (`100MB`)
 * and port ranges (`2000-3000,3306`).
 *
 * @example
 * ```ts
 * import { parseDuration, parsePortRanges, parseSize } from "./units.ts";
 * console.assert(parseDuration("1m30s") === 90_000);
 * console.assert(parseSize("100MB") === 100_000_000);
 * console.assert(parsePortRanges("2000-3000,3306").length === 2);
 * ```
 *
 * @module
 */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Milliseconds from `500ms`, `30s`, `2m`, `1h`, `1d` or a sum such as
 * `1m30s`. A bare number means seconds.
 *
 * @throws {TypeError} on anything else.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) {
      throw new TypeError(`Invalid duration ${input}: expected a non-negative number of seconds`);
    }
    return input * 1000;
  }
  const text = input.trim();
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let end = 0;
  for (let match; (match = part.exec(text)) !== null;) {
    total += Number(match[1]) * DURATION_UNITS[match[2]!]!;
    end = part.lastIndex;
  }
  if (text === "" || end !== text.length) {
    if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
    throw new TypeError(
      `Invalid duration "${input}": expected a number followed by ms, s, m, h or d (e.g. "30s")`,
    );
  }
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/**
 * Bytes from `100MB`, `1.5GB`, `512KiB`, `10kb` (case-insensitive; KB/MB/GB
 * are powers of 1000, KiB/MiB/GiB powers of 1024). A bare number is bytes.
 *
 * @throws {TypeError} on anything else.
 */
export function parseSize(input: string | number): number {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) {
      throw new TypeError(`Invalid size ${input}: expected a non-negative number of bytes`);
    }
    return Math.round(input);
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input);
  const unit = SIZE_UNITS[match?.[2]?.toLowerCase() ?? "?"];
  if (!match || unit === undefined) {
    throw new TypeError(
      `Invalid size "${input}": expected a number with B, KB, MB, GB, KiB, MiB or GiB (e.g. "100MB")`,
    );
  }
  return Math.round(Number(match[1]) * unit);
}

/**
 * Inclusive ranges from `"2000-3000,3306"`.
 *
 * @throws {RangeError} for ports outside 1-65535 or a range whose low end is above its high end.
 * @throws {TypeError} for anything that is not a list of ports and ranges.
 */
export function parsePortRanges(input: string | number): Array<[number, number]> {
  const text = String(input).trim();
  if (text === "") return [];
  return text.split(",").map((part) => {
    const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!match) {
      throw new TypeError(
        `Invalid port range "${part.trim()}" in "${text}": expected PORT or LOW-HIGH`,
      );
    }
    const lo = Number(match[1]);
    const hi = match[2] === undefined ? lo : Number(match[2]);
    for (const p of [lo, hi]) {
      if (p < 1 || p > 65535) throw new RangeError(`Port ${p} in "${text}" is outside 1-65535`);
    }
    if (lo > hi) throw new RangeError(`Port range "${part.trim()}" runs backwards`);
    return [lo, hi];
  });
}

/**
 * The header names the splice engine asks about, recognised by their bytes
 * while a head is scanned, so that a lookup compares a small number (a
 * field's kind) instead of a string: the table of known names, the kind of
 * each ({@linkcode HEADER_KIND}), and the scan's byte-wise match
 * ({@linkcode kindOf}). Other names are lowered once and remembered
 * ({@linkcode lowerName}), since the same few come with every request.
 *
 * Pure: no I/O.
 *
 * @module
 */

/**
 * The header names the engine asks about, recognised by their bytes while a
 * head is scanned; a field's kind is its name's index here plus one, 0 for
 * any other name.
 */
const KNOWN_NAMES = [
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "upgrade",
  "keep-alive",
  "proxy-connection",
  "te",
  "http2-settings",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "authorization",
] as const;

/** A header name recognised while scanning (see {@linkcode ParsedHead.kind}). */
export type KnownName = typeof KNOWN_NAMES[number];

/** The kind of each known header name. */
export const HEADER_KIND: Readonly<Record<KnownName, number>> = Object.freeze(
  Object.fromEntries(KNOWN_NAMES.map((name, i) => [name, i + 1])) as Record<KnownName, number>,
);

/** The kind of each known header name (lower case), for lookups by name. */
export const KIND_OF = new Map<string, number>(KNOWN_NAMES.map((name, i) => [name, i + 1]));
/** Known names by length, for the scan. */
const BY_LENGTH: Array<Array<[string, number]> | undefined> = [];
for (const [name, kind] of KIND_OF) (BY_LENGTH[name.length] ??= []).push([name, kind]);

/** The kind of the (valid token) name in bytes `from`..`to`. */
export function kindOf(bytes: Uint8Array, from: number, to: number): number {
  const candidates = BY_LENGTH[to - from];
  if (candidates === undefined) return 0;
  next: for (let c = 0; c < candidates.length; c++) {
    const [name, kind] = candidates[c]!;
    // Known names hold letters, digits and "-": OR-ing 0x20 lowers a letter and keeps the rest.
    for (let i = 0; i < name.length; i++) {
      if ((bytes[from + i]! | 0x20) !== name.charCodeAt(i)) continue next;
    }
    return kind;
  }
  return 0;
}

/** Lower-case header names, remembered: the same few names come with every request. */
const LOWER = new Map<string, string>();

/** `name` in lower case (header names are ASCII tokens). */
export function lowerName(name: string): string {
  let lower = LOWER.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (name.length <= 64 && LOWER.size < 4096) LOWER.set(name, lower);
  }
  return lower;
}

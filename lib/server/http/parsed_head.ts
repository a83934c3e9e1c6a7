/**
 * A parsed HTTP/1.1 head as the splice engine reads it: {@linkcode ParsedHead}
 * keeps the bytes it was parsed from and where each field's name and value
 * lie in them, and cuts strings only when asked, so relaying a response
 * decodes none of its head. Lookups by name compare a field's kind (see
 * `header_names.ts`) for the names the engine asks about, and the bytes in
 * any case for others; {@linkcode RequestHead} and {@linkcode ResponseHead}
 * add what their first line says.
 *
 * The parsers that build these heads, and check every byte first, are in
 * `head.ts`. Pure: no I/O.
 *
 * @module
 */

import { KIND_OF } from "./header_names.ts";

/** Header fields in arrival order, names as sent. */
export type HeaderList = Array<[string, string]>;

/** Entries per field in {@linkcode ParsedHead.fields}. */
export const STRIDE = 5;

/** Bytes `from`..`to` as a string of one char per byte (latin1). */
export function latin1(bytes: Uint8Array, from: number, to: number): string {
  if (to - from <= 64) {
    let s = "";
    for (let i = from; i < to; i++) s += String.fromCharCode(bytes[i]!);
    return s;
  }
  let s = "";
  for (let i = from; i < to; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(to, i + 4096)));
  }
  return s;
}

/**
 * What a request and a response head share: where each field lies in the
 * bytes it was parsed from, and the fields as strings, cut on demand.
 *
 * The bytes are not copied. `headers`, `name`, `value` and the lookups read
 * them, so a head from a reused buffer must be read before the buffer is
 * filled again; the engine reads all it needs right after parsing.
 */
export class ParsedHead {
  /** The bytes parsed (the head starts at 0). */
  readonly bytes: Uint8Array;
  /**
   * Five entries per field: where its line starts, where its name ends,
   * where its value starts and ends (trimmed), and its kind (see
   * {@linkcode HEADER_KIND}; 0 for other names).
   */
  readonly fields: number[];
  /** Byte length of the head, including its final empty line. */
  readonly size: number;
  #headers: HeaderList | null = null;

  /** A head of `size` bytes at the start of `bytes`, its fields recorded in `fields`. */
  constructor(bytes: Uint8Array, fields: number[], size: number) {
    this.bytes = bytes;
    this.fields = fields;
    this.size = size;
  }

  /** How many header fields there are. */
  get fieldCount(): number {
    return this.fields.length / STRIDE;
  }

  /** Field `i`'s name kind ({@linkcode HEADER_KIND}), 0 for a name not known there. */
  kind(i: number): number {
    return this.fields[i * STRIDE + 4]!;
  }

  /** Field `i`'s name as sent. */
  name(i: number): string {
    const f = i * STRIDE;
    return latin1(this.bytes, this.fields[f]!, this.fields[f + 1]!);
  }

  /** Field `i`'s value, without surrounding blanks; a byte above 0x7f is one char (latin1). */
  value(i: number): string {
    const f = i * STRIDE;
    return latin1(this.bytes, this.fields[f + 2]!, this.fields[f + 3]!);
  }

  /** Header fields in order, names as sent (decoded once, on first use). */
  get headers(): HeaderList {
    if (this.#headers === null) {
      const n = this.fieldCount;
      const headers: HeaderList = new Array(n);
      for (let i = 0; i < n; i++) headers[i] = [this.name(i), this.value(i)];
      this.#headers = headers;
    }
    return this.#headers;
  }

  /** Whether field `i` is named `name` (lower case), `kind` being that name's kind or 0. */
  #named(i: number, name: string, kind: number): boolean {
    const f = i * STRIDE;
    if (kind !== 0) return this.fields[f + 4] === kind;
    return lowerEquals(this.bytes, this.fields[f]!, this.fields[f + 1]!, name);
  }

  /** The index of the first field named `name` (lower case) from `start`, or -1. */
  indexOf(name: string, start = 0): number {
    const kind = KIND_OF.get(name) ?? 0;
    const n = this.fieldCount;
    for (let i = start; i < n; i++) if (this.#named(i, name, kind)) return i;
    return -1;
  }

  /** How many fields are named `name` (lower case). */
  countOf(name: string): number {
    let count = 0;
    for (let i = this.indexOf(name); i >= 0; i = this.indexOf(name, i + 1)) count++;
    return count;
  }

  /** The first value of the field named `name` (lower case), or `undefined`. */
  get(name: string): string | undefined {
    const i = this.indexOf(name);
    return i < 0 ? undefined : this.value(i);
  }

  /** Comma-separated elements of the fields named `name` (lower case), each lower case. */
  tokens(name: string): string[] {
    const out: string[] = [];
    for (let i = this.indexOf(name); i >= 0; i = this.indexOf(name, i + 1)) {
      for (const t of this.value(i).split(",")) {
        const token = t.trim().toLowerCase();
        if (token.length > 0) out.push(token);
      }
    }
    return out;
  }

  /**
   * Whether a field named `name` lists the element `token` (both lower
   * case; elements compared in any case), as {@linkcode tokens} would say,
   * without cutting strings.
   */
  hasToken(name: string, token: string): boolean {
    const bytes = this.bytes;
    for (let i = this.indexOf(name); i >= 0; i = this.indexOf(name, i + 1)) {
      const f = i * STRIDE;
      const end = this.fields[f + 3]!;
      for (let from = this.fields[f + 2]!; from <= end;) {
        const to = element(bytes, from, end);
        if (lowerEquals(bytes, ELEMENT[0]!, ELEMENT[1]!, token)) return true;
        from = to + 1;
      }
    }
    return false;
  }
}

/** Whitespace as `String.prototype.trim` sees it in a latin1 header value. */
function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 0xa0 || (c >= 10 && c <= 13);
}

/** Where {@linkcode element} puts the trimmed bounds of the element it found. */
export const ELEMENT = new Int32Array(2);

/**
 * The comma-separated element of a value that starts at `from` (the value
 * ending at `end`): its bounds without surrounding blanks go to
 * {@linkcode ELEMENT}; returns where it ends (its comma, or `end`).
 */
export function element(bytes: Uint8Array, from: number, end: number): number {
  let to = from;
  while (to < end && bytes[to] !== 44) to++;
  let a = from;
  let b = to;
  while (a < b && isBlank(bytes[a]!)) a++;
  while (b > a && isBlank(bytes[b - 1]!)) b--;
  ELEMENT[0] = a;
  ELEMENT[1] = b;
  return to;
}

/** Whether bytes `from`..`to` are `lower` (lower case ASCII) in any case. */
function lowerEquals(bytes: Uint8Array, from: number, to: number, lower: string): boolean {
  if (to - from !== lower.length) return false;
  for (let j = 0; j < lower.length; j++) {
    let c = bytes[from + j]!;
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(j)) return false;
  }
  return true;
}

/** A parsed request head. */
export class RequestHead extends ParsedHead {
  /** The method, e.g. `GET`. */
  readonly method: string;
  /** The request target as sent (origin form, or absolute form, `*`, authority form). */
  readonly target: string;
  /** `1.0` or `1.1`. */
  readonly version: "1.0" | "1.1";

  /** A head parsed by {@linkcode parseRequestHead}. */
  constructor(
    bytes: Uint8Array,
    fields: number[],
    size: number,
    method: string,
    target: string,
    version: "1.0" | "1.1",
  ) {
    super(bytes, fields, size);
    this.method = method;
    this.target = target;
    this.version = version;
  }
}

/** A parsed response head. */
export class ResponseHead extends ParsedHead {
  /** `1.0` or `1.1`. */
  readonly version: "1.0" | "1.1";
  /** Status code. */
  readonly status: number;
  /** Where the status line ends. */
  readonly #lineEnd: number;

  /** A head parsed by {@linkcode parseResponseHead}. */
  constructor(
    bytes: Uint8Array,
    fields: number[],
    size: number,
    version: "1.0" | "1.1",
    status: number,
    lineEnd: number,
  ) {
    super(bytes, fields, size);
    this.version = version;
    this.status = status;
    this.#lineEnd = lineEnd;
  }

  /** Reason phrase as sent. */
  get reason(): string {
    return this.#lineEnd > 12 ? latin1(this.bytes, 13, this.#lineEnd) : "";
  }
}

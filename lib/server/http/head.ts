/**
 * A strict HTTP/1.1 message head parser (RFC 9112) for bytes from the
 * network: request and response heads, with the checks that stop request
 * smuggling (both `Content-Length` and `Transfer-Encoding`, differing
 * duplicate lengths, obs-fold, bare LF, control characters), and the body
 * framing that follows from a head.
 *
 * One scan checks every byte and records where each field's name and
 * value lie; the names the engine asks about are recognised by their bytes
 * during that scan. Strings are cut from the bytes only when asked for, so
 * relaying a response decodes none of its head.
 *
 * Pure: no I/O. A head that is refused throws {@linkcode HttpHeadError},
 * whose message names the problem and is safe to show to the sender.
 *
 * @module
 */

/** Longest head accepted, in bytes (request line or status line plus headers). */
export const MAX_HEAD_SIZE = 64 * 1024;
/** Most header fields accepted in one head. */
export const MAX_HEADERS = 200;

/** A head that is malformed or smuggles: answer 400 (or 502 for a response) and close. */
export class HttpHeadError extends Error {
  /** The status to answer with. */
  readonly status: number;
  /** A head refused for `message`, answered with `status` (default 400). */
  constructor(message: string, status = 400) {
    super(message);
    this.name = "HttpHeadError";
    this.status = status;
  }
}

/** How the body after a head is delimited. */
export type BodyFraming =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" };

/** Header fields in arrival order, names as sent. */
export type HeaderList = Array<[string, string]>;

const CR = 13;
const LF = 10;

/** `tchar` of RFC 9110 §5.6.2. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = TOKEN[c + 32] = 1;

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

const KIND_OF = new Map<string, number>(KNOWN_NAMES.map((name, i) => [name, i + 1]));
/** Known names by length, for the scan. */
const BY_LENGTH: Array<Array<[string, number]> | undefined> = [];
for (const [name, kind] of KIND_OF) (BY_LENGTH[name.length] ??= []).push([name, kind]);

/** The kind of the (valid token) name in bytes `from`..`to`. */
function kindOf(bytes: Uint8Array, from: number, to: number): number {
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

/** Entries per field in {@linkcode ParsedHead.fields}. */
const STRIDE = 5;

/** Bytes `from`..`to` as a string of one char per byte (latin1). */
function latin1(bytes: Uint8Array, from: number, to: number): string {
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
const ELEMENT = new Int32Array(2);

/**
 * The comma-separated element of a value that starts at `from` (the value
 * ending at `end`): its bounds without surrounding blanks go to
 * {@linkcode ELEMENT}; returns where it ends (its comma, or `end`).
 */
function element(bytes: Uint8Array, from: number, end: number): number {
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

/**
 * Where the head in `bytes` ends (the index just past its empty line), or
 * `-1` when it is not complete yet.
 *
 * @throws {HttpHeadError} when a bare LF ends a line or the head is too long.
 *
 * @example
 * ```ts
 * import { headEnd } from "./head.ts";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\nrest");
 * console.assert(headEnd(bytes) === 27);
 * ```
 */
export function headEnd(bytes: Uint8Array, from = 0, maxSize = MAX_HEAD_SIZE): number {
  const end = Math.min(bytes.length, maxSize);
  for (let i = Math.max(0, from - 3); i < end; i++) {
    if (bytes[i] !== LF) continue;
    if (i === 0 || bytes[i - 1] !== CR) throw new HttpHeadError("Bare LF in the message head");
    if (i >= 3 && bytes[i - 2] === LF && bytes[i - 3] === CR) return i + 1;
  }
  if (bytes.length >= maxSize) {
    throw new HttpHeadError(`Message head longer than ${maxSize} bytes`, 431);
  }
  return -1;
}

/** `text` as a message's excerpt: printable, at most 40 chars. */
function clip(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, "?");
  return printable.length > 40 ? printable.slice(0, 40) + "…" : printable;
}

/** Bytes `from`..`to` as a message's excerpt. */
function clipBytes(bytes: Uint8Array, from: number, to: number): string {
  return clip(latin1(bytes, from, Math.min(to, from + 41)));
}

/** The index of the CR ending the line that starts at `from`; a CR without LF is refused. */
function lineEnd(bytes: Uint8Array, from: number): number {
  let i = from;
  while (bytes[i] !== CR) i++;
  if (bytes[i + 1] !== LF) throw new HttpHeadError("Bare CR or LF in the message head");
  return i;
}

/**
 * Checks the header lines from `at` (just after the first line) to
 * `fieldsEnd` (where the final empty line starts) and records each field
 * in `fields` (see {@linkcode ParsedHead.fields}).
 */
function scanFields(bytes: Uint8Array, at: number, fieldsEnd: number, fields: number[]): void {
  let count = 0;
  while (at < fieldsEnd) {
    if (count === MAX_HEADERS) throw new HttpHeadError(`More than ${MAX_HEADERS} header fields`);
    const first = bytes[at];
    if (first === 32 || first === 9) {
      throw new HttpHeadError("Folded header line (obs-fold) refused");
    }
    // The name: token characters up to the colon.
    let i = at;
    let badName = false;
    let c = bytes[i]!;
    while (c !== 58 && c !== CR) {
      if (c >= 128 || !TOKEN[c]) badName = true;
      c = bytes[++i]!;
    }
    if (c === CR) {
      lineEnd(bytes, i);
      throw new HttpHeadError(`Header line without a name: "${clipBytes(bytes, at, i)}"`);
    }
    if (i === at) {
      throw new HttpHeadError(
        `Header line without a name: "${clipBytes(bytes, at, lineEnd(bytes, at))}"`,
      );
    }
    if (badName) {
      throw new HttpHeadError(`Invalid header name "${clipBytes(bytes, at, i)}"`);
    }
    const nameEnd = i++;
    // The value: leading and trailing blanks are not part of it; controls other than tab refused.
    while (bytes[i] === 32 || bytes[i] === 9) i++;
    const valueStart = i;
    for (;;) {
      c = bytes[i]!;
      if (c === CR) break;
      if ((c < 32 && c !== 9) || c === 127) {
        throw new HttpHeadError(`Control character in header "${clipBytes(bytes, at, nameEnd)}"`);
      }
      i++;
    }
    if (bytes[i + 1] !== LF) throw new HttpHeadError("Bare CR or LF in the message head");
    let valueEnd = i;
    while (valueEnd > valueStart && (bytes[valueEnd - 1] === 32 || bytes[valueEnd - 1] === 9)) {
      valueEnd--;
    }
    fields.push(at, nameEnd, valueStart, valueEnd, kindOf(bytes, at, nameEnd));
    count++;
    at = i + 2;
  }
}

/** Whether bytes `from`..`to` are `text` (ASCII). */
function bytesAre(bytes: Uint8Array, from: number, to: number, text: string): boolean {
  if (to - from !== text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[from + i] !== text.charCodeAt(i)) return false;
  return true;
}

function versionAt(bytes: Uint8Array, from: number, to: number): "1.0" | "1.1" {
  if (bytesAre(bytes, from, to, "HTTP/1.1")) return "1.1";
  if (bytesAre(bytes, from, to, "HTTP/1.0")) return "1.0";
  throw new HttpHeadError(`Unsupported protocol version "${clipBytes(bytes, from, to)}"`, 505);
}

/**
 * Parses the request head at the start of `bytes`, or returns `null` when
 * it is not complete yet. One scan of the bytes checks every line; the
 * method and target are cut as strings, the fields when asked for.
 *
 * @throws {HttpHeadError} when the head is malformed or smuggles.
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "./head.ts";
 * const head = parseRequestHead(new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
 * console.assert(head?.target === "/a" && head.get("host") === "x");
 * ```
 */
export function parseRequestHead(
  bytes: Uint8Array,
  maxSize = MAX_HEAD_SIZE,
  /** Where the head ends, when the caller's {@linkcode headEnd} already found it. */
  knownSize = -1,
): RequestHead | null {
  const size = knownSize >= 0 ? knownSize : headEnd(bytes, 0, maxSize);
  if (size < 0) return null;
  // The request line: method SP target SP version, exactly.
  const end = lineEnd(bytes, 0);
  let sp1 = -1;
  let sp2 = -1;
  for (let i = 0; i < end; i++) {
    if (bytes[i] === 32) {
      if (sp1 < 0) sp1 = i;
      else if (sp2 < 0) sp2 = i;
      else sp2 = end + 1;
    }
  }
  if (sp2 < 0 || sp2 > end) {
    throw new HttpHeadError(`Malformed request line "${clipBytes(bytes, 0, end)}"`);
  }
  if (sp1 === 0) throw new HttpHeadError(`Invalid method ""`);
  for (let i = 0; i < sp1; i++) {
    const c = bytes[i]!;
    if (c >= 128 || !TOKEN[c]) {
      throw new HttpHeadError(`Invalid method "${clipBytes(bytes, 0, sp1)}"`);
    }
  }
  if (sp2 === sp1 + 1) throw new HttpHeadError("Invalid characters in the request target");
  for (let i = sp1 + 1; i < sp2; i++) {
    const c = bytes[i]!;
    if (c <= 32 || c >= 127) throw new HttpHeadError("Invalid characters in the request target");
  }
  const version = versionAt(bytes, sp2 + 1, end);
  const fields: number[] = [];
  scanFields(bytes, end + 2, size - 2, fields);
  return new RequestHead(
    bytes,
    fields,
    size,
    latin1(bytes, 0, sp1),
    latin1(bytes, sp1 + 1, sp2),
    version,
  );
}

/**
 * Parses the response head at the start of `bytes`, or returns `null` when
 * it is not complete yet. Errors carry status 502 (the service misbehaved).
 *
 * @throws {HttpHeadError} when the head is malformed.
 *
 * @example
 * ```ts
 * import { parseResponseHead } from "./head.ts";
 * const head = parseResponseHead(new TextEncoder().encode("HTTP/1.1 204 No Content\r\n\r\n"));
 * console.assert(head?.status === 204);
 * ```
 */
export function parseResponseHead(
  bytes: Uint8Array,
  maxSize = MAX_HEAD_SIZE,
): ResponseHead | null {
  try {
    const size = headEnd(bytes, 0, maxSize);
    if (size < 0) return null;
    // The status line: HTTP/1.x SP three digits, then SP and a reason, or nothing.
    const end = lineEnd(bytes, 0);
    const d0 = bytes[9]! - 48;
    const d1 = bytes[10]! - 48;
    const d2 = bytes[11]! - 48;
    if (
      end < 12 || !(bytesAre(bytes, 0, 8, "HTTP/1.1") || bytesAre(bytes, 0, 8, "HTTP/1.0")) ||
      bytes[8] !== 32 || d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 ||
      (end > 12 && bytes[12] !== 32)
    ) {
      throw new HttpHeadError(`Malformed status line "${clipBytes(bytes, 0, end)}"`);
    }
    const fields: number[] = [];
    scanFields(bytes, end + 2, size - 2, fields);
    const version = bytes[7] === 49 ? "1.1" : "1.0";
    return new ResponseHead(bytes, fields, size, version, d0 * 100 + d1 * 10 + d2, end);
  } catch (error) {
    if (error instanceof HttpHeadError) throw new HttpHeadError(error.message, 502);
    throw error;
  }
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

/** The Content-Length of `head` (every element of every field agreeing), or `null`. */
function contentLength(head: ParsedHead): number | null {
  const { bytes, fields } = head;
  let length: number | null = null;
  for (let i = head.indexOf("content-length"); i >= 0; i = head.indexOf("content-length", i + 1)) {
    const f = i * STRIDE;
    const end = fields[f + 3]!;
    for (let from = fields[f + 2]!; from <= end;) {
      const to = element(bytes, from, end);
      const a = ELEMENT[0]!;
      const b = ELEMENT[1]!;
      let n = 0;
      for (let j = a; j < b; j++) {
        const d = bytes[j]! - 48;
        if (d < 0 || d > 9) {
          n = -1;
          break;
        }
        n = n * 10 + d;
      }
      if (n < 0 || b === a || b - a > 15) {
        throw new HttpHeadError(`Invalid Content-Length "${clipBytes(bytes, a, b)}"`);
      }
      if (length !== null && n !== length) {
        throw new HttpHeadError("Differing Content-Length values");
      }
      length = n;
      from = to + 1;
    }
  }
  return length;
}

/**
 * The body framing of a request (RFC 9112 §6.3), refusing what a proxy
 * must not pass on: `Transfer-Encoding` together with `Content-Length`,
 * a transfer coding other than a final `chunked`, differing lengths.
 *
 * @throws {HttpHeadError} when the framing is ambiguous or invalid.
 *
 * @example
 * ```ts
 * import { parseRequestHead, requestFraming } from "./head.ts";
 * const head = parseRequestHead(new TextEncoder().encode("PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
 * console.assert(requestFraming(head!).kind === "length");
 * ```
 */
export function requestFraming(head: ParsedHead): BodyFraming {
  const length = contentLength(head);
  if (head.indexOf("transfer-encoding") >= 0) {
    if (length !== null) {
      throw new HttpHeadError("Both Content-Length and Transfer-Encoding: request refused");
    }
    const codings = head.tokens("transfer-encoding");
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new HttpHeadError(
        `Unsupported Transfer-Encoding "${clip(codings.join(", "))}" (only chunked is accepted)`,
      );
    }
    return { kind: "chunked" };
  }
  return length ? { kind: "length", length } : NO_BODY;
}

const NO_BODY: BodyFraming = Object.freeze({ kind: "none" });

/**
 * The body framing of a response to `method` (RFC 9112 §6.3): none for
 * HEAD, 1xx, 204 and 304; chunked; a length; or until the connection closes.
 *
 * @throws {HttpHeadError} (status 502) when the service's framing is invalid.
 *
 * @example
 * ```ts
 * import { parseResponseHead, responseFraming } from "./head.ts";
 * const head = parseResponseHead(new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"));
 * console.assert(responseFraming("HEAD", 200, head!).kind === "none");
 * ```
 */
export function responseFraming(method: string, status: number, head: ParsedHead): BodyFraming {
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) return NO_BODY;
  try {
    if (head.indexOf("transfer-encoding") >= 0) {
      const codings = head.tokens("transfer-encoding");
      if (codings.length > 0) {
        return codings[codings.length - 1] === "chunked" ? { kind: "chunked" } : { kind: "close" };
      }
    }
    const length = contentLength(head);
    if (length === null) return { kind: "close" };
    return length ? { kind: "length", length } : NO_BODY;
  } catch (error) {
    if (error instanceof HttpHeadError) throw new HttpHeadError(error.message, 502);
    throw error;
  }
}

/**
 * How a head is rebuilt from the bytes it was parsed from: the lines kept
 * are copied as bytes, never decoded and encoded again, so what a field
 * carried (obs-text included) crosses unchanged.
 */
export interface HeadEdit {
  /** Replaces the first line (given without its CRLF); `null` keeps it. */
  firstLine: string | null;
  /** One entry per header field: `false` leaves its line out. */
  keep: boolean[];
  /** Whole lines, each ending in CRLF, added before the empty line. */
  extra: string;
  /** `extra` as bytes (one per char), when the caller keeps them ready. */
  extraBytes?: Uint8Array | undefined;
}

/** The byte length of `head` after `edit`. */
export function editedSize(head: ParsedHead, edit: HeadEdit): number {
  const { fields, size } = head;
  const fieldsEnd = size - 2;
  let length = (edit.firstLine === null ? fields[0] ?? fieldsEnd : edit.firstLine.length + 2) +
    edit.extra.length + 2;
  for (let f = 0, i = 0; f < fields.length; f += STRIDE, i++) {
    if (edit.keep[i] !== false) length += (fields[f + STRIDE] ?? fieldsEnd) - fields[f]!;
  }
  return length;
}

/**
 * Writes `head` after `edit` into `out` at `at`, which must have
 * {@linkcode editedSize} bytes free; returns the offset after it. Nothing
 * is allocated: the hot path of every request.
 *
 * @example
 * ```ts
 * import { editedSize, parseRequestHead, writeEdited } from "./head.ts";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\nTE: x\r\n\r\n");
 * const head = parseRequestHead(bytes)!;
 * const edit = { firstLine: null, keep: [true, false], extra: "Via: b\r\n" };
 * const out = new Uint8Array(editedSize(head, edit));
 * writeEdited(out, 0, head, edit);
 * console.assert(new TextDecoder().decode(out) === "GET / HTTP/1.1\r\nHost: a\r\nVia: b\r\n\r\n");
 * ```
 */
export function writeEdited(out: Uint8Array, at: number, head: ParsedHead, edit: HeadEdit): number {
  const { bytes, fields, size } = head;
  const fieldsEnd = size - 2;
  if (edit.firstLine === null) {
    at = copy(out, at, bytes, 0, fields[0] ?? fieldsEnd);
  } else {
    at = writeLatin1(out, at, edit.firstLine);
    out[at++] = CR;
    out[at++] = LF;
  }
  // Runs of kept lines are copied in one piece.
  const count = fields.length / STRIDE;
  let run = -1;
  for (let i = 0; i <= count; i++) {
    const kept = i < count && edit.keep[i] !== false;
    if (kept && run < 0) run = fields[i * STRIDE]!;
    if (!kept && run >= 0) {
      at = copy(out, at, bytes, run, fields[i * STRIDE] ?? fieldsEnd);
      run = -1;
    }
  }
  if (edit.extraBytes !== undefined) {
    out.set(edit.extraBytes, at);
    at += edit.extraBytes.length;
  } else {
    at = writeLatin1(out, at, edit.extra);
  }
  out[at++] = CR;
  out[at++] = LF;
  return at;
}

/**
 * Copies `bytes[from..to]` into `out` at `at`; returns the end. A short
 * piece (a request line) is copied byte by byte: cheaper than the view
 * that `set` needs.
 */
function copy(out: Uint8Array, at: number, bytes: Uint8Array, from: number, to: number): number {
  if (to - from <= 32) {
    for (let i = from; i < to; i++) out[at++] = bytes[i]!;
    return at;
  }
  out.set(bytes.subarray(from, to), at);
  return at + to - from;
}

/** Writes `text` one byte per char (header values may carry obs-text); returns the end. */
function writeLatin1(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i) & 0xff;
  return at;
}

/** `text` (lines of header fields) as bytes, one per char, for {@linkcode HeadEdit.extraBytes}. */
export function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  writeLatin1(out, 0, text);
  return out;
}

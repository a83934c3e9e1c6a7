/**
 * A strict HTTP/1.1 message head parser (RFC 9112) for bytes from the
 * network: request and response heads, with the checks that stop request
 * smuggling (both `Content-Length` and `Transfer-Encoding`, differing
 * duplicate lengths, obs-fold, bare LF, control characters), and the body
 * framing that follows from a head.
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

/** A parsed request head. */
export interface RequestHead {
  /** The method, e.g. `GET`. */
  method: string;
  /** The request target as sent (origin form, or absolute form, `*`, authority form). */
  target: string;
  /** `1.0` or `1.1`. */
  version: "1.0" | "1.1";
  /** Header fields in order. */
  headers: HeaderList;
  /** Where each header field's line starts in the head's bytes (see {@linkcode rebuildHead}). */
  starts: number[];
  /** Byte length of the head, including its final empty line. */
  size: number;
}

/** A parsed response head. */
export interface ResponseHead {
  /** `1.0` or `1.1`. */
  version: "1.0" | "1.1";
  /** Status code. */
  status: number;
  /** Reason phrase as sent. */
  reason: string;
  /** Header fields in order. */
  headers: HeaderList;
  /** Where each header field's line starts in the head's bytes (see {@linkcode rebuildHead}). */
  starts: number[];
  /** Byte length of the head, including its final empty line. */
  size: number;
}

const CR = 13;
const LF = 10;

/** `tchar` of RFC 9110 §5.6.2. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = TOKEN[c + 32] = 1;

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

const ascii = new TextDecoder();

/** The head's bytes before `end` as a string of one char per byte (latin1). */
function headText(bytes: Uint8Array, end: number, high: boolean): string {
  if (!high) return ascii.decode(bytes.subarray(0, end));
  let s = "";
  for (let i = 0; i < end; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(end, i + 4096)));
  }
  return s;
}

/** `text` as a message's excerpt: printable, at most 40 chars. */
function clip(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, "?");
  return printable.length > 40 ? printable.slice(0, 40) + "…" : printable;
}

/** Bytes `from`..`to` as a message's excerpt. */
function clipBytes(bytes: Uint8Array, from: number, to: number): string {
  return clip(String.fromCharCode(...bytes.subarray(from, Math.min(to, from + 41))));
}

/** The index of the CR ending the line that starts at `from`; a CR without LF is refused. */
function lineEnd(bytes: Uint8Array, from: number): number {
  let i = from;
  while (bytes[i] !== CR) i++;
  if (bytes[i + 1] !== LF) throw new HttpHeadError("Bare CR or LF in the message head");
  return i;
}

/**
 * Where the scan of the header lines puts each field: name start, name
 * end, value start, value end (trimmed), four entries per field. Reused:
 * heads are parsed one at a time and their strings are cut before the
 * next parse.
 */
const FIELDS = new Int32Array(MAX_HEADERS * 4);

/**
 * Checks the header lines from `at` (just after the first line) to
 * `fieldsEnd` (where the final empty line starts) and records each field in
 * {@linkcode FIELDS}; returns the number of fields, negated when a byte
 * above 0x7f occurs (obs-text, so the head is decoded as latin1).
 */
function scanFields(bytes: Uint8Array, at: number, fieldsEnd: number, starts: number[]): number {
  let count = 0;
  let high = false;
  while (at < fieldsEnd) {
    if (count === MAX_HEADERS) throw new HttpHeadError(`More than ${MAX_HEADERS} header fields`);
    starts.push(at);
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
      if (c >= 128) high = true;
      i++;
    }
    if (bytes[i + 1] !== LF) throw new HttpHeadError("Bare CR or LF in the message head");
    let valueEnd = i;
    while (valueEnd > valueStart && (bytes[valueEnd - 1] === 32 || bytes[valueEnd - 1] === 9)) {
      valueEnd--;
    }
    const k = count * 4;
    FIELDS[k] = at;
    FIELDS[k + 1] = nameEnd;
    FIELDS[k + 2] = valueStart;
    FIELDS[k + 3] = valueEnd;
    count++;
    at = i + 2;
  }
  return high ? -count - 1 : count;
}

/** The fields recorded by {@linkcode scanFields}, cut from `text`. */
function fieldsOf(text: string, count: number): HeaderList {
  const headers: HeaderList = new Array(count);
  for (let f = 0; f < count; f++) {
    const k = f * 4;
    headers[f] = [text.slice(FIELDS[k], FIELDS[k + 1]), text.slice(FIELDS[k + 2], FIELDS[k + 3])];
  }
  return headers;
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
 * strings are then cut from one decoded copy of the head.
 *
 * @throws {HttpHeadError} when the head is malformed or smuggles.
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "./head.ts";
 * const head = parseRequestHead(new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
 * console.assert(head?.target === "/a");
 * ```
 */
export function parseRequestHead(bytes: Uint8Array, maxSize = MAX_HEAD_SIZE): RequestHead | null {
  const size = headEnd(bytes, 0, maxSize);
  if (size < 0) return null;
  // The request line: method SP target SP version, exactly.
  const end = lineEnd(bytes, 0);
  let sp1 = -1;
  let sp2 = -1;
  let high = false;
  for (let i = 0; i < end; i++) {
    const c = bytes[i]!;
    if (c === 32) {
      if (sp1 < 0) sp1 = i;
      else if (sp2 < 0) sp2 = i;
      else sp2 = end + 1;
    } else if (c >= 128) high = true;
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
  const starts: number[] = [];
  const scanned = scanFields(bytes, end + 2, size - 2, starts);
  const count = scanned < 0 ? -scanned - 1 : scanned;
  const text = headText(bytes, size - 2, high || scanned < 0);
  return {
    method: text.slice(0, sp1),
    target: text.slice(sp1 + 1, sp2),
    version,
    headers: fieldsOf(text, count),
    starts,
    size,
  };
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
    let high = false;
    for (let i = 13; i < end; i++) if (bytes[i]! >= 128) high = true;
    const starts: number[] = [];
    const scanned = scanFields(bytes, end + 2, size - 2, starts);
    const count = scanned < 0 ? -scanned - 1 : scanned;
    const text = headText(bytes, size - 2, high || scanned < 0);
    return {
      version: bytes[7] === 49 ? "1.1" : "1.0",
      status: d0 * 100 + d1 * 10 + d2,
      reason: end > 12 ? text.slice(13, end) : "",
      headers: fieldsOf(text, count),
      starts,
      size,
    };
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

/** The values of header `name` (lower case), in order. */
function headerValues(headers: HeaderList, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i++) {
    const [k, v] = headers[i]!;
    if (k.length === name.length && lowerName(k) === name) out.push(v);
  }
  return out;
}

/** The first value of header `name` (lower case), or `undefined`. */
export function headerValue(headers: HeaderList, name: string): string | undefined {
  for (let i = 0; i < headers.length; i++) {
    const [k, v] = headers[i]!;
    if (k.length === name.length && lowerName(k) === name) return v;
  }
  return undefined;
}

/** How many fields named `name` (lower case) there are. */
export function headerCount(headers: HeaderList, name: string): number {
  let n = 0;
  for (let i = 0; i < headers.length; i++) {
    const k = headers[i]![0];
    if (k.length === name.length && lowerName(k) === name) n++;
  }
  return n;
}

/** Comma-separated tokens of header `name`, lower case. */
export function headerTokens(headers: HeaderList, name: string): string[] {
  return headerValues(headers, name).flatMap((v) =>
    v.split(",").map((t) => t.trim().toLowerCase()).filter((t) => t.length > 0)
  );
}

/**
 * Whether a value of header `name` lists `token` (both lower case), as
 * {@linkcode headerTokens} would, without building the list.
 */
export function hasToken(headers: HeaderList, name: string, token: string): boolean {
  for (let i = 0; i < headers.length; i++) {
    const [k, v] = headers[i]!;
    if (k.length === name.length && lowerName(k) === name && listsToken(v, token)) return true;
  }
  return false;
}

/**
 * Calls `test` with the bounds of each comma-separated element of `value`,
 * trimmed, until it returns true; whether one did.
 */
function someElement(value: string, test: (from: number, to: number) => boolean): boolean {
  let from = 0;
  while (from <= value.length) {
    let to = value.indexOf(",", from);
    if (to < 0) to = value.length;
    let a = from;
    let b = to;
    while (a < b && isBlank(value.charCodeAt(a))) a++;
    while (b > a && isBlank(value.charCodeAt(b - 1))) b--;
    if (test(a, b)) return true;
    from = to + 1;
  }
  return false;
}

/** Whether the comma-separated `value` has the element `token` (lower case), any case. */
function listsToken(value: string, token: string): boolean {
  return someElement(value, (a, b) => {
    if (b - a !== token.length) return false;
    for (let i = 0; i < token.length; i++) {
      let c = value.charCodeAt(a + i);
      if (c >= 65 && c <= 90) c += 32;
      if (c !== token.charCodeAt(i)) return false;
    }
    return true;
  });
}

/** Whitespace as `String.prototype.trim` sees it in a latin1 header value. */
function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 0xa0 || (c >= 10 && c <= 13);
}

function contentLength(headers: HeaderList): number | null {
  let length: number | null = null;
  for (let h = 0; h < headers.length; h++) {
    const [k, value] = headers[h]!;
    if (k.length !== 14 || lowerName(k) !== "content-length") continue;
    someElement(value, (a, b) => {
      let n = 0;
      for (let i = a; i < b; i++) {
        const d = value.charCodeAt(i) - 48;
        if (d < 0 || d > 9) {
          n = -1;
          break;
        }
        n = n * 10 + d;
      }
      if (n < 0 || b === a || b - a > 15) {
        throw new HttpHeadError(`Invalid Content-Length "${clip(value.slice(a, b))}"`);
      }
      if (length !== null && n !== length) {
        throw new HttpHeadError("Differing Content-Length values");
      }
      length = n;
      return false;
    });
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
 * import { requestFraming } from "./head.ts";
 * console.assert(requestFraming([["Content-Length", "5"]]).kind === "length");
 * ```
 */
export function requestFraming(headers: HeaderList): BodyFraming {
  const length = contentLength(headers);
  if (headerCount(headers, "transfer-encoding") > 0) {
    if (length !== null) {
      throw new HttpHeadError("Both Content-Length and Transfer-Encoding: request refused");
    }
    const codings = headerTokens(headers, "transfer-encoding");
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
 * import { responseFraming } from "./head.ts";
 * console.assert(responseFraming("HEAD", 200, [["Content-Length", "5"]]).kind === "none");
 * ```
 */
export function responseFraming(method: string, status: number, headers: HeaderList): BodyFraming {
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) return NO_BODY;
  try {
    if (headerCount(headers, "transfer-encoding") > 0) {
      const codings = headerTokens(headers, "transfer-encoding");
      if (codings.length > 0) {
        return codings[codings.length - 1] === "chunked" ? { kind: "chunked" } : { kind: "close" };
      }
    }
    const length = contentLength(headers);
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
}

/** The byte length of `head` after `edit`. */
export function editedSize(head: { starts: number[]; size: number }, edit: HeadEdit): number {
  const { starts, size } = head;
  const fieldsEnd = size - 2;
  let length = (edit.firstLine === null ? starts[0] ?? fieldsEnd : edit.firstLine.length + 2) +
    edit.extra.length + 2;
  for (let i = 0; i < starts.length; i++) {
    if (edit.keep[i] !== false) length += (starts[i + 1] ?? fieldsEnd) - starts[i]!;
  }
  return length;
}

/**
 * Writes `head` (parsed from `bytes`) after `edit` into `out` at `at`,
 * which must have {@linkcode editedSize} bytes free; returns the offset
 * after it. Nothing is allocated: the hot path of every request.
 *
 * @example
 * ```ts
 * import { editedSize, parseRequestHead, writeEdited } from "./head.ts";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\nTE: x\r\n\r\n");
 * const head = parseRequestHead(bytes)!;
 * const edit = { firstLine: null, keep: [true, false], extra: "Via: b\r\n" };
 * const out = new Uint8Array(editedSize(head, edit));
 * writeEdited(out, 0, bytes, head, edit);
 * console.assert(new TextDecoder().decode(out) === "GET / HTTP/1.1\r\nHost: a\r\nVia: b\r\n\r\n");
 * ```
 */
export function writeEdited(
  out: Uint8Array,
  at: number,
  bytes: Uint8Array,
  head: { starts: number[]; size: number },
  edit: HeadEdit,
): number {
  const { starts, size } = head;
  const fieldsEnd = size - 2;
  if (edit.firstLine === null) {
    const firstEnd = starts[0] ?? fieldsEnd;
    out.set(bytes.subarray(0, firstEnd), at);
    at += firstEnd;
  } else {
    at = writeLatin1(out, at, edit.firstLine);
    out[at++] = CR;
    out[at++] = LF;
  }
  // Runs of kept lines are copied in one piece.
  let run = -1;
  for (let i = 0; i <= starts.length; i++) {
    const kept = i < starts.length && edit.keep[i] !== false;
    if (kept && run < 0) run = starts[i]!;
    if (!kept && run >= 0) {
      const end = starts[i] ?? fieldsEnd;
      out.set(bytes.subarray(run, end), at);
      at += end - run;
      run = -1;
    }
  }
  at = writeLatin1(out, at, edit.extra);
  out[at++] = CR;
  out[at++] = LF;
  return at;
}

/** Writes `text` one byte per char (header values may carry obs-text); returns the end. */
function writeLatin1(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i) & 0xff;
  return at;
}

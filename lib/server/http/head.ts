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
const asciiEncoder = new TextEncoder();

/** Bytes as a string of one char per byte (latin1); the common all-ASCII case natively. */
function latin1(bytes: Uint8Array, from: number, to: number): string {
  let plain = true;
  for (let i = from; i < to; i++) {
    if (bytes[i]! >= 0x80) {
      plain = false;
      break;
    }
  }
  if (plain) return ascii.decode(bytes.subarray(from, to));
  let s = "";
  for (let i = from; i < to; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(to, i + 4096)));
  }
  return s;
}

/** Splits head lines (without the final empty line); every line ended by CRLF. */
function lines(bytes: Uint8Array, size: number): string[] {
  const out = latin1(bytes, 0, size - 4).split("\r\n");
  for (const line of out) {
    if (line.includes("\r") || line.includes("\n")) {
      throw new HttpHeadError("Bare CR or LF in the message head");
    }
  }
  return out;
}

/** The fields of `raw` (the head's lines after the first), and where each line starts. */
function parseFields(raw: string[], offset: number): { headers: HeaderList; starts: number[] } {
  if (raw.length > MAX_HEADERS) throw new HttpHeadError(`More than ${MAX_HEADERS} header fields`);
  const headers: HeaderList = [];
  const starts: number[] = [];
  for (const line of raw) {
    starts.push(offset);
    offset += line.length + 2;
    if (line.length === 0) throw new HttpHeadError("Empty line inside the message head");
    const first = line.charCodeAt(0);
    if (first === 32 || first === 9) {
      throw new HttpHeadError("Folded header line (obs-fold) refused");
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpHeadError(`Header line without a name: "${clip(line)}"`);
    for (let i = 0; i < colon; i++) {
      const c = line.charCodeAt(i);
      if (c >= 128 || !TOKEN[c]) {
        throw new HttpHeadError(`Invalid header name "${clip(line.slice(0, colon))}"`);
      }
    }
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if ((c < 32 && c !== 9) || c === 127) {
        throw new HttpHeadError(`Control character in header "${line.slice(0, colon)}"`);
      }
    }
    headers.push([line.slice(0, colon), value]);
  }
  return { headers, starts };
}

function clip(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, "?");
  return printable.length > 40 ? printable.slice(0, 40) + "…" : printable;
}

/** Only visible ASCII (no controls, spaces or bytes above 0x7e). */
function visible(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 32 || c >= 127) return false;
  }
  return true;
}

function version(text: string | undefined): "1.0" | "1.1" {
  if (text === "HTTP/1.1") return "1.1";
  if (text === "HTTP/1.0") return "1.0";
  throw new HttpHeadError(`Unsupported protocol version "${clip(text ?? "")}"`, 505);
}

/**
 * Parses the request head at the start of `bytes`, or returns `null` when
 * it is not complete yet.
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
  const all = lines(bytes, size);
  const requestLine = all.shift() ?? "";
  const parts = requestLine.split(" ");
  if (parts.length !== 3) throw new HttpHeadError(`Malformed request line "${clip(requestLine)}"`);
  const [method, target] = parts as [string, string, string];
  if (!method || [...method].some((c) => c.charCodeAt(0) >= 128 || !TOKEN[c.charCodeAt(0)])) {
    throw new HttpHeadError(`Invalid method "${clip(method)}"`);
  }
  if (!target || !visible(target)) {
    throw new HttpHeadError("Invalid characters in the request target");
  }
  const v = version(parts[2]);
  const { headers, starts } = parseFields(all, requestLine.length + 2);
  return { method, target, version: v, headers, starts, size };
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
    const all = lines(bytes, size);
    const statusLine = all.shift() ?? "";
    const match = /^(HTTP\/1\.[01]) ([1-9][0-9]{2})(?: (.*))?$/.exec(statusLine);
    if (!match) throw new HttpHeadError(`Malformed status line "${clip(statusLine)}"`);
    const { headers, starts } = parseFields(all, statusLine.length + 2);
    return {
      version: version(match[1]),
      status: Number(match[2]),
      reason: match[3] ?? "",
      headers,
      starts,
      size,
    };
  } catch (error) {
    if (error instanceof HttpHeadError) throw new HttpHeadError(error.message, 502);
    throw error;
  }
}

/** The values of header `name` (lower case), in order. */
export function headerValues(headers: HeaderList, name: string): string[] {
  const out: string[] = [];
  for (const [k, v] of headers) {
    if (k.length === name.length && k.toLowerCase() === name) out.push(v);
  }
  return out;
}

/** Comma-separated tokens of header `name`, lower case. */
export function headerTokens(headers: HeaderList, name: string): string[] {
  return headerValues(headers, name).flatMap((v) =>
    v.split(",").map((t) => t.trim().toLowerCase()).filter((t) => t.length > 0)
  );
}

function contentLength(headers: HeaderList): number | null {
  const values = headerValues(headers, "content-length");
  if (values.length === 0) return null;
  let length: number | null = null;
  for (const value of values) {
    for (const part of value.split(",")) {
      const text = part.trim();
      if (!/^[0-9]{1,15}$/.test(text)) {
        throw new HttpHeadError(`Invalid Content-Length "${clip(text)}"`);
      }
      const n = Number(text);
      if (length !== null && n !== length) {
        throw new HttpHeadError("Differing Content-Length values");
      }
      length = n;
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
 * import { requestFraming } from "./head.ts";
 * console.assert(requestFraming([["Content-Length", "5"]]).kind === "length");
 * ```
 */
export function requestFraming(headers: HeaderList): BodyFraming {
  const codings = headerTokens(headers, "transfer-encoding");
  const length = contentLength(headers);
  if (headerValues(headers, "transfer-encoding").length > 0) {
    if (length !== null) {
      throw new HttpHeadError("Both Content-Length and Transfer-Encoding: request refused");
    }
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new HttpHeadError(
        `Unsupported Transfer-Encoding "${clip(codings.join(", "))}" (only chunked is accepted)`,
      );
    }
    return { kind: "chunked" };
  }
  return length ? { kind: "length", length } : { kind: "none" };
}

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
  if (method === "HEAD" || status < 200 || status === 204 || status === 304) {
    return { kind: "none" };
  }
  try {
    const codings = headerTokens(headers, "transfer-encoding");
    if (codings.length > 0) {
      return codings[codings.length - 1] === "chunked" ? { kind: "chunked" } : { kind: "close" };
    }
    const length = contentLength(headers);
    if (length === null) return { kind: "close" };
    return length ? { kind: "length", length } : { kind: "none" };
  } catch (error) {
    if (error instanceof HttpHeadError) throw new HttpHeadError(error.message, 502);
    throw error;
  }
}

/** Serialises a head: `firstLine`, then the fields, then the empty line. */
export function serializeHead(firstLine: string, headers: HeaderList): Uint8Array {
  let text = firstLine + "\r\n";
  for (const [k, v] of headers) text += `${k}: ${v}\r\n`;
  return bytesOf(text + "\r\n");
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

/** `text` as bytes, one per char: header values may carry bytes above 0x7f (obs-text). */
function bytesOf(text: string): Uint8Array {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) >= 0x80) {
      plain = false;
      break;
    }
  }
  if (plain) return asciiEncoder.encode(text);
  // Header values may carry bytes above 0x7f (obs-text): one byte per char, as they came.
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

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
 * The heads it returns ({@linkcode RequestHead}, {@linkcode ResponseHead})
 * are in `parsed_head.ts`, the names recognised while scanning in
 * `header_names.ts`, and rebuilding a head with a tunnel's changes in
 * `head_edit.ts`.
 *
 * Pure: no I/O. A head that is refused throws {@linkcode HttpHeadError},
 * whose message names the problem and is safe to show to the sender.
 *
 * @module
 */

import { kindOf } from "./header_names.ts";
import {
  ELEMENT,
  element,
  latin1,
  type ParsedHead,
  RequestHead,
  ResponseHead,
  STRIDE,
} from "./parsed_head.ts";

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

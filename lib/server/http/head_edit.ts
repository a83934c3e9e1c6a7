/**
 * Rebuilding a parsed head with a tunnel's changes ({@linkcode HeadEdit}: a
 * new first line, fields left out, lines added) straight into the frame
 * that carries it: the lines kept are copied as bytes, never decoded and
 * encoded again, so what a field carried (obs-text included) crosses
 * unchanged, and nothing is allocated per request. {@linkcode editedSize}
 * says how many bytes {@linkcode writeEdited} will write.
 *
 * Pure: no I/O.
 *
 * @module
 */

import { type ParsedHead, STRIDE } from "./parsed_head.ts";

const CR = 13;
const LF = 10;

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
 * import { parseRequestHead } from "./head.ts";
 * import { editedSize, writeEdited } from "./head_edit.ts";
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

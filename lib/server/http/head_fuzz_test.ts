// 100,000 random and mutated request heads through the parser: it either
// refuses a head with an HttpHeadError or accepts one whose every part is
// clean and which reads back the same after serialising (what the splice
// engine forwards is what was checked). Seeded, so a failure reproduces.

import assert from "node:assert/strict";
import { HttpHeadError, parseRequestHead, requestFraming } from "./head.ts";
import { editedSize, writeEdited } from "./head_edit.ts";
import { BodyTracker } from "./framing.ts";
import { xorshift32 as rng } from "../../util/mod.ts";

const PIECES = [
  "GET",
  "POST",
  " ",
  "/",
  "/a?b=c",
  "http://h.test/x",
  "HTTP/1.1",
  "HTTP/1.0",
  "\r\n",
  "\n",
  "\r",
  ":",
  "Host",
  "Content-Length",
  "Transfer-Encoding",
  "chunked",
  "5",
  "-1",
  ",",
  "\t",
  "\x00",
  "\x7f",
  "\u00e9",
  "X-A",
  "Upgrade",
  "Connection",
];

function validHead(next: () => number): string {
  const pick = <T>(list: T[]) => list[Math.floor(next() * list.length)]!;
  let head = `${pick(["GET", "POST", "PUT", "OPTIONS"])} ${pick(["/", "/x", "/a?b=1"])} ${
    pick(["HTTP/1.1", "HTTP/1.0"])
  }\r\nHost: ${pick(["a.test", "b.test:8080"])}\r\n`;
  const n = Math.floor(next() * 5);
  for (let i = 0; i < n; i++) {
    head += `${pick(["X-A", "Content-Length", "Transfer-Encoding", "Connection", "Cookie"])}: ${
      pick(["1", "5", "chunked", "close", "a=b; c=d", "keep-alive, Upgrade"])
    }\r\n`;
  }
  return head + "\r\n";
}

function mutate(text: string, next: () => number): string {
  const count = 1 + Math.floor(next() * 4);
  for (let i = 0; i < count; i++) {
    const at = Math.floor(next() * (text.length + 1));
    const kind = next();
    if (kind < 0.4) {
      const piece = PIECES[Math.floor(next() * PIECES.length)]!;
      text = text.slice(0, at) + piece + text.slice(at);
    } else if (kind < 0.7) {
      text = text.slice(0, at) + text.slice(at + 1 + Math.floor(next() * 3));
    } else {
      const c = String.fromCharCode(Math.floor(next() * 256));
      text = text.slice(0, at) + c + text.slice(at + 1);
    }
  }
  return text;
}

/** Control characters (tab allowed unless `strict`), DEL, and with `strict` spaces too. */
function hasControl(text: string, strict: boolean): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 127 || (c < 32 && (strict || c !== 9)) || (strict && c === 32)) return true;
  }
  return false;
}

function bytesOf(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/**
 * A plain reading of RFC 9112's request head, kept simple so that it is
 * evidently right: split into lines, then fields, with regular expressions.
 * The product's parser scans bytes once instead; the two must agree on
 * every head (accepted with the same parts, or refused).
 */
function referenceParse(bytes: Uint8Array): { request: string[]; headers: string[][] } | null {
  const text = String.fromCharCode(...bytes);
  const end = text.indexOf("\r\n\r\n");
  // A bare LF anywhere up to the end of the head refuses it.
  if (/(^|[^\r])\n/.test(end < 0 ? text : text.slice(0, end + 4))) return null;
  if (end < 0) return null;
  const lines = text.slice(0, end).split("\r\n");
  if (lines.some((line) => /[\r\n]/.test(line))) return null;
  const request = lines.shift()!.split(" ");
  if (request.length !== 3) return null;
  const [method, target, version] = request as [string, string, string];
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) return null;
  if (!/^[\x21-\x7e]+$/.test(target)) return null;
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") return null;
  const headers: string[][] = [];
  for (const line of lines) {
    const match = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/s.exec(line);
    if (!match || hasControl(match[2]!, false)) return null;
    headers.push([match[1]!, match[2]!]);
  }
  return { request, headers };
}

Deno.test("head fuzz: 100,000 heads are refused cleanly or accepted clean", () => {
  const next = rng(0xb0220);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 100_000; i++) {
    const text = i % 4 === 0 ? validHead(next) : mutate(validHead(next), next);
    const bytes = bytesOf(text);
    const expected = referenceParse(bytes);
    let head;
    try {
      head = parseRequestHead(bytes);
    } catch (error) {
      assert.ok(error instanceof HttpHeadError, `case ${i}: ${JSON.stringify(text)}: ${error}`);
      assert.equal(expected, null, `case ${i}: refused a head the reference accepts`);
      refused++;
      continue;
    }
    if (!head) continue;
    assert.deepEqual(
      { request: [head.method, head.target, `HTTP/${head.version}`], headers: head.headers },
      expected,
      `case ${i}: ${JSON.stringify(text)}`,
    );
    try {
      requestFraming(head);
    } catch (error) {
      assert.ok(error instanceof HttpHeadError, `case ${i}: ${JSON.stringify(text)}: ${error}`);
      refused++;
      continue;
    }
    accepted++;
    assert.ok(!hasControl(head.method + head.target, true), `case ${i}: request line`);
    for (const [name, value] of head.headers) {
      assert.ok(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name), `case ${i}: name ${name}`);
      assert.ok(!hasControl(value, false), `case ${i}: value ${JSON.stringify(value)}`);
    }
    // What the engine forwards (the head after an edit that keeps every line) reads back the same.
    const edit = { firstLine: null, keep: head.headers.map(() => true), extra: "" };
    const forwarded = new Uint8Array(editedSize(head, edit));
    writeEdited(forwarded, 0, head, edit);
    const again = parseRequestHead(forwarded);
    assert.deepEqual(again?.headers, head.headers, `case ${i}`);
  }
  assert.ok(accepted > 20_000 && refused > 20_000, `accepted ${accepted}, refused ${refused}`);
});

Deno.test("chunked fuzz: mutated bodies end where they should or are refused", () => {
  const next = rng(0xc4c4);
  for (let i = 0; i < 20_000; i++) {
    const body = mutate("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", next);
    const tracker = new BodyTracker({ kind: "chunked" });
    try {
      const used = tracker.feed(bytesOf(body));
      assert.ok(used <= body.length);
      if (tracker.done) assert.equal(tracker.feed(bytesOf("more")), 0);
    } catch (error) {
      assert.ok(error instanceof HttpHeadError, `case ${i}: ${JSON.stringify(body)}: ${error}`);
    }
  }
});

import assert from "node:assert/strict";
import { parseRequestHead, parseResponseHead } from "./head.ts";
import { editedSize, writeEdited } from "./head_edit.ts";
import type { ParsedHead } from "./parsed_head.ts";

/** `head` after `edit`, as the engine writes it. */
const edited = (
  head: ParsedHead,
  edit: { firstLine: string | null; keep: boolean[]; extra: string },
) => {
  const out = new Uint8Array(editedSize(head, edit));
  assert.equal(writeEdited(out, 0, head, edit), out.length);
  return out;
};
const assertEquals = <T>(actual: T, expected: T, message?: string) =>
  assert.deepStrictEqual(actual, expected, message);

Deno.test("head: heads round-trip through the engine's edit, bytes above 0x7f included", () => {
  const text = "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\u00e9\r\n\r\n";
  const wire = Uint8Array.from(text, (c) => c.charCodeAt(0));
  const head = parseRequestHead(wire)!;
  assertEquals(head.headers, [["Host", "a"], ["X-Name", "caf\u00e9"]]);
  const out = edited(head, { firstLine: null, keep: [true, true], extra: "" });
  assertEquals(out, wire);
  assertEquals(out[out.length - 3], 10);
});

Deno.test("head edit: kept lines cross as bytes, dropped lines go, first line and extras replace", () => {
  // A value with obs-text (0xe9) must cross byte for byte.
  const wire = new Uint8Array([
    ...new TextEncoder().encode(
      "GET http://a/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-N: caf",
    ),
    0xe9,
    ...new TextEncoder().encode("\r\nTE: trailers\r\n\r\n"),
  ]);
  const head = parseRequestHead(wire)!;
  assert.deepEqual(head.fieldCount, head.headers.length);
  const edit = {
    firstLine: "GET /x HTTP/1.1",
    keep: [true, false, true, false],
    extra: "Via: b\r\n",
  };
  const out = edited(head, edit);
  assert.equal(out.length, editedSize(head, edit));
  const text = Array.from(out, (b) => String.fromCharCode(b)).join("");
  assert.equal(text, "GET /x HTTP/1.1\r\nHost: a\r\nX-N: caf\u00e9\r\nVia: b\r\n\r\n");
  // Nothing changed: the same bytes; written at an offset of a larger buffer.
  const same = { firstLine: null, keep: [true, true, true, true], extra: "" };
  const into = new Uint8Array(wire.length + 5);
  assert.equal(writeEdited(into, 5, head, same), into.length);
  assert.deepEqual(into.subarray(5), wire);
  // A head without fields.
  const bare = new TextEncoder().encode("HTTP/1.0 204 No Content\r\n\r\n");
  const response = parseResponseHead(bare)!;
  const upgraded = edited(response, {
    firstLine: "HTTP/1.1 204 No Content",
    keep: [],
    extra: "Connection: keep-alive\r\n",
  });
  assert.equal(
    new TextDecoder().decode(upgraded),
    "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n",
  );
});

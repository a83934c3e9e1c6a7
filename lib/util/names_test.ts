import { assert, assertEquals } from "../testing/mod.ts";
import { DNS_LABEL, HEADER_NAME, HOST_NAME, HOST_PATTERN, patternCovers } from "./names.ts";

Deno.test("host patterns: exact names, any-depth and one-label wildcards", () => {
  assert(patternCovers("app.test", "app.test"));
  assert(!patternCovers("app.test", "x.app.test"));
  assert(patternCovers("*.ivy.test", "app.ivy.test"));
  assert(patternCovers("*.ivy.test", "a.b.ivy.test"));
  assert(!patternCovers("*.ivy.test", "ivy.test"));
  assert(!patternCovers("*.ivy.test", "evilivy.test"));
  assert(patternCovers("*.ivy.test", "app.ivy.test", { oneLabel: true }));
  assert(!patternCovers("*.ivy.test", "a.b.ivy.test", { oneLabel: true }));
});

Deno.test("name shapes", () => {
  assertEquals(["app.example.com", "localhost", "-bad.com", "a..b"].map((n) => HOST_NAME.test(n)), [
    true,
    true,
    false,
    false,
  ]);
  assert(HOST_PATTERN.test("*.example.com") && !HOST_NAME.test("*.example.com"));
  assert(!HOST_PATTERN.test("a.*.example.com"));
  assert(DNS_LABEL.test("app-1") && !DNS_LABEL.test("app.x"));
  assert(HEADER_NAME.test("X-Forwarded-For") && !HEADER_NAME.test("Bad Name"));
});

import { assertEquals } from "../lib/testing/mod.ts";
import { checkImport, cyclesOf, type Import, importsOf } from "./check_deps.ts";

const imp = (from: string, to: string): Import => ({ from, to, line: 1 });
const verdict = (from: string, to: string) => checkImport(imp(from, to))?.message ?? "ok";

Deno.test("check_deps: down through mod.ts passes; up, sideways and around mod.ts do not", () => {
  assertEquals(verdict("lib/server/session.ts", "lib/mux/mod.ts"), "ok");
  assertEquals(verdict("lib/server/tunnels/tcp.ts", "lib/server/http_front.ts"), "ok");
  assertEquals(
    verdict("lib/server/session.ts", "lib/mux/mux.ts"),
    "lib/server/session.ts:1: imports lib/mux/mux.ts; go through lib/mux/mod.ts",
  );
  assertEquals(
    verdict("lib/mux/mux.ts", "lib/server/mod.ts"),
    "lib/mux/mux.ts:1: lib/mux/ imports lib/server/, which is not below it " +
      "(it may import util, protocol, transport)",
  );
  assertEquals(
    verdict("lib/monitor/alerts.ts", "lib/storage/mod.ts").includes("not below it"),
    true,
    "siblings are not below each other",
  );
});

Deno.test("check_deps: tests and helpers, mains and their command lines", () => {
  assertEquals(verdict("lib/util/rate_test.ts", "lib/testing/mod.ts"), "ok");
  assertEquals(
    verdict("lib/util/rate.ts", "lib/testing/mod.ts"),
    "lib/util/rate.ts:1: production code imports the test helpers lib/testing/mod.ts",
  );
  assertEquals(
    verdict("lib/util/rate_test.ts", "tests/_pebble.ts"),
    "lib/util/rate_test.ts:1: imports tests/_pebble.ts; test helpers live in lib/testing/",
  );
  assertEquals(verdict("main_server.ts", "lib/server/cli.ts"), "ok");
  assertEquals(verdict("tests/e2e_test.ts", "lib/server/mod.ts"), "ok");
  assertEquals(verdict("main_client.ts", "lib/client/client.ts").includes("go through"), true);
});

Deno.test("check_deps: imports in comments do not count; cycles are found, self-loops too", () => {
  const source = [
    "/** ```ts",
    ' * import { x } from "../mux/mux.ts";',
    " * ``` */",
    'import { y } from "../util/mod.ts";',
    'export * from "./stream.ts";',
  ].join("\n");
  assertEquals(importsOf("/r", "lib/mux/a.ts", source), [
    { from: "lib/mux/a.ts", to: "lib/util/mod.ts", line: 4 },
    { from: "lib/mux/a.ts", to: "lib/mux/stream.ts", line: 5 },
  ]);
  assertEquals(
    cyclesOf([imp("a.ts", "b.ts"), imp("b.ts", "c.ts"), imp("c.ts", "a.ts"), imp("c.ts", "d.ts")]),
    [["a.ts", "b.ts", "c.ts"]],
  );
  assertEquals(cyclesOf([imp("a.ts", "a.ts")]), [["a.ts"]]);
  assertEquals(cyclesOf([imp("a.ts", "b.ts")]), []);
});

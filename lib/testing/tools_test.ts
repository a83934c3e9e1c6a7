import { assertEquals } from "./assert.ts";
import { has, lacks } from "./tools.ts";

Deno.test("tools: found on PATH as a spawn finds them; a missing one is ignored outside CI only", () => {
  assertEquals(has("sh"), true);
  assertEquals(has("burrow-no-such-tool"), false);
  const saved = Deno.env.get("CI");
  try {
    Deno.env.delete("CI");
    assertEquals(lacks("sh"), false);
    assertEquals(lacks("sh", "burrow-no-such-tool"), true);
    Deno.env.set("CI", "true");
    assertEquals(lacks("burrow-no-such-tool"), false, "in CI the test runs, and fails");
  } finally {
    if (saved === undefined) Deno.env.delete("CI");
    else Deno.env.set("CI", saved);
  }
});

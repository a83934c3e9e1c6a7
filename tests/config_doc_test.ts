// The README's configuration reference is generated from the schema and must be current.

import { assertEquals } from "../lib/testing/mod.ts";

Deno.test("README configuration reference matches the schema (deno task docs)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../scripts/config_doc.ts", import.meta.url).pathname, "--check"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
});

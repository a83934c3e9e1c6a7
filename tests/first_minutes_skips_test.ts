// Issue "The first ten minutes", item 8, from the outside: a test whose tool is missing is counted
// by `deno test` as ignored (not as passed in a few milliseconds), and in CI it runs and fails.
// Each case runs a real `deno test` on a throwaway test file that needs a tool no machine has.

import { assert, assertEquals } from "../lib/testing/mod.ts";

const TOOLS = new URL("../lib/testing/tools.ts", import.meta.url).href;

/** Runs `deno test` on a file needing `burrow-no-such-tool`; its exit code and plain output. */
async function runNeedingMissingTool(ci: boolean): Promise<{ code: number; out: string }> {
  const dir = await Deno.makeTempDir({ prefix: "burrow-skips-" });
  try {
    const file = `${dir}/needs_test.ts`;
    await Deno.writeTextFile(
      file,
      `import { testNeeding } from "${TOOLS}";\n` +
        `const test = { tool: testNeeding("burrow-no-such-tool") };\n` +
        `test.tool("drives the tool", () => {\n` +
        `  new Deno.Command("burrow-no-such-tool").outputSync();\n` +
        `});\n` +
        `Deno.test("needs nothing", () => {});\n`,
    );
    const env: Record<string, string> = { NO_COLOR: "1" };
    if (ci) env.CI = "true";
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--no-check", file],
      env,
      clearEnv: false,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: output.code, out: decode(output.stdout) + decode(output.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a test whose tool is missing is reported as ignored outside CI, and fails in CI", async () => {
  // The child inherits this process's environment: outside CI means no CI variable at all.
  const saved = Deno.env.get("CI");
  Deno.env.delete("CI");
  try {
    const outside = await runNeedingMissingTool(false);
    assertEquals(outside.code, 0, outside.out);
    assert(/drives the tool \.\.\. ignored/.test(outside.out), outside.out);
    assert(/ok \| 1 passed \| 0 failed \| 1 ignored/.test(outside.out), outside.out);
    assert(!/skipping/.test(outside.out), "no 'skipping' line that reads like a pass");

    const inCi = await runNeedingMissingTool(true);
    assertEquals(inCi.code, 1, inCi.out);
    assert(inCi.out.includes("required in CI but not installed: burrow-no-such-tool"), inCi.out);
    assert(/FAILED \| 1 passed \| 1 failed/.test(inCi.out), inCi.out);
  } finally {
    if (saved !== undefined) Deno.env.set("CI", saved);
  }
});

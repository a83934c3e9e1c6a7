/**
 * Tests that drive real tools (dig, curl, chromium, pebble …): whether the
 * tools are installed is decided once, when the test module loads, so that a
 * test whose tools are missing is reported by `deno test` as *ignored*, not
 * as passed in a few milliseconds.
 *
 * In CI (`CI=true`) nothing is ignored: the test runs and fails where it
 * first uses the missing tool, and module load says which tool that is.
 *
 * A file registers such tests through a small object named `test`, one
 * entry per need, so that each call keeps the shape `deno fmt` leaves on
 * one line (`test.dig("name", async () => {`) and the test's body keeps its
 * indentation.
 *
 * @example
 * ```ts ignore
 * import { testNeeding } from "../lib/testing/mod.ts";
 * // Ignored (outside CI) when their tools are missing.
 * const test = { dig: testNeeding("dig", "dnsmasq") };
 * test.dig("dig through a UDP tunnel", async () => {
 *   // …
 * });
 * ```
 *
 * @module
 */

import { join } from "node:path";

/** Whether this is a CI run (`CI=true`), where a missing tool is a failure rather than a skip. */
export function inCI(): boolean {
  return Deno.env.get("CI") === "true";
}

/** Whether `tool` is an executable file in one of `$PATH`'s directories (as a spawn finds it). */
export function has(tool: string): boolean {
  const path = Deno.env.get("PATH") ?? "";
  for (const dir of path.split(Deno.build.os === "windows" ? ";" : ":")) {
    if (!dir) continue;
    try {
      const info = Deno.statSync(join(dir, tool));
      if (info.isFile && (info.mode === null || (info.mode & 0o111) !== 0)) return true;
    } catch { /* not in this directory */ }
  }
  return false;
}

/**
 * The `ignore:` of a test that needs `tools`: `true` outside CI when one of
 * them is missing, `false` otherwise. In CI a missing tool is reported on
 * stderr here and the test is left to fail.
 */
export function lacks(...tools: string[]): boolean {
  const missing = tools.filter((tool) => !has(tool));
  if (!missing.length) return false;
  if (inCI()) {
    console.error(`required in CI but not installed: ${missing.join(", ")}`);
    return false;
  }
  return true;
}

/** Registers one test: `Deno.test`'s two-argument form. */
export type TestRegistrar = (
  name: string,
  fn: (t: Deno.TestContext) => void | Promise<void>,
) => void;

/** Registers tests with `ignore: ignore` (Deno reports them as ignored, not passed). */
export function testIgnoredIf(ignore: boolean): TestRegistrar {
  return (name, fn) => Deno.test({ name, ignore, fn });
}

/** Registers tests that need `tools`: ignored outside CI when one is missing ({@linkcode lacks}). */
export function testNeeding(...tools: string[]): TestRegistrar {
  return testIgnoredIf(lacks(...tools));
}

/** Chromium's flags for a headless run in tests: no sandbox, GPU, first-run pages or proxy. */
export const CHROMIUM_HEADLESS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--no-default-browser-check",
  "--no-proxy-server",
];

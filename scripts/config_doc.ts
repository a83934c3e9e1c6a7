/**
 * `deno task docs`: writes the README's configuration reference tables from
 * the schema that validates the configuration (one source of truth).
 * `--check` only reports whether the README is current (exit 1 if not); the
 * test suite runs it.
 *
 * @module
 */

import { configReference, type ReferenceRow } from "../lib/config/mod.ts";

const README = new URL("../README.md", import.meta.url);

function table(rows: ReferenceRow[]): string {
  const header = "| key | type | default | meaning |\n| --- | --- | --- | --- |";
  const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\\\\|", "\\|");
  return [
    header,
    ...rows.map((r) => `| \`${r.key}\` | ${cell(r.type)} | ${r.default} | ${r.doc} |`),
  ].join("\n");
}

/** The README with both generated tables in place. */
export async function render(text: string): Promise<string> {
  let out = text;
  for (const section of ["server", "client"] as const) {
    const begin = `<!-- BEGIN generated config:${section} (deno task docs) -->`;
    const end = `<!-- END generated config:${section} -->`;
    const i = out.indexOf(begin);
    const j = out.indexOf(end);
    if (i < 0 || j < i) throw new Error(`README.md lacks the markers ${begin} … ${end}`);
    out = out.slice(0, i + begin.length) + "\n\n" + table(configReference(section)) + "\n\n" +
      out.slice(j);
  }
  // Formatted the way `deno fmt` leaves it, so `deno fmt --check` and this agree.
  const fmt = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext", "md", "-"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = fmt.stdin.getWriter();
  await writer.write(new TextEncoder().encode(out));
  await writer.close();
  return new TextDecoder().decode((await fmt.output()).stdout);
}

if (import.meta.main) {
  const current = await Deno.readTextFile(README);
  const next = await render(current);
  if (Deno.args.includes("--check")) {
    if (next !== current) {
      console.error("README.md's configuration reference is out of date: run `deno task docs`");
      Deno.exit(1);
    }
    console.error("README.md's configuration reference is current");
  } else {
    await Deno.writeTextFile(README, next);
    console.error(next === current ? "README.md already current" : "README.md updated");
  }
}

/**
 * `deno task deps` (part of `deno task ok`): checks which way the imports
 * of `lib/` point.
 *
 * - A folder of `lib/` imports only the folders below it ({@linkcode LAYERS}).
 * - An import that crosses into another folder goes through that folder's
 *   `mod.ts`, its public face.
 * - Production code never imports tests or test helpers (`lib/testing/`,
 *   `tests/`); a unit test beside its code imports its own folder freely,
 *   other folders through their `mod.ts`, and helpers from `lib/testing/`.
 * - No module imports itself back through others (no cycles, type imports
 *   included: they tie the files together for a reader all the same).
 *
 * The mains and scripts may import any folder's `mod.ts`, and the command
 * lines (`lib/<folder>/cli.ts`), which are not part of a folder's library;
 * a folder's `cli.ts` may import the `cli.ts` of a folder below it.
 *
 * ```sh
 * deno run --allow-read scripts/check_deps.ts        # exit 1 and a list when anything is off
 * ```
 *
 * @module
 */

import { dirname, join, relative, resolve } from "node:path";

/** What each folder of `lib/` may import, besides itself: the layers below it. */
export const LAYERS: Record<string, readonly string[]> = {
  util: [],
  // protocol below config and storage: the tunnel spec, which the client's YAML, the wire
  // check and the tunnel DAO share, lives beside the wire message it describes.
  protocol: ["util"],
  config: ["util", "protocol"],
  transport: ["util"],
  mux: ["util", "protocol", "transport"],
  storage: ["util", "config", "protocol"],
  auth: ["util", "config", "protocol"],
  monitor: ["util", "config"],
  cluster: ["util", "config", "protocol", "transport", "mux", "storage"],
  client: ["util", "config", "protocol", "transport", "mux"],
  server: [
    "util",
    "config",
    "protocol",
    "transport",
    "mux",
    "storage",
    "auth",
    "monitor",
    "cluster",
  ],
  testing: ["util", "config", "protocol", "transport", "mux"],
};

/**
 * Imports across layers that are known and waiting for their fix, each with
 * the reason. Keep this list short: an entry is debt, not permission.
 */
export const EXCEPTIONS: ReadonlyArray<{ from: string; to: string; why: string }> = [];

/** Files outside a folder's library that a main or script may import besides `mod.ts`. */
const ENTRY_POINTS = new Set(["cli.ts"]);

/** One import found in a file. */
export interface Import {
  /** The importing file, relative to the root. */
  from: string;
  /** The imported file, relative to the root. */
  to: string;
  /** 1-based line of the import. */
  line: number;
}

/** One rule broken. */
export interface Violation {
  /** What is wrong, naming the file and line. */
  message: string;
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm;

/** The relative imports of `source` (a file at `file` under `root`), comments skipped. */
export function importsOf(root: string, file: string, source: string): Import[] {
  // Blank out comments (keeping line breaks) so that examples in doc comments do not count.
  const code = source.replace(
    /\/\*[\s\S]*?\*\/|\/\/[^\n]*/g,
    (comment) => comment.replace(/[^\n]/g, " "),
  );
  const out: Import[] = [];
  for (const match of code.matchAll(SPECIFIER)) {
    const target = resolve(dirname(join(root, file)), match[1]!);
    const line = code.slice(0, match.index).split("\n").length;
    out.push({ from: file, to: relative(root, target), line });
  }
  return out;
}

/** `lib/<folder>/…` → folder; anything else → null. */
function folderOf(path: string): string | null {
  const parts = path.split("/");
  return parts[0] === "lib" && parts.length > 2 ? parts[1]! : null;
}

function isTest(path: string): boolean {
  return path.endsWith("_test.ts") || path.startsWith("tests/") ||
    path.startsWith("lib/testing/");
}

/** The rules about folders, layers and `mod.ts` that `imp` breaks, if any. */
export function checkImport(imp: Import): Violation | null {
  const at = `${imp.from}:${imp.line}`;
  const from = folderOf(imp.from);
  const to = folderOf(imp.to);
  if (imp.to.startsWith("tests/") && !imp.from.startsWith("tests/")) {
    return { message: `${at}: imports ${imp.to}; test helpers live in lib/testing/` };
  }
  if (to === null) return null;
  if (to === "testing" && !isTest(imp.from)) {
    return { message: `${at}: production code imports the test helpers ${imp.to}` };
  }
  if (from === to) return null;
  const file = imp.to.slice(`lib/${to}/`.length);
  if (from === null) {
    if (file === "mod.ts" || ENTRY_POINTS.has(file)) return null;
    return { message: `${at}: imports ${imp.to}; go through lib/${to}/mod.ts` };
  }
  const allowed = LAYERS[from];
  if (allowed === undefined) return { message: `${at}: lib/${from}/ is not in the layer table` };
  const excepted = EXCEPTIONS.some((e) => e.from === from && e.to === to);
  if (!allowed.includes(to) && !excepted && !(to === "testing" && isTest(imp.from))) {
    return {
      message: `${at}: lib/${from}/ imports lib/${to}/, which is not below it ` +
        `(it may import ${allowed.length ? allowed.join(", ") : "nothing"})`,
    };
  }
  // A command line may build on another folder's command-line helpers.
  const commandLine = ENTRY_POINTS.has(file) && imp.from.endsWith("/cli.ts");
  if (file !== "mod.ts" && !commandLine) {
    return { message: `${at}: imports ${imp.to}; go through lib/${to}/mod.ts` };
  }
  return null;
}

/** The cycles of the import graph, each as the files around it (Tarjan's components). */
export function cyclesOf(imports: readonly Import[]): string[][] {
  const edges = new Map<string, string[]>();
  for (const { from, to } of imports) {
    edges.set(from, [...edges.get(from) ?? [], to]);
    if (!edges.has(to)) edges.set(to, []);
  }
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (node: string) => {
    index.set(node, counter);
    low.set(node, counter++);
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      const selfLoop = edges.get(node)!.includes(node);
      if (component.length > 1 || selfLoop) out.push(component.sort());
    }
  };
  for (const node of [...edges.keys()].sort()) if (!index.has(node)) visit(node);
  return out;
}

/** The TypeScript files under `dir` (relative to `root`), recursively. */
async function filesUnder(root: string, dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(root, dir))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await filesUnder(root, path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** Every violation in the project at `root`. */
export async function checkProject(root: string): Promise<Violation[]> {
  const files = [
    ...await filesUnder(root, "lib"),
    ...await filesUnder(root, "tests"),
    ...await filesUnder(root, "scripts"),
    ...["main_server.ts", "main_client.ts"],
  ];
  const imports: Import[] = [];
  for (const file of files) {
    imports.push(...importsOf(root, file, await Deno.readTextFile(join(root, file))));
  }
  const violations: Violation[] = [];
  for (const imp of imports) {
    const v = checkImport(imp);
    if (v) violations.push(v);
  }
  for (const cycle of cyclesOf(imports.filter((i) => !isTest(i.from)))) {
    violations.push({ message: `import cycle: ${cycle.join(" → ")}` });
  }
  return violations;
}

if (import.meta.main) {
  const root = resolve(new URL("..", import.meta.url).pathname);
  const violations = await checkProject(root);
  for (const v of violations) console.error(v.message);
  if (violations.length) {
    console.error(`check_deps: ${violations.length} import(s) point the wrong way (see above)`);
    Deno.exit(1);
  }
  const known = EXCEPTIONS.map((e) => `lib/${e.from}/ → lib/${e.to}/`).join(", ");
  console.log(
    "check_deps: every import points down and goes through mod.ts; no cycles" +
      (known ? ` (known exceptions: ${known})` : ""),
  );
}

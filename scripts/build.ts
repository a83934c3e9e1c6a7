/**
 * `deno task build`: single-file binaries of `burrowd` and `burrow` for each
 * target into `dist/`, with SHA-256 checksums.
 *
 * ```sh
 * deno task build                          # every target
 * deno task build --target x86_64-unknown-linux-gnu
 * deno task build --check-only             # verify what can be verified, build nothing
 * DENORT_BIN=/path/to/denort deno task build --target x86_64-unknown-linux-gnu
 * ```
 *
 * `deno compile` appends the program to `denort`, a runtime it downloads from
 * Deno's release host per target. Where that host cannot be reached, the
 * build says so and what to do (`DENORT_BIN` for the host target) instead of
 * failing with a network error; everything that needs no runtime (type
 * check, module graph, embedded files) is still checked.
 *
 * Exit codes: 0 all requested binaries built (or checks passed with
 * `--check-only`); 1 a check or a build failed; 2 usage; 3 no runtime
 * available for some target.
 *
 * @module
 */

import { parseArgs } from "node:util";
import meta from "../deno.json" with { type: "json" };

const ROOT = new URL("..", import.meta.url).pathname;

/** Targets `deno compile` supports and Burrow ships. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** One program to compile. */
interface Program {
  name: "burrowd" | "burrow";
  main: string;
  /** The permissions baked in: no `-A`, only what the program uses. */
  permissions: string[];
  /** Files embedded besides the module graph. */
  include: string[];
  /** V8 flags baked in (`deno compile --v8-flags`); the same as its `deno task`. */
  v8Flags: string[];
}

/**
 * V8 flags of burrowd, wherever it runs (`deno task server`, the compiled
 * binary, the benchmark): the embedded database's WebAssembly stays on V8's
 * baseline compiler. Its optimizing compiler would otherwise recompile the
 * PostgreSQL functions that start-up runs most, and the memory those
 * compilations leave behind (25 to 50 MB of the server's RSS) outweighs
 * their gain for a database that serves a few queries a second.
 */
export const SERVER_V8_FLAGS = ["--wasm-tiering-budget=1000000000"];

/** What both binaries may do; `--allow-ffi` enables the optional socket tuning (see the README). */
const PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
  "--allow-ffi",
];

/**
 * burrowd: network (control, tunnels, admin, PostgreSQL), files (config,
 * certificates, data directory, embedded database), environment
 * (BURROW_TOKEN, DATABASE_URL, cache dir), system (host name for the
 * certificate and session rows), FFI (libc's `setsockopt`, `sendmsg` and
 * `recvmmsg` on Linux: large UDP socket buffers and batched datagram I/O;
 * an optimisation that both programs skip, saying so once, wherever FFI is
 * unavailable). burrow: the same minus nothing it could drop safely (it
 * reads CA files and may write a log file).
 */
export const PROGRAMS: Program[] = [
  {
    name: "burrowd",
    main: "main_server.ts",
    permissions: PERMISSIONS,
    include: ["sql"],
    v8Flags: SERVER_V8_FLAGS,
  },
  {
    name: "burrow",
    main: "main_client.ts",
    permissions: PERMISSIONS,
    include: [],
    v8Flags: [],
  },
];

/** The host's target triple, or null when Deno ships none for it. */
export function hostTarget(): string | null {
  const { os, arch } = Deno.build;
  const triple = os === "linux"
    ? `${arch}-unknown-linux-gnu`
    : os === "darwin"
    ? `${arch}-apple-darwin`
    : os === "windows"
    ? `${arch}-pc-windows-msvc`
    : null;
  return triple && (TARGETS as readonly string[]).includes(triple) ? triple : null;
}

function log(message: string): void {
  console.error(`build: ${message}`);
}

async function run(args: string[], env: Record<string, string> = {}): Promise<{
  ok: boolean;
  output: string;
}> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, output: text };
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Files embedded in burrowd: the migrations and the PGlite runtime assets. */
export async function embeddedFiles(): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}sql`)) {
    if (entry.isFile && entry.name.endsWith(".sql")) files.push(`sql/${entry.name}`);
  }
  files.sort();
  const pglite = new URL(".", import.meta.resolve("@electric-sql/pglite")).pathname;
  for await (const entry of Deno.readDir(pglite)) {
    if (/\.(wasm|data)$/.test(entry.name)) {
      files.push(`npm:@electric-sql/pglite/dist/${entry.name}`);
    }
  }
  return files;
}

/** Verifies what needs no runtime: types, module graph, embedded files. */
async function check(): Promise<boolean> {
  log(`burrow ${meta.version}: type-checking ${PROGRAMS.map((p) => p.main).join(", ")}`);
  const checked = await run(["check", ...PROGRAMS.map((p) => p.main)]);
  if (!checked.ok) {
    log(`type check failed:\n${checked.output}`);
    return false;
  }
  for (const p of PROGRAMS) {
    const info = await run(["info", "--json", p.main]);
    if (!info.ok) {
      log(`module graph of ${p.main} does not resolve:\n${info.output}`);
      return false;
    }
    const graph = JSON.parse(info.output.slice(info.output.indexOf("{")));
    const errors = (graph.modules as Array<{ error?: string; specifier: string }>)
      .filter((m) => m.error);
    if (errors.length) {
      log(`module graph of ${p.main} has errors: ${errors.map((e) => e.specifier).join(", ")}`);
      return false;
    }
    log(
      `${p.name}: ${graph.modules.length} modules, ${
        graph.npmPackages ? Object.keys(graph.npmPackages).length : 0
      } npm packages`,
    );
  }
  const serverTask = meta.tasks.server;
  const missingFlags = SERVER_V8_FLAGS.filter((f) => !serverTask.includes(`--v8-flags=${f}`));
  if (missingFlags.length) {
    log(`deno.json's server task lacks the V8 flags burrowd is built with: ${missingFlags}`);
    return false;
  }
  const files = await embeddedFiles();
  log(`embedded in burrowd: ${files.join(", ")}`);
  if (!files.some((f) => f.startsWith("sql/")) || !files.some((f) => f.endsWith(".wasm"))) {
    log("missing embedded files: expected sql/*.sql and the PGlite .wasm");
    return false;
  }
  return true;
}

const NETWORK_FAILURE =
  /dns error|lookup address|Failed downloading|error sending request|connect(ion)? (refused|timed out)|Import .* failed/i;

function noRuntimeAdvice(target: string): string {
  const host = hostTarget();
  return [
    `deno compile needs the denort runtime for ${target}, which it downloads from ` +
    `dl.deno.land, and this machine cannot reach it.`,
    `  Either run \`deno task build\` where dl.deno.land is reachable,`,
    host === target
      ? `  or download denort-${target}.zip for Deno ${Deno.version.deno} from ` +
        `https://github.com/denoland/deno/releases, unzip it and set ` +
        `DENORT_BIN=/path/to/denort (works for the host target, ${host}).`
      : `  (DENORT_BIN only covers the host target${host ? `, ${host}` : ""}.)`,
  ].join("\n");
}

async function compile(
  program: Program,
  target: string,
  out: string,
): Promise<"built" | "no-runtime" | "failed"> {
  const exe = target.includes("windows") ? ".exe" : "";
  const output = `${out}/${program.name}-${meta.version}-${target}${exe}`;
  const env: Record<string, string> = {};
  const denort = Deno.env.get("DENORT_BIN");
  if (denort) {
    try {
      await Deno.stat(denort);
    } catch {
      log(`DENORT_BIN=${denort} does not exist`);
      return "failed";
    }
    if (target !== hostTarget()) {
      log(
        `skipping ${program.name} for ${target}: DENORT_BIN is a runtime for the host target only`,
      );
      return "no-runtime";
    }
  }
  const args = [
    "compile",
    "--no-check",
    "--unstable-net",
    ...program.permissions,
    ...(program.v8Flags.length ? [`--v8-flags=${program.v8Flags.join(",")}`] : []),
    ...program.include.flatMap((path) => ["--include", path]),
    "--target",
    target,
    "--output",
    output,
    program.main,
  ];
  log(`deno ${args.join(" ")}`);
  const result = await run(args, env);
  if (result.ok) {
    log(`built ${output}`);
    return "built";
  }
  if (NETWORK_FAILURE.test(result.output) && !denort) {
    log(noRuntimeAdvice(target));
    return "no-runtime";
  }
  log(`compiling ${program.name} for ${target} failed:\n${result.output}`);
  return "failed";
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        target: { type: "string", multiple: true },
        out: { type: "string", default: "dist" },
        "check-only": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    console.error(`build: ${(error as Error).message} (see --help)`);
    return 2;
  }
  if (values.help) {
    console.log(
      `Usage: deno task build [--target TRIPLE ...] [--out DIR] [--check-only]\n\n` +
        `Targets: ${TARGETS.join(", ")} (default: all).\n` +
        `DENORT_BIN=/path/to/denort uses a local runtime for the host target.`,
    );
    return 0;
  }
  const targets = values.target ?? [...TARGETS];
  const unknown = targets.filter((t) => !(TARGETS as readonly string[]).includes(t));
  if (unknown.length) {
    console.error(`build: unknown target ${unknown.join(", ")}; choose from ${TARGETS.join(", ")}`);
    return 2;
  }
  if (!(await check())) return 1;
  if (values["check-only"]) {
    log("checks passed; --check-only: nothing compiled");
    return 0;
  }
  const out = `${ROOT}${values.out}`;
  await Deno.mkdir(out, { recursive: true });
  const results: Array<{ program: string; target: string; result: string }> = [];
  for (const target of targets) {
    for (const program of PROGRAMS) {
      results.push({ program: program.name, target, result: await compile(program, target, out) });
    }
  }
  const built: string[] = [];
  for await (const entry of Deno.readDir(out)) {
    if (entry.isFile && entry.name.includes(`-${meta.version}-`)) built.push(entry.name);
  }
  built.sort();
  if (built.length) {
    const sums = await Promise.all(built.map(async (f) => `${await sha256(`${out}/${f}`)}  ${f}`));
    await Deno.writeTextFile(`${out}/SHA256SUMS`, sums.join("\n") + "\n");
    log(`wrote ${values.out}/SHA256SUMS (${built.length} files)`);
    const host = hostTarget();
    const own = built.find((f) => f.startsWith("burrowd-") && host && f.includes(host));
    if (own) {
      const version = await new Deno.Command(`${out}/${own}`, { args: ["--version"] }).output();
      log(`${own} --version: ${new TextDecoder().decode(version.stdout).trim()}`);
    }
  }
  for (const r of results) log(`${r.program.padEnd(8)} ${r.target.padEnd(26)} ${r.result}`);
  if (results.some((r) => r.result === "failed")) return 1;
  if (results.some((r) => r.result === "no-runtime")) return 3;
  return 0;
}

if (import.meta.main) Deno.exit(await main());

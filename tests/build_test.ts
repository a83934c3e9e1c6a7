// The release script: what it can verify without Deno's download host.

import { assert, assertEquals } from "../lib/testing/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;

async function build(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}scripts/build.ts`, ...args],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test("build --check-only verifies the graph and lists the embedded files", async () => {
  const { code, text } = await build(["--check-only"]);
  assertEquals(code, 0, text);
  for (
    const file of ["sql/001_init.sql", "sql/002_group_ports.sql", "pglite.wasm", "pglite.data"]
  ) {
    assert(text.includes(file), `${file} missing from:\n${text}`);
  }
  assert(text.includes("nothing compiled"), text);
});

Deno.test("build refuses bad input with clear messages", async () => {
  const bad = await build(["--target", "sparc-sun-solaris"]);
  assertEquals(bad.code, 2);
  assert(bad.text.includes("unknown target sparc-sun-solaris"), bad.text);
  const flag = await build(["--frobnicate"]);
  assertEquals(flag.code, 2);
  const missing = await build(["--target", "x86_64-unknown-linux-gnu"], {
    DENORT_BIN: "/nonexistent/denort",
  });
  assertEquals(missing.code, 1);
  assert(missing.text.includes("DENORT_BIN=/nonexistent/denort does not exist"), missing.text);
});

Deno.test("deno install -g gives working burrowd and burrow commands", async () => {
  const root = await Deno.makeTempDir({ prefix: "burrow-install-" });
  try {
    for (const [name, main] of [["burrowd", "main_server.ts"], ["burrow", "main_client.ts"]]) {
      const install = await new Deno.Command(Deno.execPath(), {
        args: [
          "install",
          "-g",
          "-f",
          "--root",
          root,
          "-n",
          name!,
          "--config",
          `${ROOT}deno.json`,
          "--allow-net",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-sys",
          "--allow-ffi",
          "--unstable-net",
          `${ROOT}${main}`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(install.code, 0, new TextDecoder().decode(install.stderr));
      const version = await new Deno.Command(`${root}/bin/${name}`, {
        args: ["--version"],
        stdout: "piped",
      }).output();
      const meta = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
      assertEquals(new TextDecoder().decode(version.stdout).trim(), meta.version);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("both binaries get --allow-ffi baked in (socket buffers, batched datagram I/O)", async () => {
  const { PROGRAMS } = await import("../scripts/build.ts");
  for (const program of PROGRAMS) {
    assert(program.permissions.includes("--allow-ffi"), `${program.name}: ${program.permissions}`);
    assert(!program.permissions.includes("-A"), `${program.name} has no -A`);
  }
});

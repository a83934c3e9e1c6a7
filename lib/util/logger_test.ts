import { assert, assertEquals } from "../testing/mod.ts";
import { accessLog, createLogger, RotatingFile } from "./logger.ts";

Deno.test("log files rotate by size and keep max_files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/burrowd.log`;
    const file = new RotatingFile(path, { maxSize: 100, maxFiles: 2 });
    for (let i = 0; i < 10; i++) file.writeLine(`line ${i} ${"x".repeat(30)}`);
    file.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(names, ["burrowd.log", "burrowd.log.1", "burrowd.log.2"]);
    for (const name of names) assert(Deno.statSync(`${dir}/${name}`).size <= 100, name);
    assert(Deno.readTextFileSync(path).includes("line 9"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("per-component levels, a separate error file, JSON access lines", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lines: string[] = [];
    const log = createLogger({
      level: "warn",
      levels: { storage: "debug" },
      format: "json",
      sink: (l) => lines.push(l),
      errorFile: `${dir}/errors.log`,
    });
    log.child("server").info("quiet");
    log.child("storage").debug("loud");
    log.child("server").error("broken", { error: new Error("boom") });
    assertEquals(lines.map((l) => JSON.parse(l).msg), ["loud", "broken"]);
    assertEquals(log.child("storage").enabled("debug"), true);
    assertEquals(log.child("server").enabled("info"), false);
    const errors = Deno.readTextFileSync(`${dir}/errors.log`).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assertEquals(errors.map((e) => [e.msg, e.component, e.error]), [["broken", "server", "boom"]]);

    const write = accessLog(`${dir}/access.log`, log);
    write({
      tunnel: "web",
      user: "alice",
      type: "tcp",
      remote: "203.0.113.5:4000",
      bytes_in: 10,
      bytes_out: 20,
      duration_ms: 5,
      status: "ok",
    });
    const [access] = Deno.readTextFileSync(`${dir}/access.log`).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assertEquals(
      [access.msg, access.tunnel, access.user, access.remote, access.bytes_out, access.status],
      ["access", "web", "alice", "203.0.113.5:4000", 20, "ok"],
    );
    assert(typeof access.ts === "string");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

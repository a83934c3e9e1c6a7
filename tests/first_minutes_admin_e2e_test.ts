/**
 * The first ten minutes, item 5: the `burrowd` admin subcommands work while
 * burrowd runs on the embedded database. Real processes: a command run
 * beside a running server goes through that server's admin API and prints
 * what the same command prints with the server stopped (stdout, stderr and
 * exit code, once ids, secrets and times are masked); the token it issues
 * logs a client in; what the API does not offer says to stop the server; a
 * server that was killed leaves nothing that stops the commands.
 */

import { assert, assertEquals, eventually } from "../lib/testing/mod.ts";
import {
  echo,
  echoThrough,
  freePort,
  localService,
  runServerCommand,
  startClient,
  startServer,
  tunnelPort,
} from "./_procs.ts";

const TOKEN = "first-minutes-admin-token";

/** What a person runs, in order; each line is run as its own process. */
const SCRIPT: string[][] = [
  ["user", "add", "alice"],
  ["user", "add", "alice"], // taken: exit 2
  ["user", "add", "ops", "--admin"],
  [
    "user",
    "set",
    "ops",
    "--ports",
    "2000-2100",
    "--bandwidth",
    "10MB",
    "--allow-ips",
    "10.0.0.0/8",
  ],
  ["user", "disable", "nobody"], // unknown: exit 2
  ["user", "disable", "ops"],
  ["user", "enable", "ops"],
  ["token", "issue", "alice", "--ttl", "30d"],
  ["token", "issue", "alice", "--scope", "admin"], // not an administrator: exit 2
  ["token", "issue", "alice", "--ttl", "soon"], // bad flag: exit 2
  ["key", "create", "ops", "--types", "tcp", "--ports", "2000-2100"],
  ["token", "list", "alice"],
  ["token", "list", "nobody"], // unknown: exit 2
  ["user", "list"],
  ["tunnel", "list"],
  ["group", "list"],
  ["tunnel", "release", "web"], // none: exit 2
];

interface Run {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs each command against the config in `dir`, then revokes the API key the script created. */
async function runScript(dir: string): Promise<Run[]> {
  const runs: Run[] = [];
  const run = async (args: string[]) => {
    const out = await runServerCommand([...args, "-c", `${dir}/server.yaml`]);
    runs.push({ args, ...out });
    return out;
  };
  for (const args of SCRIPT) await run(args);
  const key = runs.find((r) => r.args[0] === "key")!;
  const keyId = /created API key (\S+) /.exec(key.stderr)?.[1];
  assert(keyId, key.stderr);
  await run(["token", "revoke", keyId]);
  await run(["token", "revoke", keyId]); // twice: still fine, or the same refusal both ways
  return runs;
}

/** `text` with what differs from run to run (times, ids, secrets) masked, lengths kept. */
function masked(text: string): string {
  const as = (label: string) => (m: string) => `<${label}>`.padEnd(m.length, "-");
  return text
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, as("time"))
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, as("uuid"))
    .replace(/\bbk_[A-Za-z0-9]+_[A-Za-z0-9_-]+/g, as("api key"))
    .replace(/\bkey_[A-Za-z0-9]{12}\b/g, as("key id"))
    .replace(/\beyJ[\w-]+\.[\w-]+\.[\w-]+/g, as("jwt"));
}

const view = (r: Run) => ({
  command: masked(r.args.join(" ")),
  code: r.code,
  stdout: masked(r.stdout),
  stderr: masked(r.stderr),
});

/** A data directory that a burrowd has run on once (so the built-in admin user exists). */
async function usedDataDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  const server = await startServer(dir, TOKEN);
  assertEquals(await server.proc.stop("SIGTERM"), 0);
  return dir;
}

Deno.test("admin commands beside a running burrowd (embedded database) answer as without it", async () => {
  const stoppedDir = await usedDataDir("burrow-admin-stopped-");
  const runningDir = await Deno.makeTempDir({ prefix: "burrow-admin-running-" });
  try {
    // A clean shutdown takes its admin address with it.
    await assertMissing(`${stoppedDir}/data/admin.json`);
    // The server stopped: each command opens the database itself.
    const direct = await runScript(stoppedDir);

    const server = await startServer(runningDir, TOKEN);
    await using _server = server.proc;
    const cfg = `${runningDir}/server.yaml`;
    // Left once the admin port listens, just after the control port's log line.
    await eventually(
      "the admin address in the data directory",
      () => Deno.stat(`${runningDir}/data/admin.json`),
    );
    const through = await runScript(runningDir);

    // Word for word, code for code.
    assertEquals(through.map(view), direct.map(view));
    const at = (args: string) => through.find((r) => r.args.join(" ") === args)!;
    assertEquals(at("user add alice").stdout, "added user alice (id 2)\n");
    const duplicate = through.filter((r) => r.args.join(" ") === "user add alice")[1]!;
    assertEquals([duplicate.code, duplicate.stderr], [2, `burrowd: User "alice" already exists\n`]);
    assertEquals(at("user disable nobody").stderr, `burrowd: No user "nobody"\n`);
    assertEquals(at("user disable nobody").code, 2);
    assert(at("user list").stdout.includes("alice"), at("user list").stdout);
    // The server did the work (its lock keeps the commands out of the database), without a fault.
    assert(!server.proc.lines.some((l) => l.includes("admin API request failed")));

    // The token issued through the running server logs a client in.
    const jwt = at("token issue alice --ttl 30d").stdout.trim();
    await using service = localService(echo);
    const client = await startClient(runningDir, {
      port: server.port,
      token: jwt,
      fingerprint: server.fingerprint,
      tunnels: [{ name: "web", local_port: service.port, remote_port: freePort() }],
    });
    let port = 0;
    try {
      port = await tunnelPort(client, "web");
      assertEquals(await echoThrough(port, "hello alice"), "hello alice");
      const online = await runServerCommand(["tunnel", "release", "web", "-c", cfg]);
      assertEquals(online.code, 2);
      assert(
        /^burrowd: Tunnel "web" is online \(client ".+"\); stop that client first\n$/.test(
          online.stderr,
        ),
        online.stderr,
      );
    } finally {
      await client.stop();
    }
    // Released through the server once the client has gone (its status is written shortly after).
    const released = await eventually("the tunnel to be released", async () => {
      const out = await runServerCommand(["tunnel", "release", "web", "-c", cfg]);
      return out.code === 0 ? out : undefined;
    }, 20_000);
    assertEquals(
      released.stdout,
      `released tunnel "web" of user "alice": port ${port} free again\n`,
    );

    // What the admin API does not offer asks for the server to be stopped.
    const pid = server.proc.child.pid;
    for (const command of ["migrate", "signing-key rotate"]) {
      const out = await runServerCommand([...command.split(" "), "-c", cfg]);
      assertEquals(out.code, 1, out.stderr);
      assertEquals(
        out.stderr,
        `burrowd: ${command} needs the embedded database in ${runningDir}/data to itself, so ` +
          `it cannot go through the running burrowd (pid ${pid}). Stop that burrowd, run the ` +
          "command, and start it again (on PostgreSQL, server.storage.url, it runs beside the " +
          "server)\n",
      );
    }

    // Killed, the server leaves its admin address behind but not its lock: the commands open
    // the database themselves and see what the server wrote.
    const listed = at("user list");
    await server.proc.stop("SIGKILL");
    await Deno.stat(`${runningDir}/data/admin.json`);
    const after = await runServerCommand(["user", "list", "-c", cfg]);
    assertEquals([after.code, masked(after.stdout), after.stderr], [
      0,
      masked(listed.stdout),
      "",
    ]);
  } finally {
    await Deno.remove(stoppedDir, { recursive: true });
    await Deno.remove(runningDir, { recursive: true });
  }
});

async function assertMissing(path: string): Promise<void> {
  try {
    await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  throw new Error(`${path} should not exist`);
}

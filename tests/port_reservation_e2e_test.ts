/**
 * A dead client's port stays reserved under its tunnel name; the refusal
 * says so, says since when and how to release it, and tells another user no
 * more than that the port is taken.
 */

import postgres from "postgres";
import { assert, assertEquals } from "../lib/testing/mod.ts";
import { testNeedingPostgres, throwawayDatabase } from "../lib/testing/mod.ts";
import { freePort, runServerCommand, startClient, startServer } from "./_procs.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

const TOKEN = "reservation-e2e-token";

test.postgres("port reservation: the refusal names the offline tunnel and the release command", async () => {
  await using db = await throwawayDatabase();
  const dir = await Deno.makeTempDir({ prefix: "burrow-reserve-" });
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const server = await startServer(
      dir,
      TOKEN,
      0,
      `  storage: {url: "${db.url}", data_dir: "${dir}/data"}`,
    );
    await using _s = server.proc;
    const cfg = `${dir}/server.yaml`;
    const tokens: Record<string, string> = {};
    for (const user of ["alice", "bob"]) {
      assertEquals((await runServerCommand(["user", "add", user, "-c", cfg])).code, 0);
      const issued = await runServerCommand(["token", "issue", user, "-c", cfg]);
      assertEquals(issued.code, 0, issued.stderr);
      tokens[user] = issued.stdout.trim();
    }
    const port = freePort();
    const client = (user: string, name: string) =>
      startClient(dir, {
        port: server.port,
        token: tokens[user]!,
        fingerprint: server.fingerprint,
        tunnels: [{ name, local_port: 1, remote_port: port }],
      });

    const first = await client("alice", "echo");
    await first.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "echo");
    await first.stop("SIGKILL");
    for (let i = 0; i < 100; i++) {
      const [row] = await sql`select status from tunnels where name = 'echo'`;
      if (row?.status === "offline") break;
      await new Promise((r) => setTimeout(r, 100));
    }

    await using mine = await client("alice", "again");
    const refused = await mine.waitFor((e) => e.msg === "tunnel failed" && e.tunnel === "again");
    const reason = String(refused.reason);
    assert(
      reason.includes(`Port ${port} is reserved by your tunnel "echo" (offline since `),
      reason,
    );
    assert(reason.includes("burrowd tunnel release echo"), reason);
    assert(/DELETE \/api\/v1\/tunnels\/\d+/.test(reason), reason);
    await mine.stop("SIGKILL");

    await using theirs = await client("bob", "mine");
    const other = await theirs.waitFor((e) => e.msg === "tunnel failed" && e.tunnel === "mine");
    const otherReason = String(other.reason);
    assert(otherReason.includes(`Port ${port} is reserved by another user's tunnel`), otherReason);
    assertEquals(/alice|echo/.test(otherReason), false, `names nothing more: ${otherReason}`);
    await theirs.stop("SIGKILL");

    const wrongName = await runServerCommand(["tunnel", "release", "nope", "-c", cfg]);
    assertEquals(wrongName.code, 2);
    assert(wrongName.stderr.includes(`No tunnel named "nope"`), wrongName.stderr);
    const released = await runServerCommand(["tunnel", "release", "echo", "-c", cfg]);
    assertEquals(released.code, 0, released.stderr);
    assert(released.stdout.includes(`port ${port}`), released.stdout);

    await using after = await client("alice", "again");
    const ready = await after.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "again");
    assertEquals(ready.remote_port, port);
  } finally {
    await sql.end({ timeout: 1 });
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

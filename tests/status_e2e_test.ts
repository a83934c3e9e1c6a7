// burrow status: reads the running client's local status endpoint.

import { assert, assertEquals } from "../lib/testing/mod.ts";
import {
  echo,
  echoThrough,
  localService,
  runClientCommand,
  startClient,
  startServer,
  tunnelPort,
} from "./_procs.ts";

Deno.test("burrow status shows each tunnel's state, address, traffic and RTT", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-status-" });
  const env = { BURROW_RUN_DIR: `${dir}/run` };
  try {
    const none = await runClientCommand(["status"], env);
    assertEquals(none.code, 1);
    assert(none.stderr.includes("no running burrow client"), none.stderr);

    const server = await startServer(dir, "status-token");
    await using _s = server.proc;
    await using service = localService(echo);
    await using client = await startClient(dir, {
      port: server.port,
      token: "status-token",
      fingerprint: server.fingerprint,
      tunnels: [{ name: "web", local_port: service.port }],
      extra: "  client_id: status-client",
      env,
    });
    const port = await tunnelPort(client, "web");
    assertEquals(await echoThrough(port, "x".repeat(1000)), "x".repeat(1000));

    const json = await runClientCommand(["status", "--json"], env);
    assertEquals(json.code, 0, json.stderr);
    const [status] = JSON.parse(json.stdout);
    assertEquals([status.client_id, status.connected], ["status-client", true]);
    const web = status.tunnels.find((t: { name: string }) => t.name === "web");
    assertEquals(
      [web.status, web.public_addr, web.connections, web.bytes_in, web.bytes_out],
      ["active", `127.0.0.1:${port}`, 1, 1000, 1000],
    );
    const table = await runClientCommand(["status"], env);
    assert(/web\s+tcp\s+active\s+127\.0\.0\.1:\d+/.test(table.stdout), table.stdout);
    assert(table.stdout.includes("1.0 KB"), table.stdout);

    // After the client stops its record is gone.
    await client.stop();
    assertEquals((await runClientCommand(["status"], env)).code, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

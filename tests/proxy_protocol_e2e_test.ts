// PROXY protocol end to end: real burrowd and burrow; a private nginx with
// `listen … proxy_protocol` behind TCP tunnels (v1 and v2) logs the visitor's
// address and port; a UDP service behind a v2 tunnel parses each datagram's
// header.

import { assertEquals, testNeeding, until } from "../lib/testing/mod.ts";
import { decodeProxyHeaderV2 } from "../lib/protocol/mod.ts";
import { freePort, startClient, startServer, tunnelPort } from "./_procs.ts";

/** Ignored (outside CI) without nginx: see lib/testing/tools.ts. */
const test = testNeeding("nginx");

const TOKEN = "proxy-protocol-e2e-token";
const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/**
 * A private nginx in the foreground (one process, killed by disposal) whose
 * stream servers answer `ok` on each port, expecting a PROXY header, and log
 * `$proxy_protocol_addr:$proxy_protocol_port` per connection to `<dir>/<port>.log`.
 */
async function privateNginx(dir: string, ports: number[]) {
  const servers = ports.map((port) =>
    `  server { listen 127.0.0.1:${port} proxy_protocol; ` +
    `access_log ${dir}/${port}.log pp; return "ok\\n"; }`
  );
  const config = [
    ...(await exists(STREAM_MODULE) ? [`load_module ${STREAM_MODULE};`] : []),
    // As root, nginx would switch to "nobody", who cannot read our temp dir.
    ...(Deno.uid() === 0 ? ["user root;"] : []),
    "daemon off;",
    "master_process off;",
    `pid ${dir}/nginx.pid;`,
    "error_log stderr warn;",
    "events { worker_connections 64; }",
    "stream {",
    "  log_format pp '$proxy_protocol_addr:$proxy_protocol_port';",
    ...servers,
    "}",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/nginx.conf`, config + "\n");
  const child = new Deno.Command("nginx", {
    args: ["-p", dir, "-e", "stderr", "-c", `${dir}/nginx.conf`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    return await stderr;
  };
  try {
    for (const port of ports) {
      await until(`nginx listening on ${port}`, async () => {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          return true;
        } catch {
          return false;
        }
      }, 10_000);
    }
  } catch (error) {
    throw new Error(`${(error as Error).message}; nginx said:\n${await stop()}`);
  }
  return { [Symbol.asyncDispose]: async () => void await stop() };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Connects to the tunnel, reads the answer to the end; returns the visitor's own port. */
async function visit(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const visitorPort = (conn.localAddr as Deno.NetAddr).port;
    const answer = await new Response(conn.readable).text();
    assertEquals(answer, "ok\n");
    return visitorPort;
  } catch (error) {
    try {
      conn.close();
    } catch { /* closed */ }
    throw error;
  }
}

/** A UDP service that answers each datagram with the visitor address of its PROXY v2 header. */
function udpHeaderService() {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const loop = (async () => {
    const buf = new Uint8Array(65_536);
    for (;;) {
      const [data, from] = await socket.receive(buf);
      const header = decodeProxyHeaderV2(data);
      const payload = new TextDecoder().decode(data.subarray(header?.length ?? 0));
      const e = header?.endpoints;
      const reply = e
        ? `${header.transport} ${e.source.hostname}:${e.source.port} ` +
          `${e.destination.port} ${payload}`
        : `no header ${payload}`;
      await socket.send(new TextEncoder().encode(reply), from);
    }
  })().catch(() => {});
  return {
    port: (socket.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      socket.close();
      await loop;
    },
  };
}

/** Sends `text` from `socket` to the tunnel until a reply comes (UDP may lose the first). */
async function ask(socket: Deno.DatagramConn, port: number, text: string): Promise<string> {
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  const buf = new Uint8Array(65_536);
  for (let attempt = 0; attempt < 10; attempt++) {
    await socket.send(new TextEncoder().encode(text), to);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((r) => timer = setTimeout(() => r(null), 500));
    const got = await Promise.race([socket.receive(buf).then(([d]) => d.slice()), timeout]);
    clearTimeout(timer);
    if (got) return new TextDecoder().decode(got);
  }
  throw new Error("no reply from the UDP service");
}

test("PROXY protocol: nginx behind tcp tunnels logs the visitor's address and port (v1, v2); a udp v2 service reads it per datagram", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-proxy-protocol-" });
  try {
    const v1Port = freePort(), v2Port = freePort();
    await using _nginx = await privateNginx(dir, [v1Port, v2Port]);
    await using udp = udpHeaderService();
    const server = await startServer(dir, TOKEN);
    await using _server = server.proc;
    await using client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [
        { name: "pp1", local_port: v1Port, yaml: "proxy_protocol: v1" },
        { name: "pp2", local_port: v2Port, yaml: "proxy_protocol: v2" },
        { name: "ppu", type: "udp", local_port: udp.port, yaml: "proxy_protocol: v2" },
      ],
    });
    for (const [name, nginxPort] of [["pp1", v1Port], ["pp2", v2Port]] as const) {
      const publicPort = await tunnelPort(client, name);
      const visitors = [await visit(publicPort), await visit(publicPort)];
      const log = `${dir}/${nginxPort}.log`;
      // `-:-` is the readiness probe's connection, which came without a header.
      const lines = async () =>
        (await Deno.readTextFile(log).catch(() => "")).split("\n").filter((l) => l && l !== "-:-");
      await until(`nginx logged two ${name} connections`, async () => {
        return (await lines()).length >= 2;
      }, 10_000);
      assertEquals(await lines(), visitors.map((port) => `127.0.0.1:${port}`), name);
    }
    const publicUdp = await tunnelPort(client, "ppu");
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const visitor = (socket.addr as Deno.NetAddr).port;
      assertEquals(
        await ask(socket, publicUdp, "one"),
        `udp 127.0.0.1:${visitor} ${publicUdp} one`,
      );
      // Every datagram of the session carries the header, not only the first.
      assertEquals(
        await ask(socket, publicUdp, "two"),
        `udp 127.0.0.1:${visitor} ${publicUdp} two`,
      );
    } finally {
      socket.close();
    }
    // The server sent the addresses: the client did not fall back to UNKNOWN/LOCAL.
    assertEquals(
      client.events.filter((e) => e.msg === "proxy protocol header without addresses"),
      [],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

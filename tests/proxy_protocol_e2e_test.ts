// PROXY protocol end to end: real burrowd and burrow; a private nginx with
// `listen … proxy_protocol` behind TCP tunnels (v1 and v2) logs the visitor's
// address and port; a UDP service behind a v2 tunnel parses each datagram's
// header; nginx HTTP servers behind HTTP tunnels (the vhost port, HTTP/2 and
// HTTP/1.1 over TLS, TLS passthrough to `listen … ssl proxy_protocol`) answer
// with the addresses of the header, which curl's own port must match.

import { assertEquals, testNeeding, until } from "../lib/testing/mod.ts";
import { decodeProxyHeaderV2 } from "../lib/protocol/mod.ts";
import { createCa } from "./_pki.ts";
import { freePort, type Proc, startClient, startServer, tunnelPort } from "./_procs.ts";

/** Ignored (outside CI) without nginx: see lib/testing/tools.ts. */
const test = testNeeding("nginx");
/** The HTTP visitors are curl. */
const testHttp = testNeeding("nginx", "curl");

const TOKEN = "proxy-protocol-e2e-token";
const STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/** What a private nginx serves. */
interface NginxSites {
  /** Stream servers that answer `ok` and log `$proxy_protocol_addr:$proxy_protocol_port` to `<dir>/<port>.log`. */
  stream?: number[];
  /** HTTP servers that answer with {@linkcode PP_BODY}; `ssl` ones use `<dir>/site.crt`/`.key`. */
  http?: Array<{ port: number; ssl?: boolean }>;
}

/** What the HTTP servers answer: the visitor's and the public address from the PROXY header. */
const PP_BODY =
  "$proxy_protocol_addr:$proxy_protocol_port>$proxy_protocol_server_addr:$proxy_protocol_server_port";

/**
 * A private nginx in the foreground (one process, killed by disposal) whose
 * servers all expect a PROXY header (`listen … proxy_protocol`), v1 or v2.
 */
async function privateNginx(dir: string, sites: NginxSites) {
  const streamServers = (sites.stream ?? []).map((port) =>
    `  server { listen 127.0.0.1:${port} proxy_protocol; ` +
    `access_log ${dir}/${port}.log pp; return "ok\\n"; }`
  );
  const httpServers = (sites.http ?? []).map(({ port, ssl }) =>
    `  server { listen 127.0.0.1:${port}${ssl ? " ssl" : ""} proxy_protocol; ` +
    (ssl ? `ssl_certificate ${dir}/site.crt; ssl_certificate_key ${dir}/site.key; ` : "") +
    `return 200 "${PP_BODY}\\n"; }`
  );
  const ports = [...sites.stream ?? [], ...(sites.http ?? []).map((h) => h.port)];
  const config = [
    ...(await exists(STREAM_MODULE) ? [`load_module ${STREAM_MODULE};`] : []),
    // As root, nginx would switch to "nobody", who cannot read our temp dir.
    ...(Deno.uid() === 0 ? ["user root;"] : []),
    "daemon off;",
    "master_process off;",
    `pid ${dir}/nginx.pid;`,
    "error_log stderr warn;",
    "events { worker_connections 64; }",
    ...(streamServers.length
      ? ["stream {", "  log_format pp '$proxy_protocol_addr:$proxy_protocol_port';"]
        .concat(streamServers, "}")
      : []),
    ...(httpServers.length
      ? ["http {", "  access_log off;", "  default_type text/plain;"].concat(httpServers, "}")
      : []),
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
    await using _nginx = await privateNginx(dir, { stream: [v1Port, v2Port] });
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

/**
 * Runs curl once over one connection for every URL in `args`; returns the
 * bodies (one line each) and the visitor's own port.
 */
async function curlVisit(args: string[]): Promise<{ bodies: string[]; visitorPort: number }> {
  const out = await new Deno.Command("curl", {
    args: ["-s", "--max-time", "10", "-w", "%{http_code} %{local_port}\n", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l);
  const bodies: string[] = [];
  let visitorPort = 0;
  // Each URL writes its body line, then the -w line.
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [status, port] = lines[i + 1]!.split(" ");
    assertEquals(status, "200", `curl ${args.join(" ")}: ${lines.join(" | ")}`);
    if (visitorPort && Number(port) !== visitorPort) throw new Error("curl used two connections");
    visitorPort = Number(port);
    bodies.push(lines[i]!);
  }
  if (!bodies.length) {
    throw new Error(`curl ${args.join(" ")}: no answer: ${new TextDecoder().decode(out.stderr)}`);
  }
  return { bodies, visitorPort };
}

async function vhostPorts(server: Proc): Promise<{ http: number; https: number }> {
  const http = await server.waitFor((e) => e.msg === "http vhost listening");
  const https = await server.waitFor((e) => e.msg === "https vhost listening");
  return { http: http.port as number, https: https.port as number };
}

testHttp(
  "PROXY protocol: nginx behind http tunnels reads the visitor's address and port (vhost port, HTTP/2, TLS passthrough)",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "burrow-proxy-protocol-http-" });
    try {
      // burrowd terminates TLS for h2.test; the passthrough service has its own certificate.
      const ca = await createCa("Burrow test CA");
      const vhostSite = await ca.issueServer(["h2.test"]);
      await Deno.writeTextFile(`${dir}/ca.pem`, ca.cert);
      await Deno.writeTextFile(`${dir}/h2.crt`, vhostSite.cert);
      await Deno.writeTextFile(`${dir}/h2.key`, vhostSite.key);
      const ownCa = await createCa("Service's own CA");
      const own = await ownCa.issueServer(["pass.test", "pass2.test"]);
      await Deno.writeTextFile(`${dir}/own-ca.pem`, ownCa.cert);
      await Deno.writeTextFile(`${dir}/site.crt`, own.cert);
      await Deno.writeTextFile(`${dir}/site.key`, own.key);
      // nginx takes v1 and v2 on the same `proxy_protocol` listener.
      const plainPort = freePort(), sslPort = freePort();
      await using _nginx = await privateNginx(dir, {
        http: [{ port: plainPort }, { port: sslPort, ssl: true }],
      });
      const server = await startServer(
        dir,
        TOKEN,
        0,
        `  vhost_http_port: 0\n  vhost_https_port: 0\n` +
          `  vhost_https_certs: [{domains: [h2.test], cert_file: "${dir}/h2.crt", ` +
          `key_file: "${dir}/h2.key"}]\n`,
      );
      await using _server = server.proc;
      const { http, https } = await vhostPorts(server.proc);
      await using client = await startClient(dir, {
        port: server.port,
        token: TOKEN,
        fingerprint: server.fingerprint,
        tunnels: [
          {
            name: "hv1",
            type: "http",
            local_port: plainPort,
            yaml: "custom_domains: [v1.test], proxy_protocol: v1",
          },
          {
            name: "hv2",
            type: "http",
            local_port: plainPort,
            yaml: "custom_domains: [v2.test], proxy_protocol: v2",
          },
          {
            name: "hs",
            type: "https",
            local_port: plainPort,
            yaml: "custom_domains: [h2.test], proxy_protocol: v2",
          },
          {
            name: "pt1",
            type: "https",
            local_port: sslPort,
            yaml: "custom_domains: [pass.test], tls_passthrough: true, proxy_protocol: v1",
          },
          {
            name: "pt2",
            type: "https",
            local_port: sslPort,
            yaml: "custom_domains: [pass2.test], tls_passthrough: true, proxy_protocol: v2",
          },
        ],
      });
      for (const name of ["hv1", "hv2", "hs", "pt1", "pt2"]) await tunnelPort(client, name);
      const seen = (visitorPort: number, publicPort: number) =>
        `127.0.0.1:${visitorPort}>127.0.0.1:${publicPort}`;
      const at = (host: string, port: number, scheme = "http") => [
        "--resolve",
        `${host}:${port}:127.0.0.1`,
        `${scheme}://${host}:${port}/`,
      ];

      // The vhost port (splice engine): two requests on one kept-alive connection share one
      // local connection and its one header; a second visitor gets its own.
      for (const host of ["v1.test", "v2.test"]) {
        const first = await curlVisit([...at(host, http), `http://${host}:${http}/again`]);
        assertEquals(first.bodies, [seen(first.visitorPort, http), seen(first.visitorPort, http)]);
        const second = await curlVisit(at(host, http));
        assertEquals(second.bodies, [seen(second.visitorPort, http)], host);
      }
      // TLS terminated by burrowd: HTTP/2 (node's path, an agent per visitor connection, so the
      // second visitor does not reuse the first one's local connection) and HTTP/1.1 (spliced).
      const secure = ["--cacert", `${dir}/ca.pem`, ...at("h2.test", https, "https")];
      for (const version of ["--http2", "--http2", "--http1.1"]) {
        const visit = await curlVisit([version, ...secure]);
        assertEquals(visit.bodies, [seen(visit.visitorPort, https)], version);
      }
      // TLS passthrough: the header precedes the visitor's ClientHello; nginx reads it, then
      // does the handshake itself.
      for (const host of ["pass.test", "pass2.test"]) {
        const visit = await curlVisit([
          "--cacert",
          `${dir}/own-ca.pem`,
          ...at(host, https, "https"),
        ]);
        assertEquals(visit.bodies, [seen(visit.visitorPort, https)], host);
      }
      // The server sent the addresses: the client did not fall back to UNKNOWN/LOCAL.
      assertEquals(
        client.events.filter((e) => e.msg === "proxy protocol header without addresses"),
        [],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/**
 * More HTTP(S) tunnels end to end: automatic certificates from an ACME CA
 * (pebble), load-balancing groups, tunnels managed through the admin API,
 * and slow visitors on the vhost ports.
 */

import { assert, assertEquals, testNeeding } from "../lib/testing/mod.ts";
import { startPebble } from "./_pebble.ts";
import { freePort, type Proc, startClient, startServer } from "./_procs.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { pebble: testNeeding("pebble", "curl"), curl: testNeeding("curl") };

const TOKEN = "http-more-token";
const decoder = new TextDecoder();

function origin(name: string): { port: number } & AsyncDisposable {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => Response.json({ origin: name, host: req.headers.get("host") }),
  );
  return {
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

async function curlBody(args: string[]): Promise<{ code: number; body: string; err: string }> {
  const out = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "20", "-w", "\n%{http_code}", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = decoder.decode(out.stdout);
  const nl = text.lastIndexOf("\n");
  return {
    code: Number(text.slice(nl + 1)),
    body: text.slice(0, nl),
    err: decoder.decode(out.stderr),
  };
}

async function vhost(proc: Proc, scheme: "http" | "https"): Promise<number> {
  return (await proc.waitFor((e) => e.msg === `${scheme} vhost listening`)).port as number;
}

test.pebble("https: ssl_cert auto gets a certificate over ACME (HTTP-01) and keeps it across restarts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-acme-e2e-" });
  await using site = origin("acme");
  // Pebble validates on this port, so the server's HTTP vhost must be on it.
  const httpPort = freePort();
  await using pebble = await startPebble({ httpPort });
  await Deno.writeTextFile(`${dir}/pebble-ca.pem`, pebble.caBundle);
  await Deno.writeTextFile(`${dir}/root.pem`, await pebble.issuerRoot());
  const extra = `  vhost_http_port: ${httpPort}\n  vhost_https_port: 0\n` +
    `  acme: {directory_url: "${pebble.directoryUrl}", ca_file: "${dir}/pebble-ca.pem", ` +
    `email: ops@burrow.test}\n`;
  const visit = async (server: Proc, client: Proc) => {
    await client.waitFor((e) => e.msg === "tunnel ready");
    const https = await vhost(server, "https");
    return await curlBody([
      "--cacert",
      `${dir}/root.pem`,
      "--resolve",
      `app.acme.test:${https}:127.0.0.1`,
      `https://app.acme.test:${https}/`,
    ]);
  };
  const tunnels = [{
    name: "site",
    type: "https" as const,
    local_port: site.port,
    yaml: "custom_domains: [app.acme.test], ssl_cert: auto",
  }];
  {
    const server = await startServer(dir, TOKEN, 0, extra);
    await using _server = server.proc;
    await using client = await startClient(dir, { ...server, token: TOKEN, tunnels });
    const first = await visit(server.proc, client);
    assertEquals(first.code, 200, first.err + pebble.output());
    assertEquals(JSON.parse(first.body).origin, "acme");
    const issued = server.proc.events.find((e) => e.msg === "certificate issued");
    assertEquals(issued?.domain, "app.acme.test");
  }
  {
    // Same data directory: the stored certificate is loaded, nothing is ordered.
    const server = await startServer(dir, TOKEN, 0, extra);
    await using _server = server.proc;
    await using client = await startClient(dir, { ...server, token: TOKEN, tunnels });
    const again = await visit(server.proc, client);
    assertEquals(again.code, 200, again.err);
    assert(server.proc.events.some((e) => e.msg === "certificate loaded"));
    assert(!server.proc.events.some((e) => e.msg === "certificate issued"), "not re-issued");
  }
  await Deno.remove(dir, { recursive: true });
});

test.curl("http groups: one host balanced over two clients; a wrong key is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-http-group-" });
  await using a = origin("A");
  await using b = origin("B");
  const server = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n`);
  await using _server = server.proc;
  const http = await vhost(server.proc, "http");
  const member = (port: number, key: string, name = `web-${port}`) =>
    startClient(dir, {
      ...server,
      token: TOKEN,
      tunnels: [{
        name,
        type: "http",
        local_port: port,
        yaml: `custom_domains: [lb.test], group: web, group_key: ${key}`,
      }],
    });
  await using ca = await member(a.port, "k1");
  await ca.waitFor((e) => e.msg === "tunnel ready");
  await using cb = await member(b.port, "k1");
  await cb.waitFor((e) => e.msg === "tunnel ready");
  // Its own name: a name online elsewhere is refused before the key is looked at.
  await using intruder = await member(a.port, "wrong", "intruder");
  const refused = await intruder.waitFor((e) => e.msg === "tunnel failed");
  assertEquals(refused.reason, 'Wrong group_key for group "web"');
  const counts: Record<string, number> = { A: 0, B: 0 };
  for (let i = 0; i < 20; i++) {
    const r = await curlBody(["--resolve", `lb.test:${http}:127.0.0.1`, `http://lb.test:${http}/`]);
    counts[JSON.parse(r.body).origin]!++;
  }
  assertEquals(counts, { A: 10, B: 10 });
  await Deno.remove(dir, { recursive: true });
});

test.curl("http: a tunnel created through the admin API goes live on its client", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-http-managed-" });
  await using site = origin("managed");
  const server = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n`);
  await using _server = server.proc;
  const http = await vhost(server.proc, "http");
  const admin = (await server.proc.waitFor((e) => e.msg === "admin listening")).port;
  await using client = await startClient(dir, {
    ...server,
    token: TOKEN,
    tunnels: [],
    extra: "  client_id: shop-1\n",
  });
  await client.waitFor((e) => e.msg === "connected");
  const res = await fetch(`http://127.0.0.1:${admin}/api/v1/tunnels`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({
      user: "admin",
      name: "shop",
      type: "http",
      client_id: "shop-1",
      local_port: site.port,
      custom_domains: ["shop.test"],
      options: { custom_headers: { "X-From": "api" } },
    }),
  });
  assertEquals(res.status, 201, await res.clone().text());
  await res.body?.cancel();
  const ready = await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "shop");
  assertEquals(ready.urls, [`http://shop.test:${http}`]);
  const visit = await curlBody([
    "--resolve",
    `shop.test:${http}:127.0.0.1`,
    `http://shop.test:${http}/`,
  ]);
  assertEquals(visit.code, 200, visit.err);
  assertEquals(JSON.parse(visit.body).origin, "managed");
  await Deno.remove(dir, { recursive: true });
});

test.curl("vhost ports close slow visitors (slowloris) and keep serving others", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-slowloris-" });
  await using site = origin("steady");
  const server = await startServer(
    dir,
    TOKEN,
    0,
    `  vhost_http_port: 0\n  vhost_https_port: 0\n  handshake_timeout: 1s\n`,
  );
  await using _server = server.proc;
  const http = await vhost(server.proc, "http");
  const https = await vhost(server.proc, "https");
  await using client = await startClient(dir, {
    ...server,
    token: TOKEN,
    tunnels: [{ name: "s", type: "http", local_port: site.port, yaml: "domain: s.test" }],
  });
  await client.waitFor((e) => e.msg === "tunnel ready");
  /** Sends `head` a byte every 200 ms; resolves with ms until the server closed. */
  const slow = async (port: number, head: string) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const started = performance.now();
    let closed = false;
    const reader = (async () => {
      const buf = new Uint8Array(1024);
      try {
        while ((await conn.read(buf)) !== null) { /* drain */ }
      } catch { /* reset */ }
      closed = true;
    })();
    for (const ch of head) {
      if (closed || performance.now() - started > 8_000) break;
      try {
        await conn.write(new TextEncoder().encode(ch));
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await Promise.race([reader, new Promise((r) => setTimeout(r, 8_000))]);
    const ms = performance.now() - started;
    try {
      conn.close();
    } catch { /* closed */ }
    await reader;
    return { ms, closed };
  };
  const slowHttp = slow(http, "GET / HTTP/1.1\r\nHost: s.test\r\nX-Slow: " + "a".repeat(100));
  const silentTls = slow(https, ""); // connects and never says hello
  const slowTls = slow(https, "\x16\x03\x01\x02\x00\x01"); // a ClientHello that never finishes
  // Meanwhile normal visitors are served.
  for (let i = 0; i < 5; i++) {
    const r = await curlBody(["--resolve", `s.test:${http}:127.0.0.1`, `http://s.test:${http}/`]);
    assertEquals(r.code, 200);
  }
  for (
    const [what, result] of [["http", await slowHttp], ["tls silent", await silentTls], [
      "tls slow hello",
      await slowTls,
    ]] as const
  ) {
    assert(result.closed, `${what}: the server closed the connection`);
    assert(result.ms < 4_000, `${what}: closed after ${Math.round(result.ms)} ms (timeout 1 s)`);
  }
  await Deno.remove(dir, { recursive: true });
});

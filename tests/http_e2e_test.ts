/**
 * HTTP tunnels end to end: real burrowd and burrow processes, local origins
 * in this process, and curl as the visitor (HTTP/1.1 and HTTP/2).
 */

import { assert, assertEquals, testNeeding } from "../lib/testing/mod.ts";
import { createCa } from "./_pki.ts";
import { type Proc, startClient, startServer } from "./_procs.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { curl: testNeeding("curl") };

const TOKEN = "http-e2e-token";
const decoder = new TextDecoder();

/** A local origin that answers every request with what it saw, as JSON. */
function echoOrigin(name: string): { port: number; seen: Request[] } & AsyncDisposable {
  const seen: Request[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      seen.push(req);
      const body = req.body ? (await req.arrayBuffer()).byteLength : 0;
      const url = new URL(req.url);
      return Response.json(
        {
          origin: name,
          method: req.method,
          path: url.pathname + url.search,
          headers: Object.fromEntries(req.headers),
          body,
        },
        { headers: { "x-powered-by": "origin", "x-origin": name } },
      );
    },
  );
  return {
    port: server.addr.port,
    seen,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  stderr: string;
}

/** Runs curl; `-s -i` is added, the last response's head is parsed. */
async function curl(args: string[]): Promise<CurlResult> {
  const out = await new Deno.Command("curl", {
    args: ["-sS", "-i", "--max-time", "20", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = decoder.decode(out.stdout);
  // Skip interim responses (100 Continue) and keep the final head.
  const parts = text.split("\r\n\r\n");
  let i = 0;
  while (i < parts.length - 1 && /^HTTP\/\S+ 1\d\d/.test(parts[i]!)) i++;
  const head = parts[i] ?? "";
  const body = parts.slice(i + 1).join("\r\n\r\n");
  const [statusLine, ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return {
    status: Number(statusLine?.split(" ")[1] ?? 0),
    headers,
    body,
    stderr: decoder.decode(out.stderr),
  };
}

async function vhostPorts(server: Proc): Promise<{ http: number; https: number | undefined }> {
  const http = await server.waitFor((e) => e.msg === "http vhost listening");
  const https = server.events.find((e) => e.msg === "https vhost listening");
  return { http: http.port as number, https: https?.port as number | undefined };
}

async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

test.curl("http: routing by host and path, header rules, basic auth, errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-http-" });
  await using a = echoOrigin("A");
  await using b = echoOrigin("B");
  const refusing = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (refusing.addr as Deno.NetAddr).port;
  refusing.close();
  const server = await startServer(
    dir,
    TOKEN,
    0,
    `  vhost_http_port: 0\n  subdomain_host: tun.test\n  admin: {bind_addr: 127.0.0.1, bind_port: 0}\n`,
  );
  await using _server = server.proc;
  const { http } = await vhostPorts(server.proc);
  const client = await startClient(dir, {
    port: server.port,
    token: TOKEN,
    fingerprint: server.fingerprint,
    tunnels: [
      {
        name: "a",
        type: "http",
        local_port: a.port,
        yaml: "custom_domains: [app.test], custom_headers: {Host: myapp.local}, " +
          "request_headers: {set: {X-Added: 'yes'}, remove: [X-Secret]}, " +
          "response_headers: {set: {X-Served-By: burrow}, remove: [X-Powered-By]}",
      },
      { name: "b", type: "http", local_port: b.port, yaml: "domain: app.test, locations: [/api]" },
      {
        name: "s",
        type: "http",
        local_port: a.port,
        yaml: "subdomain: sub, basic_auth: {user: ann, password: 'pa:ss'}",
      },
      { name: "dead", type: "http", local_port: deadPort, yaml: "custom_domains: [dead.test]" },
    ],
  });
  await using _client = client;
  for (const name of ["a", "b", "s", "dead"]) {
    await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === name);
  }
  const ready = client.events.find((e) => e.msg === "tunnel ready" && e.tunnel === "s")!;
  assertEquals(ready.urls, [`http://sub.tun.test:${http}`]);
  const at = (host: string, path = "/") => [
    "--resolve",
    `${host}:${http}:127.0.0.1`,
    `http://${host}:${http}${path}`,
  ];

  // Host and custom headers.
  const root = await curl([...at("app.test", "/?q=1"), "-H", "X-Secret: s3", "-H", "X-Keep: k"]);
  assertEquals(root.status, 200, root.body);
  const seen = JSON.parse(root.body);
  assertEquals(seen.origin, "A");
  assertEquals(seen.path, "/?q=1");
  assertEquals(seen.headers.host, "myapp.local");
  assertEquals(seen.headers["x-added"], "yes");
  assertEquals(seen.headers["x-secret"], undefined);
  assertEquals(seen.headers["x-keep"], "k");
  assertEquals(seen.headers["x-forwarded-for"], "127.0.0.1");
  assertEquals(seen.headers["x-forwarded-proto"], "http");
  assertEquals(seen.headers["x-forwarded-host"], `app.test:${http}`);
  assertEquals(root.headers["x-served-by"], "burrow");
  assertEquals(root.headers["x-powered-by"], undefined);
  assertEquals(root.headers["x-origin"], "A");

  // Path prefixes: /api and below go to B, /apix does not.
  assertEquals(JSON.parse((await curl(at("app.test", "/api"))).body).origin, "B");
  assertEquals(JSON.parse((await curl(at("app.test", "/api/v1/x"))).body).origin, "B");
  assertEquals(JSON.parse((await curl(at("app.test", "/apix"))).body).origin, "A");

  // Per request, not per connection: one kept-alive connection, two tunnels.
  const reuse = await new Deno.Command("curl", {
    args: [
      "-s",
      "--resolve",
      `app.test:${http}:127.0.0.1`,
      "-w",
      "\n%{num_connects}\n",
      `http://app.test:${http}/one`,
      `http://app.test:${http}/api/two`,
    ],
    stdout: "piped",
  }).output();
  const lines = decoder.decode(reuse.stdout).trim().split("\n");
  assertEquals(JSON.parse(lines[0]!).origin, "A");
  assertEquals(lines[1], "1");
  assertEquals(JSON.parse(lines[2]!).origin, "B");
  assertEquals(lines[3], "0", "the second request reused the connection");

  // Unknown host: 404 naming it.
  const unknown = await curl(at("nobody.test"));
  assertEquals(unknown.status, 404);
  assert(unknown.body.includes('"nobody.test"'), unknown.body);

  // Basic auth: refused without, served with; the password never reaches the service.
  const noAuth = await curl(at("sub.tun.test"));
  assertEquals(noAuth.status, 401);
  assert(noAuth.headers["www-authenticate"]?.startsWith("Basic"));
  assertEquals((await curl([...at("sub.tun.test"), "-u", "ann:wrong"])).status, 401);
  const authed = await curl([...at("sub.tun.test"), "-u", "ann:pa:ss"]);
  assertEquals(authed.status, 200);
  assertEquals(JSON.parse(authed.body).headers.authorization, undefined);

  // Local service refusing: 502 that says so.
  const dead = await curl(at("dead.test"));
  assertEquals(dead.status, 502);
  assert(dead.body.includes("local service"), dead.body);

  // Bad requests never reach a tunnel and do not hurt the port.
  const garbage = await Deno.connect({ hostname: "127.0.0.1", port: http });
  await garbage.write(new TextEncoder().encode("NOT HTTP AT ALL\r\n\r\n"));
  const reply = new Uint8Array(200);
  const n = await garbage.read(reply);
  garbage.close();
  assert(decoder.decode(reply.subarray(0, n ?? 0)).startsWith("HTTP/1.1 400"));

  // Errors are counted for monitoring.
  const adminPort = server.proc.events.find((e) => e.msg === "admin listening")!.port;
  const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  assert(/burrow_errors_total\{kind="unknown_host"\} [1-9]/.test(metrics), "unknown_host counted");
  assert(
    /burrow_connections_total\{tunnel="admin\/dead",result="error"\} [1-9]/.test(metrics),
    "502 counted as the tunnel's error",
  );

  // The client goes away: its hosts answer 502 "offline", not 404.
  client.child.kill("SIGTERM");
  await client.status;
  await server.proc.waitFor((e) => e.msg === "session closed" || e.msg === "client disconnected");
  const offline = await curl(at("app.test"));
  assertEquals(offline.status, 502);
  assert(offline.body.includes("offline"), offline.body);
  await Deno.remove(dir, { recursive: true });
});

test.curl("http: bodies stream both ways with flat memory; 100-continue; SSE event by event", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-http-" });
  let releaseSecond!: () => void;
  const second = new Promise<void>((resolve) => (releaseSecond = resolve));
  let secondSentAt = 0;
  const origin = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/upload") {
      let total = 0;
      for await (const chunk of req.body!) total += chunk.length;
      return new Response(String(total));
    }
    if (url.pathname === "/download") {
      let left = Number(url.searchParams.get("n"));
      const block = new Uint8Array(256 * 1024).fill(120);
      // No content-length: the response is chunked.
      return new Response(
        new ReadableStream({
          type: "bytes",
          pull(controller) {
            if (left <= 0) return controller.close();
            const n = Math.min(left, block.length);
            controller.enqueue(block.slice(0, n));
            left -= n;
          },
        }),
      );
    }
    if (url.pathname === "/sse") {
      const enc = new TextEncoder();
      return new Response(
        new ReadableStream({
          async start(controller) {
            controller.enqueue(enc.encode("data: one\n\n"));
            await second;
            secondSentAt = performance.now();
            controller.enqueue(enc.encode("data: two\n\n"));
            controller.close();
          },
        }),
        { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } },
      );
    }
    return new Response("?", { status: 404 });
  });
  try {
    const server = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n`);
    await using _server = server.proc;
    const { http } = await vhostPorts(server.proc);
    const client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [{
        name: "big",
        type: "http",
        local_port: origin.addr.port,
        yaml: "custom_domains: [big.test]",
      }],
    });
    await using _client = client;
    await client.waitFor((e) => e.msg === "tunnel ready");
    const url = (path: string) => [
      "--resolve",
      `big.test:${http}:127.0.0.1`,
      `http://big.test:${http}${path}`,
    ];

    // SSE: the first event arrives while the origin still holds the second.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: http });
    await conn.write(
      new TextEncoder().encode(
        `GET /sse HTTP/1.1\r\nHost: big.test\r\nAccept: text/event-stream\r\n\r\n`,
      ),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    const deadline = Date.now() + 10_000;
    while (!text.includes("data: one") && Date.now() < deadline) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
    }
    const firstSeenAt = performance.now();
    assert(text.includes("data: one"), `first event delivered alone: ${JSON.stringify(text)}`);
    assert(!text.includes("data: two"));
    releaseSecond();
    while (!text.includes("data: two") && Date.now() < deadline) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
    }
    conn.close();
    assert(text.includes("data: two"));
    assert(firstSeenAt < secondSentAt, "event one was seen before event two existed");

    // Expect: 100-continue: curl waits for the interim response, then sends the body.
    const expect = await new Deno.Command("curl", {
      args: [
        "-sv",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        "x".repeat(5000),
        ...url("/upload"),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(decoder.decode(expect.stderr).includes("HTTP/1.1 100 Continue"), "100 Continue relayed");
    assertEquals(decoder.decode(expect.stdout), "5000");

    // 1 GiB up (chunked, from a pipe) and 1 GiB down (chunked) with RSS sampled on both sides,
    // after a 64 MiB warm-up each way (so the heaps' first growth is not counted as the body's).
    const GiB = 1024 ** 3;
    const pids = [server.proc.child.pid, client.child.pid];
    await new Deno.Command("sh", {
      args: [
        "-c",
        `head -c ${64 << 20} /dev/zero | curl -s -T - --resolve big.test:${http}:127.0.0.1 ` +
        `http://big.test:${http}/upload && curl -s -o /dev/null ` +
        `--resolve big.test:${http}:127.0.0.1 'http://big.test:${http}/download?n=${64 << 20}'`,
      ],
    }).output();
    const before = await Promise.all(pids.map(rssKiB));
    const peak = [...before];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const now = await Promise.all(pids.map(rssKiB));
        now.forEach((v, i) => (peak[i] = Math.max(peak[i]!, v)));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const up = await new Deno.Command("sh", {
      args: [
        "-c",
        `head -c ${GiB} /dev/zero | curl -s -T - -H 'Content-Type: application/octet-stream' ` +
        `--resolve big.test:${http}:127.0.0.1 http://big.test:${http}/upload`,
      ],
      stdout: "piped",
    }).output();
    assertEquals(decoder.decode(up.stdout), String(GiB), "1 GiB uploaded whole");
    const down = await new Deno.Command("curl", {
      args: ["-s", "-o", "/dev/null", "-w", "%{size_download}", ...url(`/download?n=${GiB}`)],
      stdout: "piped",
    }).output();
    assertEquals(decoder.decode(down.stdout), String(GiB), "1 GiB downloaded whole");
    sampling = false;
    await sampler;
    const growth = peak.map((p, i) => Math.round((p - before[i]!) / 1024));
    console.log(
      `RSS growth over 1 GiB up + 1 GiB down: server ${growth[0]} MiB, client ${growth[1]} MiB ` +
        `(from ${Math.round(before[0]! / 1024)} / ${Math.round(before[1]! / 1024)} MiB)`,
    );
    // Buffering a body would cost ≥ 1,024 MiB; what is left is garbage awaiting collection.
    assert(growth[0]! < 192 && growth[1]! < 192, `RSS stays flat: ${growth.join(", ")} MiB`);
  } finally {
    await origin.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

test.curl("https: certificates by SNI, HTTP/2, redirect from HTTP, TLS passthrough", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-https-" });
  const ca = await createCa("Burrow test CA");
  const site = await ca.issueServer(["secure.test"]);
  await Deno.writeTextFile(`${dir}/ca.pem`, ca.cert);
  await Deno.writeTextFile(`${dir}/secure.crt`, site.cert);
  await Deno.writeTextFile(`${dir}/secure.key`, site.key);
  // The passthrough service has its own CA: only it can have answered.
  const ownCa = await createCa("Service's own CA");
  const own = await ownCa.issueServer(["pass.test"]);
  await Deno.writeTextFile(`${dir}/own-ca.pem`, ownCa.cert);
  await using origin = echoOrigin("plain");
  const tlsService = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: own.cert, key: own.key, onListen() {} },
    () => new Response("hello from the service's own TLS"),
  );
  try {
    const server = await startServer(
      dir,
      TOKEN,
      0,
      `  vhost_http_port: 0\n  vhost_https_port: 0\n` +
        `  vhost_https_certs: [{domains: [secure.test], cert_file: "${dir}/secure.crt", ` +
        `key_file: "${dir}/secure.key"}]\n`,
    );
    await using _server = server.proc;
    const { http, https } = await vhostPorts(server.proc);
    const client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [
        {
          name: "sec",
          type: "https",
          local_port: origin.port,
          yaml: "custom_domains: [secure.test]",
        },
        {
          name: "pt",
          type: "https",
          local_port: tlsService.addr.port,
          yaml: "custom_domains: [pass.test], tls_passthrough: true",
        },
      ],
    });
    await using _client = client;
    await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "sec");
    await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "pt");
    const secure = (extra: string[]) =>
      curl([
        ...extra,
        "--cacert",
        `${dir}/ca.pem`,
        "--resolve",
        `secure.test:${https}:127.0.0.1`,
        `https://secure.test:${https}/x`,
      ]);
    const h2 = await secure(["--http2"]);
    assertEquals(h2.status, 200, h2.stderr + h2.body);
    const seen = JSON.parse(h2.body);
    assertEquals(seen.headers["x-forwarded-proto"], "https");
    assertEquals(seen.headers.host, `secure.test:${https}`);
    const h2Version = await new Deno.Command("curl", {
      args: [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        "--http2",
        "--cacert",
        `${dir}/ca.pem`,
        "--resolve",
        `secure.test:${https}:127.0.0.1`,
        `https://secure.test:${https}/`,
      ],
      stdout: "piped",
    }).output();
    assertEquals(decoder.decode(h2Version.stdout), "2", "HTTP/2 negotiated by ALPN");
    const h1 = await secure(["--http1.1"]);
    assertEquals(h1.status, 200);
    assertEquals(JSON.parse(h1.body).origin, "plain");

    // The HTTP port sends https-only hosts to HTTPS.
    const redirect = await curl([
      "--resolve",
      `secure.test:${http}:127.0.0.1`,
      `http://secure.test:${http}/a?b=1`,
    ]);
    assertEquals(redirect.status, 308);
    assertEquals(redirect.headers.location, `https://secure.test:${https}/a?b=1`);

    // Passthrough: the visitor talks TLS with the service itself.
    const pass = await curl([
      "--cacert",
      `${dir}/own-ca.pem`,
      "--resolve",
      `pass.test:${https}:127.0.0.1`,
      `https://pass.test:${https}/`,
    ]);
    assertEquals(pass.status, 200, pass.stderr);
    assertEquals(pass.body, "hello from the service's own TLS");

    // A name nobody serves gets the fallback certificate and a 404.
    const unknown = await curl([
      "-k",
      "--resolve",
      `other.test:${https}:127.0.0.1`,
      `https://other.test:${https}/`,
    ]);
    assertEquals(unknown.status, 404);
  } finally {
    await tlsService.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

test.curl("quick mode: burrow http prints the public URL and serves it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-quick-http-" });
  await using origin = echoOrigin("quick");
  const server = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n`);
  await using _server = server.proc;
  const { http } = await vhostPorts(server.proc);
  const { Proc } = await import("./_procs.ts");
  await using client = new Proc("client", [
    "http",
    String(origin.port),
    "--domain",
    "quick.test",
    "--server",
    `127.0.0.1:${server.port}`,
    "--fingerprint",
    server.fingerprint,
    "--host-header",
    "inside.local",
  ], { BURROW_TOKEN: TOKEN, BURROW_NO_STATUS_LINE: "1" });
  await client.waitFor((e) => e.msg === "tunnel ready");
  const res = await curl([
    "--resolve",
    `quick.test:${http}:127.0.0.1`,
    `http://quick.test:${http}/`,
  ]);
  assertEquals(JSON.parse(res.body).headers.host, "inside.local");
  client.child.kill("SIGINT");
  const stdout = await client.stdout;
  assert(
    stdout.includes(`Forwarding  http://quick.test:${http} -> 127.0.0.1:${origin.port}`),
    stdout,
  );
  await Deno.remove(dir, { recursive: true });
});

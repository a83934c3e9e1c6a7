/**
 * HTTP/1.1 over TLS on the HTTPS vhost port goes through the splice engine,
 * as on the HTTP port, while HTTP/2 stays on node's server: real burrowd and
 * burrow processes, raw-TCP origins that record what they receive, and
 * visitors that speak TLS to 127.0.0.1 with the SNI name of a configured
 * certificate.
 */

import http2 from "node:http2";
import { assert, assertEquals, within } from "../lib/testing/mod.ts";
import { createCa } from "./_pki.ts";
import type { Proc } from "./_procs.ts";
import { rawOrigin, type TunnelSpec, vhostWith, visit } from "./_raw_http.ts";

const HOST = "web.test";
/** Bound of each step that waits on the network. */
const STEP_MS = 15_000;

/**
 * burrowd with an HTTPS port holding a certificate for {@linkcode HOST}
 * (issued by a throwaway CA), two `https` tunnels splitting the host by
 * path (`/api` to origin B, the rest to origin A) and a client serving
 * them; `body` gets the HTTPS port, the CA, the origins and burrowd (logging
 * at debug level, so access events are there).
 */
async function withHttpsTunnels(
  body: (
    https: number,
    ca: string,
    origins: { a: ReturnType<typeof rawOrigin>; b: ReturnType<typeof rawOrigin> },
    server: Proc,
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "burrow-https-splice-" });
  try {
    const ca = await createCa("Burrow HTTPS test CA");
    const site = await ca.issueServer([HOST]);
    await Deno.writeTextFile(`${dir}/site.crt`, site.cert);
    await Deno.writeTextFile(`${dir}/site.key`, site.key);
    await using a = rawOrigin("A");
    await using b = rawOrigin("B");
    const tunnels: TunnelSpec[] = [
      { name: "site", type: "https", local_port: a.port, yaml: `custom_domains: [${HOST}]` },
      {
        name: "api",
        type: "https",
        local_port: b.port,
        yaml: `custom_domains: [${HOST}], locations: [/api]`,
      },
    ];
    await using burrow = await vhostWith(
      dir,
      tunnels,
      `  vhost_https_port: 0\n  vhost_https_certs: [{domains: [${HOST}], ` +
        `cert_file: "${dir}/site.crt", key_file: "${dir}/site.key"}]\n` +
        "  log: {level: debug, format: json}\n",
    );
    await body(burrow.https!, ca.cert, { a, b }, burrow.server);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Opens TLS to 127.0.0.1:`port` as {@linkcode HOST}, offering only HTTP/1.1 (or no ALPN). */
function tlsTo(port: number, ca: string, alpn = true): () => Promise<Deno.Conn> {
  return async () => {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
    return await Deno.startTls(tcp, {
      hostname: HOST,
      caCerts: [ca],
      ...(alpn ? { alpnProtocols: ["http/1.1"] } : {}),
    });
  };
}

Deno.test("https: pipelined requests on one kept-alive TLS connection go to the tunnel of each path", async () => {
  await withHttpsTunnels(async (https, ca, { a, b }, server) => {
    const conn = await tlsTo(https, ca)();
    const buf = new Uint8Array(65536);
    let answer = "";
    /** Reads until `pattern` is in the answer; false when the server closed first. */
    const readUntil = async (pattern: RegExp): Promise<boolean> => {
      while (!pattern.test(answer)) {
        const n = await within(conn.read(buf).catch(() => null), STEP_MS, `${pattern}`);
        if (n === null) return false;
        answer += new TextDecoder().decode(buf.subarray(0, n));
      }
      return true;
    };
    const request = (path: string, extra = "") =>
      `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}\r\n`;
    try {
      // Four requests in one write; the connection stays open after their answers.
      const first = ["/one", "/api/two", "/three", "/api/four"].map((p) => request(p)).join("");
      await conn.write(new TextEncoder().encode(first));
      assert(await readUntil(/B:\/api\/four/), `first batch answered: ${answer}`);
      // More requests on the same connection, the last one asking to close.
      await conn.write(
        new TextEncoder().encode(request("/api/five") + request("/six", "Connection: close\r\n")),
      );
      assert(await readUntil(/A:\/six/), `second batch answered: ${answer}`);
      assertEquals(await readUntil(/never/), false, "closed after the request that asked for it");
    } finally {
      conn.close();
    }
    const bodies = [...answer.matchAll(/\r\n\r\n([AB]:\/[a-z/]+)/g)].map((m) => m[1]);
    assertEquals(bodies, [
      "A:/one",
      "B:/api/two",
      "A:/three",
      "B:/api/four",
      "B:/api/five",
      "A:/six",
    ]);
    assertEquals((answer.match(/HTTP\/1\.1 200 /g) ?? []).length, 6);
    // Each service saw its own requests, marked as having come over HTTPS.
    const seenA = a.received();
    const seenB = b.received();
    assertEquals((seenA.match(/^GET /gm) ?? []).length, 3);
    assertEquals((seenB.match(/^GET /gm) ?? []).length, 3);
    assertEquals((seenA.match(/X-Forwarded-Proto: https\r\n/g) ?? []).length, 3);
    assertEquals((seenB.match(/X-Forwarded-Proto: https\r\n/g) ?? []).length, 3);
    // One access event per request, naming its tunnel.
    await server.waitFor((e) => e.msg === "access" && e.path === "/six", STEP_MS);
    const access = server.events
      .filter((e) => e.msg === "access")
      .map((e) => `${e.tunnel} ${e.path} ${e.http_status}`)
      .sort();
    assertEquals(access, [
      "api /api/five 200",
      "api /api/four 200",
      "api /api/two 200",
      "site /one 200",
      "site /six 200",
      "site /three 200",
    ]);

    // Without ALPN the connection is HTTP/1.1 too.
    const plain = await visit(
      tlsTo(https, ca, false),
      request("/seven", "Connection: close\r\n"),
      /A:\/seven/,
    );
    assert(/^HTTP\/1\.1 200 /.test(plain.answer), plain.answer);
    assert(plain.closed);
  });
});

Deno.test("https: Content-Length with Transfer-Encoding is refused with 400 and the TLS connection closed", async () => {
  await withHttpsTunnels(async (https, ca, { a }) => {
    const smuggled = `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\n` +
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: " + HOST +
      "\r\n\r\n";
    const refused = await visit(tlsTo(https, ca), smuggled, /\r\n\r\n400 /);
    assert(/^HTTP\/1\.1 400 /.test(refused.answer), refused.answer);
    // The splice engine's refusal names the reason.
    assert(refused.answer.includes("Both Content-Length and Transfer-Encoding"), refused.answer);
    assert(refused.closed, "the connection is closed after the refusal");
    assertEquals(a.received(), "", "nothing reached the service");

    // The port goes on serving: a WebSocket upgrade (wss) becomes a pipe after the 101.
    const key = btoa("0123456789abcdef");
    const ws = await visit(
      tlsTo(https, ca),
      `GET /ws HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      /101 Switching/,
      "echo-me",
    );
    assert(/^HTTP\/1\.1 101 /.test(ws.answer), ws.answer);
    assert(ws.answer.endsWith("echo-me"), `bytes after the 101 are echoed: ${ws.answer}`);
  });
});

Deno.test("https: HTTP/2 (node:http2 client) is still served on the same port, routed by path", async () => {
  await withHttpsTunnels(async (https, ca, { a, b }) => {
    const session = http2.connect(`https://127.0.0.1:${https}`, { ca, servername: HOST });
    try {
      await within(
        new Promise<void>((resolve, reject) => {
          session.once("connect", () => resolve());
          session.once("error", reject);
        }),
        STEP_MS,
        "HTTP/2 session",
      );
      assertEquals(session.alpnProtocol, "h2");
      const get = (path: string, authority = HOST) =>
        within(
          new Promise<{ status: number; body: string }>((resolve, reject) => {
            const stream = session.request({ ":path": path, ":authority": authority });
            let status = 0;
            let body = "";
            stream.setEncoding("utf8");
            stream.on("response", (headers) => (status = Number(headers[":status"])));
            stream.on("data", (chunk: string) => (body += chunk));
            stream.on("end", () => resolve({ status, body }));
            stream.on("error", reject);
          }),
          STEP_MS,
          `h2 ${path}`,
        );
      // Two requests in flight at once on one session.
      const [site, api] = await Promise.all([get("/h2/site"), get("/api/h2")]);
      assertEquals(site, { status: 200, body: "A:/h2/site" });
      assertEquals(api, { status: 200, body: "B:/api/h2" });
      // An unknown host on the same session gets the 404 naming it.
      const other = await get("/", "nobody.test");
      assertEquals(other.status, 404);
      assert(other.body.includes(`"nobody.test"`), other.body);
    } finally {
      await new Promise<void>((resolve) => session.close(() => resolve()));
    }
    assert(/X-Forwarded-Proto: https\r\n/.test(a.received()), a.received());
    assert(/X-Forwarded-Proto: https\r\n/.test(b.received()), b.received());
  });
});

/**
 * Request smuggling through the HTTP vhost port, from outside: real burrowd
 * and burrow processes, a raw-TCP origin that records every byte it
 * receives, and a raw-TCP visitor that sends what a browser never would.
 */

import { assert, assertEquals } from "./_assert.ts";
import { type Proc, startClient, startServer } from "./_procs.ts";

const TOKEN = "smuggling-e2e-token";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * An origin on raw TCP: records everything it receives; answers 101 to a
 * WebSocket upgrade of `/ws` (then echoes), and 200 "ok" to anything else.
 */
function rawOrigin(name?: string): { port: number; received: () => string } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let log = "";
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(65536);
        let pending = "";
        let echo = false;
        try {
          while (true) {
            const n = await conn.read(buf);
            if (n === null) break;
            const text = decoder.decode(buf.subarray(0, n));
            log += text;
            if (echo) {
              await conn.write(buf.slice(0, n));
              continue;
            }
            pending += text;
            let end: number;
            while ((end = pending.indexOf("\r\n\r\n")) >= 0) {
              const head = pending.slice(0, end);
              pending = pending.slice(end + 4);
              if (/^GET \/ws /.test(head) && /upgrade: websocket/i.test(head)) {
                await conn.write(encoder.encode(
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                ));
                echo = true;
                if (pending) await conn.write(encoder.encode(pending));
                break;
              }
              // Named origins answer with their name and the path they were asked for.
              const body = name ? `${name}:${head.split(" ")[1]}` : "ok";
              await conn.write(encoder.encode(
                `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-Origin: raw\r\n\r\n${body}`,
              ));
            }
          }
        } catch { /* visitor side gone */ }
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    received: () => log,
    [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      return Promise.resolve();
    },
  };
}

/**
 * Sends `first`, reads the answer until `until` appears in it, then sends
 * `second` (when given) and reads until the server closes or 3 s pass.
 */
async function visit(
  port: number,
  first: string,
  until: RegExp,
  second?: string,
): Promise<{ answer: string; closed: boolean }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(65536);
  let answer = "";
  let closed = false;
  const deadline = Date.now() + 10_000;
  const readSome = async (ms: number): Promise<boolean> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms)),
    ]);
    clearTimeout(timer);
    if (n === "timeout") return true;
    if (n === null) {
      closed = true;
      return false;
    }
    answer += decoder.decode(buf.subarray(0, n));
    return true;
  };
  try {
    await conn.write(encoder.encode(first));
    while (!until.test(answer) && Date.now() < deadline && await readSome(deadline - Date.now()));
    if (second !== undefined && !closed) {
      await conn.write(encoder.encode(second)).catch(() => 0);
    }
    const stop = Date.now() + 3_000;
    while (!closed && Date.now() < stop && await readSome(stop - Date.now()));
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
  return { answer, closed };
}

type TunnelSpec = { name: string; type: "http"; local_port: number; yaml: string };

/** burrowd with a vhost HTTP port and a client serving `tunnels`, each one ready. */
async function vhostWith(
  dir: string,
  tunnels: TunnelSpec[],
  extra = "",
): Promise<{ server: Proc; http: number } & AsyncDisposable> {
  const started = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n${extra}`);
  const server = started.proc;
  try {
    const http = (await server.waitFor((e) => e.msg === "http vhost listening")).port as number;
    const client = await startClient(dir, {
      port: started.port,
      token: TOKEN,
      fingerprint: started.fingerprint,
      tunnels,
    });
    const stop = async () => {
      await client[Symbol.asyncDispose]();
      await server[Symbol.asyncDispose]();
    };
    try {
      for (const { name } of tunnels) {
        await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === name);
      }
    } catch (error) {
      await stop();
      throw error;
    }
    return { server, http, [Symbol.asyncDispose]: stop };
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
}

const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: anything.evil\r\n" +
  "X-Forwarded-For: 6.6.6.6\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n" +
  "Authorization: Basic c211Z2dsZWQ6eA==\r\n\r\n0\r\n\r\n";

Deno.test("http: an Upgrade the service refuses never turns the connection into a pipe", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-smuggle-" });
  await using origin = rawOrigin();
  // Debug level: the access events are logged.
  await using burrow = await vhostWith(dir, [
    { name: "web", type: "http", local_port: origin.port, yaml: "custom_domains: [web.test]" },
    {
      name: "locked",
      type: "http",
      local_port: origin.port,
      yaml: "custom_domains: [locked.test], basic_auth: {user: ann, password: secret}",
    },
  ], "  log: {level: debug, format: json}\n");
  const { server, http } = burrow;
  const upgradeTo = (host: string, extra = "") =>
    `GET / HTTP/1.1\r\nHost: ${host}\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n` +
    `HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n${extra}\r\n`;

  // 1. The service answers 200: the visitor gets it, then the connection ends; the follow-up never arrives.
  const plain = await visit(http, upgradeTo("web.test"), /\r\n\r\nok/, SMUGGLED);
  assert(/^HTTP\/1\.1 200 /.test(plain.answer), `200 relayed: ${plain.answer}`);
  assert(/connection: close/i.test(plain.answer), "announced as the last response");
  assert(plain.closed, "the connection ended after the refused upgrade");

  // 2. The same with the smuggled request pipelined behind the upgrade in one write.
  const pipelined = await visit(http, upgradeTo("web.test") + SMUGGLED, /\r\n\r\nok/);
  assert(/^HTTP\/1\.1 200 /.test(pipelined.answer));
  assert(pipelined.closed);

  // 3. Basic auth: the follow-up's Authorization never reaches the service.
  const auth = `Authorization: Basic ${btoa("ann:secret")}\r\n`;
  const locked = await visit(http, upgradeTo("locked.test", auth), /\r\n\r\nok/, SMUGGLED);
  assert(/^HTTP\/1\.1 200 /.test(locked.answer), `200 relayed: ${locked.answer}`);
  assert(locked.closed);

  const seen = origin.received();
  assertEquals(seen.includes("anything.evil"), false, "no smuggled request reached the service");
  assertEquals(seen.includes("/smuggled"), false);
  assertEquals(seen.includes("6.6.6.6"), false, "no forged X-Forwarded-For");
  assertEquals(/authorization/i.test(seen), false, "no Authorization header reached the service");
  assertEquals((seen.match(/^GET \/ HTTP\/1\.1/gm) ?? []).length, 3, "each upgrade request once");
  assertEquals((seen.match(/X-Forwarded-For: 127\.0\.0\.1/g) ?? []).length, 3);

  // 4. A real upgrade that the service accepts still becomes a pipe.
  const key = btoa("0123456789abcdef");
  const ws = await visit(
    http,
    `GET /ws HTTP/1.1\r\nHost: web.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    /101 Switching/,
    "echo-me",
  );
  assert(/^HTTP\/1\.1 101 /.test(ws.answer), ws.answer);
  assert(ws.answer.endsWith("echo-me"), `bytes after the 101 are echoed: ${ws.answer}`);

  // The access log records the real status of each attempt, not 101.
  await server.waitFor((e) => e.msg === "access" && e.path === "/ws");
  const statuses = server.events
    .filter((e) => e.msg === "access" && e.path === "/")
    .map((e) => e.http_status);
  assertEquals(statuses, [200, 200, 200]);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
});

Deno.test("http: absolute-form targets are rewritten or refused; two Host headers are refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-smuggle-" });
  await using origin = rawOrigin();
  await using burrow = await vhostWith(dir, [
    { name: "web", type: "http", local_port: origin.port, yaml: "custom_domains: [web.test]" },
  ]);
  const { http } = burrow;

  const mismatch = await visit(
    http,
    "GET http://evil.test/x HTTP/1.1\r\nHost: web.test\r\n\r\n",
    /\r\n\r\n[\s\S]*\n/,
  );
  assert(/^HTTP\/1\.1 400 /.test(mismatch.answer), mismatch.answer);
  assert(/differs from its Host header/.test(mismatch.answer), mismatch.answer);

  const same = await visit(
    http,
    "GET http://web.test/abs?q=1 HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
    /\r\n\r\nok/,
  );
  assert(/^HTTP\/1\.1 200 /.test(same.answer), same.answer);

  const twoHosts = await visit(
    http,
    "GET / HTTP/1.1\r\nHost: web.test\r\nHost: other.test\r\n\r\n",
    /\r\n\r\n[\s\S]*\n/,
  );
  assert(/^HTTP\/1\.1 400 /.test(twoHosts.answer), twoHosts.answer);
  assert(twoHosts.closed, "closed after the refusal");

  const seen = origin.received();
  assert(seen.includes("GET /abs?q=1 HTTP/1.1"), `origin form reached the service: ${seen}`);
  assertEquals(seen.includes("evil.test"), false);
  assertEquals(seen.includes("other.test"), false);
  assertEquals(seen.includes("http://"), false, "no absolute-form target reached the service");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
});

Deno.test("http: pipelined requests on one connection go to the tunnel of each path, answered in order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-splice-" });
  await using a = rawOrigin("A");
  await using b = rawOrigin("B");
  await using burrow = await vhostWith(dir, [
    { name: "site", type: "http", local_port: a.port, yaml: "custom_domains: [web.test]" },
    {
      name: "api",
      type: "http",
      local_port: b.port,
      yaml: "custom_domains: [web.test], locations: [/api]",
    },
  ]);
  const { http } = burrow;
  const paths = ["/one", "/api/two", "/three", "/api/four", "/five"];
  const pipelined = paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: web.test\r\n\r\n`).join("");
  const last = "GET /api/six HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n";
  const { answer, closed } = await visit(http, pipelined + last, /A:\/five[\s\S]*B:\/api\/six/);
  const bodies = [...answer.matchAll(/\r\n\r\n([AB]:\/[a-z/]+)/g)].map((m) => m[1]);
  assertEquals(bodies, [
    "A:/one",
    "B:/api/two",
    "A:/three",
    "B:/api/four",
    "A:/five",
    "B:/api/six",
  ]);
  assertEquals((answer.match(/HTTP\/1\.1 200 /g) ?? []).length, 6);
  assert(closed, "closed after the request that asked for it");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
});

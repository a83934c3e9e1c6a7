// WebSockets through an HTTP tunnel end to end: real burrowd and burrow, the
// npm `ws` library on both ends of the tunnel, headless Chromium loading a
// page (CSS, JS, image, WebSocket) from a local origin by its virtual host,
// and a raw visitor that half-closes its side of an upgraded connection.

import { Buffer } from "node:buffer";
import type { IncomingMessage } from "node:http";
import { WebSocket, WebSocketServer } from "ws";
import {
  assert,
  assertEquals,
  CHROMIUM_HEADLESS,
  testNeeding,
  within,
} from "../lib/testing/mod.ts";
import { startClient, startServer, writeAll } from "./_procs.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { chromium: testNeeding("chromium") };

const TOKEN = "websocket-e2e-token";
const HOST = "app.burrow.test";
/** Bound of each step that waits on the network (generous: CI machines run tests in parallel). */
const STEP_MS = 15_000;

/** `n` random bytes (`getRandomValues` fills at most 64 KiB at a time). */
function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 65_536) crypto.getRandomValues(out.subarray(at, at + 65_536));
  return out;
}

/** The first `event` of `emitter`, as the array of its arguments. */
function once(
  emitter: { once(event: string, listener: (...args: unknown[]) => void): unknown },
  event: string,
  ms = STEP_MS,
): Promise<unknown[]> {
  return within(
    new Promise((resolve) => emitter.once(event, (...args) => resolve(args))),
    ms,
    event,
  );
}

/** Burrowd with an HTTP vhost port and burrow with one `http` tunnel for {@linkcode HOST}. */
async function withHttpTunnel(
  localPort: number,
  body: (vhostPort: number) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "burrow-ws-" });
  try {
    const server = await startServer(dir, TOKEN, 0, "  vhost_http_port: 0\n");
    await using _server = server.proc;
    const vhost = await server.proc.waitFor((e) => e.msg === "http vhost listening");
    await using client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [{
        name: "web",
        type: "http",
        local_port: localPort,
        yaml: `custom_domains: [${HOST}]`,
      }],
    });
    await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === "web", 30_000);
    await body(vhost.port as number);
  } finally {
    // Not fatal: a burrowd that startServer gave up on may still be writing
    // here, and the error would hide the test's own.
    await Deno.remove(dir, { recursive: true }).catch((error) =>
      console.warn(`could not remove ${dir}: ${error}`)
    );
  }
}

/** One message as `ws` delivers it. */
interface Received {
  data: Buffer;
  binary: boolean;
}

/** Queues the messages of `ws`; `next()` takes them in order. */
function inbox(ws: WebSocket): { next(what: string): Promise<Received> } {
  const queue: Received[] = [];
  const waiting: Array<(m: Received) => void> = [];
  ws.on("message", (data: Buffer, binary: boolean) => {
    const message = { data, binary };
    const waiter = waiting.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  return {
    next(what) {
      const ready = queue.shift();
      if (ready) return Promise.resolve(ready);
      return within(new Promise((resolve) => waiting.push(resolve)), STEP_MS, what);
    },
  };
}

/**
 * The local origin: a `ws` server that picks `chat.v2` among the offered
 * subprotocols and records every upgrade request, ping, pong and close.
 * `/chat` echoes each message with its type; `/bye` echoes one message,
 * pings the visitor and, once the pong is back, closes with 4002 "server bye".
 */
async function wsOrigin() {
  const upgrades: Array<{ url: string; headers: IncomingMessage["headers"] }> = [];
  const pings: string[] = [];
  const pongs: string[] = [];
  const closes: Array<{ url: string; code: number; reason: string }> = [];
  const closed: Array<Promise<void>> = [];
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    // Negotiated only when the visitor offers it: the first connection does not.
    perMessageDeflate: { threshold: 1024 },
    handleProtocols: (offered: Set<string>) => (offered.has("chat.v2") ? "chat.v2" : false),
  });
  wss.on("connection", (ws: WebSocket, req: IncomingMessage) => {
    const url = req.url ?? "";
    upgrades.push({ url, headers: req.headers });
    closed.push(
      new Promise((resolve) =>
        ws.on("close", (code: number, reason: Buffer) => {
          closes.push({ url, code, reason: reason.toString() });
          resolve();
        })
      ),
    );
    ws.on("ping", (data: Buffer) => pings.push(data.toString()));
    if (url.startsWith("/chat")) {
      ws.on("message", (data: Buffer, binary: boolean) => ws.send(data, { binary }));
    } else {
      ws.once("message", (data: Buffer, binary: boolean) => {
        ws.send(data, { binary });
        ws.ping(Buffer.from("origin ping"));
      });
      ws.on("pong", (data: Buffer) => {
        pongs.push(data.toString());
        ws.close(4002, "server bye");
      });
    }
  });
  await once(wss, "listening");
  return {
    port: (wss.address() as { port: number }).port,
    upgrades,
    pings,
    pongs,
    closes,
    /** Waits for every connection's close event. */
    allClosed: () => within(Promise.all(closed), STEP_MS, "origin connections closed"),
    async [Symbol.asyncDispose]() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(resolve));
    },
  };
}

/** Waits until `ws` is open; fails on an error (a refused upgrade is one) or after `STEP_MS`. */
async function opened(ws: WebSocket, what: string): Promise<void> {
  let forget = () => {};
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
        forget = () => {
          ws.off("open", resolve);
          ws.off("error", reject);
        };
      }),
      STEP_MS,
      what,
    );
  } finally {
    forget();
  }
}

/**
 * A visitor's WebSocket to `path` on the vhost port, offering `protocols`,
 * with the `Host` a browser would send for `ws://app.burrow.test:<port>`.
 */
function visitor(
  vhostPort: number,
  path: string,
  protocols: string[],
  perMessageDeflate: boolean,
): WebSocket {
  return new WebSocket(`ws://127.0.0.1:${vhostPort}${path}`, protocols, {
    headers: { host: `${HOST}:${vhostPort}` },
    perMessageDeflate,
    handshakeTimeout: STEP_MS,
  });
}

Deno.test("WebSocket subprotocol, messages, ping/pong and close codes pass an HTTP tunnel intact", async () => {
  await using origin = await wsOrigin();
  await withHttpTunnel(origin.port, async (vhostPort) => {
    // 1. Echo, pings and a visitor-initiated close.
    const ws = visitor(vhostPort, "/chat?room=1", ["chat.v1", "chat.v2"], false);
    await opened(ws, "upgrade of /chat");
    assertEquals(ws.protocol, "chat.v2");
    assertEquals(ws.extensions, "");
    const messages = inbox(ws);

    const text = "héllo, tünnel 🌍";
    ws.send(text);
    let m = await messages.next("text echo");
    assertEquals([m.binary, m.data.toString()], [false, text]);

    const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
    ws.send(bytes);
    m = await messages.next("binary echo");
    assertEquals([m.binary, [...m.data]], [true, [...bytes]]);

    const big = randomBytes(1 << 20);
    ws.send(big);
    m = await messages.next("1 MiB echo");
    assert(m.binary, "1 MiB message comes back binary");
    assertEquals(m.data.length, big.length);
    assert(m.data.equals(big), "1 MiB message comes back byte for byte");

    ws.send("");
    m = await messages.next("empty text echo");
    assertEquals([m.binary, m.data.length], [false, 0]);
    ws.send(new Uint8Array(0));
    m = await messages.next("empty binary echo");
    assertEquals([m.binary, m.data.length], [true, 0]);

    // A message in three fragments (continuation frames) arrives as one.
    ws.send("frag", { fin: false });
    ws.send("men", { fin: false });
    ws.send("ted", { fin: true });
    m = await messages.next("fragmented echo");
    assertEquals([m.binary, m.data.toString()], [false, "fragmented"]);

    const pong = once(ws, "pong");
    ws.ping(Buffer.from("ping payload ✓"));
    const [pongData] = await pong;
    assertEquals((pongData as Buffer).toString(), "ping payload ✓");
    assertEquals(origin.pings, ["ping payload ✓"]);

    const clientClosed = once(ws, "close");
    ws.close(4001, "bye");
    const [code, reason] = await clientClosed;
    assertEquals([code, (reason as Buffer).toString()], [4001, "bye"]);

    // 2. With permessage-deflate (compressed frames carry RSV1); then the
    // origin pings and closes.
    const ws2 = visitor(vhostPort, "/bye", ["chat.v2"], true);
    await opened(ws2, "upgrade of /bye");
    assertEquals(ws2.protocol, "chat.v2");
    assert(ws2.extensions.startsWith("permessage-deflate"), ws2.extensions);
    const messages2 = inbox(ws2);
    const pinged = once(ws2, "ping");
    const serverClosed = once(ws2, "close");
    const compressible = "burrow ".repeat(40_000);
    ws2.send(compressible);
    m = await messages2.next("compressed echo");
    assertEquals([m.binary, m.data.toString() === compressible], [false, true]);
    const [pingData] = await pinged;
    assertEquals((pingData as Buffer).toString(), "origin ping");
    const [code2, reason2] = await serverClosed;
    assertEquals([code2, (reason2 as Buffer).toString()], [4002, "server bye"]);

    await origin.allClosed();
    assertEquals(origin.closes, [
      { url: "/chat?room=1", code: 4001, reason: "bye" },
      { url: "/bye", code: 4002, reason: "server bye" },
    ]);
    assertEquals(origin.pongs, ["origin ping"]);

    // The origin saw the visitor's Host, path and offers, plus the forwarding headers.
    assertEquals(origin.upgrades.length, 2);
    const first = origin.upgrades[0]!;
    assertEquals(first.url, "/chat?room=1");
    assertEquals(first.headers.host, `${HOST}:${vhostPort}`);
    assertEquals(first.headers["x-forwarded-for"], "127.0.0.1");
    assertEquals(first.headers["x-forwarded-proto"], "http");
    assertEquals(first.headers["x-forwarded-host"], `${HOST}:${vhostPort}`);
    assertEquals(first.headers["sec-websocket-protocol"], "chat.v1,chat.v2");
    assertEquals(first.headers.upgrade?.toLowerCase(), "websocket");
    const second = origin.upgrades[1]!;
    assertEquals(second.headers.host, `${HOST}:${vhostPort}`);
    assert(
      String(second.headers["sec-websocket-extensions"]).startsWith("permessage-deflate"),
      String(second.headers["sec-websocket-extensions"]),
    );
  });
});

/** A 2×3 red PNG. */
const PNG = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAADCAYAAAC56t6BAAAAEUlEQVR4nGM4ISf3H4QZMBgAoR8ME4Q16BEAAAAASUVORK5CYII=",
  ),
  (c) => c.charCodeAt(0),
);

const PAGE = `<!doctype html>
<html>
<head>
  <title>burrow page</title>
  <link rel="stylesheet" href="/style.css">
  <script src="/app.js" defer></script>
</head>
<body>
  <p id="styled">styled</p>
  <img id="picture" src="/img.png" alt="">
</body>
</html>
`;

const STYLE = "#styled { color: rgb(1, 2, 3); }\n";

// Writes what it sees into the DOM: that it ran, the style the CSS applied,
// the decoded image size, and the WebSocket echo (with the chosen subprotocol).
const SCRIPT = `
const show = (id, text) => {
  const div = document.createElement("div");
  div.id = id;
  div.textContent = text;
  document.body.append(div);
};
document.body.dataset.js = "ran";
show("css", getComputedStyle(document.getElementById("styled")).color);
const picture = document.getElementById("picture");
const size = () => show("img", picture.naturalWidth + "x" + picture.naturalHeight);
if (picture.complete) size();
else picture.addEventListener("load", size);
const ws = new WebSocket("ws://" + location.host + "/ws", ["echo.v1"]);
ws.onopen = () => ws.send("hello from chromium");
ws.onmessage = (event) => {
  show("ws", ws.protocol + "|" + event.data);
  ws.close(4100, "page done");
};
ws.onerror = () => show("ws-error", "error");
`;

/** The page's origin: records requests by path and the WebSocket's close. */
function pageOrigin() {
  const requests: Record<string, number> = {};
  const hosts = new Set<string>();
  const forwardedFor = new Set<string>();
  let wsClose: (value: { code: number; reason: string }) => void = () => {};
  const wsClosed = new Promise<{ code: number; reason: string }>((r) => (wsClose = r));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    requests[path] = (requests[path] ?? 0) + 1;
    hosts.add(req.headers.get("host") ?? "");
    forwardedFor.add(req.headers.get("x-forwarded-for") ?? "");
    const ok = (body: string | Uint8Array, type: string) =>
      new Response(body as BodyInit, { headers: { "content-type": type } });
    switch (path) {
      case "/":
        return ok(PAGE, "text/html; charset=utf-8");
      case "/style.css":
        return ok(STYLE, "text/css");
      case "/app.js":
        return ok(SCRIPT, "text/javascript");
      case "/img.png":
        return ok(PNG, "image/png");
      case "/ws": {
        const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "echo.v1" });
        socket.onmessage = (event) => socket.send(`echo: ${event.data}`);
        socket.onclose = (event) => wsClose({ code: event.code, reason: event.reason });
        return response;
      }
      default:
        return new Response("not found", { status: 404 });
    }
  });
  return {
    port: server.addr.port,
    requests,
    hosts,
    forwardedFor,
    wsClosed: () => within(wsClosed, STEP_MS, "the page's WebSocket closed at the origin"),
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** A minimal Chrome DevTools Protocol client over `ws`. */
class Cdp {
  #ws: WebSocket;
  #next = 1;
  #calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #listeners = new Set<(method: string, params: unknown, sessionId?: string) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on("message", (data: Buffer) => {
      const message = JSON.parse(data.toString());
      if (message.id !== undefined) {
        const call = this.#calls.get(message.id);
        this.#calls.delete(message.id);
        if (message.error) call?.reject(new Error(`CDP: ${message.error.message}`));
        else call?.resolve(message.result);
      } else {
        for (const listener of this.#listeners) {
          listener(message.method, message.params, message.sessionId);
        }
      }
    });
    // A broken connection fails the calls in flight (below); nothing else to report.
    ws.on("error", () => {});
    ws.on("close", () => {
      for (const call of this.#calls.values()) call.reject(new Error("CDP connection closed"));
      this.#calls.clear();
    });
  }

  static async connect(url: string): Promise<Cdp> {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 << 20 });
    await opened(ws, "DevTools connection");
    return new Cdp(ws);
  }

  /** Calls `method` (on the page of `sessionId`, if given). */
  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
    // deno-lint-ignore no-explicit-any
  ): Promise<any> {
    const id = this.#next++;
    const result = new Promise((resolve, reject) => this.#calls.set(id, { resolve, reject }));
    this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return within(result, 20_000, method);
  }

  /** The first event `method` of `sessionId`. */
  event(method: string, sessionId: string, ms: number): Promise<unknown> {
    let listener: (m: string, params: unknown, s?: string) => void = () => {};
    const seen = new Promise<unknown>((resolve) => {
      listener = (m, params, s) => {
        if (m === method && s === sessionId) resolve(params);
      };
      this.#listeners.add(listener);
    });
    return within(seen, ms, method).finally(() => this.#listeners.delete(listener));
  }

  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    const closed = once(this.#ws, "close");
    this.#ws.terminate();
    await closed;
  }
}

/**
 * Headless Chromium in its own process group with remote debugging on a free
 * port (announced on stderr), `app.burrow.test` mapped to 127.0.0.1.
 */
async function launchChromium() {
  const profile = await Deno.makeTempDir({ prefix: "burrow-chromium-" });
  // setsid: Chromium leads its own process group, so a hang is ended with
  // every renderer it forked, and nothing else.
  const child = new Deno.Command("setsid", {
    args: [
      "chromium",
      ...CHROMIUM_HEADLESS,
      `--user-data-dir=${profile}`,
      `--host-resolver-rules=MAP ${HOST} 127.0.0.1`,
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      "about:blank",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let announce: (url: string) => void = () => {};
  const announced = new Promise<string>((r) => (announce = r));
  const pump = (async () => {
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let nl;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        lines.push(line);
        if (lines.length > 200) lines.shift();
        const found = line.match(/DevTools listening on (ws:\/\/\S+)/);
        if (found) announce(found[1]!);
      }
    }
  })();
  const status = child.status;
  // The group outlives its leader while any member does, so its id is not reused meanwhile.
  const killGroup = () => {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* none left */ }
  };
  const stop = async (cdp?: Cdp) => {
    if (cdp) {
      await cdp.send("Browser.close").catch(() => {});
      await cdp.close();
    }
    // A browser that does not close within 10 s is killed, with its renderers.
    const timer = setTimeout(killGroup, cdp ? 10_000 : 0);
    await status;
    clearTimeout(timer);
    killGroup(); // stragglers of a killed or crashed browser
    await pump.catch(() => {});
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  };
  let debuggerUrl: string;
  try {
    debuggerUrl = await within(
      Promise.race([
        announced,
        status.then(() => {
          throw new Error("Chromium exited");
        }),
      ]),
      30_000,
      "Chromium's DevTools endpoint",
    );
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}; its stderr:\n${lines.slice(-30).join("\n")}`);
  }
  const cdp = await Cdp.connect(debuggerUrl).catch(async (error) => {
    await stop();
    throw error;
  });
  return {
    cdp,
    async [Symbol.asyncDispose]() {
      await stop(cdp);
    },
  };
}

test.chromium("headless Chromium loads a page with CSS, JS, an image and a WebSocket through an HTTP tunnel", async () => {
  await using origin = pageOrigin();
  await withHttpTunnel(origin.port, async (vhostPort) => {
    await using browser = await launchChromium();
    const { cdp } = browser;
    const { targetInfos } = await cdp.send("Target.getTargets");
    const page = (targetInfos as Array<{ type: string; targetId: string }>)
      .find((t) => t.type === "page");
    assert(page, "Chromium opened a page");
    const { sessionId } = await cdp.send("Target.attachToTarget", {
      targetId: page.targetId,
      flatten: true,
    });
    await cdp.send("Page.enable", {}, sessionId);
    const loaded = cdp.event("Page.loadEventFired", sessionId, 20_000);
    const url = `http://${HOST}:${vhostPort}/`;
    const navigation = await cdp.send("Page.navigate", { url }, sessionId);
    assertEquals(navigation.errorText, undefined, `navigating to ${url}`);
    await loaded;
    // The page's WebSocket answers asynchronously: wait in the page, bounded.
    const { result, exceptionDetails } = await cdp.send("Runtime.evaluate", {
      expression: `new Promise((resolve, reject) => {
        const started = Date.now();
        const check = () => {
          if (document.getElementById("ws") && document.getElementById("img")) {
            resolve(document.documentElement.outerHTML);
          } else if (document.getElementById("ws-error") || Date.now() - started > 15000) {
            reject(new Error("no WebSocket echo: " + document.documentElement.outerHTML));
          } else {
            setTimeout(check, 25);
          }
        };
        check();
      })`,
      awaitPromise: true,
      returnByValue: true,
    }, sessionId);
    assert(!exceptionDetails, exceptionDetails?.exception?.description ?? exceptionDetails?.text);
    const dom = result.value as string;
    assert(dom.includes(`<body data-js="ran">`), dom);
    assert(dom.includes(`<div id="css">rgb(1, 2, 3)</div>`), dom);
    assert(dom.includes(`<div id="img">2x3</div>`), dom);
    assert(dom.includes(`<div id="ws">echo.v1|echo: hello from chromium</div>`), dom);
    assertEquals(await origin.wsClosed(), { code: 4100, reason: "page done" });

    for (const path of ["/", "/style.css", "/app.js", "/img.png", "/ws"]) {
      assert((origin.requests[path] ?? 0) >= 1, `${path}: ${JSON.stringify(origin.requests)}`);
    }
    assertEquals([...origin.hosts], [`${HOST}:${vhostPort}`]);
    assertEquals([...origin.forwardedFor], ["127.0.0.1"]);
  });
});

/** A client frame (masked, as RFC 6455 requires) with a payload under 126 bytes. */
function clientFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const mask = crypto.getRandomValues(new Uint8Array(4));
  return new Uint8Array([
    0x80 | opcode,
    0x80 | payload.length,
    ...mask,
    ...payload.map((b, i) => b ^ mask[i % 4]!),
  ]);
}

/** The server frames in `bytes` (unmasked, unfragmented, payloads under 64 KiB). */
function serverFrames(bytes: Uint8Array): Array<{ opcode: number; payload: Uint8Array }> {
  const frames = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f;
    let length = bytes[at + 1]! & 0x7f;
    at += 2;
    if (length === 126) {
      length = (bytes[at]! << 8) | bytes[at + 1]!;
      at += 2;
    }
    frames.push({ opcode, payload: bytes.slice(at, at + length) });
    at += length;
  }
  return frames;
}

Deno.test("a visitor that half-closes after its close frame still gets the origin's answer", async () => {
  await using origin = await wsOrigin();
  await withHttpTunnel(origin.port, async (vhostPort) => {
    // Raw TCP, because a WebSocket library does not half-close: upgrade, then
    // a text frame, a close frame (4003 "half") and FIN. The origin answers
    // after the FIN; a raw splice carries that answer back.
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: vhostPort });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, STEP_MS);
    try {
      await writeAll(
        conn,
        new TextEncoder().encode(
          `GET /chat HTTP/1.1\r\nHost: ${HOST}:${vhostPort}\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
            `Sec-WebSocket-Version: 13\r\n\r\n`,
        ),
      );
      const received: number[] = [];
      const buf = new Uint8Array(4096);
      const headEnd = () => new TextDecoder().decode(new Uint8Array(received)).indexOf("\r\n\r\n");
      while (headEnd() < 0) {
        const n = await conn.read(buf);
        if (n === null) break;
        received.push(...buf.subarray(0, n));
      }
      const head = new TextDecoder().decode(new Uint8Array(received));
      assert(head.startsWith("HTTP/1.1 101 "), head);

      const bye = new Uint8Array([4003 >> 8, 4003 & 0xff, ...new TextEncoder().encode("half")]);
      await writeAll(conn, clientFrame(0x1, new TextEncoder().encode("hi")));
      await writeAll(conn, clientFrame(0x8, bye));
      await conn.closeWrite();
      for (let n; (n = await conn.read(buf)) !== null;) received.push(...buf.subarray(0, n));

      const frames = serverFrames(new Uint8Array(received).subarray(headEnd() + 4));
      const seen = frames.map(({ opcode, payload }) =>
        opcode === 0x8
          ? `close ${(payload[0]! << 8) | payload[1]!} ${
            new TextDecoder().decode(payload.slice(2))
          }`
          : `${opcode === 0x1 ? "text" : `opcode ${opcode}`} ${new TextDecoder().decode(payload)}`
      );
      assertEquals(
        seen,
        ["text hi", "close 4003 half"],
        "after its FIN the visitor still receives the echo and the origin's close frame",
      );
    } catch (error) {
      throw timedOut ? new Error(`Timed out after ${STEP_MS} ms talking raw WebSocket`) : error;
    } finally {
      clearTimeout(timer);
      if (!timedOut) conn.close();
    }
    await origin.allClosed();
    assertEquals(origin.closes, [{ url: "/chat", code: 4003, reason: "half" }]);
  });
});

/**
 * The inspector's JSON API on `client.inspect.addr`: the recorded
 * exchanges (list with filters, detail, clear) and replay of a request to
 * its local service, the answer recorded as a new exchange. Loopback only,
 * unless `client.inspect.auth` is set (then every request must log in).
 *
 * | route                              | does                                                   |
 * | ---------------------------------- | ------------------------------------------------------ |
 * | `GET /api/requests`                | summaries, newest first; `?status=500\|5xx&path=&tunnel=` |
 * | `GET /api/requests/{id}`           | one exchange: heads, headers, bodies (text or base64)  |
 * | `POST /api/requests/{id}/replay`   | sends it again (`{head?, body?, body_base64?}` edits)  |
 * | `DELETE /api/requests`             | forgets every exchange                                 |
 * | `GET /api/events`                  | Server-Sent Events: `request` (a summary), `clear`     |
 *
 * @example
 * ```ts ignore
 * import { Recorder } from "./recorder.ts";
 * import { startInspectServer } from "./api.ts";
 * await using server = await startInspectServer(new Recorder(), { hostname: "127.0.0.1", port: 0 });
 * console.log(server.url);
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import { encodeProxyHeader, type ProxyProtocolVersion } from "../../protocol/mod.ts";
import type { Secret } from "../../util/mod.ts";
import { isLoopbackHost, timingSafeEqualTextSync } from "../../util/mod.ts";
import { headerFields, HttpTap, type RecordedExchange, type RecordedMessage } from "./http_tap.ts";
import { PAGE_HTML } from "./page.ts";
import type { InspectedExchange, Recorder } from "./recorder.ts";

const REPLAY_TIMEOUT = 30_000;
const enc = new TextEncoder();

/** Options of {@linkcode startInspectServer}. */
export interface InspectServerOptions {
  /** Address to listen on. */
  hostname: string;
  /** Port; 0 picks one. */
  port: number;
  /** Basic-auth credentials; required when `hostname` is not a loopback address. */
  auth?: { user: string; password: Secret } | undefined;
  /** The `proxy_protocol` of a tunnel by name: its service expects a header on a replay too. */
  proxyProtocol?: ((tunnel: string) => ProxyProtocolVersion | undefined) | undefined;
}

/** A running inspector API. */
export interface InspectServer extends AsyncDisposable {
  /** `http://host:port` of the API. */
  url: string;
  /** Stops listening. */
  close(): Promise<void>;
}

/** Starts the API for `recorder`'s exchanges; rejects with a `TypeError` when it would be open to others. */
export function startInspectServer(
  recorder: Recorder,
  options: InspectServerOptions,
): Promise<InspectServer> {
  if (!isLoopbackHost(options.hostname) && !options.auth) {
    return Promise.reject(
      new TypeError(
        `client.inspect.auth is required when client.inspect.addr is not a loopback address ` +
          `("${options.hostname}:${options.port}"): anyone who reaches it could read and replay requests`,
      ),
    );
  }
  const auth = options.auth;
  const expected = auth
    ? `Basic ${Buffer.from(`${auth.user}:${auth.password.reveal()}`).toString("base64")}`
    : null;
  // Open event streams end before shutdown, which waits for every response to finish.
  const streams = new Set<() => void>();
  const close = async () => {
    for (const end of streams) end();
    await server?.shutdown();
  };
  let server: Deno.HttpServer | undefined;
  return new Promise((resolve, reject) => {
    try {
      server = Deno.serve({
        hostname: options.hostname,
        port: options.port,
        onListen(addr) {
          const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
          const url = `http://${host}:${addr.port}`;
          resolve({ url, close, [Symbol.asyncDispose]: close });
        },
        onError(error) {
          return json({ error: (error as Error).message }, 500);
        },
      }, (req) => {
        if (
          expected && !timingSafeEqualTextSync(req.headers.get("authorization") ?? "", expected)
        ) {
          return new Response("Log in to the Burrow inspector\n", {
            status: 401,
            headers: { "www-authenticate": 'Basic realm="burrow inspect"' },
          });
        }
        if (new URL(req.url).pathname === "/api/events" && req.method === "GET") {
          return events(recorder, streams);
        }
        return route(recorder, req, options.proxyProtocol);
      });
    } catch (error) {
      reject(error);
    }
  });
}

/** Events an event stream's reader may lag behind before it is closed. */
const MAX_BEHIND = 256;

/** New entries and clearings as Server-Sent Events, until the client or the server goes. */
function events(recorder: Recorder, streams: Set<() => void>): Response {
  let stop = () => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller: ReadableStreamDefaultController<Uint8Array>) {
      const unsubscribe = recorder.ring.subscribe((event) => {
        const text = event.type === "add"
          ? `event: request\ndata: ${JSON.stringify(summary(event.entry))}\n\n`
          : "event: clear\ndata: {}\n\n";
        // A reader this far behind is dropped rather than buffered without end; its
        // EventSource reconnects and the page loads the list again.
        if ((controller.desiredSize ?? 0) < -MAX_BEHIND) return stop();
        try {
          controller.enqueue(enc.encode(text));
        } catch { /* closed */ }
      });
      stop = () => {
        unsubscribe();
        streams.delete(stop);
        try {
          controller.close();
        } catch { /* closed */ }
      };
      streams.add(stop);
      controller.enqueue(enc.encode(": burrow inspector\n\n"));
    },
    cancel() {
      stop();
    },
  }, new CountQueuingStrategy({ highWaterMark: 1 }));
  return new Response(body, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
  });
}

function json(body: unknown, status = 200): Response {
  return Response.json(body, { status });
}

async function route(
  recorder: Recorder,
  req: Request,
  proxyProtocol: InspectServerOptions["proxyProtocol"],
): Promise<Response> {
  const url = new URL(req.url);
  const ring = recorder.ring;
  if (url.pathname === "/api/requests") {
    if (req.method === "GET") {
      const status = url.searchParams.get("status");
      const path = url.searchParams.get("path");
      const tunnel = url.searchParams.get("tunnel");
      const list = ring.list().filter((x) =>
        (!status || statusMatches(x.response?.status, status)) &&
        (!path || x.request.path.includes(path)) &&
        (!tunnel || x.tunnel === tunnel)
      );
      return json({ requests: list.map(summary), dropped: recorder.dropped });
    }
    if (req.method === "DELETE") {
      ring.clear();
      return new Response(null, { status: 204 });
    }
    return json({ error: `Method ${req.method} not allowed` }, 405);
  }
  const m = /^\/api\/requests\/(\d+)(\/replay)?$/.exec(url.pathname);
  if (m) {
    const entry = ring.get(Number(m[1]));
    if (!entry) {
      return json({ error: `No request ${m[1]} (cleared, or pushed out of the ring)` }, 404);
    }
    if (!m[2] && req.method === "GET") return json(detail(entry));
    if (m[2] && req.method === "POST") {
      let edit: ReplayEdit = {};
      const text = await req.text();
      if (text.trim()) {
        try {
          edit = JSON.parse(text) as ReplayEdit;
        } catch {
          return json({ error: "The body must be JSON: {head?, body?, body_base64?}" }, 400);
        }
      }
      try {
        const version = proxyProtocol?.(entry.tunnel);
        const replayed = await replay(recorder, entry, edit, version);
        return json(summary(replayed), 201);
      } catch (error) {
        const status = error instanceof ReplayRefused ? 409 : 502;
        return json({ error: (error as Error).message }, status);
      }
    }
    return json({ error: `Method ${req.method} not allowed` }, 405);
  }
  if (url.pathname === "/" && req.method === "GET") {
    return new Response(PAGE_HTML, {
      headers: {
        "content-type": "text/html; charset=utf-8",
        // The page runs its own script only, and talks to this origin only.
        "content-security-policy":
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
      },
    });
  }
  return json({ error: `Not found: ${url.pathname}` }, 404);
}

function statusMatches(status: number | undefined, filter: string): boolean {
  if (status === undefined) return filter === "none";
  if (/^\dxx$/i.test(filter)) return Math.floor(status / 100) === Number(filter[0]);
  return String(status) === filter;
}

function summary(x: InspectedExchange): Record<string, unknown> {
  return {
    id: x.id,
    tunnel: x.tunnel,
    remote: x.remote,
    time: new Date(x.time).toISOString(),
    duration_ms: Math.round((x.end - x.start) * 1000) / 1000,
    method: x.request.method,
    path: x.request.path,
    status: x.response?.status ?? null,
    request_size: x.request.bodySize,
    response_size: x.response?.bodySize ?? null,
    upgraded: x.upgraded,
    replay_of: x.replayOf ?? null,
    incomplete: x.incomplete ?? null,
  };
}

function detail(x: InspectedExchange): Record<string, unknown> {
  return {
    ...summary(x),
    request: message(x.request),
    response: x.response ? message(x.response) : null,
  };
}

function message(m: RecordedMessage): Record<string, unknown> {
  const headers = headerFields(m.head);
  const out: Record<string, unknown> = {
    head: m.head,
    headers,
    body: bodyOf(m.body),
    body_size: m.bodySize,
    body_truncated: m.body.length < m.bodySize,
  };
  const coding = headers.find(([n]) => n.toLowerCase() === "content-encoding")?.[1];
  const decoded = coding && m.body.length === m.bodySize ? decode(coding, m.body) : null;
  if (decoded) out.body_decoded = bodyOf(decoded);
  return out;
}

/** Largest decoded body shown. */
const MAX_DECODED = 1024 * 1024;

/** A gzip, deflate or br body decoded for display (at most 1 MiB), or null. */
export function decode(coding: string, body: Uint8Array): Uint8Array | null {
  const options = { maxOutputLength: MAX_DECODED };
  try {
    switch (coding.trim().toLowerCase()) {
      case "gzip":
      case "x-gzip":
        return new Uint8Array(gunzipSync(body, options));
      case "deflate":
        return new Uint8Array(inflateSync(body, options));
      case "br":
        return new Uint8Array(brotliDecompressSync(body, options));
    }
  } catch { /* not what it says, or larger than shown */ }
  return null;
}

/** A body as text when it is UTF-8 without control characters, else base64. */
function bodyOf(body: Uint8Array): { encoding: "text" | "base64"; data: string } {
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(body);
    // deno-lint-ignore no-control-regex
    if (!/[\x00-\x08\x0e-\x1f\x7f]/.test(text)) return { encoding: "text", data: text };
  } catch { /* not UTF-8 */ }
  return { encoding: "base64", data: Buffer.from(body).toString("base64") };
}

/** Edits of a replay: a whole new head, and a new body as text or base64. */
interface ReplayEdit {
  head?: string;
  body?: string;
  body_base64?: string;
}

/** A replay that cannot be made as asked (409). */
class ReplayRefused extends Error {}

/**
 * Sends `entry`'s request (with `edit`) to its local service on a
 * connection of its own and records the answer as a new exchange. With
 * `proxyProtocol` (the tunnel's), the connection starts with the header that
 * names no addresses (`PROXY UNKNOWN`, the v2 LOCAL command), which every
 * PROXY protocol service must accept, rather than the original visitor's:
 * the replay is the inspector's own request, which the visitor never sent,
 * and must not land in the service's logs or rate limits under their name
 * (the recorded visitor has no port either).
 */
async function replay(
  recorder: Recorder,
  entry: InspectedExchange,
  edit: ReplayEdit,
  proxyProtocol?: ProxyProtocolVersion,
): Promise<InspectedExchange> {
  let body: Uint8Array;
  if (typeof edit.body === "string") body = enc.encode(edit.body);
  else if (typeof edit.body_base64 === "string") {
    body = new Uint8Array(Buffer.from(edit.body_base64, "base64"));
  } else {
    body = entry.request.body;
    // A cut recording may have stopped inside the request's body, and its size says nothing then.
    if (entry.incomplete) {
      throw new ReplayRefused(
        `The recording is incomplete (${entry.incomplete}): send the body to replay with it`,
      );
    }
    if (body.length < entry.request.bodySize) {
      throw new ReplayRefused(
        `The recorded body was cut at max_body (${body.length} of ${entry.request.bodySize} bytes): ` +
          "send the body to replay with it",
      );
    }
  }
  const [start = "", ...lines] = (edit.head ?? entry.request.head).split(/\r?\n/).filter((l) => l);
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/1\.[01]$/.test(start)) {
    throw new ReplayRefused(`Not a request line: "${start}"`);
  }
  // The framing is Burrow's to set: the body is sent whole, and the connection is the replay's own.
  const kept = lines.filter((l) =>
    !/^(content-length|transfer-encoding|connection|keep-alive)\s*:/i.test(l)
  );
  const hadBody = body.length > 0 ||
    headerFields(entry.request.head).some(([n]) => /^(content-length|transfer-encoding)$/i.test(n));
  if (hadBody) kept.push(`Content-Length: ${body.length}`);
  kept.push("Connection: close");
  const head = enc.encode([start, ...kept].join("\r\n") + "\r\n\r\n");
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head);
  bytes.set(body, head.length);

  let done: RecordedExchange | null = null;
  const tap = new HttpTap({ maxBody: recorder.maxBody, onExchange: (x) => done ??= x });
  const conn = await Deno.connect({
    hostname: entry.local.hostname,
    port: entry.local.port,
    signal: AbortSignal.timeout(5_000),
  });
  const timer = setTimeout(() => conn.close(), REPLAY_TIMEOUT);
  let timedOut = true;
  try {
    // Before the request and outside the tap: the header is not HTTP.
    const header = proxyProtocol ? encodeProxyHeader(proxyProtocol, null) : null;
    for (let off = 0; header && off < header.length;) {
      off += await conn.write(header.subarray(off));
    }
    tap.request(bytes, performance.now());
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) {
        tap.end(performance.now());
        break;
      }
      tap.response(buf.subarray(0, n), performance.now());
      if (done) break;
    }
    timedOut = false;
  } catch (error) {
    if (timedOut && !done) {
      throw new Error(
        `Replay to ${entry.local.hostname}:${entry.local.port} failed: ${(error as Error).message}`,
      );
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
  const recorded = done as RecordedExchange | null;
  if (!recorded?.response) {
    throw new Error(
      `The local service ${entry.local.hostname}:${entry.local.port} sent no response`,
    );
  }
  return recorder.ring.add({
    ...recorded,
    tunnel: entry.tunnel,
    remote: "replay",
    local: entry.local,
    time: performance.timeOrigin + recorded.start,
    replayOf: entry.id,
  });
}

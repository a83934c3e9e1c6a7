/**
 * The node:http path of an HTTP tunnel: a request that reaches the tunnel as
 * node's request and response objects (an HTTP/2 visitor's, decoded by
 * node's server; HTTP/1.1 is the splice engine's) is forwarded as HTTP/1.1
 * through node's client, over an agent per visitor connection that keeps
 * streams to the tunnel's client alive across that visitor's requests.
 * Bodies are pumped chunk by chunk under the tunnel's bandwidth limit and
 * both sides' backpressure ({@linkcode pump}, which the TLS passthrough uses
 * too); errors are short plain-text pages ({@linkcode sendError}, which the
 * vhost front uses too).
 *
 * @module
 */

import http from "node:http";
import type net from "node:net";
import type { EventEmitter } from "node:events";
import type { Readable, Writable } from "node:stream";
import type { MuxStream } from "../../mux/mod.ts";
import { formatAddr, type Throttle } from "../../util/mod.ts";
import type { VisitorEndpoints } from "../http/splice_tunnel.ts";
import { StreamSocket } from "../stream_socket.ts";
import type { VisitorGuard } from "./guards.ts";
import type { GatedTunnel, HttpGate } from "./http_gate.ts";
import type { HeaderEditor } from "./http_headers.ts";
import type { HttpTransfers } from "./http_transfers.ts";

/** Where a request came in. */
export interface FrontInfo {
  /** `http` or `https`. */
  scheme: "http" | "https";
}

/** A visitor-side socket's address, without the IPv4-mapped prefix. */
export function visitorAddress(socket: { remoteAddress?: string | undefined }): string {
  const address = socket.remoteAddress ?? "";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

/** A node socket's addresses with ports (both needed), as the open frames of its streams carry them. */
export function socketEndpoints(socket: {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
}): VisitorEndpoints | null {
  const { remotePort, localPort } = socket;
  if (remotePort === undefined || localPort === undefined) return null;
  const local = visitorAddress({ remoteAddress: socket.localAddress });
  const remote = visitorAddress(socket);
  if (!remote || !local) return null;
  return {
    remote: formatAddr({ transport: "tcp", hostname: remote, port: remotePort }),
    local: formatAddr({ transport: "tcp", hostname: local, port: localPort }),
  };
}

/** Options of {@linkcode NodeProxy}: the parts of its tunnel it works with. */
export interface NodeProxyOptions {
  /** Who may come in. */
  gate: HttpGate;
  /** The tunnel's header rules. */
  headers: HeaderEditor;
  /** Where requests are counted. */
  transfers: HttpTransfers;
  /** The bandwidth limit, and what it held back. */
  guard: VisitorGuard;
  /** Opens a stream to the tunnel's client for the visitor connection at `endpoints`, if known. */
  open: (endpoints: VisitorEndpoints | null) => MuxStream;
}

/**
 * The node:http path of one HTTP tunnel.
 *
 * @example
 * ```ts ignore
 * const proxy = new NodeProxy(tunnel, { gate, headers, transfers, guard, open });
 * h2server.on("request", (req, res) => proxy.serve(req, res, { scheme: "https" }));
 * proxy.close();
 * ```
 */
export class NodeProxy {
  #tunnel: GatedTunnel;
  #gate: HttpGate;
  #headers: HeaderEditor;
  #transfers: HttpTransfers;
  #guard: VisitorGuard;
  #open: (endpoints: VisitorEndpoints | null) => MuxStream;
  /**
   * One agent per visitor connection (an HTTP/2 session), as the splice
   * engine keeps streams per visitor connection: a kept-alive stream, and
   * the local connection behind it, carries the addresses of the visitor it
   * was opened for (a PROXY protocol header is written once per local
   * connection), so it is never lent to another visitor.
   */
  #agents = new Map<object, http.Agent>();

  /** The node:http path of `tunnel`. */
  constructor(tunnel: GatedTunnel, options: NodeProxyOptions) {
    this.#tunnel = tunnel;
    this.#gate = options.gate;
    this.#headers = options.headers;
    this.#transfers = options.transfers;
    this.#guard = options.guard;
    this.#open = options.open;
  }

  /** The agent of `req`'s visitor connection, made on its first request and dropped when it closes. */
  #agentOf(req: http.IncomingMessage): http.Agent {
    // HTTP/2: the session is the connection (`req.socket` stands for it, a new object each time).
    const owner = (req as { stream?: { session?: EventEmitter } }).stream?.session ??
      req.socket;
    const known = this.#agents.get(owner);
    if (known) return known;
    const endpoints = socketEndpoints(req.socket);
    const open = () => this.#open(endpoints);
    const agent = new (class extends http.Agent {
      override createConnection(): net.Socket {
        return new StreamSocket(open()) as unknown as net.Socket;
      }
    })({ keepAlive: true, maxSockets: 256, maxFreeSockets: 32 });
    this.#agents.set(owner, agent);
    owner.once("close", () => {
      this.#agents.delete(owner);
      agent.destroy();
    });
    return agent;
  }

  /** Serves one HTTP/2 visitor request (HTTP/1.1 is spliced by the front's `Http1Visitor`). */
  serve(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    front: FrontInfo,
    expectContinue = false,
  ): void {
    const started = performance.now();
    const remote = visitorAddress(req.socket);
    const host = String(req.headers.host ?? req.headers[":authority"] ?? "");
    const method = req.method ?? "GET";
    const path = req.url ?? "/";
    const refusal = this.#gate.refusal(remote, req.headers.authorization);
    if (refusal) {
      const error = refusal.status === 502 ? refusal.message : undefined;
      sendError(res, refusal.status, refusal.message, refusal.headers);
      if (refusal.status !== 401 && refusal.status !== 403) {
        const info = { method, host, path, status: refusal.status };
        this.#transfers.report(started, remote, info, 0, 0, error);
      }
      req.resume();
      return;
    }
    const live = this.#transfers.start();
    const h2 = req.httpVersionMajor === 2;
    const headers = this.#headers.forwardHeaders(
      req,
      remote,
      front.scheme,
      expectContinue ? "expect-continue" : "request",
    );
    const limit = this.#guard.limit;
    const throttledBefore = this.#guard.throttled;
    let status = 0;
    let failure: string | undefined;
    let socket: StreamSocket | undefined;
    const upstream = http.request({
      agent: this.#agentOf(req),
      method,
      path,
      headers: headers as unknown as http.OutgoingHttpHeaders,
      setHost: false,
    });
    upstream.on("socket", (s) => (socket = s as unknown as StreamSocket));
    if (expectContinue) upstream.on("continue", () => res.writeContinue());
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.#guard.limitedSince(throttledBefore);
      this.#transfers.finish(live, started, remote, { method, host, path, status }, failure);
    };
    upstream.on("response", (back) => {
      status = back.statusCode ?? 502;
      this.#transfers.firstByte(performance.now() - started);
      try {
        res.writeHead(status, this.#headers.backHeaders(back, h2));
      } catch (error) {
        failure = `Bad response head from the service: ${(error as Error).message}`;
        back.destroy();
        sendError(res, 502, failure);
        finish();
        return;
      }
      pump(back, res, limit?.out, (n) => (live.received += n)).then(
        () => finish(),
        (error) => {
          failure ??= (error as Error).message;
          res.destroy();
          finish();
        },
      );
    });
    upstream.on("error", (error) => {
      const reason = socket?.resetReason ?? error.message;
      failure = !this.#tunnel.online
        ? `Tunnel "${this.#tunnel.name}" went offline during the request`
        : /unavailable/.test(reason)
        ? `Tunnel "${this.#tunnel.name}": ${reason}`
        : `Tunnel "${this.#tunnel.name}": the service's connection failed (${reason})`;
      if (!res.headersSent) {
        status = 502;
        sendError(res, 502, failure);
      } else {
        res.destroy();
      }
      finish();
    });
    // A visitor who leaves mid-request takes the upstream request with it.
    // (Only then: destroying a finished upstream request here also ends the visitor's
    // kept-alive connection under Deno.)
    res.on("close", () => {
      if (!done && !res.writableEnded && !upstream.destroyed) upstream.destroy();
    });
    pump(req, upstream, limit?.in, (n) => (live.sent += n)).catch(() => upstream.destroy());
  }

  /** Ends the kept-alive streams and those of requests in flight. Safe to call twice. */
  close(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }
}

/** A short plain-text error page. */
export function sendError(
  res: http.ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${status} ${http.STATUS_CODES[status] ?? ""}\n${message}\n`;
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(new TextEncoder().encode(body).length),
    "x-burrow-error": "1",
    ...headers,
  });
  res.end(body);
}

/**
 * Copies `src` into `dst` chunk by chunk (each chunk forwarded as it
 * arrives, so streamed responses such as Server-Sent Events are not held
 * back), pacing with `throttle`, respecting `dst`'s backpressure, and ending
 * `dst` at the end of `src`. Events, not `for await`: leaving an async
 * iterator destroys its stream, and destroying a request destroys the
 * visitor's kept-alive socket.
 */
export function pump(
  src: Readable,
  dst: Writable,
  throttle: Throttle | undefined,
  count: (n: number) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      src.off("data", onData);
      src.off("end", onEnd);
      src.off("error", onError);
      src.off("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const onData = (chunk: Uint8Array) => {
      if (dst.destroyed) return finish(new Error("Destination closed"));
      count(chunk.length);
      const wait = throttle?.tryTake(chunk.length) === false;
      const full = !dst.write(chunk);
      if (!wait && !full) return;
      src.pause();
      const resume = async () => {
        try {
          if (wait) await throttle!.take(chunk.length);
          if (full) await drained(dst);
          src.resume();
        } catch (error) {
          finish(error as Error);
        }
      };
      resume();
    };
    const onEnd = () => {
      if (!dst.destroyed) dst.end();
      finish();
    };
    const onError = (error: Error) => finish(error);
    const onClose = () => {
      if (!src.readableEnded) finish(new Error("Source closed before its end"));
    };
    src.on("data", onData);
    src.on("end", onEnd);
    src.on("error", onError);
    src.on("close", onClose);
    if (src.readableEnded) onEnd();
  });
}

/** Resolves when `dst` drains; rejects when it closes first. */
function drained(dst: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      dst.off("drain", done);
      dst.off("close", closed);
      resolve();
    };
    const closed = () => {
      dst.off("drain", done);
      dst.off("close", closed);
      reject(new Error("Destination closed"));
    };
    dst.on("drain", done);
    dst.on("close", closed);
  });
}

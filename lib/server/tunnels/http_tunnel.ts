/**
 * An HTTP(S) tunnel on the server: the host names and path prefixes it
 * serves, and how one visitor request (or WebSocket, or passed-through TLS
 * connection) travels to its client: checked against the tunnel's IP policy
 * and basic auth, headers rewritten, then sent as HTTP/1.1 over a mux
 * stream, which the client relays to its local service.
 *
 * @module
 */

import http from "node:http";
import type net from "node:net";
import type { Readable, Writable } from "node:stream";
import type { Mux, MuxStream } from "../../mux/mod.ts";
import type { Logger, Throttle } from "../../util/mod.ts";
import type { TunnelRow } from "../../storage/mod.ts";
import type { BalancerMember } from "../balancer.ts";
import { StreamSocket } from "../stream_socket.ts";
import { VisitorGuard, type VisitorGuards } from "./guards.ts";
import { HttpGate } from "./http_gate.ts";
import { HeaderEditor } from "./http_headers.ts";
import { type HttpEvent, HttpTransfers } from "./http_transfers.ts";
import type { LiveTransfer, PublicTunnel, TunnelTotals } from "./public_tunnel.ts";
import type { HeadEdit, RequestHead, ResponseHead } from "../http/head.ts";
import {
  errorPage,
  type LocalAnswer,
  type RequestInfo,
  type SpliceTunnel,
  type Transfer,
} from "../http/visitor.ts";

/** Header changes of one direction. */
export interface HeaderRules {
  /** Headers set (replacing any the message had). */
  set: Record<string, string>;
  /** Headers removed (lower case). */
  remove: string[];
}

/** Options of {@linkcode HttpTunnel}. */
export interface HttpTunnelOptions extends VisitorGuards {
  /** Tunnel name as the client declared it. */
  name: string;
  /** `http`: plain HTTP port; `https`: TLS port. */
  type: "http" | "https";
  /** Host names served, lower case; `*.example.com` matches one or more labels; `*` matches any host. */
  hosts: string[];
  /** Path prefixes served. Default `["/"]`. */
  locations?: string[] | undefined;
  /** The public port (shared vhost port or the tunnel's own). */
  port: number;
  /** The owning session's multiplexer. */
  mux: Mux;
  /** Changes to requests on the way to the service (`custom_headers` are `set` here). */
  requestHeaders?: HeaderRules | undefined;
  /** Changes to responses on the way to the visitor. */
  responseHeaders?: HeaderRules | undefined;
  /** HTTP basic auth visitors must pass. */
  basicAuth?: { user: string; password: string } | undefined;
  /** HTTPS only: relay TLS untouched to a service that terminates it. */
  passthrough?: boolean | undefined;
  /** HTTPS only: obtain certificates over ACME for the hosts. */
  autoCert?: boolean | undefined;
  /** Load-balancing group shared with other clients' tunnels. */
  group?: { name: string; key: string } | undefined;
  /** Share of the group's requests. Default 1. */
  weight?: number | undefined;
  /** The public URLs, for the client to print. */
  urls?: readonly string[] | undefined;
  /** Called when each request (or upgraded connection) ends. */
  onConnection?: ((event: HttpEvent) => void) | undefined;
  /** Called with ms from the request to the response head. */
  onFirstByte?: ((ms: number) => void) | undefined;
  /** Called by `close()` (the front forgets the tunnel). */
  onClose?: (() => void) | undefined;
}

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

/** Lower-case host without port (IPv6 brackets kept). */
export function hostOf(value: string | undefined): string {
  if (!value) return "";
  const host = value.trim().toLowerCase();
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.lastIndexOf(":");
  return colon >= 0 ? host.slice(0, colon) : host;
}

/**
 * One HTTP(S) tunnel of one client.
 *
 * @example
 * ```ts ignore
 * const tunnel = new HttpTunnel({ name: "web", type: "http", hosts: ["app.test"], port: 80, mux, logger });
 * front.router.add(tunnel);
 * ```
 */
export class HttpTunnel implements BalancerMember, SpliceTunnel, PublicTunnel {
  /** Tunnel name as the client declared it. */
  readonly name: string;
  /** `http` or `https`. */
  readonly type: "http" | "https";
  /** Host names served. */
  readonly hosts: readonly string[];
  /** Path prefixes served. */
  readonly locations: readonly string[];
  /** The public port. */
  readonly port: number;
  /** Relays TLS untouched. */
  readonly passthrough: boolean;
  /** Certificates come from ACME. */
  readonly autoCert: boolean;
  /** Group membership. */
  readonly group: { name: string; key: string } | undefined;
  /** Share of the group's requests. */
  readonly weight: number;
  /** The public URLs. */
  readonly urls: readonly string[];
  /** Its row in the database, when recorded there. */
  dbId: number | null = null;
  /** The database row of a server-managed tunnel; `null` when the client declared it. */
  managed: TunnelRow | null = null;
  #clientHealthy = true;
  #mux: Mux;
  #options: HttpTunnelOptions;
  #guard: VisitorGuard;
  #gate: HttpGate;
  #headers: HeaderEditor;
  #log: Logger;
  #agent: http.Agent;
  #transfers: HttpTransfers;
  #spliced = new Set<net.Socket>();
  /** Streams the splice engine holds open (kept-alive connections to the service). */
  #streams = new Set<MuxStream>();
  #throttledAtStart = new WeakMap<Transfer, number>();
  #closed = false;

  /** A tunnel over `options.mux`. */
  constructor(options: HttpTunnelOptions) {
    this.name = options.name;
    this.type = options.type;
    this.hosts = options.hosts;
    this.locations = options.locations?.length ? options.locations : ["/"];
    this.port = options.port;
    this.passthrough = options.passthrough ?? false;
    this.autoCert = options.autoCert ?? false;
    this.group = options.group;
    this.weight = options.weight ?? 1;
    this.urls = options.urls ?? [];
    this.#mux = options.mux;
    this.#options = options;
    this.#guard = new VisitorGuard(options.name, options);
    this.#gate = new HttpGate(this, { guard: this.#guard, basicAuth: options.basicAuth });
    this.#log = options.logger;
    this.#transfers = new HttpTransfers(options.name, {
      onConnection: options.onConnection,
      onFirstByte: options.onFirstByte,
      // Closed gracefully: the last request to finish releases the kept-alive streams.
      onIdle: () => {
        if (this.#closed) this.#dropStreams();
      },
    });
    const request = options.requestHeaders;
    const response = options.responseHeaders;
    this.#headers = new HeaderEditor({
      requestSet: request?.set,
      requestRemove: request?.remove,
      stripAuthorization: options.basicAuth !== undefined,
      responseSet: response?.set,
      responseRemove: response?.remove,
    });
    // One agent per tunnel: kept-alive streams to this client are reused across requests.
    const open = () => this.#open("");
    this.#agent = new (class extends http.Agent {
      override createConnection(): net.Socket {
        return new StreamSocket(open()) as unknown as net.Socket;
      }
    })({ keepAlive: true, maxSockets: 256, maxFreeSockets: 32 });
  }

  /** Requests in flight (the balancer's `active`). */
  get active(): number {
    return this.#transfers.inFlight;
  }

  /** Requests (and upgraded connections) in flight. */
  get activeConnections(): number {
    return this.#transfers.inFlight;
  }

  /** Live totals of the requests in flight. */
  get liveTransfers(): Iterable<LiveTransfer> {
    return this.#transfers.live;
  }

  /** Totals since the tunnel opened. */
  get stats(): TunnelTotals {
    return this.#transfers.stats;
  }

  /** Whether it takes requests: online, and its service passes the client's health checks. */
  get healthy(): boolean {
    return this.#clientHealthy && this.online;
  }

  /** Set from the client's health checks. */
  set healthy(value: boolean) {
    this.#clientHealthy = value;
  }

  /** Whether its client connection is still usable. */
  get online(): boolean {
    return !this.#closed && !this.#mux.isClosed && !this.#mux.peerGoingAway;
  }

  #open(remote: string) {
    return this.#mux.open({ tunnel: this.name, remote });
  }

  // ---- the splice engine's side (HTTP/1.1) ----

  /** Bandwidth limit per direction. */
  get pace(): { in: Throttle; out: Throttle } | undefined {
    return this.#guard.limit;
  }

  /** The answer refusing a request before it reaches the client, counted as today's refusals are. */
  refuse(remote: string, authorization: string | undefined, info: RequestInfo): LocalAnswer | null {
    const refusal = this.#gate.refusal(remote, authorization);
    if (!refusal) return null;
    if (refusal.status !== 401 && refusal.status !== 403) {
      const error = refusal.status === 502 ? refusal.message : undefined;
      const refused = { ...info, status: refusal.status };
      this.#transfers.report(performance.now(), remote, refused, 0, 0, error);
    }
    return errorPage(refusal.status, refusal.message, refusal.headers);
  }

  /** How the request head sent to the service differs from the visitor's (see {@linkcode HeaderEditor}). */
  requestHead(
    head: RequestHead,
    target: string,
    host: string,
    remote: string,
    scheme: string,
  ): HeadEdit {
    return this.#headers.requestHead(head, target, host, remote, scheme);
  }

  /** How the response head sent to the visitor differs from the service's (see {@linkcode HeaderEditor}). */
  responseHead(head: ResponseHead, connection: string | null): HeadEdit {
    return this.#headers.responseHead(head, connection);
  }

  /** Opens a stream to the service for a visitor connection. */
  open(remote: string): MuxStream {
    const stream = this.#open(remote);
    this.#streams.add(stream);
    return stream;
  }

  /** A stream from `open` is done with. */
  forget(stream: MuxStream): void {
    this.#streams.delete(stream);
  }

  /** A request starts. */
  begin(): Transfer {
    const transfer: Transfer = this.#transfers.start();
    if (this.#guard.limit) this.#throttledAtStart.set(transfer, this.#guard.throttled);
    return transfer;
  }

  /** A request ended. */
  end(
    transfer: Transfer,
    info: RequestInfo,
    startedAt: number,
    remote: string,
    error?: string,
  ): void {
    if (this.#guard.limit) {
      const before = this.#throttledAtStart.get(transfer);
      if (before !== undefined) this.#guard.limitedSince(before);
    }
    this.#transfers.finish(transfer, startedAt, remote, info, error);
  }

  /** The response head arrived `ms` after the request. */
  firstByte(ms: number): void {
    this.#transfers.firstByte(ms);
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
      agent: this.#agent,
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
      failure = !this.online
        ? `Tunnel "${this.name}" went offline during the request`
        : /unavailable/.test(reason)
        ? `Tunnel "${this.name}": ${reason}`
        : `Tunnel "${this.name}": the service's connection failed (${reason})`;
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

  /** Relays a TLS connection untouched (passthrough); `hello` holds the bytes already read. */
  passthroughConnection(socket: net.Socket, hello: Uint8Array, sni: string): void {
    const started = performance.now();
    const remote = visitorAddress(socket);
    const info = { method: "TLS", host: sni, path: "", status: 0 };
    const refusal = this.#gate.refusal(remote, undefined);
    if (refusal) {
      socket.destroy();
      if (refusal.status === 502) {
        this.#transfers.report(started, remote, info, 0, 0, refusal.message);
      }
      return;
    }
    const stream = new StreamSocket(this.#open(remote));
    stream.write(hello);
    this.#splice(socket, stream, started, remote, info);
  }

  #splice(
    socket: net.Socket,
    stream: StreamSocket,
    started: number,
    remote: string,
    info: HttpEvent["http"],
  ): void {
    const live = this.#transfers.start();
    this.#spliced.add(socket);
    socket.setNoDelay(true);
    const limit = this.#guard.limit;
    let failure: string | undefined;
    let first = true;
    const up = pump(socket, stream, limit?.in, (n) => (live.sent += n));
    const down = pump(stream, socket, limit?.out, (n) => {
      if (first) {
        first = false;
        this.#transfers.firstByte(performance.now() - started);
      }
      live.received += n;
    });
    const end = (error: unknown) => {
      if (error && stream.resetReason) failure ??= stream.resetReason;
      socket.destroy();
      stream.destroy();
    };
    Promise.all([up.catch(end), down.catch(end)]).then(() => {
      this.#spliced.delete(socket);
      socket.destroy();
      if (!stream.destroyed) stream.destroy();
      this.#transfers.finish(live, started, remote, info, failure);
    });
  }

  /**
   * Stops serving: the front forgets it. With `dropConnections` (the
   * default) requests in flight and upgraded connections end at once;
   * without, they finish first (graceful shutdown). Safe to call twice.
   */
  close(dropConnections = true): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#options.onClose?.();
    }
    if (dropConnections || this.#transfers.inFlight === 0) {
      this.#dropStreams();
      for (const socket of this.#spliced) socket.destroy();
    }
    return Promise.resolve();
  }

  #dropStreams(): void {
    this.#agent.destroy();
    for (const stream of this.#streams) stream.reset(`Tunnel "${this.name}" closed`);
    this.#streams.clear();
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

/**
 * The public HTTP and HTTPS ports ("vhosts"): every request is routed by its
 * host name and path to an {@linkcode HttpTunnel}. HTTP/1.1 is served by the
 * splice engine ({@linkcode Http1Visitor}) on both ports. The HTTPS port
 * reads the TLS server name first, then either relays the connection
 * untouched (passthrough tunnels) or terminates TLS with the certificate for
 * that name; a connection that negotiates HTTP/2 (ALPN `h2`) is served by
 * node's HTTP/2 server, any other by the splice engine.
 *
 * @module
 */

import type http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import type { RelayConn } from "../mux/mod.ts";
import { nodeSocketConn } from "../transport/mod.ts";
import { formatAddr, type Logger } from "../util/mod.ts";
import { hostOf, type HttpTunnel } from "./tunnels/http_tunnel.ts";
import { type FrontInfo, sendError, socketEndpoints, visitorAddress } from "./tunnels/http_node.ts";
import { MAX_CLIENT_HELLO, readSni } from "./sni.ts";
import { Http1Visitor } from "./http/visitor.ts";
import type { Dispatch, VisitorEndpoints } from "./http/splice_tunnel.ts";
import { errorPage, type LocalAnswer } from "./http/local_answer.ts";
import { HttpRouter } from "./http/router.ts";

/**
 * Read-ahead per TLS visitor connection before it is paused: the splice
 * engine takes bytes as it forwards them, so more only costs memory.
 */
const TLS_READ_AHEAD = 256 * 1024;

/** Certificates of the HTTPS port, chosen by server name. */
export interface CertificateSource {
  /** PEM certificate and key for `host`, or `null` when none is configured or obtainable. */
  certificate(host: string, tunnels: HttpTunnel[]): Promise<{ cert: string; key: string } | null>;
}

/** Options of {@linkcode HttpFront.listen}. */
export interface HttpFrontOptions {
  /** Listen address. */
  hostname: string;
  /** Port; 0 picks one. */
  port: number;
  /** `https` terminates TLS (and passes through by SNI). */
  scheme: "http" | "https";
  /** Where events are logged. */
  logger: Logger;
  /** HTTPS: certificates by server name. */
  certificates?: CertificateSource | undefined;
  /** HTTPS: the certificate for names nothing else covers. */
  fallbackCertificate?: { cert: string; key: string } | undefined;
  /** ms a visitor has to send a request head (and, on HTTPS, finish the handshake). */
  headerTimeout: number;
  /** ms a connection may sit idle mid-request or between requests. Default 60 s. */
  idleTimeout?: number;
  /** HTTP port: answers ACME HTTP-01 challenges. */
  acmeChallenge?: ((token: string) => string | undefined) | undefined;
  /** HTTP port: where hosts served only over HTTPS are redirected. */
  httpsRouter?: HttpRouter | undefined;
  /** HTTP port: the public HTTPS port for redirects. */
  httpsPort?: number | undefined;
  /** Called for each request nothing served (unknown host, offline tunnel). */
  onUnrouted?: ((kind: "unknown_host" | "tunnel_offline" | "bad_request") => void) | undefined;
  /** A fixed router (a tunnel's own port); default: a new one. */
  router?: HttpRouter | undefined;
}

/**
 * One public HTTP or HTTPS listener with its router.
 *
 * @example
 * ```ts ignore
 * const front = await HttpFront.listen({ hostname: "0.0.0.0", port: 80, scheme: "http", logger, headerTimeout: 10_000 });
 * front.router.add(tunnel);
 * ```
 */
export class HttpFront {
  /** Routes of this port. */
  readonly router: HttpRouter;
  /** The bound port. */
  readonly port: number;
  /** `http` or `https`. */
  readonly scheme: "http" | "https";
  #options: HttpFrontOptions;
  /** HTTPS: node's listener (the ClientHello is read first, then TLS is terminated or passed). */
  #server: net.Server | null;
  /** HTTPS: terminates TLS on the sockets `#server` hands it. */
  #tls: tls.Server | null;
  /** HTTPS: serves the TLS connections that negotiated `h2`. */
  #h2: http2.Http2SecureServer | null;
  /** HTTP: Deno's listener. */
  #listener: Deno.TcpListener | null;
  /** HTTP/1.1 connections, each served by the splice engine. */
  #visitors = new Set<Http1Visitor>();
  #sweeper: ReturnType<typeof setInterval>;
  #accepting: Promise<void> = Promise.resolve();
  #sockets = new Set<net.Socket>();
  #contexts = new Map<string, { context: tls.SecureContext; at: number }>();
  #closed = false;

  private constructor(
    options: HttpFrontOptions,
    server: net.Server | Deno.TcpListener,
    terminator: { tls: tls.Server; h2: http2.Http2SecureServer } | null,
  ) {
    this.#options = options;
    this.router = options.router ?? new HttpRouter();
    this.scheme = options.scheme;
    if ("accept" in server) {
      this.#listener = server;
      this.#server = null;
      this.port = (server.addr as Deno.NetAddr).port;
      this.#accepting = this.#acceptLoop(server);
    } else {
      this.#listener = null;
      this.#server = server;
      this.port = (server.address() as net.AddressInfo).port;
    }
    this.#tls = terminator?.tls ?? null;
    this.#h2 = terminator?.h2 ?? null;
    this.#sweeper = this.#sweep(options.idleTimeout ?? 60_000, options.headerTimeout);
  }

  /** Binds the port and starts serving. */
  static async listen(options: HttpFrontOptions): Promise<HttpFront> {
    if (options.scheme === "http") {
      const listener = Deno.listen({ hostname: options.hostname, port: options.port });
      return new HttpFront(options, listener, null);
    }
    // Assigned once bound; the handlers below run only after that.
    // deno-lint-ignore prefer-const
    let front: HttpFront | undefined;
    const fallback = options.fallbackCertificate;
    const certificate = fallback ? { cert: fallback.cert, key: fallback.key } : {};
    // HTTP/2: node's server, handed each connection that chose h2 once TLS is up (so its own
    // TLS settings are never used). Its compatibility API gives requests the shape of
    // node:http's, which HttpTunnel.serve takes.
    const h2 = http2.createSecureServer({});
    // Sessions idle this long are closed (their requests are streams, not sockets to sweep).
    h2.setTimeout(options.idleTimeout ?? 60_000);
    const h1Shaped = h2 as unknown as http.Server;
    h1Shaped.on("request", (req, res) => front!.#request(req, res, false));
    h1Shaped.on("checkContinue", (req, res) => front!.#request(req, res, true));
    const terminator = tls.createServer({
      ...certificate,
      ALPNProtocols: ["h2", "http/1.1"],
      minVersion: "TLSv1.2",
      handshakeTimeout: options.headerTimeout,
      SNICallback: (name, done) => {
        front!.#context(name).then((context) => done(null, context), (error) => done(error));
      },
    }, (socket) => front!.#secured(socket));
    // A failed or late handshake (the deadline is handshakeTimeout): the connection ends.
    terminator.on("tlsClientError", (_error, socket: tls.TLSSocket) => socket.destroy());
    // Half-open allowed: a visitor that ends its side still gets the rest of the answer.
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
      if (!front || front.#closed) {
        socket.destroy();
        return;
      }
      front.#sockets.add(socket);
      // A proxy forwards what it has at once: Nagle would hold small responses for an ACK.
      socket.setNoDelay(true);
      socket.on("close", () => front!.#sockets.delete(socket));
      socket.on("error", () => {});
      front.#peek(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: options.hostname, port: options.port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (error) => options.logger.warn("http listener error", { error }));
    front = new HttpFront(options, server, { tls: terminator, h2 });
    return front;
  }

  /**
   * One sweep for all HTTP/1.1 visitor connections, instead of timers per
   * request. It closes a connection whose request head is not complete
   * `headerTimeout` ms after it began to wait for it (slowloris; closed at
   * most one tick late), and one that moved no byte for `idle` ms (a request
   * or response stalled mid-way). A visitor only sets fields as it goes.
   * Upgraded connections are exempt from the idle limit.
   */
  #sweep(idle: number, headerTimeout: number): ReturnType<typeof setInterval> {
    const every = Math.max(50, Math.min(1_000, headerTimeout / 10, idle / 4));
    const quiet = new WeakMap<Http1Visitor, number>();
    return setInterval(() => {
      for (const visitor of this.#visitors) {
        if (visitor.headSweeps >= 0 && ++visitor.headSweeps * every >= headerTimeout) {
          this.#options.logger.debug("request head too slow: closed", {
            timeout_ms: headerTimeout,
          });
          visitor.close();
          continue;
        }
        if (visitor.touched || visitor.switched) {
          visitor.touched = false;
          quiet.delete(visitor);
          continue;
        }
        const ms = (quiet.get(visitor) ?? 0) + every;
        quiet.set(visitor, ms);
        if (ms >= idle) {
          this.#options.logger.debug("idle visitor connection closed", { idle_ms: ms });
          visitor.close();
        }
      }
    }, every);
  }

  /** HTTP: accepts visitors and serves each with the splice engine. */
  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    const options = this.#options;
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        options.logger.warn("http listener error", { error });
        continue;
      }
      if (this.#closed) {
        conn.close();
        return;
      }
      // A proxy forwards what it has at once: Nagle would hold small responses for an ACK.
      conn.setNoDelay(true);
      this.#visit(conn, conn.remoteAddr.hostname, {
        remote: formatAddr(conn.remoteAddr),
        local: formatAddr(conn.localAddr),
      });
    }
  }

  /** HTTPS: TLS is up; HTTP/2 goes to node's server, HTTP/1.1 (or no ALPN) to the splice engine. */
  #secured(socket: tls.TLSSocket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (socket.alpnProtocol === "h2") {
      this.#h2!.emit("secureConnection", socket);
      return;
    }
    this.#visit(
      nodeSocketConn(socket, { maxBuffered: TLS_READ_AHEAD }),
      socket.remoteAddress,
      socketEndpoints(socket),
    );
  }

  /** Serves one HTTP/1.1 connection with the splice engine, under the sweep's deadlines. */
  #visit(conn: RelayConn, address: string | undefined, endpoints: VisitorEndpoints | null): void {
    const options = this.#options;
    const visitor = new Http1Visitor(conn, {
      scheme: this.scheme,
      remote: visitorAddress({ remoteAddress: address }),
      endpoints,
      dispatch: (host, path) => this.#dispatch(host, path),
      onBadRequest: () => options.onUnrouted?.("bad_request"),
      logger: options.logger,
    });
    this.#visitors.add(visitor);
    visitor.run().finally(() => this.#visitors.delete(visitor));
  }

  /** Where a request goes: a tunnel, or an answer given here (ACME, redirect, 404, 502). */
  #dispatch(host: string, path: string): Dispatch {
    const options = this.#options;
    if (options.acmeChallenge && path.startsWith("/.well-known/acme-challenge/")) {
      const answer = options.acmeChallenge(path.slice("/.well-known/acme-challenge/".length));
      if (answer !== undefined) {
        return { answer: { status: 200, body: answer, headers: { "content-type": "text/plain" } } };
      }
    }
    const picked = this.router.match(host, path);
    if (picked && typeof picked === "object" && "serve" in picked) return { tunnel: picked };
    if (picked === null && options.httpsRouter) {
      const secure = options.httpsRouter.match(host, path);
      if (secure !== null && !(typeof secure === "object" && "offline" in secure)) {
        const port = options.httpsPort && options.httpsPort !== 443 ? `:${options.httpsPort}` : "";
        return {
          answer: {
            status: 308,
            body: "",
            headers: { location: `https://${hostOf(host)}${port}${path}` },
          },
        };
      }
    }
    if (picked === null) {
      options.onUnrouted?.("unknown_host");
      return {
        answer: errorPage(
          404,
          `No tunnel serves host "${hostOf(host)}"${
            path === "/" ? "" : ` at ${path.split("?")[0]}`
          }`,
        ),
      };
    }
    options.onUnrouted?.("tunnel_offline");
    if (picked === "unhealthy") {
      return {
        answer: errorPage(
          502,
          `Every service behind host "${hostOf(host)}" is failing its health check`,
        ),
      };
    }
    return {
      answer: errorPage(
        502,
        `Tunnel "${(picked as { offline: string }).offline}" for host "${
          hostOf(host)
        }" is offline: its client is not connected`,
      ),
    };
  }

  /** HTTPS: reads the ClientHello, then passes through or terminates TLS. */
  #peek(socket: net.Socket): void {
    const log = this.#options.logger;
    const chunks: Uint8Array[] = [];
    let length = 0;
    const timer = setTimeout(() => socket.destroy(), this.#options.headerTimeout);
    const onReadable = () => {
      let chunk: Uint8Array | null;
      while ((chunk = socket.read() as Uint8Array | null) !== null) {
        chunks.push(chunk);
        length += chunk.length;
      }
      const bytes = chunks.length === 1 ? chunks[0]! : concat(chunks, length);
      let sni: string | null | undefined;
      try {
        sni = readSni(bytes);
      } catch (error) {
        clearTimeout(timer);
        socket.off("readable", onReadable);
        log.debug("not a TLS client", { remote: visitorAddress(socket), error });
        socket.destroy();
        return;
      }
      if (sni === undefined && length < MAX_CLIENT_HELLO) return;
      clearTimeout(timer);
      socket.off("readable", onReadable);
      const passthrough = sni ? this.router.tunnelsFor(sni).filter((t) => t.passthrough) : [];
      if (sni && passthrough.length) {
        const picked = this.router.match(sni, "/");
        if (picked && typeof picked === "object" && "passthroughConnection" in picked) {
          picked.passthroughConnection(socket, bytes, sni);
        } else {
          this.#options.onUnrouted?.("tunnel_offline");
          socket.destroy();
        }
        return;
      }
      socket.unshift(bytes);
      this.#tls!.emit("connection", socket);
    };
    socket.on("readable", onReadable);
    socket.on("close", () => clearTimeout(timer));
    socket.resume();
    socket.pause();
  }

  /** The TLS context for `name`: configured files, ACME, or the fallback certificate. */
  async #context(name: string): Promise<tls.SecureContext> {
    const host = name.toLowerCase();
    const cached = this.#contexts.get(host);
    if (cached && Date.now() - cached.at < 3_600_000) return cached.context;
    const found = await this.#options.certificates?.certificate(host, this.router.tunnelsFor(host));
    const pem = found ?? this.#options.fallbackCertificate;
    if (!pem) throw new Error(`No certificate for "${host}"`);
    const context = tls.createSecureContext({ cert: pem.cert, key: pem.key });
    if (found) this.#contexts.set(host, { context, at: Date.now() });
    return context;
  }

  /** Forgets cached certificates (after a reload or renewal). */
  clearCertificates(): void {
    this.#contexts.clear();
  }

  #info(): FrontInfo {
    return { scheme: this.scheme };
  }

  /** HTTPS: one HTTP/2 request. */
  #request(req: http.IncomingMessage, res: http.ServerResponse, expectContinue: boolean): void {
    const options = this.#options;
    const host = String(req.headers.host ?? req.headers[":authority"] ?? "");
    const decided = this.#dispatch(host, req.url ?? "/");
    if ("tunnel" in decided) {
      try {
        (decided.tunnel as HttpTunnel).serve(req, res, this.#info(), expectContinue);
      } catch (error) {
        options.logger.error("request failed", { host: hostOf(host), error });
        sendError(res, 500, "Burrow failed to forward this request");
      }
      return;
    }
    req.resume();
    sendAnswer(res, decided.answer);
  }

  /** Stops listening and closes open visitor connections. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const visitor of this.#visitors) visitor.close();
    if (this.#listener) {
      try {
        this.#listener.close();
      } catch { /* closed */ }
      await this.#accepting;
      return;
    }
    const server = this.#server!;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }
}

/** Writes a local answer through node's response object. */
function sendAnswer(res: http.ServerResponse, answer: LocalAnswer): void {
  if (answer.status >= 400) {
    const [, ...lines] = answer.body.trimEnd().split("\n");
    const headers = { ...answer.headers };
    delete headers["content-type"];
    delete headers["x-burrow-error"];
    sendError(res, answer.status, lines.join("\n"), headers);
    return;
  }
  res.writeHead(answer.status, answer.headers ?? {});
  res.end(answer.body);
}

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  chunks.length = 0;
  chunks.push(out);
  return out;
}

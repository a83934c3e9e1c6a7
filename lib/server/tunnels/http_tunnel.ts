/**
 * An HTTP(S) tunnel on the server: the host names and path prefixes it
 * serves, and the three ways a visitor travels to its client over mux
 * streams, which the client relays to its local service. The splice engine
 * (`../http/visitor.ts`) carries HTTP/1.1 and WebSockets and asks the tunnel
 * what it needs; the node:http path (`http_node.ts`) carries HTTP/2
 * visitors; TLS passthrough (`http_passthrough.ts`) relays TLS untouched.
 * All three ask the same gate (`http_gate.ts`: IP policy, basic auth, limit),
 * apply the same header rules (`http_headers.ts`) and count in one place
 * (`http_transfers.ts`); this file holds them together for one tunnel.
 *
 * @module
 */

import type http from "node:http";
import type net from "node:net";
import type { MuxStream, StreamOpener } from "../../mux/mod.ts";
import type { Throttle } from "../../util/mod.ts";
import type { TunnelRow } from "../../storage/mod.ts";
import type { BalancerMember } from "../balancer.ts";
import { VisitorGuard, type VisitorGuards } from "./guards.ts";
import { HttpGate } from "./http_gate.ts";
import { HeaderEditor } from "./http_headers.ts";
import { type FrontInfo, NodeProxy } from "./http_node.ts";
import { TlsPassthrough } from "./http_passthrough.ts";
import { type HttpEvent, HttpTransfers } from "./http_transfers.ts";
import type { LiveTransfer, PublicTunnel, TunnelTotals } from "./public_tunnel.ts";
import type { HeadEdit } from "../http/head_edit.ts";
import type { RequestHead, ResponseHead } from "../http/parsed_head.ts";
import { errorPage, type LocalAnswer } from "../http/local_answer.ts";
import type {
  RequestInfo,
  SpliceTunnel,
  Transfer,
  VisitorEndpoints,
} from "../http/splice_tunnel.ts";

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
  mux: StreamOpener;
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
  #mux: StreamOpener;
  #options: HttpTunnelOptions;
  #guard: VisitorGuard;
  #gate: HttpGate;
  #headers: HeaderEditor;
  #node: NodeProxy;
  #transfers: HttpTransfers;
  #tls: TlsPassthrough;
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
    const open = (endpoints: VisitorEndpoints | null) => this.#open(endpoints);
    const parts = { gate: this.#gate, transfers: this.#transfers, guard: this.#guard, open };
    this.#node = new NodeProxy(this, { ...parts, headers: this.#headers });
    this.#tls = new TlsPassthrough(parts);
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

  /**
   * A stream to the client; its open frame names the visitor and the public
   * address they reached (`remote`, `local`), as a TCP tunnel's does, for
   * the client's PROXY protocol header (none when unknown).
   */
  #open(endpoints: VisitorEndpoints | null): MuxStream {
    return this.#mux.open(
      endpoints
        ? { tunnel: this.name, remote: endpoints.remote, local: endpoints.local }
        : { tunnel: this.name },
    );
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
  open(endpoints: VisitorEndpoints | null): MuxStream {
    const stream = this.#open(endpoints);
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

  // ---- the other ways in: HTTP/2 (node:http) and TLS passthrough ----

  /** Serves one HTTP/2 visitor request (HTTP/1.1 is spliced by the front's `Http1Visitor`). */
  serve(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    front: FrontInfo,
    expectContinue = false,
  ): void {
    this.#node.serve(req, res, front, expectContinue);
  }

  /** Relays a TLS connection untouched (passthrough); `hello` holds the bytes already read. */
  passthroughConnection(socket: net.Socket, hello: Uint8Array, sni: string): void {
    this.#tls.relay(socket, hello, sni);
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
      this.#tls.close();
    }
    return Promise.resolve();
  }

  #dropStreams(): void {
    this.#node.close();
    for (const stream of this.#streams) stream.reset(`Tunnel "${this.name}" closed`);
    this.#streams.clear();
  }
}

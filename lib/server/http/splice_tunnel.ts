/**
 * What the HTTP splice engine ({@linkcode Http1Visitor} in `visitor.ts`)
 * asks of the rest of the server: {@linkcode Dispatch}, the front's decision
 * for one request (a tunnel, or an answer given locally), and
 * {@linkcode SpliceTunnel}, what the engine needs of an HTTP tunnel: its
 * checks, its head rewrites, a stream to its service, its pacing, and where
 * each request's totals ({@linkcode Transfer}, {@linkcode RequestInfo}) are
 * reported. `tunnels/http_tunnel.ts` implements it.
 *
 * @module
 */

import type { MuxStream } from "../../mux/mod.ts";
import type { HeadEdit } from "./head_edit.ts";
import type { LocalAnswer } from "./local_answer.ts";
import type { RequestHead, ResponseHead } from "./parsed_head.ts";

/** Pacing of one direction (a tunnel's bandwidth limit). */
export interface Pace {
  /** Waits until `n` bytes may pass. */
  take(n: number): Promise<void>;
  /** Takes `n` bytes if they may pass now. */
  tryTake(n: number): boolean;
}

/**
 * Where a visitor connection came from and what it reached, each as
 * `host:port` (`[v6]:port`): the stream's open frame carries them as
 * `remote` and `local`, as a TCP tunnel's does, so the client can write a
 * PROXY protocol header for the local service. (The visitor's address
 * without port, which the IP policy and X-Forwarded-For use, is the
 * engine's `remote`.)
 */
export interface VisitorEndpoints {
  /** The visitor's address and port. */
  remote: string;
  /** The public address and port the visitor reached (the vhost listener's side). */
  local: string;
}

/** Bytes moved by one request (or upgraded connection), live while it runs. */
export interface Transfer {
  /** Bytes from the visitor. */
  sent: number;
  /** Bytes to the visitor. */
  received: number;
}

/** The request as the access log sees it. */
export interface RequestInfo {
  /** Method. */
  method: string;
  /** Host header as sent. */
  host: string;
  /** Request target (origin form). */
  path: string;
  /** Final status (101 for an upgrade). */
  status: number;
}

/** What the splice engine needs of an HTTP tunnel. */
export interface SpliceTunnel {
  /** Tunnel name. */
  readonly name: string;
  /** Bandwidth limit per direction (from / to visitors). */
  readonly pace: { in: Pace; out: Pace } | undefined;
  /** An answer that refuses the request before it reaches the client, or `null`. */
  refuse(remote: string, authorization: string | undefined, info: RequestInfo): LocalAnswer | null;
  /** How the request head sent to the service differs from the visitor's (`host`: its Host value). */
  requestHead(
    head: RequestHead,
    target: string,
    host: string,
    remote: string,
    scheme: string,
  ): HeadEdit;
  /** How the response head sent to the visitor differs; `connection` becomes the Connection header. */
  responseHead(head: ResponseHead, connection: string | null): HeadEdit;
  /** Opens a stream to the local service for the visitor connection at `endpoints` (if known). */
  open(endpoints: VisitorEndpoints | null): MuxStream;
  /** A stream from `open` is no longer used. */
  forget(stream: MuxStream): void;
  /** A request starts: counted in flight. */
  begin(): Transfer;
  /** A request ended. */
  end(
    transfer: Transfer,
    info: RequestInfo,
    startedAt: number,
    remote: string,
    error?: string,
  ): void;
  /** The response head arrived `ms` after the request. */
  firstByte(ms: number): void;
}

/** What the front decides for a request. */
export type Dispatch = { tunnel: SpliceTunnel } | { answer: LocalAnswer };

/**
 * What an HTTP tunnel counts of the visitors it carries, whichever way they
 * came (the splice engine, the node:http path or the TLS passthrough): the
 * requests in flight with their live byte counts, the totals since the
 * tunnel opened, the first-byte latency, and the event each finished
 * request reports to monitoring and the access log ({@linkcode HttpEvent}).
 * What the bandwidth limit held back is the guards' (`guards.ts`).
 *
 * @module
 */

import type { ConnectionEvent, LiveTransfer, TunnelTotals } from "./public_tunnel.ts";

/** One finished request, as monitoring and the access log see it. */
export interface HttpEvent extends ConnectionEvent {
  /** The request. */
  http: { method: string; host: string; path: string; status: number };
}

/** Options of {@linkcode HttpTransfers}. */
export interface HttpTransfersOptions {
  /** Called when each request (or upgraded connection) ends. */
  onConnection?: ((event: HttpEvent) => void) | undefined;
  /** Called with ms from the request to the response head. */
  onFirstByte?: ((ms: number) => void) | undefined;
  /** Called when a request ends and none is left in flight, before its event. */
  onIdle?: (() => void) | undefined;
}

/**
 * The requests of one HTTP tunnel, counted.
 *
 * @example
 * ```ts
 * import { HttpTransfers } from "./http_transfers.ts";
 * const transfers = new HttpTransfers("web", {});
 * const transfer = transfers.start();
 * transfer.received += 512;
 * transfers.finish(transfer, performance.now(), "192.0.2.1", {
 *   method: "GET",
 *   host: "app.test",
 *   path: "/",
 *   status: 200,
 * }, undefined);
 * console.assert(transfers.inFlight === 0 && transfers.stats.bytesOut === 512);
 * ```
 */
export class HttpTransfers {
  #tunnel: string;
  #options: HttpTransfersOptions;
  #live = new Set<LiveTransfer>();
  #requests = 0;
  #bytesIn = 0;
  #bytesOut = 0;

  /** The counts of the tunnel named `tunnel`. */
  constructor(tunnel: string, options: HttpTransfersOptions) {
    this.#tunnel = tunnel;
    this.#options = options;
  }

  /** Requests (and upgraded or passed-through connections) in flight. */
  get inFlight(): number {
    return this.#live.size;
  }

  /** Live totals of the requests in flight. */
  get live(): Iterable<LiveTransfer> {
    return this.#live;
  }

  /** Totals since the tunnel opened. */
  get stats(): TunnelTotals {
    return { connections: this.#requests, bytesIn: this.#bytesIn, bytesOut: this.#bytesOut };
  }

  /** A request starts: counted, and in flight until {@linkcode HttpTransfers.finish}. */
  start(): LiveTransfer {
    const transfer: LiveTransfer = { sent: 0, received: 0 };
    this.#live.add(transfer);
    this.#requests++;
    return transfer;
  }

  /** A request from `start` ended: no longer in flight, and reported with its bytes. */
  finish(
    transfer: LiveTransfer,
    started: number,
    remote: string,
    http: HttpEvent["http"],
    error: string | undefined,
  ): void {
    this.#live.delete(transfer);
    this.report(started, remote, http, transfer.sent, transfer.received, error, transfer);
  }

  /**
   * Reports a request that ended (started at `started`, a `performance.now()`),
   * adding its bytes to the totals; a refused one has no `transfer`.
   */
  report(
    started: number,
    remote: string,
    http: HttpEvent["http"],
    bytesIn: number,
    bytesOut: number,
    error: string | undefined,
    transfer?: LiveTransfer,
  ): void {
    this.#bytesIn += bytesIn;
    this.#bytesOut += bytesOut;
    if (this.#live.size === 0) this.#options.onIdle?.();
    this.#options.onConnection?.({
      tunnel: this.#tunnel,
      remote,
      bytesIn,
      bytesOut,
      durationMs: performance.now() - started,
      error,
      transfer,
      http,
    });
  }

  /** The response head (or the first byte back) arrived `ms` after the request. */
  firstByte(ms: number): void {
    this.#options.onFirstByte?.(ms);
  }
}

/**
 * TLS passthrough, for HTTPS tunnels whose service terminates TLS itself:
 * the vhost front has read the ClientHello and routed the connection by its
 * server name (SNI); from there the bytes, the ClientHello first, are relayed
 * untouched over a mux stream, after the same gate as a request (a refused
 * visitor is cut off: there is no HTTP to answer in), and counted as one
 * request (method `TLS`).
 *
 * @module
 */

import type net from "node:net";
import type { MuxStream } from "../../mux/mod.ts";
import type { VisitorEndpoints } from "../http/splice_tunnel.ts";
import { StreamSocket } from "../stream_socket.ts";
import type { VisitorGuard } from "./guards.ts";
import type { HttpGate } from "./http_gate.ts";
import { pump, socketEndpoints, visitorAddress } from "./http_node.ts";
import type { HttpEvent, HttpTransfers } from "./http_transfers.ts";

/** Options of {@linkcode TlsPassthrough}: the parts of its tunnel it works with. */
export interface TlsPassthroughOptions {
  /** Who may come in. */
  gate: HttpGate;
  /** Where connections are counted. */
  transfers: HttpTransfers;
  /** The bandwidth limit. */
  guard: VisitorGuard;
  /** Opens a stream to the tunnel's client for the visitor connection at `endpoints`, if known. */
  open: (endpoints: VisitorEndpoints | null) => MuxStream;
}

/**
 * The passed-through TLS connections of one HTTPS tunnel.
 *
 * @example
 * ```ts ignore
 * const passthrough = new TlsPassthrough({ gate, transfers, guard, open });
 * passthrough.relay(socket, clientHello, "app.example.com");
 * passthrough.close();
 * ```
 */
export class TlsPassthrough {
  #gate: HttpGate;
  #transfers: HttpTransfers;
  #guard: VisitorGuard;
  #open: (endpoints: VisitorEndpoints | null) => MuxStream;
  #spliced = new Set<net.Socket>();

  /** The passthrough of the tunnel whose parts `options` are. */
  constructor(options: TlsPassthroughOptions) {
    this.#gate = options.gate;
    this.#transfers = options.transfers;
    this.#guard = options.guard;
    this.#open = options.open;
  }

  /** Relays `socket` untouched to the client; `hello` holds the bytes already read, `sni` their server name. */
  relay(socket: net.Socket, hello: Uint8Array, sni: string): void {
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
    // One stream per visitor connection: the client's PROXY protocol header, if any, goes
    // before the ClientHello on the local connection.
    const stream = new StreamSocket(this.#open(socketEndpoints(socket)));
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

  /** Cuts off the connections relayed now. Safe to call twice. */
  close(): void {
    for (const socket of this.#spliced) socket.destroy();
  }
}

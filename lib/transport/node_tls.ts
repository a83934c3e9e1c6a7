/**
 * The control listener for mutual TLS: `node:tls`, because `Deno.listenTls`
 * cannot ask for client certificates. It accepts TLS 1.3 only, requires a
 * client certificate signed by the configured CA (checked during the
 * handshake: a client without one never reaches the Burrow protocol), and
 * can swap its certificate for new connections without dropping the
 * established ones. Accepted sockets are wrapped by {@linkcode nodeSocketConn}.
 *
 * @module
 */

import tls from "node:tls";
import { type NodeSocketConn, nodeSocketConn } from "./node_socket.ts";

/** An accepted mutual-TLS connection. */
export interface NodeTlsConn extends NodeSocketConn {
  /** The client certificate's subject common name. */
  readonly peerName: string;
}

/** A listening mutual-TLS server. */
export interface NodeTlsListener {
  /** The bound port. */
  readonly port: number;
  /** Uses a new certificate for new connections; established ones carry on. */
  setCertificate(cert: string, key: string): void;
  /** The next authenticated connection; rejects with `BadResource` once closed. */
  accept(): Promise<NodeTlsConn>;
  /** Stops accepting (established connections stay open). */
  close(): void;
}

/** Options of {@linkcode listenMutualTls}. */
export interface MutualTlsOptions {
  /** Listen address. */
  hostname: string;
  /** Listen port; 0 picks one. */
  port: number;
  /** PEM server certificate chain. */
  cert: string;
  /** PEM server key. */
  key: string;
  /** PEM CA(s) client certificates must chain to; without it no client certificate is asked for. */
  ca?: string | undefined;
  /** Oldest TLS version accepted; default `TLSv1.3` (mutual TLS always asks for 1.3). */
  minVersion?: "TLSv1.2" | "TLSv1.3";
  /** Called when a handshake fails (no certificate, wrong CA, old TLS). */
  onHandshakeError: (remote: string, error: Error) => void;
}

/**
 * Listens for mutual-TLS control connections.
 *
 * @throws {Error} naming the port when it is taken.
 */
export async function listenMutualTls(options: MutualTlsOptions): Promise<NodeTlsListener> {
  const ready: NodeTlsConn[] = [];
  let acceptor: ((conn: NodeTlsConn | null) => void) | null = null;
  let closed = false;
  const mutual = options.ca !== undefined;
  const minVersion = mutual ? "TLSv1.3" : options.minVersion ?? "TLSv1.3";
  const server = tls.createServer({
    cert: options.cert,
    key: options.key,
    ...(mutual ? { ca: [options.ca!], requestCert: true, rejectUnauthorized: true } : {}),
    minVersion,
    handshakeTimeout: 10_000,
  }, (socket) => {
    socket.setNoDelay(true);
    const conn: NodeTlsConn = {
      ...nodeSocketConn(socket),
      peerName: String(socket.getPeerCertificate()?.subject?.CN ?? ""),
    };
    if (acceptor) {
      const a = acceptor;
      acceptor = null;
      a(conn);
    } else ready.push(conn);
  });
  server.on("tlsClientError", (error: Error, socket: tls.TLSSocket) => {
    options.onHandshakeError(`${socket.remoteAddress}:${socket.remotePort}`, error);
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      reject(
        error.code === "EADDRINUSE"
          ? new Error(
            `Control port ${options.hostname}:${options.port} is already in use ` +
              `(server.bind_port): is another burrowd running?`,
          )
          : error,
      );
    });
    server.listen(options.port, options.hostname, () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    setCertificate(cert, key) {
      server.setSecureContext({
        cert,
        key,
        ...(mutual ? { ca: [options.ca!] } : {}),
        minVersion,
      });
    },
    async accept() {
      const next = ready.shift();
      if (next) return next;
      if (closed) throw new Deno.errors.BadResource("Listener closed");
      const conn = await new Promise<NodeTlsConn | null>((resolve) => (acceptor = resolve));
      if (!conn) throw new Deno.errors.BadResource("Listener closed");
      return conn;
    },
    close() {
      closed = true;
      server.close();
      const a = acceptor;
      acceptor = null;
      a?.(null);
      for (const conn of ready.splice(0)) conn.close();
    },
  };
}

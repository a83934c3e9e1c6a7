/**
 * The control listener for mutual TLS: `node:tls`, because `Deno.listenTls`
 * cannot ask for client certificates. It accepts TLS 1.3 only, requires a
 * client certificate signed by the configured CA (checked during the
 * handshake: a client without one never reaches the Burrow protocol), and
 * can swap its certificate for new connections without dropping the
 * established ones. Accepted sockets are wrapped as a {@linkcode Duplex}.
 *
 * @module
 */

import tls from "node:tls";
import type { Duplex } from "../mux/mux.ts";

/** An accepted mutual-TLS connection. */
export interface NodeTlsConn extends Duplex {
  /** The client's address. */
  readonly remoteAddr: Deno.NetAddr;
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
  /** Called when a handshake fails (no certificate, wrong CA, old TLS). */
  onHandshakeError: (remote: string, error: Error) => void;
}

/** Wraps a node TLS socket as a Duplex with backpressure both ways. */
function duplexOf(socket: tls.TLSSocket): NodeTlsConn {
  const chunks: Uint8Array[] = [];
  let buffered = 0;
  let ended = false;
  let failure: Error | null = null;
  let waiter: (() => void) | null = null;
  const wake = () => {
    const w = waiter;
    waiter = null;
    w?.();
  };
  socket.on("data", (data: Uint8Array) => {
    chunks.push(data);
    buffered += data.length;
    if (buffered > 1 << 20) socket.pause();
    wake();
  });
  socket.on("end", () => {
    ended = true;
    wake();
  });
  socket.on("close", () => {
    ended = true;
    wake();
  });
  socket.on("error", (error: Error) => {
    failure = error;
    wake();
  });
  const cert = socket.getPeerCertificate();
  return {
    remoteAddr: {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "",
      port: socket.remotePort ?? 0,
    },
    peerName: String(cert?.subject?.CN ?? ""),
    async read(p: Uint8Array): Promise<number | null> {
      while (!chunks.length) {
        if (failure) throw failure;
        if (ended) return null;
        await new Promise<void>((resolve) => (waiter = resolve));
      }
      const head = chunks[0]!;
      const n = Math.min(p.length, head.length);
      p.set(head.subarray(0, n));
      if (n === head.length) chunks.shift();
      else chunks[0] = head.subarray(n);
      buffered -= n;
      if (buffered <= 1 << 19 && socket.isPaused()) socket.resume();
      return n;
    },
    write(p: Uint8Array): Promise<number> {
      if (failure) return Promise.reject(failure);
      if (socket.destroyed) return Promise.reject(new Deno.errors.BrokenPipe("Connection closed"));
      const copy = p.slice();
      return new Promise((resolve, reject) => {
        const ok = socket.write(copy, (error) => {
          if (error) reject(error);
        });
        if (ok) resolve(p.length);
        else socket.once("drain", () => resolve(p.length));
      });
    },
    close() {
      // End (flushing what is queued, such as a last error message), then make sure.
      if (socket.destroyed) return;
      socket.end();
      const timer = setTimeout(() => socket.destroy(), 1_000);
      socket.once("close", () => clearTimeout(timer));
    },
  };
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
  const server = tls.createServer({
    cert: options.cert,
    key: options.key,
    ...(mutual ? { ca: [options.ca!], requestCert: true, rejectUnauthorized: true } : {}),
    minVersion: "TLSv1.3",
    handshakeTimeout: 10_000,
  }, (socket) => {
    socket.setNoDelay(true);
    const conn = duplexOf(socket);
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
        minVersion: "TLSv1.3",
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

/**
 * The control port's listeners: one interface, two implementations.
 * Deno's TLS is the faster; it needs FFI for TCP_NODELAY and for a
 * handshake deadline that frees the socket, and it cannot change its
 * certificate in place, so a reload listens again on the same port.
 * node:tls (`node_tls.ts`) does mutual TLS and TLS 1.3-only by itself.
 *
 * @module
 */

import { IPPROTO_TCP, sockopt, TCP_NODELAY } from "../util/mod.ts";
import type { Duplex } from "./duplex.ts";
import type { NodeTlsListener } from "./node_tls.ts";

/** A connection accepted on the control port. */
export type AcceptedConn = Duplex & { remoteAddr: Deno.Addr };

/** A TLS listener whose certificate can be replaced while it runs. */
export interface TlsListener {
  /** The bound port. */
  readonly port: number;
  /** The next connection; rejects once the listener is closed. */
  accept(): Promise<AcceptedConn>;
  /** Uses a new certificate for new connections; established ones carry on. */
  reload(cert: string, key: string): Promise<void>;
  /** Stops accepting. */
  close(): void;
}

/** Where and with what {@linkcode listenDenoTls} listens. */
export interface DenoTlsListenOptions {
  /** Address to bind. */
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** PEM certificate chain. */
  cert: string;
  /** PEM private key. */
  key: string;
}

/**
 * Listens with Deno's TLS (1.3, and 1.2 for clients that ask). Each accepted
 * connection gets TCP_NODELAY (through FFI, when available), and its
 * `close()` also ends a handshake still in progress.
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken.
 */
export function listenDenoTls(options: DenoTlsListenOptions): TlsListener {
  const { hostname } = options;
  let tls = { cert: options.cert, key: options.key };
  let listener = Deno.listenTls({ hostname, port: options.port, ...tls });
  const port = (listener.addr as Deno.NetAddr).port;
  let closed = false;
  let reloading: Promise<unknown> | null = null;
  return {
    port,
    async accept() {
      for (;;) {
        const current = listener;
        try {
          const conn = await current.accept();
          // Deno's TLS connections have no setNoDelay: set TCP_NODELAY on the fd (FFI).
          const fd = sockopt.socketFd(conn);
          if (fd !== null) sockopt.setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
          return untilSecured(conn);
        } catch (error) {
          // A reload swapped the listener under us: accept from the new one.
          if (reloading) await reloading.catch(() => {});
          if (!closed && current !== listener) continue;
          throw error;
        }
      }
    },
    async reload(cert, key) {
      // Deno.listenTls cannot change its certificate: close and listen again on the
      // same port. Accepted connections are not affected by closing the listener; the
      // port is free once the pending accept has been cancelled, a moment later.
      const listen = async (c: string, k: string) => {
        for (let attempt = 0;; attempt++) {
          try {
            return Deno.listenTls({ hostname, port, cert: c, key: k });
          } catch (error) {
            if (!(error instanceof Deno.errors.AddrInUse) || attempt >= 100) throw error;
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }
      };
      const swap = (async () => {
        listener.close();
        try {
          listener = await listen(cert, key);
        } catch (error) {
          // Keep serving with the previous certificate rather than not at all.
          listener = await listen(tls.cert, tls.key);
          throw error;
        }
        tls = { cert, key };
      })();
      reloading = swap;
      try {
        await swap;
      } finally {
        reloading = null;
      }
    },
    close() {
      closed = true;
      listener.close();
    },
  };
}

/** A node:tls listener (`listenMutualTls`) seen as a {@linkcode TlsListener}. */
export function nodeTlsListener(listener: NodeTlsListener): TlsListener {
  return {
    port: listener.port,
    accept: () => listener.accept(),
    reload: (cert, key) => Promise.resolve(listener.setCertificate(cert, key)),
    close: () => listener.close(),
  };
}

/**
 * A Deno TLS connection whose `close()` also ends a handshake still in
 * progress: Deno's alone leaves such a socket open (the peer never learns,
 * the descriptor stays), so the handshake deadline shuts it down first.
 */
function untilSecured(conn: Deno.TlsConn): AcceptedConn {
  let secured = false;
  conn.handshake().then(() => (secured = true), () => {});
  return {
    remoteAddr: conn.remoteAddr,
    read: (p) => conn.read(p),
    write: (p) => conn.write(p),
    close() {
      if (!secured) sockopt.shutdown(conn);
      conn.close();
    },
  };
}

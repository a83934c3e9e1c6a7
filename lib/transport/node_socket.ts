/**
 * A `node:net` or `node:tls` socket as the connection the rest of Burrow
 * reads and writes (the mux's {@linkcode Duplex}, the relay's connection):
 * `read(p)` and `write(p)` promises with backpressure both ways, a
 * half-close, and a close that flushes what is queued.
 *
 * @module
 */

import type net from "node:net";
import type { Duplex } from "./duplex.ts";

/** A node socket seen as a connection. */
export interface NodeSocketConn extends Duplex {
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  /** Ends writing (for TLS: close_notify, then FIN); reading goes on. */
  closeWrite(): void;
}

/** Options of {@linkcode nodeSocketConn}. */
export interface NodeSocketConnOptions {
  /**
   * Bytes read from the socket but not yet taken by `read` above which the
   * socket is paused (resumed below half of it). Default 1 MiB.
   */
  maxBuffered?: number;
}

/**
 * Wraps `socket`. The socket's data is queued as it arrives and handed out
 * by `read`; `write` copies its bytes (node may hold them after the call)
 * and resolves once the socket takes more; `close` ends the socket so that
 * a last answer still reaches the peer, and destroys it a second later at
 * the latest.
 *
 * @example
 * ```ts ignore
 * const server = tls.createServer({ cert, key }, async (socket) => {
 *   const conn = nodeSocketConn(socket);
 *   await conn.write(new TextEncoder().encode("hello\n"));
 *   conn.close();
 * });
 * ```
 */
export function nodeSocketConn(
  socket: net.Socket,
  options: NodeSocketConnOptions = {},
): NodeSocketConn {
  const max = options.maxBuffered ?? 1 << 20;
  const chunks: Uint8Array[] = [];
  let buffered = 0;
  let ended = false;
  let failure: Error | null = null;
  let closing = false;
  let waiter: (() => void) | null = null;
  const wake = () => {
    const w = waiter;
    waiter = null;
    w?.();
  };
  socket.on("data", (data: Uint8Array) => {
    chunks.push(data);
    buffered += data.length;
    if (buffered > max) socket.pause();
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
  const closed = () => new Deno.errors.BrokenPipe("Connection closed");
  return {
    remoteAddr: {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "",
      port: socket.remotePort ?? 0,
    },
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
      if (buffered <= max / 2 && socket.isPaused()) socket.resume();
      return n;
    },
    write(p: Uint8Array): Promise<number> {
      if (failure) return Promise.reject(failure);
      if (socket.destroyed || socket.writableEnded) return Promise.reject(closed());
      const copy = p.slice();
      return new Promise((resolve, reject) => {
        const ok = socket.write(copy, (error) => {
          if (error) reject(error);
        });
        if (ok) {
          resolve(p.length);
          return;
        }
        // Resolved when the socket drains, rejected when it closes first.
        const settle = () => {
          socket.off("drain", settle);
          socket.off("close", settle);
          if (socket.destroyed) reject(failure ?? closed());
          else resolve(p.length);
        };
        socket.on("drain", settle);
        socket.on("close", settle);
      });
    },
    closeWrite() {
      if (!socket.destroyed) socket.end();
    },
    close() {
      // End (flushing what is queued, such as a last error message), then make sure.
      if (closing || socket.destroyed) return;
      closing = true;
      socket.end();
      const timer = setTimeout(() => socket.destroy(), 1_000);
      socket.once("close", () => clearTimeout(timer));
    },
  };
}

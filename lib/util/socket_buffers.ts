/**
 * Large kernel buffers for UDP sockets: a burst of datagrams that arrives
 * while the process is busy waits in the socket's receive buffer instead of
 * being dropped by the kernel (Linux's default is 208 KiB, about a hundred
 * datagrams of 1400 bytes). Needs FFI (see {@linkcode SocketOptions}); the
 * kernel caps the size at `net.core.rmem_max` / `net.core.wmem_max`, which is
 * logged once per process with the `sysctl` that lifts the cap.
 *
 * @example
 * ```ts
 * import { raiseSocketBuffers } from "./socket_buffers.ts";
 * const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const granted = raiseSocketBuffers(socket, 1 << 20); // null without FFI
 * console.assert(granted === null || granted.rcv >= 4096);
 * socket.close();
 * ```
 *
 * @module
 */

import type { Logger } from "./logger.ts";
import { type SocketBuffers, type SocketOptions, sockopt } from "./sockopt.ts";

/** Options of {@linkcode raiseSocketBuffers}. */
export interface RaiseBuffersOptions {
  /** Where the one warning about a kernel cap goes. Default: nowhere. */
  logger?: Pick<Logger, "warn"> | undefined;
  /** The socket options to use. Default: the process-wide {@linkcode sockopt}. */
  sockopt?: SocketOptions;
}

/** Instances that already warned about the kernel's cap (one per process in practice). */
const warned = new WeakSet<SocketOptions>();

/**
 * Asks for `bytes` of receive and send buffer on `socket`. Returns what the
 * kernel granted, or `null` when `bytes` is 0 (keep the default), FFI is
 * unavailable or the socket's descriptor was not found. The first time the
 * kernel grants less, warns with the remedy.
 */
export function raiseSocketBuffers(
  socket: Deno.DatagramConn | Deno.Conn | Deno.Listener,
  bytes: number,
  options: RaiseBuffersOptions = {},
): SocketBuffers | null {
  const so = options.sockopt ?? sockopt;
  if (bytes <= 0 || !so.available()) return null;
  const fd = so.socketFd(socket);
  if (fd === null) return null;
  const granted = so.setBuffers(fd, bytes);
  if (granted && (granted.rcv < bytes || granted.snd < bytes) && !warned.has(so)) {
    warned.add(so);
    options.logger?.warn("socket buffers capped by the kernel", {
      asked: bytes,
      receive: granted.rcv,
      send: granted.snd,
      remedy: `sysctl -w net.core.rmem_max=${bytes} net.core.wmem_max=${bytes}`,
    });
  }
  return granted;
}

/**
 * Socket options Deno does not expose (`SO_RCVBUF`, `SO_SNDBUF`, and
 * `TCP_NODELAY` on sockets Deno gives no handle for), set through libc with
 * FFI. An optimisation, never a requirement: on another OS, without
 * `--allow-ffi`, or when libc cannot be opened, every call returns `null` or
 * `false` without throwing, and {@linkcode SocketOptions.unavailableReason}
 * says why (for one line at startup).
 *
 * A socket's file descriptor is found by asking the kernel for the local and
 * peer address of the descriptors open in this process (`getsockname`,
 * `getpeername`, `SO_TYPE`) and matching them against the addresses Deno
 * reports. That costs 1-2 µs per descriptor walked (Linux hands out the
 * lowest free number, so a fresh socket tends to sit low in the table) and
 * reads nothing system-wide (no `/proc/net/*` tables, which grow with every
 * socket of the machine).
 *
 * @example
 * ```ts
 * import { sockopt } from "./sockopt.ts";
 * const socket = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const fd = sockopt.socketFd(socket);
 * if (fd !== null) console.assert(sockopt.setBuffers(fd, 1 << 20) !== null);
 * else console.log(sockopt.unavailableReason);
 * socket.close();
 * ```
 *
 * @module
 */

import { parseIp } from "./cidr.ts";
import type { Logger } from "./logger.ts";

/** `SOL_SOCKET` (Linux). */
export const SOL_SOCKET = 1;
/** `SO_TYPE` (Linux): `SOCK_STREAM` 1 or `SOCK_DGRAM` 2. */
export const SO_TYPE = 3;
/** `SO_SNDBUF` (Linux). */
export const SO_SNDBUF = 7;
/** `SO_RCVBUF` (Linux). */
export const SO_RCVBUF = 8;
/** `SO_SNDBUFFORCE` (Linux): like `SO_SNDBUF`, past `wmem_max`, with `CAP_NET_ADMIN`. */
export const SO_SNDBUFFORCE = 32;
/** `SO_RCVBUFFORCE` (Linux): like `SO_RCVBUF`, past `rmem_max`, with `CAP_NET_ADMIN`. */
export const SO_RCVBUFFORCE = 33;
/** `IPPROTO_TCP`. */
export const IPPROTO_TCP = 6;
/** `TCP_NODELAY`. */
export const TCP_NODELAY = 1;

const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const AF_INET = 2;
const AF_INET6 = 10;
const F_GETFD = 1;
const SHUT_RDWR = 2;
/** Closed descriptors in a row that end the walk over the descriptor table. */
const DENSE_GAP = 64;

/** The libc functions used; each returns 0 on success and -1 on error, as in C. */
export interface LibC {
  /** `setsockopt(fd, level, name, value, length)`. */
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, length: number): number;
  /** `getsockopt(fd, level, name, value, &length)`. */
  getsockopt(
    fd: number,
    level: number,
    name: number,
    value: Uint8Array,
    length: Uint8Array,
  ): number;
  /** `getsockname(fd, &addr, &length)`. */
  getsockname(fd: number, addr: Uint8Array, length: Uint8Array): number;
  /** `getpeername(fd, &addr, &length)`. */
  getpeername(fd: number, addr: Uint8Array, length: Uint8Array): number;
  /** `fcntl(fd, cmd)` with no argument (`F_GETFD`): -1 when `fd` is not open. */
  fcntl(fd: number, cmd: number): number;
  /** `shutdown(fd, how)`: ends a connection's directions without closing the descriptor. */
  shutdown?(fd: number, how: number): number;
  /** `sendmsg(fd, &msghdr, flags)`: bytes sent or -1. Only batched datagram sends use it. */
  sendmsg?(fd: number, msg: Uint8Array, flags: number): number | bigint;
  /** `recvmmsg(fd, msgvec, vlen, flags, NULL)`: datagrams received or -1. For batched receives. */
  recvmmsg?(fd: number, msgvec: Uint8Array, vlen: number, flags: number, timeout: null): number;
  /** `__errno_location()`: where this thread's `errno` lives. */
  __errno_location?(): Deno.PointerValue;
}

/** Which socket to look for; addresses as Deno reports them (`Deno.NetAddr.hostname`). */
export interface SocketQuery {
  /** `tcp` (stream) or `udp` (datagram). */
  transport: "tcp" | "udp";
  /** Local port. */
  localPort: number;
  /** Local address; omitted or a wildcard (`0.0.0.0`, `::`) matches any. */
  localAddr?: string;
  /** Peer port of a connected TCP socket; omitted: a socket without a peer (a listener, UDP). */
  remotePort?: number;
  /** Peer address; omitted matches any. */
  remoteAddr?: string;
}

/** Buffer sizes the kernel granted, in the units asked for. */
export interface SocketBuffers {
  /** Receive buffer, bytes. */
  rcv: number;
  /** Send buffer, bytes. */
  snd: number;
}

/** Options of {@linkcode SocketOptions}, for tests; the defaults describe this process. */
export interface SocketOptionsOptions {
  /** The operating system. Default `Deno.build.os`. */
  os?: typeof Deno.build.os;
  /** Whether FFI is permitted. Default: `Deno.permissions.querySync({name: "ffi"})`. */
  ffiPermitted?: () => boolean;
  /** Opens libc. Default: `Deno.dlopen("libc.so.6", …)`. */
  open?: () => LibC;
  /**
   * Lists the descriptors to look at. Default: walk the table from 0 until 64
   * closed ones in a row, then `/proc/self/fd` for any higher ones.
   */
  listFds?: () => Iterable<number>;
}

const SYMBOLS = {
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

function openLibc(): LibC {
  return Deno.dlopen("libc.so.6", SYMBOLS).symbols;
}

function ffiPermitted(): boolean {
  try {
    return Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    return false;
  }
}

function listProcFds(): number[] {
  try {
    return [...Deno.readDirSync("/proc/self/fd")].map((e) => Number(e.name));
  } catch {
    return []; // no --allow-read for /proc: the walk found what it could
  }
}

/** A local or peer address read from the kernel. */
interface Endpoint {
  port: number;
  /** IPv4-mapped IPv6 folded into IPv4, as `parseIp` does. */
  version: 4 | 6;
  value: bigint;
}

/**
 * Socket options through libc. Use the process-wide {@linkcode sockopt};
 * construct one only to simulate another platform in tests. libc is opened
 * on first use.
 *
 * @example
 * ```ts
 * import { SocketOptions } from "./sockopt.ts";
 * const off = new SocketOptions({ os: "windows" });
 * console.assert(!off.available() && off.setIntOption(3, 1, 8, 1 << 20) === false);
 * console.assert(off.unavailableReason === 'not on Linux (this is "windows")');
 * ```
 */
export class SocketOptions {
  #options: SocketOptionsOptions;
  #lib: LibC | null = null;
  #reason: string | null = null;
  #loaded = false;
  #announced = false;
  #fds = new WeakMap<object, number>();
  #errnoView: Deno.UnsafePointerView | undefined;
  #value = new Uint8Array(4);
  #length = new Uint8Array(4);
  #addr = new Uint8Array(128);

  /** Nothing is opened until the first call. */
  constructor(options: SocketOptionsOptions = {}) {
    this.#options = options;
  }

  #load(): LibC | null {
    if (this.#loaded) return this.#lib;
    this.#loaded = true;
    const os = this.#options.os ?? Deno.build.os;
    if (os !== "linux") {
      this.#reason = `not on Linux (this is "${os}")`;
      return null;
    }
    if (!(this.#options.ffiPermitted ?? ffiPermitted)()) {
      this.#reason = "no FFI permission (run with --allow-ffi)";
      return null;
    }
    try {
      this.#lib = (this.#options.open ?? openLibc)();
    } catch (error) {
      this.#reason = `cannot open libc.so.6: ${(error as Error).message}`;
    }
    return this.#lib;
  }

  /**
   * The libc functions, for other system calls through FFI (batched
   * datagram sends and receives); `null` when FFI is unavailable.
   */
  get libc(): LibC | null {
    return this.#load();
  }

  /** `errno` of the last failed libc call on this thread; 0 when unknown. */
  errno(): number {
    const lib = this.#load();
    const at = lib?.__errno_location?.();
    if (!at) return 0;
    this.#errnoView ??= new Deno.UnsafePointerView(at);
    return this.#errnoView.getInt32();
  }

  /** Whether socket options can be set here (opens libc on first call). */
  available(): boolean {
    return this.#load() !== null;
  }

  /** Why socket options cannot be set here; `null` when they can. */
  get unavailableReason(): string | null {
    this.#load();
    return this.#reason;
  }

  /**
   * Says once (per instance; the process has one) whether FFI socket options
   * are on: `info` with the reason and what is lost when they are off,
   * `debug` when on. Server and client call it at startup.
   */
  announce(logger: Pick<Logger, "info" | "debug">): void {
    if (this.#announced) return;
    this.#announced = true;
    const reason = this.unavailableReason;
    if (reason === null) {
      logger.debug("FFI socket options on", { library: "libc.so.6" });
    } else {
      logger.info("FFI socket options off", {
        reason,
        effect:
          "UDP sockets keep the kernel's default buffers and datagrams go one Deno call each, " +
          "and TLS control connections opened by Deno's TLS (server with min_version 1.2, client " +
          "with a client certificate) keep Nagle's algorithm: all works, with less headroom under load",
      });
    }
  }

  /** Sets an `int` option; false when it failed or FFI is unavailable. */
  setIntOption(fd: number, level: number, name: number, value: number): boolean {
    const lib = this.#load();
    if (!lib) return false;
    new DataView(this.#value.buffer).setInt32(0, value, true);
    return lib.setsockopt(fd, level, name, this.#value, 4) === 0;
  }

  /** Reads an `int` option; `null` when it failed or FFI is unavailable. */
  getIntOption(fd: number, level: number, name: number): number | null {
    const lib = this.#load();
    if (!lib) return null;
    const length = new DataView(this.#length.buffer);
    length.setUint32(0, 4, true);
    if (lib.getsockopt(fd, level, name, this.#value, this.#length) !== 0) return null;
    return new DataView(this.#value.buffer).getInt32(0, true);
  }

  /**
   * Asks for `bytes` of receive and send buffer and returns what the kernel
   * granted, halved: Linux reserves twice the size asked for (half for its
   * bookkeeping) and reports that, so the result compares with `bytes`. Tries
   * `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` first (they pass `net.core.rmem_max`
   * with `CAP_NET_ADMIN`), then the capped options. `null` when FFI is
   * unavailable or `fd` is not a socket.
   */
  setBuffers(fd: number, bytes: number): SocketBuffers | null {
    const set = (force: number, plain: number, get: number): number | null => {
      if (!this.setIntOption(fd, SOL_SOCKET, force, bytes)) {
        this.setIntOption(fd, SOL_SOCKET, plain, bytes);
      }
      const granted = this.getIntOption(fd, SOL_SOCKET, get);
      return granted === null ? null : Math.floor(granted / 2);
    };
    const rcv = set(SO_RCVBUFFORCE, SO_RCVBUF, SO_RCVBUF);
    const snd = set(SO_SNDBUFFORCE, SO_SNDBUF, SO_SNDBUF);
    return rcv === null || snd === null ? null : { rcv, snd };
  }

  /** The descriptor of the socket `query` describes; `null` when none or FFI is unavailable. */
  findSocketFd(query: SocketQuery): number | null {
    return this.findSocketFds([query])[0] ?? null;
  }

  /**
   * Like {@linkcode SocketOptions.findSocketFd} for several sockets, with
   * one pass over the open descriptors.
   */
  findSocketFds(queries: readonly SocketQuery[]): Array<number | null> {
    const found: Array<number | null> = queries.map(() => null);
    const lib = this.#load();
    if (!lib || queries.length === 0) return found;
    const wanted = queries.map((q) => ({
      ...q,
      type: q.transport === "tcp" ? SOCK_STREAM : SOCK_DGRAM,
      local: wildcardOrIp(q.localAddr),
      remote: wildcardOrIp(q.remoteAddr),
    }));
    const ports = new Set(queries.map((q) => q.localPort));
    let left = queries.length;
    const check = (fd: number): boolean => {
      const local = this.#endpoint(lib.getsockname, fd);
      if (!local) return false;
      if (!ports.has(local.port)) return true;
      const type = this.getIntOption(fd, SOL_SOCKET, SO_TYPE);
      let peer: Endpoint | null | undefined;
      for (const [i, q] of wanted.entries()) {
        if (found[i] !== null || q.type !== type || q.localPort !== local.port) continue;
        if (!sameIp(q.local, local)) continue;
        if (peer === undefined) peer = this.#endpoint(lib.getpeername, fd);
        if (q.remotePort === undefined ? peer !== null : peer?.port !== q.remotePort) continue;
        if (peer && !sameIp(q.remote, peer)) continue;
        found[i] = fd;
        left--;
        break;
      }
      return true;
    };
    if (this.#options.listFds) {
      for (const fd of this.#options.listFds()) {
        if (Number.isInteger(fd) && fd >= 0) check(fd);
        if (left === 0) break;
      }
      return found;
    }
    // Descriptors are handed out lowest first, so the table is dense: walk it
    // until a run of closed ones, then list /proc/self/fd for any beyond.
    let gap = 0;
    let fd = 0;
    for (; gap < DENSE_GAP && left > 0; fd++) {
      if (check(fd) || lib.fcntl(fd, F_GETFD) >= 0) gap = 0;
      else gap++;
    }
    if (left > 0) {
      for (const high of listProcFds()) {
        if (high >= fd) check(high);
        if (left === 0) break;
      }
    }
    return found;
  }

  /**
   * The descriptor of a socket Deno opened: a TCP connection or listener, a
   * TLS connection, or a UDP socket. Remembered per socket object, so asking
   * again is free.
   */
  socketFd(socket: Deno.Conn | Deno.Listener | Deno.DatagramConn): number | null {
    const known = this.#fds.get(socket);
    if (known !== undefined) return known;
    const fd = this.#lookup(socket);
    if (fd !== null) this.#fds.set(socket, fd);
    return fd;
  }

  /**
   * Shuts a TCP connection down both ways (`shutdown(fd, SHUT_RDWR)`): the
   * peer reads the end, and Deno's own task on the socket ends, so closing
   * it then frees the socket even where `close()` alone would not (a
   * `Deno.TlsConn` still in its handshake). The descriptor is checked to be
   * still this connection's before anything is done to it. False when FFI
   * is unavailable or the socket is gone.
   */
  shutdown(conn: Deno.Conn): boolean {
    const lib = this.#load();
    if (!lib?.shutdown) return false;
    const fd = this.socketFd(conn);
    if (fd === null) return false;
    const local = this.#endpoint(lib.getsockname, fd);
    const peer = this.#endpoint(lib.getpeername, fd);
    const localAddr = conn.localAddr as Deno.NetAddr;
    const remoteAddr = conn.remoteAddr as Deno.NetAddr;
    if (local?.port !== localAddr.port || peer?.port !== remoteAddr.port) return false;
    return lib.shutdown(fd, SHUT_RDWR) === 0;
  }

  #lookup(socket: Deno.Conn | Deno.Listener | Deno.DatagramConn): number | null {
    const local = ("localAddr" in socket ? socket.localAddr : socket.addr) as Deno.Addr;
    if (local.transport !== "tcp" && local.transport !== "udp") return null;
    const remote = "remoteAddr" in socket ? socket.remoteAddr as Deno.NetAddr : undefined;
    return this.findSocketFd({
      transport: local.transport,
      localPort: local.port,
      localAddr: local.hostname,
      ...(remote ? { remotePort: remote.port, remoteAddr: remote.hostname } : {}),
    });
  }

  #endpoint(call: LibC["getsockname"], fd: number): Endpoint | null {
    new DataView(this.#length.buffer).setUint32(0, this.#addr.length, true);
    if (call(fd, this.#addr, this.#length) !== 0) return null;
    const view = new DataView(this.#addr.buffer);
    const family = view.getUint16(0, true);
    const port = view.getUint16(2, false);
    if (family === AF_INET) {
      return { port, version: 4, value: BigInt(view.getUint32(4, false)) };
    }
    if (family !== AF_INET6) return null;
    const value = (view.getBigUint64(8, false) << 64n) | view.getBigUint64(16, false);
    if (value >> 32n === 0xffffn) return { port, version: 4, value: value & 0xffffffffn };
    return { port, version: 6, value };
  }
}

/** `null` for "any address" (omitted, unparsable, `0.0.0.0`, `::`). */
function wildcardOrIp(text: string | undefined): { version: 4 | 6; value: bigint } | null {
  if (text === undefined) return null;
  const ip = parseIp(text);
  return ip && ip.value !== 0n ? ip : null;
}

function sameIp(wanted: { version: 4 | 6; value: bigint } | null, got: Endpoint): boolean {
  return wanted === null || (wanted.version === got.version && wanted.value === got.value);
}

/** The process-wide socket options; libc is opened on first use. */
export const sockopt: SocketOptions = new SocketOptions();

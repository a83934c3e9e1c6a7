/**
 * Reads the datagrams already waiting on a UDP socket in one system call
 * (`recvmmsg` with `MSG_DONTWAIT`, through FFI), after Deno's `receive`
 * said the socket is readable: a busy socket then costs one Deno op per
 * batch rather than per datagram. The runtime's own readiness tracking is
 * unaffected (its next read finds the socket empty and waits, as after any
 * spurious wake-up).
 *
 * An optimisation only: {@linkcode DatagramDrain.open} returns `null`
 * without FFI; callers keep receiving through Deno.
 *
 * @module
 */

import { type LibC, type SocketOptions, sockopt } from "../util/mod.ts";

const SLOTS = 32;
/** Room for the largest datagram, so none is ever truncated. */
const SLOT = 65_536;
const MSG_DONTWAIT = 0x40;
const MMSGHDR = 64; // msghdr (56) + msg_len (4) + padding
const NAME = 32; // room for sockaddr_in6 (28)

/** Buffers shared by every drain of the process: drains run one at a time, synchronously. */
class Arena {
  readonly data = new Uint8Array(SLOTS * SLOT);
  readonly headers = new Uint8Array(SLOTS * (MMSGHDR + 16 + NAME));
  readonly view = new DataView(this.headers.buffer);
  readonly names = SLOTS * (MMSGHDR + 16);

  constructor() {
    const data = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.data)));
    const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.headers)));
    const iovecs = SLOTS * MMSGHDR;
    for (let i = 0; i < SLOTS; i++) {
      const h = i * MMSGHDR;
      const iov = iovecs + i * 16;
      const name = this.names + i * NAME;
      this.view.setBigUint64(h, base + BigInt(name), true); // msg_name
      this.view.setBigUint64(h + 16, base + BigInt(iov), true); // msg_iov
      this.view.setBigUint64(h + 24, 1n, true); // msg_iovlen
      this.view.setBigUint64(iov, data + BigInt(i * SLOT), true); // iov_base
      this.view.setBigUint64(iov + 8, BigInt(SLOT), true); // iov_len
    }
  }
}

let arena: Arena | null = null;

/** Drains one socket's waiting datagrams. */
export class DatagramDrain {
  #lib: LibC & Required<Pick<LibC, "recvmmsg">>;
  #fd: number;

  private constructor(lib: LibC & Required<Pick<LibC, "recvmmsg">>, fd: number) {
    this.#lib = lib;
    this.#fd = fd;
  }

  /** A drain of `socket`; `null` without FFI or when its descriptor is not found. */
  static open(socket: Deno.DatagramConn, so: SocketOptions = sockopt): DatagramDrain | null {
    const lib = so.libc;
    if (!lib?.recvmmsg) return null;
    const fd = so.socketFd(socket);
    return fd === null
      ? null
      : new DatagramDrain(lib as LibC & Required<Pick<LibC, "recvmmsg">>, fd);
  }

  /**
   * Calls `onDatagram` for each datagram waiting now (at most 32), with
   * its bytes and its source as a `sockaddr`; both are valid only during
   * the call. Returns how many there were (0 when none, or on an error).
   * Use it only while the socket is open.
   */
  drain(onDatagram: (data: Uint8Array, source: Uint8Array) => void): number {
    arena ??= new Arena();
    const a = arena;
    for (let i = 0; i < SLOTS; i++) a.view.setUint32(i * MMSGHDR + 8, NAME, true); // msg_namelen
    const n = this.#lib.recvmmsg(this.#fd, a.headers, SLOTS, MSG_DONTWAIT, null);
    for (let i = 0; i < n; i++) {
      const length = a.view.getUint32(i * MMSGHDR + 56, true);
      const name = a.names + i * NAME;
      onDatagram(
        a.data.subarray(i * SLOT, i * SLOT + length),
        a.headers.subarray(name, name + a.view.getUint32(i * MMSGHDR + 8, true)),
      );
    }
    return Math.max(n, 0);
  }
}

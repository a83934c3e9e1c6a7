/**
 * The receive loop of a UDP socket. Each datagram is handed over with its
 * source as an address and as a canonical `host:port` key that stays the
 * same string while the source does (so "same sender as before?" is one
 * comparison). With FFI (Linux, `--allow-ffi`), the datagrams waiting
 * after each Deno `receive` are read in one `recvmmsg` call.
 *
 * @example
 * ```ts
 * import { UdpReceiver } from "./udp_receiver.ts";
 * const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const receiver = new UdpReceiver(socket);
 * const got = Promise.withResolvers<string>();
 * const running = receiver.run((data, _from, key) => got.resolve(`${data.length} from ${key}`));
 * await peer.send(new Uint8Array(3), socket.addr);
 * console.assert((await got.promise).startsWith("3 from 127.0.0.1:"));
 * receiver.stop();
 * socket.close();
 * await running;
 * peer.close();
 * ```
 *
 * @module
 */

import { formatAddr } from "../util/mod.ts";
import { parseIp } from "../util/mod.ts";
import type { SocketOptions } from "../util/mod.ts";
import { DatagramDrain } from "./_drain.ts";
import { sameSource, sourceAddr, toSockaddr } from "./_sockaddr.ts";

/** Largest UDP payload, plus one byte so that nothing is truncated unseen. */
const BUFFER = 65_536;

/** Options of {@linkcode UdpReceiver}. */
export interface UdpReceiverOptions {
  /**
   * Socket options (FFI) for batched reads; `null` receives through Deno
   * only. Default: the process-wide `sockopt`, when FFI is available.
   */
  sockopt?: SocketOptions | null;
  /** Called when a receive fails for another reason than the socket closing; receiving goes on. */
  onError?: (error: Error) => void;
}

/**
 * Called for each datagram: its bytes (valid only during the call), its
 * source, and the source's canonical `host:port` (IPv4-mapped addresses as
 * `[::ffff:1.2.3.4]:port`, IPv6 per RFC 5952).
 */
export type OnDatagram = (data: Uint8Array, from: Deno.NetAddr, key: string) => void;

/** Receives from one socket until it closes or {@linkcode UdpReceiver.stop} is called. */
export class UdpReceiver {
  /** Datagrams received. */
  received = 0;
  /** Deno receive calls made: fewer than `received` when batches were drained through FFI. */
  calls = 0;
  #socket: Deno.DatagramConn;
  #drain: DatagramDrain | null;
  #onError: ((error: Error) => void) | undefined;
  #stopped = false;
  #v6: boolean;
  // The last source, so that a steady sender costs no formatting.
  #lastHost = "";
  #lastPort = -1;
  #lastRaw = new Uint8Array(28);
  #lastAddr: Deno.NetAddr = { transport: "udp", hostname: "", port: 0 };
  #lastKey = "";

  /**
   * Reads from `socket`. Call {@linkcode UdpReceiver.stop} before closing
   * `socket`: batched reads use its descriptor number.
   */
  constructor(socket: Deno.DatagramConn, options: UdpReceiverOptions = {}) {
    this.#socket = socket;
    this.#onError = options.onError;
    this.#v6 = (socket.addr as Deno.NetAddr).hostname.includes(":");
    this.#drain = options.sockopt === null
      ? null
      : DatagramDrain.open(socket, ...(options.sockopt ? [options.sockopt] : []));
  }

  /** Whether waiting datagrams are read in batches through FFI. */
  get batched(): boolean {
    return this.#drain !== null;
  }

  /** Stops the loop (at its next datagram or when the socket closes) and any use of FFI. */
  stop(): void {
    this.#stopped = true;
    this.#drain = null;
  }

  /** Receives until the socket closes or `stop` is called. */
  async run(onDatagram: OnDatagram): Promise<void> {
    // Deno truncates a datagram silently into a short buffer: room for the largest.
    const buf = new Uint8Array(BUFFER);
    const fromRaw = (data: Uint8Array, source: Uint8Array) => {
      this.received++;
      if (!sameSource(source, this.#lastRaw)) this.#remember(sourceAddr(source));
      onDatagram(data, this.#lastAddr, this.#lastKey);
    };
    while (!this.#stopped) {
      let data: Uint8Array;
      let addr: Deno.NetAddr;
      try {
        this.calls++;
        [data, addr] = await this.#socket.receive(buf) as [Uint8Array, Deno.NetAddr];
      } catch (error) {
        if (this.#stopped || error instanceof Deno.errors.BadResource) return;
        if (error instanceof Deno.errors.Interrupted) return;
        this.#onError?.(error as Error);
        continue;
      }
      if (this.#stopped) return;
      this.received++;
      if (addr.port !== this.#lastPort || addr.hostname !== this.#lastHost) {
        const ip = parseIp(addr.hostname);
        this.#remember(ip ? sourceAddr(toSockaddr(ip, addr.port, this.#v6)) : addr);
        this.#lastHost = addr.hostname;
      }
      onDatagram(data, this.#lastAddr, this.#lastKey);
      // Whatever else is waiting, 32 a call; a few full batches, then the event loop's turn.
      for (let round = 0; round < 4 && this.#drain?.drain(fromRaw) === 32; round++) {
        // A full batch: there may be more.
      }
    }
  }

  #remember(addr: Deno.NetAddr): void {
    this.#lastAddr = addr;
    this.#lastKey = formatAddr(addr);
    this.#lastHost = addr.hostname;
    this.#lastPort = addr.port;
    const ip = parseIp(addr.hostname);
    this.#lastRaw.fill(0);
    if (ip) this.#lastRaw.set(toSockaddr(ip, addr.port, this.#v6));
  }
}

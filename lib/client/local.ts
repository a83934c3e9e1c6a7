/**
 * The client's local side: for each stream the server opens, a connection
 * to the tunnel's local service (TCP, with gzip when the server asks for
 * it) or a UDP socket of its own, relayed until either side ends, with the
 * traffic counted per tunnel and an outage of the service logged once.
 *
 * @module
 */

import type { TunnelConfig } from "../config/mod.ts";
import { encodeProxyHeader, parseEndpoint } from "../protocol/mod.ts";
import {
  compressedConn,
  DatagramWriter,
  type MuxStream,
  readDatagramBatches,
  relay,
} from "../mux/mod.ts";
import { UdpReceiver, UdpSender } from "../transport/mod.ts";
import type { Logger } from "../util/mod.ts";
import { raiseSocketBuffers } from "../util/mod.ts";
import { RecordedConn, type Recorder } from "./inspect/mod.ts";

const LOCAL_DIAL_TIMEOUT = 5_000;

/** Traffic of one tunnel's visitors so far, as `burrow status` shows it. */
export interface Traffic {
  /** Bytes from visitors to the service. */
  bytesIn: number;
  /** Bytes from the service to visitors. */
  bytesOut: number;
  /** Connections closed. */
  connections: number;
  /** Connections open. */
  active: number;
}

/** A tunnel's counts: closed connections' bytes, and the running counts of open ones. */
interface Counts extends Traffic {
  live: Set<{ sent: number; received: number }>;
}

/** What {@linkcode LocalSide} needs from its client. */
export interface LocalSideOptions {
  /** The client's logger. */
  logger: Logger;
  /** `udp.socket_buffer` of the client's config (0: the kernel's default). */
  udpSocketBuffer: number;
  /** The request inspector's recorder, which HTTP tunnels hand copies of their bytes to. */
  recorder?: Recorder | undefined;
}

/** Serves the streams of the client's tunnels against their local services. */
export class LocalSide {
  #log: Logger;
  /** Traffic per tunnel name. */
  #traffic = new Map<string, Counts>();
  #udpSocketBuffer: number;
  /** Tunnels whose local service is known to be down (logged once per outage). */
  #localDown = new Set<string>();
  /** Tunnels told that a PROXY protocol header went without addresses (logged once). */
  #noAddresses = new Set<string>();
  #recorder: Recorder | undefined;

  /** A local side that logs to `options.logger`. */
  constructor(options: LocalSideOptions) {
    this.#log = options.logger;
    this.#udpSocketBuffer = options.udpSocketBuffer;
    this.#recorder = options.recorder;
  }

  /** A tunnel's traffic so far, its open connections' bytes included. */
  traffic(name: string): Traffic {
    const t = this.#countsOf(name);
    let bytesIn = t.bytesIn, bytesOut = t.bytesOut;
    for (const live of t.live) {
      bytesIn += live.received;
      bytesOut += live.sent;
    }
    return { bytesIn, bytesOut, connections: t.connections, active: t.active };
  }

  #countsOf(name: string): Counts {
    let t = this.#traffic.get(name);
    if (!t) {
      t = { bytesIn: 0, bytesOut: 0, connections: 0, active: 0, live: new Set() };
      this.#traffic.set(name, t);
    }
    return t;
  }

  /** Serves one stream the server opened for `tunnel` until either side ends it. */
  async serve(stream: MuxStream, tunnel: TunnelConfig): Promise<void> {
    if (tunnel.type === "udp") return this.#serveUdp(stream, tunnel);
    const name = tunnel.name;
    let local: Deno.TcpConn;
    try {
      local = await dialLocal(tunnel.local_addr, tunnel.local_port);
    } catch (error) {
      const message = `local service ${tunnel.local_addr}:${tunnel.local_port} unavailable: ${
        (error as Error).message
      }`;
      stream.reset(message);
      if (!this.#localDown.has(name)) {
        this.#localDown.add(name);
        this.#log.error("local service unavailable", { tunnel: name, error: message });
      }
      return;
    }
    if (this.#localDown.delete(name)) {
      this.#log.info("local service restored", { tunnel: name });
    }
    local.setNoDelay(true);
    const header = this.#proxyHeader(stream, tunnel, "tcp");
    if (header) {
      try {
        for (let n = 0; n < header.length;) n += await local.write(header.subarray(n));
      } catch (error) {
        local.close();
        stream.reset(
          `local service ${tunnel.local_addr}:${tunnel.local_port}: ${(error as Error).message}`,
        );
        return;
      }
    }
    // The server's end-to-end probes are not visitors: they stay out of the traffic figures.
    const traffic = stream.meta.probe === true ? null : this.#countsOf(name);
    const live = { sent: 0, received: 0 };
    if (traffic) {
      traffic.live.add(live);
      traffic.active++;
    }
    // The inspector reads the plain HTTP between visitor and service (not TLS passed through),
    // wrapped around the connection only now: a PROXY protocol header is not HTTP. It shows
    // the visitor's address without the port (which servers older than the client never sent).
    const recording = this.#recorder && traffic && !tunnel.tls_passthrough &&
        (tunnel.type === "http" || tunnel.type === "https")
      ? this.#recorder.connection({
        tunnel: name,
        remote: parseEndpoint(stream.meta.remote)?.hostname ?? String(stream.meta.remote ?? ""),
        local: { hostname: tunnel.local_addr, port: tunnel.local_port },
      })
      : null;
    const conn = recording ? new RecordedConn(local, recording) : local;
    // The server says per stream whether it is gzipped (`compression: gzip`).
    const side = stream.meta.gzip === true ? compressedConn(conn) : conn;
    const result = await relay(side, stream, { maxBuffer: 128 * 1024, result: live });
    recording?.end();
    if (traffic) {
      traffic.live.delete(live);
      traffic.active--;
      traffic.connections++;
      // From the service's side: sent = to visitors, received = from visitors.
      traffic.bytesOut += live.sent;
      traffic.bytesIn += live.received;
    }
    if (result.error && this.#log.enabled("debug")) {
      this.#log.debug("stream ended with error", { tunnel: name, error: result.error });
    }
  }

  /**
   * The PROXY protocol header for `stream`, `null` without `proxy_protocol`.
   * The addresses come from the stream's open frame; a server that sends no
   * public address (older than this client) gets the header that says "no
   * addresses" (`PROXY UNKNOWN`, the v2 LOCAL command), and the log says so
   * once per tunnel. The server's probes are not visitors: LOCAL, silently.
   */
  #proxyHeader(
    stream: MuxStream,
    tunnel: TunnelConfig,
    transport: "tcp" | "udp",
  ): Uint8Array | null {
    const version = tunnel.proxy_protocol;
    if (version === undefined) return null;
    const source = parseEndpoint(stream.meta.remote);
    const destination = parseEndpoint(stream.meta.local);
    if (source && destination) {
      return encodeProxyHeader(version, { source, destination }, transport);
    }
    if (stream.meta.probe !== true && !this.#noAddresses.has(tunnel.name)) {
      this.#noAddresses.add(tunnel.name);
      this.#log.warn("proxy protocol header without addresses", {
        tunnel: tunnel.name,
        reason: destination
          ? "the server sent no usable visitor address"
          : "the server sent no public address (burrowd older than this client); upgrade it",
        sent: version === "v1" ? "PROXY UNKNOWN" : "the v2 LOCAL command",
      });
    }
    return encodeProxyHeader(version, null, transport);
  }

  /**
   * One visitor's UDP session: datagrams from the stream go to the local
   * service from a socket of their own, its replies come back on the stream.
   * Neither direction waits on the other: each has a bounded queue that
   * drops the oldest (sends to the service are awaited one at a time,
   * replies travel several to a frame).
   */
  async #serveUdp(stream: MuxStream, tunnel: TunnelConfig): Promise<void> {
    const target: Deno.NetAddr = {
      transport: "udp",
      hostname: tunnel.local_addr,
      port: tunnel.local_port,
    };
    let socket: Deno.DatagramConn;
    try {
      socket = Deno.listenDatagram({
        transport: "udp",
        hostname: tunnel.local_addr.includes(":") ? "::" : "0.0.0.0",
        port: 0,
      });
    } catch (error) {
      stream.reset(`cannot open a UDP socket: ${(error as Error).message}`);
      this.#log.error("local service unavailable", { tunnel: tunnel.name, error });
      return;
    }
    raiseSocketBuffers(socket, this.#udpSocketBuffer, { logger: this.#log });
    const writer = new DatagramWriter(stream);
    const sender = new UdpSender(socket, target, {
      onError: (error) => {
        if (!this.#localDown.has(tunnel.name)) {
          this.#localDown.add(tunnel.name);
          this.#log.error("local service unavailable", { tunnel: tunnel.name, error });
        }
      },
    });
    // With the PROXY protocol, each datagram goes out behind the session's header (v2 only).
    const header = this.#proxyHeader(stream, tunnel, "udp");
    const framed = header ? new Uint8Array(header.length + 65_536) : null;
    framed?.set(header!);
    const receiver = new UdpReceiver(socket);
    // Copied by the writer: the receiver reuses its buffer.
    const replies = receiver.run((data) => writer.send(data)).catch(() => {});
    try {
      for await (const batch of readDatagramBatches(stream)) {
        // Copied: the stream's buffer is reused next. Sent together once the batch is queued.
        if (framed) {
          const at = header!.length;
          for (const datagram of batch) {
            framed.set(datagram, at);
            sender.send(framed.subarray(0, at + datagram.length));
          }
        } else for (const datagram of batch) sender.send(datagram);
      }
    } catch (error) {
      if (this.#log.enabled("debug")) {
        this.#log.debug("udp session ended with error", { tunnel: tunnel.name, error });
      }
    } finally {
      await sender.flushed();
      await sender.close();
      // Both use the socket's descriptor directly: they stop before it closes.
      receiver.stop();
      socket.close();
      await replies;
      writer.close();
      if (this.#log.enabled("debug")) {
        this.#log.debug("udp session closed", {
          tunnel: tunnel.name,
          datagrams_in: sender.sent,
          dropped_in: sender.dropped,
          datagrams_out: writer.sent,
          dropped_out: writer.dropped,
        });
      }
    }
  }
}

async function dialLocal(hostname: string, port: number): Promise<Deno.TcpConn> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), LOCAL_DIAL_TIMEOUT);
  try {
    return await Deno.connect({ hostname, port, signal: timeout.signal });
  } catch (error) {
    if (timeout.signal.aborted) {
      throw new Error(`connect timed out after ${LOCAL_DIAL_TIMEOUT / 1000}s`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The relay port of a cluster node (`server.cluster.relay_port`): TLS with
 * the node's control certificate, which the other nodes pin (its
 * fingerprint is in the node's row). With `server.tls.client_ca_file`, the
 * dialling node must show a certificate of that CA (mutual TLS), and the
 * cluster secret may be left out.
 *
 * @module
 */

import type { ClusterConfig, ServerConfig } from "../../config/mod.ts";
import {
  type Duplex,
  listenDenoTls,
  listenMutualTls,
  nodeTlsListener,
  type TlsListener,
} from "../../transport/mod.ts";
import { type Logger, sockopt } from "../../util/mod.ts";

/**
 * Listens on `server.bind_addr`:`cluster.relay_port`.
 *
 * @throws {Error} naming `server.cluster.relay_port` when the port is taken.
 */
export async function listenRelayPort(
  config: ServerConfig & { cluster: ClusterConfig },
  tls: { cert: string; key: string },
  logger: Logger,
): Promise<TlsListener> {
  const hostname = config.bind_addr;
  const port = config.cluster.relay_port;
  const caFile = config.tls.client_ca_file;
  try {
    if (!caFile && sockopt.available()) return listenDenoTls({ hostname, port, ...tls });
    const ca = caFile ? await Deno.readTextFile(caFile) : undefined;
    return nodeTlsListener(
      await listenMutualTls({
        hostname,
        port,
        ...tls,
        ca,
        onHandshakeError: (remote, error) => {
          logger.warn("node link refused", { remote, error: error.message });
        },
      }),
    );
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse || /in use/i.test(String(error))) {
      throw new Error(
        `Relay port ${hostname}:${port} is already in use (server.cluster.relay_port): ` +
          "is another burrowd running on this machine?",
      );
    }
    throw error;
  }
}

/** Where a node's relay port is, from its row: `advertise_addr` may carry a port of its own. */
export function relayAddress(row: { advertise_addr: string; relay_port: number }): {
  host: string;
  port: number;
} {
  const addr = row.advertise_addr;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr);
  if (bracketed) {
    return { host: bracketed[1]!, port: bracketed[2] ? Number(bracketed[2]) : row.relay_port };
  }
  const colon = addr.lastIndexOf(":");
  // One colon: host:port; more: an IPv6 address without a port.
  if (colon > 0 && addr.indexOf(":") === colon) {
    return { host: addr.slice(0, colon), port: Number(addr.slice(colon + 1)) };
  }
  return { host: addr, port: row.relay_port };
}

/** Accepts connections on `listener` until it closes, handing each to `take`. */
export async function acceptRelayConnections(
  listener: TlsListener,
  take: (conn: Duplex, remote: string) => void,
): Promise<void> {
  for (;;) {
    let conn;
    try {
      conn = await listener.accept();
    } catch {
      return;
    }
    const addr = conn.remoteAddr as Deno.NetAddr;
    take(conn, `${addr.hostname}:${addr.port}`);
  }
}

/**
 * The two ends of a relayed visitor in cluster mode: the context a relay's
 * public side opens in (on the node the visitor reaches), and the join of a
 * relayed stream to the client (on the node that holds it).
 *
 * @module
 */

import { type MuxStream, spliceStreams, type StreamOpener } from "../../mux/mod.ts";
import type { PlacementRow } from "../../storage/mod.ts";
import type { Logger } from "../../util/mod.ts";
import type { RecordedSession } from "../recorder.ts";
import type { TunnelContext } from "../tunnels/mod.ts";
import type { LocalSession, RelayHost } from "./host.ts";

/**
 * The context a relay of `row`'s tunnel opens in on node `node`: visitors
 * are carried by `opener` to the holder, and reported as the holder's
 * session and user, as the holder's node would.
 */
export function relayContext(
  row: PlacementRow,
  opener: StreamOpener,
  node: string,
  host: RelayHost,
  logger: Logger,
): TunnelContext {
  const session: RecordedSession = {
    sessionId: row.session_id,
    clientId: row.client_id,
    principal: { userId: row.user_id, userName: row.user_name, tokenId: null },
    mux: { rtt: 0, bytes: { in: 0, out: 0 } },
    notify() {},
  };
  return {
    config: host.config,
    logger,
    mux: opener,
    clientId: row.client_id,
    groups: host.groups,
    vhosts: host.vhosts,
    allowedDomains: null,
    // The holder's node chose the port; this node opens the same one or none.
    ports: (requested) =>
      requested > 0 ? [requested] : "The node that holds this tunnel gave it no port",
    portTaken: (port, transport) =>
      `${transport.toUpperCase()} port ${port} is in use on node ${node}`,
    guards: (_name, visitors) => ({
      logger,
      policy: visitors,
      onDenied: () => host.recorder.error("visitor_denied"),
      maxConnections: host.config.limits.max_connections_per_tunnel,
    }),
    onConnection: (tunnel, event) => host.recorder.connection(session, tunnel, event),
    onFirstByte: (tunnel, ms) => host.recorder.firstByte(session, tunnel, ms),
    onUdpDrops: (tunnel, direction, reason, count) =>
      host.recorder.udpDrops(session, tunnel, direction, reason, count),
  };
}

/**
 * Joins `stream`, which node `peer` relays to a tunnel of this node
 * (`node`), to a new stream to the client of the session its `relay`
 * field names; resets it, naming why, when that session or tunnel is gone.
 */
export function joinRelayedStream(
  stream: MuxStream,
  peer: string,
  node: string,
  sessions: Iterable<LocalSession>,
  logger: Logger,
): void {
  const meta = { ...stream.meta };
  const relay = meta.relay as { session?: unknown } | undefined;
  delete meta.relay;
  const name = meta.tunnel;
  let session: LocalSession | undefined;
  for (const s of sessions) {
    if (s.sessionId === relay?.session) {
      session = s;
      break;
    }
  }
  if (typeof name !== "string" || !session || !session.tunnels.has(name)) {
    stream.reset(`Node ${node} does not hold tunnel ${String(name)} any more`);
    return;
  }
  let out: MuxStream;
  try {
    out = session.mux.open(meta);
  } catch (error) {
    stream.reset(`The client of tunnel ${name} on node ${node}: ${(error as Error).message}`);
    return;
  }
  // Visitors relayed here share the tunnel's bandwidth limit with those arriving here.
  const limit = session.limitOf(name);
  spliceStreams(stream, out, { forward: limit?.in, back: limit?.out }).then((result) => {
    if (result.error && logger.enabled("debug")) {
      logger.debug("relayed stream ended", { tunnel: name, from: peer, error: result.error });
    }
  });
}

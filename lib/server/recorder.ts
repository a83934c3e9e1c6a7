/**
 * What the server remembers of its tunnels' traffic and state: Prometheus
 * metrics (or nothing when `server.metrics` is off), the per-tunnel windows
 * the alert rules read, the access log, and the database's history (status,
 * one-minute counters and events; nothing without a database). Sessions and
 * tunnels report here and never ask which of these are on.
 *
 * @module
 */

import type { AccessEvent, Logger } from "../util/mod.ts";
import type { ServerConfig } from "../config/mod.ts";
import type { ServerMetrics, TrafficMetrics, TunnelStats } from "../monitor/mod.ts";
import type { SessionBeat, Store, TunnelRef } from "../storage/mod.ts";
import type {
  ConnectionEvent,
  HttpEvent,
  ProbeState,
  PublicTunnel,
  UdpDropReason,
} from "./tunnels/mod.ts";
import type { Principal } from "./login.ts";

/** Most access events per second written to the `logs` table; the rest are counted. */
const ACCESS_LOG_PER_SECOND = 100;

/** A tunnel's identity as the server records it (a refused tunnel has no port). */
export type TunnelIdentity = Pick<PublicTunnel, "dbId" | "name" | "port"> & {
  /** Its type as requested. */
  readonly type: string;
};

/** What the recorder reads of a client's session. */
export interface RecordedSession {
  /** Id given to the client in `ack`. */
  readonly sessionId: string;
  /** The client's stable id. */
  readonly clientId: string;
  /** Who logged in. */
  readonly principal: Principal | null;
  /** The control connection's round trip and byte counts. */
  readonly mux: { readonly rtt: number; readonly bytes: { in: number; out: number } };
  /** Tells the client about one of its tunnels. */
  notify(tunnel: string, code: string, message: string): void;
}

/** Which rows a session's tunnels refer to (the server's tunnel records). */
export interface TunnelRefs {
  /** What a session's tunnel's status, counters and events refer to, if anything. */
  ref(
    session: { sessionId: string },
    tunnel: Pick<PublicTunnel, "dbId" | "name">,
  ): TunnelRef | null;
  /** A tunnel of session `sessionId` is gone: its queued row is no longer followed. */
  forget(sessionId: string, name: string): void;
}

/** What a session reports about its tunnels and traffic. */
export interface SessionRecorder {
  /** A tunnel's state changed; `gone` when it will not come back in this session. */
  tunnelStatus(
    session: RecordedSession,
    tunnel: TunnelIdentity,
    status: "offline" | "active" | "failed",
    error: string | null,
    gone?: boolean,
  ): void;
  /** A public connection through one of the session's tunnels ended. */
  connection(
    session: RecordedSession,
    tunnel: Pick<PublicTunnel, "dbId" | "name" | "type">,
    event: ConnectionEvent,
  ): void;
  /** The first byte of a public connection came back `ms` after it was accepted. */
  firstByte(
    session: RecordedSession,
    tunnel: Pick<PublicTunnel, "name" | "type">,
    ms: number,
  ): void;
  /** A heartbeat arrived. */
  heartbeat(session: RecordedSession): void;
  /** Datagrams a UDP tunnel dropped since its last report (`in`: from visitors). */
  udpDrops(
    session: RecordedSession,
    tunnel: string,
    direction: "in" | "out",
    reason: UdpDropReason,
    count: number,
  ): void;
  /** A limit held back or refused traffic of a tunnel: counted always, logged and told once. */
  limitHit(kind: "bandwidth" | "connections", session: RecordedSession, tunnel: string): void;
  /** An error of `kind` (metrics). */
  error(kind: string): void;
}

/** The history the recorder writes to the database. */
export type HistoryWrites = Pick<
  Store,
  "addLog" | "addMetrics" | "tunnelStatus" | "sessionOpened" | "sessionBeat" | "sessionClosed"
>;

/** History that goes nowhere: the server's without a database. */
export const NO_HISTORY: HistoryWrites = Object.freeze({
  addLog() {},
  addMetrics() {},
  tunnelStatus() {},
  sessionOpened() {},
  sessionBeat() {},
  sessionClosed() {},
});

/** Options of {@linkcode Recorder}. */
export interface RecorderOptions {
  /** The limits named when one is hit, and the access log's settings. */
  config: Pick<ServerConfig, "limits">;
  /** Where state changes and first limit hits are logged. */
  logger: Logger;
  /** Errors, logins and gauges: always kept. */
  metrics: ServerMetrics;
  /** Per-connection traffic: the metrics, or nowhere when `server.metrics` is off. */
  traffic: TrafficMetrics;
  /** The windows alert rules read. */
  stats: TunnelStats;
  /** The database's history, or {@linkcode NO_HISTORY}. */
  history: HistoryWrites;
  /** The rows tunnels' history refers to; `null` without a database. */
  records: TunnelRefs | null;
  /** Writes an access line (file or debug log). */
  access: (event: AccessEvent) => void;
  /** Whether access lines are wanted now (most requests build none). */
  accessing: () => boolean;
  /** Clock of the access events' per-second cap (tests). Default `Date.now`. */
  now?: () => number;
}

/** The server's recorder of traffic and tunnel state. */
export class Recorder implements SessionRecorder {
  #o: RecorderOptions;
  #accessWindow = { second: 0, written: 0, suppressed: 0 };
  #limitLogged = new Set<string>();

  /** Also told of every tunnel status (cluster mode: a closed tunnel's placement goes). */
  onTunnelStatus:
    | ((
      session: RecordedSession,
      tunnel: TunnelIdentity,
      status: "offline" | "active" | "failed",
    ) => void)
    | null = null;

  /** Records into what `options` names. */
  constructor(options: RecorderOptions) {
    this.#o = options;
  }

  /** What history of `tunnel` refers to: its row id, its queued row, or nothing. */
  #ref(session: RecordedSession, tunnel: Pick<PublicTunnel, "dbId" | "name">): TunnelRef | null {
    return this.#o.records?.ref(session, tunnel) ?? null;
  }

  /** The `tunnel_id` and queued `tunnel` fields of a log event about `ref`. */
  #refFields(ref: TunnelRef | null) {
    return {
      tunnel_id: typeof ref === "number" ? ref : null,
      tunnel: typeof ref === "object" ? ref ?? undefined : undefined,
    };
  }

  tunnelStatus(
    session: RecordedSession,
    tunnel: TunnelIdentity,
    status: "offline" | "active" | "failed",
    error: string | null,
    gone = false,
  ): void {
    this.onTunnelStatus?.(session, tunnel, status);
    const { stats, history, records } = this.#o;
    const user = userOf(session);
    if (status === "active") {
      stats.connected(user, tunnel.name, tunnel.type);
    } else if (gone) {
      stats.forget(user, tunnel.name);
    } else {
      stats.disconnected(user, tunnel.name);
    }
    const ref = this.#ref(session, tunnel);
    if (gone) records?.forget(session.sessionId, tunnel.name);
    // Status changes are events in the logs table.
    history.addLog({
      level: status === "failed" ? "warn" : "info",
      kind: "event",
      ...this.#refFields(ref),
      session_id: session.sessionId,
      message: status === "active"
        ? "tunnel connected"
        : gone
        ? (status === "failed" ? "tunnel refused" : "tunnel removed")
        : "tunnel disconnected",
      fields: {
        tunnel: tunnel.name,
        user,
        client_id: session.clientId,
        ...(status === "active" ? { port: tunnel.port } : {}),
        ...(error ? { error } : {}),
      },
    });
    if (ref === null) return;
    // Written at once, or queued while the database is down (latest status wins).
    history.tunnelStatus(ref, status, status === "active" ? tunnel.port : null, error);
  }

  connection(
    session: RecordedSession,
    tunnel: Pick<PublicTunnel, "dbId" | "name" | "type">,
    event: ConnectionEvent,
  ): void {
    const { traffic, stats, history } = this.#o;
    const user = userOf(session);
    const failed = !!event.error;
    traffic.connectionEnded(
      user,
      tunnel.name,
      failed,
      event.transfer,
      event.bytesIn,
      event.bytesOut,
    );
    stats.recordConnection(user, tunnel.name, failed);
    if (this.#o.accessing()) {
      this.#o.access({
        tunnel: tunnel.name,
        user,
        type: tunnel.type,
        remote: event.remote,
        bytes_in: event.bytesIn,
        bytes_out: event.bytesOut,
        duration_ms: Math.round(event.durationMs),
        status: failed ? "error" : "ok",
        error: event.error,
        ...("http" in event ? httpFields((event as HttpEvent).http) : {}),
      });
    }
    const ref = this.#ref(session, tunnel);
    if (ref === null) return;
    history.addMetrics(ref, {
      bytes_in: event.bytesIn,
      bytes_out: event.bytesOut,
      connections: 1,
      errors: failed ? 1 : 0,
    });
    if (!this.#admitAccessEvent()) return;
    history.addLog({
      level: failed ? "warn" : "info",
      kind: failed ? "error" : "access",
      // Written out rather than spread: this runs once per connection.
      tunnel_id: typeof ref === "number" ? ref : null,
      tunnel: typeof ref === "object" ? ref : undefined,
      session_id: session.sessionId,
      message: failed ? "connection failed" : "connection",
      fields: {
        remote: event.remote,
        bytes_in: event.bytesIn,
        bytes_out: event.bytesOut,
        duration_ms: Math.round(event.durationMs),
        ...(failed ? { error: event.error } : {}),
      },
    });
  }

  /**
   * Whether another access event fits this second's cap: a connection flood
   * must not flood the database. What was held back is logged once a new
   * second starts.
   */
  #admitAccessEvent(): boolean {
    const second = Math.floor((this.#o.now ?? Date.now)() / 1000);
    const w = this.#accessWindow;
    if (w.second !== second) {
      if (w.suppressed) {
        this.#o.history.addLog({
          level: "warn",
          kind: "event",
          tunnel_id: null,
          session_id: null,
          message: "access events suppressed",
          fields: { count: w.suppressed, limit_per_second: ACCESS_LOG_PER_SECOND },
        });
      }
      this.#accessWindow = { second, written: 0, suppressed: 0 };
    }
    if (this.#accessWindow.written >= ACCESS_LOG_PER_SECOND) {
      this.#accessWindow.suppressed++;
      return false;
    }
    this.#accessWindow.written++;
    return true;
  }

  firstByte(
    session: RecordedSession,
    tunnel: Pick<PublicTunnel, "name" | "type">,
    ms: number,
  ): void {
    this.#o.traffic.firstByte(tunnel.type, ms);
    this.#o.stats.recordLatency(userOf(session), tunnel.name, ms);
  }

  /** A session logged in on `node`: its `sessions` row (batched). */
  sessionOpened(
    session: RecordedSession & { remote: string; software: string; connectedAt: Date },
    node: string,
  ): void {
    this.#o.history.sessionOpened({
      id: session.sessionId,
      user_id: session.principal?.userId ?? null,
      client_id: session.clientId,
      remote_addr: session.remote,
      client_version: session.software,
      node,
      connected_at: session.connectedAt,
    });
  }

  /** A session ended: its row gets the end, the reason and its last counters. */
  sessionClosed(session: RecordedSession, reason: string): void {
    this.#o.history.sessionClosed(session.sessionId, reason, sessionBeat(session));
  }

  heartbeat(session: RecordedSession): void {
    this.#o.traffic.heartbeat(session.mux.rtt);
    // Batched: the store writes every session's latest beat in one query per flush.
    this.#o.history.sessionBeat(sessionBeat(session));
  }

  udpDrops(
    session: RecordedSession,
    tunnel: string,
    direction: "in" | "out",
    reason: UdpDropReason,
    count: number,
  ): void {
    this.#o.traffic.udpDropped(userOf(session), tunnel, direction, reason, count);
  }

  limitHit(kind: "bandwidth" | "connections", session: RecordedSession, tunnel: string): void {
    this.#o.traffic.limitHit(kind);
    const user = userOf(session);
    const key = `${kind}|${user}/${tunnel}`;
    if (this.#limitLogged.has(key)) return;
    this.#limitLogged.add(key);
    const limits = this.#o.config.limits;
    const limit = kind === "bandwidth"
      ? { bytes_per_second: limits.max_bandwidth }
      : { max_connections: limits.max_connections_per_tunnel };
    this.#o.logger.warn(
      kind === "bandwidth" ? "bandwidth limit reached" : "connection limit reached",
      { tunnel, user, client_id: session.clientId, ...limit },
    );
    // Once per tunnel and kind, like the log line: the client's user learns why traffic is slow
    // or visitors are turned away.
    if (kind === "connections") {
      session.notify(
        tunnel,
        "connection_limit",
        `Tunnel "${tunnel}" reached its limit of ${limits.max_connections_per_tunnel} ` +
          `open connections; more visitors are turned away`,
      );
      return;
    }
    const rates = [
      limits.max_bandwidth ? `${limits.max_bandwidth} B/s` : "",
      session.principal?.maxBandwidth
        ? `${session.principal.maxBandwidth} B/s for all of user "${user}"`
        : "",
    ].filter(Boolean).join(", ");
    session.notify(
      tunnel,
      "bandwidth_limit",
      `Tunnel "${tunnel}" reached its bandwidth limit (${rates} per direction); ` +
        `traffic over it is slowed (TCP) or dropped (UDP)`,
    );
  }

  error(kind: string): void {
    this.#o.metrics.error(kind);
  }

  /**
   * The result of probing `tunnel` end to end (`failure` is `null` when it
   * answered): counted every time; logged and written as an event when it
   * changes.
   */
  probed(
    session: RecordedSession,
    tunnel: Pick<PublicTunnel, "dbId" | "name">,
    probe: ProbeState,
    failure: string | null,
  ): void {
    const user = userOf(session);
    this.#o.stats.recordConnection(user, tunnel.name, failure !== null);
    if (failure !== null) this.#o.metrics.error("probe_failed");
    if ((failure !== null) === probe.failing) return;
    probe.failing = failure !== null;
    const fields = { tunnel: tunnel.name, user, client_id: session.clientId };
    if (failure !== null) {
      this.#o.logger.warn("tunnel probe failed", { ...fields, reason: failure });
    } else this.#o.logger.info("tunnel probe recovered", fields);
    this.#o.history.addLog({
      level: failure ? "warn" : "info",
      kind: "event",
      ...this.#refFields(this.#ref(session, tunnel)),
      session_id: session.sessionId,
      message: failure ? "tunnel probe failed" : "tunnel probe recovered",
      fields: { ...fields, ...(failure ? { reason: failure } : {}) },
    });
  }
}

/** The user a session logged in as (`admin` for the shared token). */
function userOf(session: RecordedSession): string {
  return session.principal?.userName ?? "admin";
}

/** A session's latest heartbeat as the `sessions` row keeps it. */
export function sessionBeat(session: RecordedSession): SessionBeat {
  const bytes = session.mux.bytes;
  return {
    id: session.sessionId,
    at: new Date(),
    rtt_ms: session.mux.rtt || null,
    bytes_in: bytes.in,
    bytes_out: bytes.out,
  };
}

function httpFields(http: HttpEvent["http"]) {
  return { method: http.method, host: http.host, path: http.path, http_status: http.status };
}

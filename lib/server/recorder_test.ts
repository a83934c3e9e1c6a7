import { assert, assertEquals } from "../testing/mod.ts";
import { NO_TRAFFIC_METRICS, ServerMetrics, TunnelStats } from "../monitor/mod.ts";
import type { AccessEvent } from "../util/mod.ts";
import { nullLogger } from "../util/mod.ts";
import type { PendingTunnel, TunnelRef } from "../storage/mod.ts";
import {
  type HistoryWrites,
  NO_HISTORY,
  type RecordedSession,
  Recorder,
  type RecorderOptions,
  type TunnelRefs,
} from "./recorder.ts";

interface Written {
  logs: Array<Parameters<HistoryWrites["addLog"]>[0]>;
  metrics: Array<[TunnelRef, Parameters<HistoryWrites["addMetrics"]>[1]]>;
  statuses: Array<[TunnelRef, string, number | null, string | null]>;
  beats: string[];
  sessions: string[];
}

/** A history that keeps what it is given. */
function keeping(): HistoryWrites & { written: Written } {
  const written: Written = { logs: [], metrics: [], statuses: [], beats: [], sessions: [] };
  return {
    written,
    addLog: (event) => void written.logs.push(event),
    addMetrics: (ref, delta) => void written.metrics.push([ref, delta]),
    tunnelStatus: (ref, status, port, error) =>
      void written.statuses.push([ref, status, port, error]),
    sessionBeat: (beat) => void written.beats.push(beat.id),
    sessionOpened: (row) => void written.sessions.push(`opened ${row.id} on ${row.node}`),
    sessionClosed: (id, reason, last) =>
      void written.sessions.push(`closed ${id}: ${reason} (${last?.bytes_in} in)`),
  };
}

/** Every tunnel of session `s1` has row 7; the rest have none. */
const refs: TunnelRefs & { forgotten: string[] } = {
  forgotten: [],
  ref: (session) => (session.sessionId === "s1" ? 7 : null),
  forget(sessionId, name) {
    this.forgotten.push(`${sessionId}/${name}`);
  },
};

function session(id = "s1", maxBandwidth: number | null = null) {
  const notices: string[] = [];
  const s: RecordedSession & { notices: string[] } = {
    sessionId: id,
    clientId: `client-${id}`,
    principal: { userId: 1, userName: "alice", tokenId: null, maxBandwidth },
    mux: { rtt: 12, bytes: { in: 100, out: 200 } },
    notify: (tunnel, code, message) => void notices.push(`${tunnel} ${code}: ${message}`),
    notices,
  };
  return s;
}

function recorder(options: Partial<RecorderOptions> = {}) {
  const history = keeping();
  const stats = new TunnelStats();
  const access: AccessEvent[] = [];
  const metrics = new ServerMetrics();
  const r = new Recorder({
    config: { limits: limits() },
    logger: nullLogger,
    metrics,
    traffic: metrics,
    stats,
    history,
    records: refs,
    access: (e) => void access.push(e),
    accessing: () => true,
    ...options,
  });
  return { r, history: history.written, stats, access, metrics };
}

function limits() {
  return {
    max_bandwidth: 1000,
    max_connections_per_tunnel: 5,
    max_tunnels_per_client: 10,
  } as RecorderOptions["config"]["limits"];
}

const tunnel = { dbId: 7, name: "web", type: "tcp" as const, port: 8080 };
const ended = {
  tunnel: "web",
  remote: "192.0.2.1:5000",
  bytesIn: 10,
  bytesOut: 20,
  durationMs: 3.4,
};

Deno.test("recorder: a status change updates the windows, the row and the events", () => {
  const { r, history, stats } = recorder();
  const s = session();
  r.tunnelStatus(s, tunnel, "active", null);
  assertEquals(stats.snapshot().map((t) => [t.name, t.status]), [["web", "connected"]]);
  assertEquals(history.statuses, [[7, "active", 8080, null]]);
  assertEquals(history.logs.map((l) => [l.message, l.tunnel_id, l.fields?.port]), [
    ["tunnel connected", 7, 8080],
  ]);

  r.tunnelStatus(s, tunnel, "offline", "client went away", true);
  assertEquals(stats.snapshot(), [], "a tunnel gone for good leaves the windows");
  assertEquals(history.statuses.at(-1), [7, "offline", null, "client went away"]);
  assertEquals(history.logs.at(-1)?.message, "tunnel removed");
  assertEquals(refs.forgotten.at(-1), "s1/web");
});

Deno.test("recorder: a tunnel without a row changes the windows and logs, and writes no status", () => {
  const { r, history, stats } = recorder();
  r.tunnelStatus(session("s2"), { ...tunnel, dbId: null }, "active", null);
  assertEquals(stats.snapshot().length, 1);
  assertEquals(history.statuses, []);
  assertEquals(history.logs.map((l) => [l.message, l.tunnel_id]), [["tunnel connected", null]]);
});

Deno.test("recorder: a queued row is named by the event, not by a row id", () => {
  const queued = { id: null, refusal: null } as unknown as PendingTunnel;
  const { r, history } = recorder({ records: { ref: () => queued, forget() {} } });
  r.tunnelStatus(session(), tunnel, "active", null);
  assertEquals(history.logs[0]?.tunnel_id, null);
  assert(history.logs[0]?.tunnel === queued);
  assertEquals(history.statuses, [[queued, "active", 8080, null]]);
});

Deno.test("recorder: connections are counted, access-logged, and capped at 100 events a second", () => {
  let now = 1_000_000;
  const { r, history, access, stats } = recorder({ now: () => now });
  const s = session();
  r.tunnelStatus(s, tunnel, "active", null);
  history.logs.length = 0;
  for (let i = 0; i < 150; i++) {
    r.connection(s, tunnel, i % 10 ? ended : { ...ended, error: "reset" });
  }
  assertEquals(access.length, 150, "the access log itself is not capped");
  assertEquals(access[0]?.status, "error");
  assertEquals(history.metrics.length, 150);
  assertEquals(history.logs.length, 100);
  assertEquals(history.logs[0]?.kind, "error");
  assertEquals(history.logs[1]?.kind, "access");
  const [snap] = stats.snapshot();
  assertEquals([snap?.connections, snap?.errors], [150, 15]);

  now += 1000;
  r.connection(s, tunnel, ended);
  const [suppressed, next] = history.logs.slice(100);
  assertEquals(suppressed?.message, "access events suppressed");
  assertEquals(suppressed?.fields, { count: 50, limit_per_second: 100 });
  assertEquals(next?.message, "connection");
});

Deno.test("recorder: a limit is counted every time, logged and told to the client once per tunnel and kind", async () => {
  const { r, metrics } = recorder();
  const s = session("s1", 500);
  for (let i = 0; i < 3; i++) {
    r.limitHit("bandwidth", s, "web");
    r.limitHit("connections", s, "web");
  }
  r.limitHit("connections", s, "ssh");
  assertEquals(s.notices, [
    'web bandwidth_limit: Tunnel "web" reached its bandwidth limit (1000 B/s, 500 B/s for all of ' +
    'user "alice" per direction); traffic over it is slowed (TCP) or dropped (UDP)',
    'web connection_limit: Tunnel "web" reached its limit of 5 open connections; more visitors ' +
    "are turned away",
    'ssh connection_limit: Tunnel "ssh" reached its limit of 5 open connections; more visitors ' +
    "are turned away",
  ]);
  const text = await metrics.registry.metrics();
  assert(/burrow_limit_hits_total\{limit="bandwidth"\} 3/.test(text), text);
  assert(/burrow_limit_hits_total\{limit="connections"\} 4/.test(text), text);
});

Deno.test("recorder: probes are counted always, logged and written only when their outcome changes", () => {
  const { r, history, stats } = recorder();
  const s = session();
  r.tunnelStatus(s, tunnel, "active", null);
  history.logs.length = 0;
  const probe = { failing: false };
  r.probed(s, tunnel, probe, null);
  r.probed(s, tunnel, probe, "connection refused");
  r.probed(s, tunnel, probe, "connection refused");
  r.probed(s, tunnel, probe, null);
  assertEquals(history.logs.map((l) => l.message), [
    "tunnel probe failed",
    "tunnel probe recovered",
  ]);
  assertEquals(history.logs[0]?.fields?.reason, "connection refused");
  const [snap] = stats.snapshot();
  assertEquals([snap?.connections, snap?.errors], [4, 2]);
});

Deno.test("recorder: without a database or metrics, everything is a no-op that still feeds the windows", () => {
  const { r, stats } = recorder({
    history: NO_HISTORY,
    records: null,
    traffic: NO_TRAFFIC_METRICS,
    accessing: () => false,
  });
  const s = session();
  r.tunnelStatus(s, tunnel, "active", null);
  r.connection(s, tunnel, ended);
  r.firstByte(s, tunnel, 42);
  r.heartbeat(s);
  r.udpDrops(s, "web", "in", "queue_full", 3);
  const [snap] = stats.snapshot();
  assertEquals([snap?.connections, snap?.avg_latency], [1, 42]);
});

Deno.test("recorder: heartbeats write the session's latest beat", () => {
  const { r, history } = recorder();
  r.heartbeat(session("s9"));
  assertEquals(history.beats, ["s9"]);
});

Deno.test("recorder: a session's row is opened with its node and closed with its last counters", () => {
  const { r, history } = recorder();
  const s = {
    ...session("s5"),
    remote: "192.0.2.9:4000",
    software: "burrow/1",
    connectedAt: new Date(),
  };
  r.sessionOpened(s, "node-a");
  r.sessionClosed(s, "client went away");
  assertEquals(history.sessions, ["opened s5 on node-a", "closed s5: client went away (100 in)"]);
});

/**
 * Prometheus metrics (`npm:prom-client`) served at `/metrics` on the admin
 * port. Hot paths only bump counters when a connection ends; gauges and live
 * byte totals are read from the server's state when Prometheus scrapes.
 * Per-tunnel labels are `user/name` and capped (beyond
 * {@linkcode MAX_TUNNEL_LABELS} distinct tunnels, new ones share `_other`),
 * so label cardinality stays bounded; there are no per-address labels.
 *
 * @module
 */

import client from "prom-client";
import { FastHistogram } from "./_histogram.ts";

/** Most distinct `tunnel` label values before new tunnels are folded into `_other`. */
export const MAX_TUNNEL_LABELS = 1000;

/** Live totals of one open connection (grow while it runs). */
export interface Transfer {
  /** Bytes from the visitor so far. */
  sent: number;
  /** Bytes to the visitor so far. */
  received: number;
}

/** What the metrics read from the server at scrape time. */
export interface MetricsSource {
  /** Connected sessions with their user and tunnels. */
  sessions(): Iterable<{
    user: string;
    tunnels: Iterable<{
      name: string;
      type: string;
      activeConnections: number;
      liveTransfers: Iterable<Transfer>;
    }>;
  }>;
  /** Caches by name with their counters. */
  caches(): Record<string, { hits: number; misses: number }>;
  /** The database, when there is one. */
  database(): {
    available: boolean;
    pendingWrites: number;
    maxPendingWrites: number;
    droppedWrites: number;
    queries: number;
  } | null;
  /** Alerts pending or firing now. */
  alerts(): Array<{ state: string; severity: string }>;
}

/** Connections that ended, and their bytes, of one tunnel since the last scrape. */
interface Ended {
  ok: number;
  failed: number;
  in: number;
  out: number;
}

/**
 * What the traffic of tunnels reports to the metrics, per connection and
 * per event. {@linkcode ServerMetrics} counts it; {@linkcode NO_TRAFFIC_METRICS}
 * is the do-nothing default when `server.metrics` is off.
 */
export interface TrafficMetrics {
  /** A connection or HTTP request ended. */
  connectionEnded(
    user: string,
    name: string,
    failed: boolean,
    transfer: Transfer | undefined,
    bytesIn: number,
    bytesOut: number,
  ): void;
  /** The first byte of an answer came after `ms`. */
  firstByte(type: string, ms: number): void;
  /** A heartbeat's round trip. */
  heartbeat(ms: number): void;
  /** A bandwidth or connection limit was hit. */
  limitHit(limit: string): void;
  /** `count` datagrams were dropped. */
  udpDropped(
    user: string,
    name: string,
    direction: "in" | "out",
    reason: string,
    count: number,
  ): void;
}

/** Traffic metrics that go nowhere: the server's when `server.metrics` is off. */
export const NO_TRAFFIC_METRICS: TrafficMetrics = Object.freeze({
  connectionEnded() {},
  firstByte() {},
  heartbeat() {},
  limitHit() {},
  udpDropped() {},
});

/** The server's metrics. */
export class ServerMetrics implements TrafficMetrics {
  /** The registry `/metrics` renders. */
  readonly registry: client.Registry = new client.Registry();
  #labels = new Set<string>();
  #reported = new WeakMap<
    Transfer,
    { sent: number; received: number; user: string; tunnel: string }
  >();
  /**
   * Ended connections and their bytes per user and tunnel name, not yet
   * handed to the counters: a request then costs two map lookups and a few
   * additions, and prom-client's label hashing runs once per tunnel at
   * scrape time instead of five times per request.
   */
  #ended = new Map<string, Map<string, Ended>>();
  #endedCount = 0;
  #lastCache = new Map<string, { hits: number; misses: number }>();
  #lastQueries = 0;
  #lastDropped = 0;
  #source: MetricsSource | null = null;

  readonly #connections = new client.Counter({
    name: "burrow_connections_total",
    help: "Public connections (TCP) and visitor sessions (UDP) that ended, by tunnel and result",
    labelNames: ["tunnel", "result"] as const,
    registers: [this.registry],
  });
  readonly #bytes = new client.Counter({
    name: "burrow_tunnel_bytes_total",
    help: "Bytes through each tunnel; direction in = from visitors, out = to visitors",
    labelNames: ["tunnel", "direction"] as const,
    registers: [this.registry],
  });
  readonly #userBytes = new client.Counter({
    name: "burrow_user_bytes_total",
    help: "Bytes through each user's tunnels, by direction",
    labelNames: ["user", "direction"] as const,
    registers: [this.registry],
  });
  // Observed once per request: a histogram without prom-client's per-call label hashing.
  readonly #firstByte = new FastHistogram({
    name: "burrow_first_byte_seconds",
    help: "Time from accepting a public connection to the first byte back from the service",
    label: "type",
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registry: this.registry,
  });
  readonly #rtt = new client.Histogram({
    name: "burrow_heartbeat_rtt_seconds",
    help: "Control connection round trip measured at each heartbeat",
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly #errors = new client.Counter({
    name: "burrow_errors_total",
    help: "Errors by kind (auth_failed, tunnel_refused, protocol_error, connection_failed, …)",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly #logins = new client.Counter({
    name: "burrow_logins_total",
    help: "Client logins by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly #loginRefused = new client.Counter({
    name: "burrow_login_refused_total",
    help: "Logins refused before their token was checked: too many handshakes at once from " +
      "one address (concurrent) or too many failed logins (rate)",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly #cache = new client.Counter({
    name: "burrow_cache_lookups_total",
    help: "Cache lookups by cache and result",
    labelNames: ["cache", "result"] as const,
    registers: [this.registry],
  });
  readonly #limits = new client.Counter({
    name: "burrow_limit_hits_total",
    help: "Times a limit held back or refused traffic (bandwidth, connections)",
    labelNames: ["limit"] as const,
    registers: [this.registry],
  });
  readonly #udpDropped = new client.Counter({
    name: "burrow_udp_dropped_total",
    help: "Datagrams UDP tunnels dropped, by tunnel, direction (in = from visitors) and reason " +
      "(queue_full: a full per-session queue dropped its oldest; no_route, bandwidth, " +
      "connection_limit)",
    labelNames: ["tunnel", "direction", "reason"] as const,
    registers: [this.registry],
  });
  readonly #queries = new client.Counter({
    name: "burrow_db_queries_total",
    help: "Database queries issued (batched writes count once per batch)",
    registers: [this.registry],
  });
  readonly #dropped = new client.Counter({
    name: "burrow_db_dropped_writes_total",
    help: "Metric buckets and log events dropped because the pending-writes queue was full",
    registers: [this.registry],
  });

  /**
   * Registers every metric, the scrape-time collectors and the process
   * metrics. With `node` (cluster mode), every series carries a `node`
   * label, so one Prometheus scraping every node tells them apart.
   */
  constructor(options: { node?: string | undefined } = {}) {
    if (options.node !== undefined) this.registry.setDefaultLabels({ node: options.node });
    client.collectDefaultMetrics({ register: this.registry });
    // Present from the start, so a rate() over them has a baseline.
    for (const reason of ["concurrent", "rate"] as const) this.#loginRefused.inc({ reason }, 0);
    // deno-lint-ignore no-this-alias -- prom-client calls collect() with the metric as `this`
    const self = this;
    new client.Gauge({
      name: "burrow_clients_online",
      help: "Connected, authenticated client sessions",
      registers: [this.registry],
      collect() {
        this.set([...(self.#source?.sessions() ?? [])].length);
      },
    });
    new client.Gauge({
      name: "burrow_users_online",
      help: "Users with at least one connected session",
      registers: [this.registry],
      collect() {
        this.set(new Set([...(self.#source?.sessions() ?? [])].map((s) => s.user)).size);
      },
    });
    new client.Gauge({
      name: "burrow_tunnels_active",
      help: "Open tunnels by type",
      labelNames: ["type"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of self.#source?.sessions() ?? []) {
          for (const t of s.tunnels) this.inc({ type: t.type });
        }
      },
    });
    new client.Gauge({
      name: "burrow_active_connections",
      help: "Open public connections (TCP) and visitor sessions (UDP) by tunnel",
      labelNames: ["tunnel"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of self.#source?.sessions() ?? []) {
          for (const t of s.tunnels) {
            this.inc({ tunnel: self.tunnelLabel(s.user, t.name) }, t.activeConnections);
          }
        }
      },
    });
    new client.Gauge({
      name: "burrow_db_up",
      help: "1 when the database answers, 0 during an outage (absent without a database)",
      registers: [this.registry],
      collect() {
        const db = self.#source?.database();
        if (db) this.set(db.available ? 1 : 0);
      },
    });
    new client.Gauge({
      name: "burrow_db_pending_writes",
      help: "Rows queued for the database: the next batched write, or everything held during " +
        "an outage",
      registers: [this.registry],
      collect() {
        this.set(self.#source?.database()?.pendingWrites ?? 0);
      },
    });
    new client.Gauge({
      name: "burrow_db_pending_writes_limit",
      help: "Bound of the pending-writes queue; past it new metric buckets and log events are " +
        "dropped (burrow_db_dropped_writes_total)",
      registers: [this.registry],
      collect() {
        const db = self.#source?.database();
        if (db) this.set(db.maxPendingWrites);
      },
    });
    new client.Gauge({
      name: "burrow_alerts",
      help: "Alerts pending or firing, by state and severity",
      labelNames: ["state", "severity"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const a of self.#source?.alerts() ?? []) {
          this.inc({ state: a.state, severity: a.severity });
        }
      },
    });
  }

  /** Where scrape-time values come from. */
  bind(source: MetricsSource): void {
    this.#source = source;
  }

  /** The bounded `tunnel` label of `user/name`. */
  tunnelLabel(user: string, name: string): string {
    const label = `${user}/${name}`;
    if (this.#labels.has(label)) return label;
    if (this.#labels.size >= MAX_TUNNEL_LABELS) return "_other";
    this.#labels.add(label);
    return label;
  }

  #account(user: string, name: string, transfer: Transfer): void {
    let r = this.#reported.get(transfer);
    if (!r) {
      r = { sent: 0, received: 0, user, tunnel: this.tunnelLabel(user, name) };
      this.#reported.set(transfer, r);
    }
    const dIn = transfer.sent - r.sent;
    const dOut = transfer.received - r.received;
    if (dIn > 0) {
      this.#bytes.inc({ tunnel: r.tunnel, direction: "in" }, dIn);
      this.#userBytes.inc({ user, direction: "in" }, dIn);
      r.sent = transfer.sent;
    }
    if (dOut > 0) {
      this.#bytes.inc({ tunnel: r.tunnel, direction: "out" }, dOut);
      this.#userBytes.inc({ user, direction: "out" }, dOut);
      r.received = transfer.received;
    }
  }

  /** Hands what {@linkcode ServerMetrics.connectionEnded} gathered to the counters. */
  #flushEnded(): void {
    for (const [user, tunnels] of this.#ended) {
      for (const [name, e] of tunnels) {
        const tunnel = this.tunnelLabel(user, name);
        if (e.ok > 0) this.#connections.inc({ tunnel, result: "ok" }, e.ok);
        if (e.failed > 0) {
          this.#connections.inc({ tunnel, result: "error" }, e.failed);
          this.#errors.inc({ kind: "connection_failed" }, e.failed);
        }
        if (e.in > 0) {
          this.#bytes.inc({ tunnel, direction: "in" }, e.in);
          this.#userBytes.inc({ user, direction: "in" }, e.in);
        }
        if (e.out > 0) {
          this.#bytes.inc({ tunnel, direction: "out" }, e.out);
          this.#userBytes.inc({ user, direction: "out" }, e.out);
        }
      }
    }
    this.#ended.clear();
    this.#endedCount = 0;
  }

  #collectCaches(): void {
    const source = this.#source;
    if (!source) return;
    for (const [name, c] of Object.entries(source.caches())) {
      const last = this.#lastCache.get(name) ?? { hits: 0, misses: 0 };
      if (c.hits > last.hits) this.#cache.inc({ cache: name, result: "hit" }, c.hits - last.hits);
      if (c.misses > last.misses) {
        this.#cache.inc({ cache: name, result: "miss" }, c.misses - last.misses);
      }
      this.#lastCache.set(name, { hits: c.hits, misses: c.misses });
    }
    const db = source.database();
    if (db && db.queries > this.#lastQueries) {
      this.#queries.inc(db.queries - this.#lastQueries);
      this.#lastQueries = db.queries;
    }
    if (db && db.droppedWrites > this.#lastDropped) {
      this.#dropped.inc(db.droppedWrites - this.#lastDropped);
      this.#lastDropped = db.droppedWrites;
    }
  }

  /** A connection or UDP session ended. */
  connectionEnded(
    user: string,
    name: string,
    failed: boolean,
    transfer: Transfer | undefined,
    bytesIn: number,
    bytesOut: number,
  ): void {
    let tunnels = this.#ended.get(user);
    if (!tunnels) this.#ended.set(user, tunnels = new Map());
    let e = tunnels.get(name);
    if (!e) {
      // Names come from clients: past a bound, what is gathered goes to the counters now.
      if (this.#endedCount >= MAX_TUNNEL_LABELS) {
        this.#flushEnded();
        this.#ended.set(user, tunnels = new Map());
      }
      tunnels.set(name, e = { ok: 0, failed: 0, in: 0, out: 0 });
      this.#endedCount++;
    }
    if (failed) e.failed++;
    else e.ok++;
    // Bytes already counted at a scrape while the connection was open are not counted again.
    const reported = transfer ? this.#reported.get(transfer) : undefined;
    if (transfer && reported) {
      this.#reported.delete(transfer);
      e.in += transfer.sent - reported.sent;
      e.out += transfer.received - reported.received;
    } else {
      e.in += transfer ? transfer.sent : bytesIn;
      e.out += transfer ? transfer.received : bytesOut;
    }
  }

  /** The first byte came back `ms` after accept. */
  firstByte(type: string, ms: number): void {
    this.#firstByte.observe(type, ms / 1000);
  }

  /** A heartbeat arrived; the control connection's round trip is `ms`. */
  heartbeat(ms: number): void {
    if (ms > 0) this.#rtt.observe(ms / 1000);
  }

  /** Counts an error of `kind`. */
  error(kind: string): void {
    this.#errors.inc({ kind });
  }

  /** Counts a limit hit. */
  limitHit(limit: string): void {
    this.#limits.inc({ limit });
  }

  /** `count` datagrams of tunnel `user/name` were dropped (reported in batches, not one by one). */
  udpDropped(
    user: string,
    name: string,
    direction: "in" | "out",
    reason: string,
    count: number,
  ): void {
    this.#udpDropped.inc({ tunnel: this.tunnelLabel(user, name), direction, reason }, count);
  }

  /** Counts a login attempt. */
  login(result: "ok" | "auth_failed" | "unavailable" | "refused"): void {
    this.#logins.inc({ result });
  }

  /** Counts a login the limiter refused (control port or admin API). */
  loginRefused(reason: "concurrent" | "rate"): void {
    this.#loginRefused.inc({ reason });
  }

  /** Brings counters fed at scrape time up to date (live bytes, caches, queries). */
  #prepare(): void {
    this.#flushEnded();
    for (const s of this.#source?.sessions() ?? []) {
      for (const t of s.tunnels) {
        // Bytes of connections still open count now, not only when they end.
        for (const live of t.liveTransfers) this.#account(s.user, t.name, live);
      }
    }
    this.#collectCaches();
  }

  /** The Prometheus text exposition. */
  render(): Promise<string> {
    this.#prepare();
    return this.registry.metrics();
  }

  /** The exposition's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * Alert rules in the seed's form — `name`, `condition`, `duration`,
 * `severity` — evaluated per tunnel. A rule whose condition holds is
 * `pending`; after `duration` it is `firing` and notifies; when the
 * condition stops holding it is `resolved` and notifies again. States are
 * kept in the `alerts` table; notifiers are the log and an Alertmanager-style
 * webhook with retries.
 *
 * Condition grammar: `METRIC OP VALUE`, where METRIC is one of
 * `tunnel_status`, `avg_latency`, `error_rate`, `connections`, `errors`; OP
 * is `==`, `!=`, `>`, `>=`, `<`, `<=`; VALUE is a quoted string
 * (`"disconnected"`), a number with an optional unit (`1000ms`, `2s`, `5%`).
 *
 * @module
 */

import type { Logger } from "../util/mod.ts";
import type { TunnelSnapshot, TunnelStats } from "./stats.ts";

/** One rule. */
export interface AlertRuleSpec {
  /** Unique name, the `alertname` label. */
  name: string;
  /** `METRIC OP VALUE`. */
  condition: string;
  /** ms the condition must hold before the alert fires. */
  duration: number;
  /** How urgent. */
  severity: "critical" | "warning" | "info";
}

/** The seed's three rules. */
export const DEFAULT_RULES: readonly AlertRuleSpec[] = [
  {
    name: "tunnel_down",
    condition: 'tunnel_status == "disconnected"',
    duration: 30_000,
    severity: "critical",
  },
  {
    name: "high_latency",
    condition: "avg_latency > 1000ms",
    duration: 120_000,
    severity: "warning",
  },
  { name: "high_error_rate", condition: "error_rate > 5%", duration: 60_000, severity: "warning" },
];

/** A condition that cannot be parsed; the message says where and what is expected. */
export class ConditionError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConditionError";
  }
}

/** Comparison operators of a condition. */
export type Op = "==" | "!=" | ">" | ">=" | "<" | "<=";

/** A parsed condition. */
export interface Condition {
  /** The metric compared. */
  metric: MetricName;
  /** The comparison. */
  op: Op;
  /** The value, in the metric's unit (ms, fraction, count) or a string. */
  value: number | string;
}

/** Metrics a condition can compare. */
export type MetricName = "tunnel_status" | "avg_latency" | "error_rate" | "connections" | "errors";

const METRICS: Record<MetricName, { kind: string; values?: readonly string[] }> = {
  tunnel_status: { kind: "string", values: ["connected", "disconnected"] },
  avg_latency: { kind: "ms" },
  error_rate: { kind: "ratio" },
  connections: { kind: "count" },
  errors: { kind: "count" },
};

/**
 * Parses `METRIC OP VALUE`.
 *
 * @throws {ConditionError} naming what is wrong.
 */
export function parseCondition(text: string): Condition {
  const m = /^\s*([a-z_]+)\s*(==|!=|>=|<=|>|<)\s*(.+?)\s*$/.exec(text);
  if (!m) {
    throw new ConditionError(
      `Condition ${JSON.stringify(text)}: expected METRIC OP VALUE, e.g. "avg_latency > 1000ms"`,
    );
  }
  const [, metric, op, raw] = m as unknown as [string, string, Op, string];
  if (!Object.hasOwn(METRICS, metric)) {
    throw new ConditionError(
      `Condition ${JSON.stringify(text)}: unknown metric "${metric}"; use one of ${
        Object.keys(METRICS).join(", ")
      }`,
    );
  }
  const spec = METRICS[metric as MetricName];
  if (spec.kind === "string") {
    const s = /^"([^"]*)"$|^'([^']*)'$/.exec(raw);
    if (!s) {
      throw new ConditionError(
        `Condition ${JSON.stringify(text)}: ${metric} compares with a quoted string`,
      );
    }
    const value = s[1] ?? s[2]!;
    if (!spec.values!.includes(value)) {
      throw new ConditionError(
        `Condition ${JSON.stringify(text)}: ${metric} is one of ${spec.values!.join(", ")}`,
      );
    }
    if (op !== "==" && op !== "!=") {
      throw new ConditionError(`Condition ${JSON.stringify(text)}: ${metric} takes == or !=`);
    }
    return { metric: metric as Condition["metric"], op, value };
  }
  const n = /^(-?\d+(?:\.\d+)?)\s*(ms|s|m|%)?$/.exec(raw);
  if (!n) {
    throw new ConditionError(`Condition ${JSON.stringify(text)}: "${raw}" is not a number`);
  }
  const num = Number(n[1]);
  const unit = n[2];
  let value: number;
  if (spec.kind === "ms") {
    if (unit === "%") {
      throw new ConditionError(
        `Condition ${JSON.stringify(text)}: ${metric} is a time, not a percentage`,
      );
    }
    value = unit === "s" ? num * 1000 : unit === "m" ? num * 60_000 : num;
  } else if (spec.kind === "ratio") {
    if (unit && unit !== "%") {
      throw new ConditionError(
        `Condition ${JSON.stringify(text)}: ${metric} takes a percentage or a fraction`,
      );
    }
    value = unit === "%" ? num / 100 : num;
  } else {
    if (unit) {
      throw new ConditionError(`Condition ${JSON.stringify(text)}: ${metric} is a plain count`);
    }
    value = num;
  }
  return { metric: metric as Condition["metric"], op, value };
}

/** Whether `condition` holds for a tunnel (no data never holds). */
export function holds(condition: Condition, t: TunnelSnapshot): boolean {
  const actual: number | string | null = condition.metric === "tunnel_status"
    ? t.status
    : condition.metric === "avg_latency"
    ? t.avg_latency
    : condition.metric === "error_rate"
    ? (t.connections ? t.error_rate : null)
    : t[condition.metric];
  if (actual === null) return false;
  const v = condition.value;
  switch (condition.op) {
    case "==":
      return actual === v;
    case "!=":
      return actual !== v;
    case ">":
      return actual > v;
    case ">=":
      return actual >= v;
    case "<":
      return actual < v;
    case "<=":
      return actual <= v;
  }
}

/** What notifiers receive. */
export interface AlertEvent {
  /** Rule name. */
  rule: string;
  /** Rule severity. */
  severity: AlertRuleSpec["severity"];
  /** Firing, or resolved. */
  status: "firing" | "resolved";
  /** `alertname`, `severity`, `tunnel`, `user`. */
  labels: Record<string, string>;
  /** One line for people. */
  summary: string;
  /** When the condition started to hold. */
  startsAt: Date;
  /** When it stopped (resolved only). */
  endsAt?: Date;
  /** The `alerts` row, when recorded. */
  id: number | null;
}

/** Delivers alert events somewhere. */
export interface Notifier {
  /** Delivers one event; may retry; must not throw. */
  notify(event: AlertEvent): Promise<void>;
}

interface Active {
  rule: AlertRuleSpec;
  tunnel: TunnelSnapshot;
  since: number;
  state: "pending" | "firing";
  id: number | null;
}

/** How urgent an alert is. */
export type AlertSeverity = "critical" | "warning" | "info";

/**
 * Where the engine keeps its alerts' states (the server's database), so
 * that the admin API and a restarted server see them. Failures are logged
 * by the engine; it goes on evaluating.
 */
export interface AlertStore {
  /** Records an alert whose condition started to hold; resolves to its id. */
  fire(
    rule: string,
    severity: AlertSeverity,
    message: string,
    labels: Record<string, string>,
    state: "pending",
  ): Promise<number>;
  /** A pending alert's duration passed: it fires. */
  firing(id: number, message: string): Promise<void>;
  /** The alert's condition stopped holding. */
  resolve(id: number): Promise<void>;
  /** A pending alert whose condition stopped holding before it fired. */
  discard(id: number): Promise<void>;
}

/** Options of {@linkcode AlertEngine}. */
export interface AlertEngineOptions {
  /** The rules; parsed at construction. */
  rules: readonly AlertRuleSpec[];
  /** Where tunnel states come from. */
  stats: Pick<TunnelStats, "snapshot">;
  /** Where alert states are kept (optional). */
  store?: AlertStore | null | undefined;
  /** Where events go. */
  notifiers: Notifier[];
  /** Where problems are logged. */
  logger: Logger;
  /** ms between evaluations. */
  intervalMs: number;
  /** Clock (tests). Default `Date.now`. */
  now?: () => number;
  /**
   * Whether the timer's rounds evaluate now. In cluster mode only the node
   * holding the `alerts` lease evaluates, so an alert fires once per
   * cluster; the others skip their rounds. Default: always.
   */
  evaluating?: () => boolean;
}

/** Evaluates rules against tunnel states and drives alert states. */
export class AlertEngine {
  #rules: Array<{ spec: AlertRuleSpec; condition: Condition }>;
  #options: AlertEngineOptions;
  #active = new Map<string, Active>();
  #silenced = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #now: () => number;
  #pending: Promise<unknown>[] = [];

  /**
   * Parses the rules.
   *
   * @throws {ConditionError} for a bad condition, naming the rule.
   */
  constructor(options: AlertEngineOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#rules = options.rules.map((spec) => {
      try {
        return { spec, condition: parseCondition(spec.condition) };
      } catch (error) {
        throw new ConditionError(`Alert rule "${spec.name}": ${(error as Error).message}`);
      }
    });
  }

  /** The rules in force. */
  get rules(): readonly AlertRuleSpec[] {
    return this.#rules.map((r) => r.spec);
  }

  /** Evaluates every `intervalMs` until {@linkcode AlertEngine.stop}. */
  start(): void {
    const evaluating = this.#options.evaluating ?? (() => true);
    this.#timer ??= setInterval(() => {
      if (evaluating()) this.evaluate();
    }, this.#options.intervalMs);
  }

  /** Stops evaluating and waits for deliveries in flight. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled(this.#pending);
  }

  /** Alerts pending or firing now. */
  get active(): Array<
    { rule: string; tunnel: string; state: string; since: Date; id: number | null }
  > {
    return [...this.#active.values()].map((a) => ({
      rule: a.rule.name,
      tunnel: a.tunnel.key,
      state: a.state,
      since: new Date(a.since),
      id: a.id,
    }));
  }

  /** Suppresses notifications of the alert with row id `id` until `until`. */
  silence(alert: { rule: string; labels: Record<string, unknown> }, until: Date): void {
    this.#silenced.set(`${alert.rule}|${String(alert.labels.tunnel ?? "")}`, until.getTime());
  }

  #track<T>(p: Promise<T>): void {
    const tracked = p.catch(() => {}).finally(() => {
      this.#pending = this.#pending.filter((x) => x !== tracked);
    });
    this.#pending.push(tracked);
  }

  /** One evaluation round (also called by the timer). */
  evaluate(): void {
    const now = this.#now();
    const tunnels = this.#options.stats.snapshot();
    const seen = new Set<string>();
    for (const { spec, condition } of this.#rules) {
      for (const t of tunnels) {
        const key = `${spec.name}|${t.key}`;
        if (!holds(condition, t)) continue;
        seen.add(key);
        let a = this.#active.get(key);
        if (!a) {
          // tunnel_down counts from when the tunnel went down, not from this round.
          const since = condition.metric === "tunnel_status" ? Math.min(t.since, now) : now;
          a = { rule: spec, tunnel: t, since, state: "pending", id: null };
          this.#active.set(key, a);
          this.#record(a, "pending");
        }
        a.tunnel = t;
        if (a.state === "pending" && now - a.since >= spec.duration) {
          a.state = "firing";
          this.#record(a, "firing");
          this.#notify(a, "firing", now);
        }
      }
    }
    for (const [key, a] of [...this.#active]) {
      if (seen.has(key)) continue;
      this.#active.delete(key);
      if (a.state === "firing") {
        this.#record(a, "resolved");
        this.#notify(a, "resolved", now);
      } else {
        this.#record(a, "discard");
      }
    }
  }

  #summary(a: Active): string {
    const t = a.tunnel;
    switch (a.rule.name) {
      default:
        return `${a.rule.name}: tunnel ${t.key} (${a.rule.condition}); status ${t.status}, ` +
          `avg latency ${t.avg_latency === null ? "n/a" : `${Math.round(t.avg_latency)} ms`}, ` +
          `error rate ${(t.error_rate * 100).toFixed(1)}% of ${t.connections}`;
    }
  }

  #labels(a: Active): Record<string, string> {
    return {
      alertname: a.rule.name,
      severity: a.rule.severity,
      tunnel: a.tunnel.key,
      user: a.tunnel.user,
    };
  }

  #record(a: Active, what: "pending" | "firing" | "resolved" | "discard"): void {
    const store = this.#options.store;
    if (!store) return;
    const work = (async () => {
      if (what === "pending") {
        const id = await store.fire(
          a.rule.name,
          a.rule.severity,
          this.#summary(a),
          this.#labels(a),
          "pending",
        );
        a.id = id;
        // It may have moved on while the insert ran.
        if (a.state === "firing") await store.firing(id, this.#summary(a));
        else if (!this.#active.has(`${a.rule.name}|${a.tunnel.key}`)) await store.discard(id);
        return;
      }
      if (a.id === null) return; // the pending insert is still running; it catches up
      if (what === "firing") await store.firing(a.id, this.#summary(a));
      else if (what === "resolved") await store.resolve(a.id);
      else await store.discard(a.id);
    })().catch((error) => this.#options.logger.warn("recording an alert failed", { error }));
    this.#track(work);
  }

  #notify(a: Active, status: "firing" | "resolved", now: number): void {
    const silencedUntil = this.#silenced.get(`${a.rule.name}|${a.tunnel.key}`);
    if (silencedUntil && silencedUntil > now) return;
    const event: AlertEvent = {
      rule: a.rule.name,
      severity: a.rule.severity,
      status,
      labels: this.#labels(a),
      summary: this.#summary(a),
      startsAt: new Date(a.since),
      ...(status === "resolved" ? { endsAt: new Date(now) } : {}),
      id: a.id,
    };
    for (const n of this.#options.notifiers) this.#track(n.notify(event));
  }
}

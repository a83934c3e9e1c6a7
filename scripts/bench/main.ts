/**
 * `deno task bench`: Burrow against a direct connection and against OpenSSH's
 * reverse tunnel (`ssh -R`), all measured in one run on 127.0.0.1.
 *
 * Rows: TCP throughput (iperf3, one and eight streams; against `ssh -R` with
 * its default cipher and with aes128-gcm), small request/response round trips
 * (against `ssh -tt -R`, which sets TCP_NODELAY), new connections
 * (connect-to-first-byte and connections per second; against another Burrow
 * commit when `BURROW_BASELINE` names its checkout), resident memory per idle
 * relayed connection, and CPU seconds per GB moved; then storage and
 * monitoring costs; then HTTP requests per second
 * and latency (wrk) against nginx as a reverse proxy, `ssh -R` with and
 * without a pty, pipenet and Burrow's HTTP tunnel; then UDP loss and
 * throughput (iperf3 -u) against an nginx stream relay. First of all, the
 * idle and peak resident memory of burrowd (embedded database and
 * PostgreSQL) next to an idle sshd and nginx.
 *
 * ```sh
 * deno task bench                      # full run, about ten minutes
 * deno task bench --quick              # smoke run: one 1 s run of each
 * deno task bench --json bench.json    # also write the raw results
 * deno task bench --only memory        # one part: memory|tunnel|storage|monitoring|http|udp
 * deno task bench --only cluster       # two cluster nodes on PostgreSQL (not in the full run)
 * ```
 *
 * Honours `BURROWD_BIN` / `BURROW_BIN` to measure compiled binaries, and
 * `BURROW_BASELINE`, a directory holding a checkout of another Burrow commit
 * (issue 13's targets compare with f383716), to judge new connections against
 * that commit's server and client run in the same way:
 *
 * ```sh
 * git worktree add /tmp/burrow-f383716 f383716
 * BURROW_BASELINE=/tmp/burrow-f383716 deno task bench --only tunnel
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Checkout, describeCheckout, startBurrow } from "./_burrow.ts";
import { runIperf, startIperfServer } from "./_iperf.ts";
import {
  connectionRate,
  connectToFirstByte,
  latencyMedians,
  type LatencyRuns,
  median,
  pingPong,
  rateMedian,
  type RateRuns,
} from "./_latency.ts";
import { memoryPerConnection, type MemoryResult, type RelayPids } from "./_memory.ts";
import { spawn, tempDir, treeCpuSeconds } from "./_procs.ts";
import {
  describeMachine,
  formatMachine,
  formatTable,
  type Machine,
  num,
  ratio,
  type Row,
  verdict,
} from "./_report.ts";
import { attempt as attemptIn, type Section } from "./_section.ts";
import { startSshd, startSshTunnel } from "./_ssh.ts";
import { storageBench, type StorageResults } from "./_storage.ts";
import { monitoringBench, type MonitoringResults } from "./_monitoring.ts";
import { httpBench, type HttpResults, httpRows } from "./_http.ts";
import { udpBench, type UdpResults, udpRows } from "./_udp.ts";
import {
  CLUSTER_HEADER,
  clusterBench,
  type ClusterResults,
  clusterRows,
  IDLE_HEADER,
  idleRows,
  idleTables,
} from "./_cluster.ts";
import {
  FOOTPRINT_HEADER,
  footprintBench,
  type FootprintResults,
  footprintRows,
} from "./_footprint.ts";

/** How long and how often each measurement runs. */
interface Settings {
  quick: boolean;
  /** iperf3 runs per route; the median is reported. */
  runs: number;
  /** iperf3 `-t`. */
  seconds: number;
  /** Measured round trips. */
  pingCount: number;
  /** Measured sequential new connections. */
  firstByteCount: number;
  /** Upper bound on each latency loop (a slow relay stops early). */
  latencyBudgetMs: number;
  rateWorkers: number;
  rateSeconds: number;
  memoryConnections: number;
  /** Simulated idle clients for the database-load row. */
  idleClients: number;
  /** Seconds their database load is counted. */
  idleSeconds: number;
  /**
   * Seconds each idle phase of the cluster rows is counted: PostgreSQL's
   * statistics lag by up to 10 s, so a longer window, a multiple of the
   * 5 s heartbeat.
   */
  clusterIdleSeconds: number;
  /** wrk `-d` of the HTTP rows (`runs` runs each). */
  httpSeconds: number;
  /** iperf3 `-u -t` of the UDP rows (`runs` runs each). */
  udpSeconds: number;
  /** Idle time before a server's memory is read (memory rows). */
  footprintSettleMs: number;
}

const FULL: Settings = {
  quick: false,
  runs: 3,
  seconds: 5,
  pingCount: 20_000,
  firstByteCount: 2_000,
  latencyBudgetMs: 20_000,
  rateWorkers: 32,
  rateSeconds: 5,
  memoryConnections: 1_000,
  idleClients: 1_000,
  idleSeconds: 30,
  clusterIdleSeconds: 60,
  httpSeconds: 3,
  udpSeconds: 2,
  footprintSettleMs: 10_000,
};

const QUICK: Settings = {
  quick: true,
  runs: 1,
  seconds: 1,
  pingCount: 2_000,
  firstByteCount: 200,
  latencyBudgetMs: 3_000,
  rateWorkers: 32,
  rateSeconds: 1,
  memoryConnections: 1_000,
  idleClients: 100,
  idleSeconds: 5,
  clusterIdleSeconds: 10,
  httpSeconds: 1,
  udpSeconds: 1,
  footprintSettleMs: 3_000,
};

const AES_GCM = "aes128-gcm@openssh.com";

type RouteKey = "direct" | "sshDefault" | "sshGcm" | "sshPty" | "burrow" | "baseline";

/** What each route is called in progress lines and in the tunnel rows' "other" column. */
const LABELS: Record<RouteKey, string> = {
  direct: "direct",
  sshDefault: "ssh -R (default cipher)",
  sshGcm: "ssh -R (aes128-gcm)",
  // As the HTTP rows start it: with a pty, OpenSSH sets TCP_NODELAY.
  sshPty: "ssh -tt -R (pty)",
  burrow: "Burrow",
  baseline: "baseline (BURROW_BASELINE)",
};

/** One way to reach the local services, with the public ports of those it forwards. */
interface Route {
  key: RouteKey;
  label: string;
  iperf?: number;
  echo?: number;
  greet?: number;
  /** The relay's processes; absent for direct. */
  relay?: RelayPids;
}

/** The port through which `route` reaches `service`; throws when it does not forward it. */
function port(route: Route, service: "iperf" | "echo" | "greet"): number {
  const p = route[service];
  if (p === undefined) throw new Error(`${route.label} does not forward the ${service} service`);
  return p;
}

/** iperf3 results of one route: median and every run, in Gbit/s. */
interface Throughput {
  gbps: number;
  runs: number[];
}

/** CPU seconds per GB received, over all measured single-stream runs. */
interface CpuPerGB {
  gb: number;
  server: number;
  client: number;
}

type PerRoute<T> = Partial<Record<RouteKey, T>>;

/** Everything measured; what `--json` writes. */
interface Results {
  machine: Machine;
  settings: Settings;
  throughput1: PerRoute<Throughput>;
  throughput8: PerRoute<Throughput>;
  cpu: PerRoute<CpuPerGB>;
  roundTrip: PerRoute<LatencyRuns>;
  firstByte: PerRoute<LatencyRuns>;
  rate: PerRoute<RateRuns>;
  memory: PerRoute<MemoryResult>;
  footprint?: FootprintResults;
  storage?: StorageResults;
  monitoring?: MonitoringResults;
  http?: HttpResults;
  udp?: UdpResults;
  cluster?: ClusterResults;
  errors: string[];
}

function progress(message: string): void {
  console.error(`bench: ${message}`);
}

/** Runs `fn`; on failure records the error and returns undefined. */
function attempt<T>(
  errors: string[],
  what: string,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  return attemptIn({ errors, progress }, what, fn);
}

const PARTS = ["memory", "tunnel", "storage", "monitoring", "http", "udp", "cluster"] as const;
type Part = typeof PARTS[number];

/**
 * Starts the services, the iperf3 servers and the relays (with `baseline`,
 * also that checkout's server and client); returns the routes that came up.
 */
async function setUp(
  stack: AsyncDisposableStack,
  dir: string,
  errors: string[],
  baseline?: Checkout,
): Promise<Route[]> {
  const services = stack.use(spawn("services", Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      new URL("./_services.ts", import.meta.url).pathname,
    ],
    stdinPipe: true,
  }));
  const ports = JSON.parse(
    await services.waitForLine((l) => l.startsWith("{"), 30_000, "services listening"),
  ) as { echo: number; greet: number };

  // One iperf3 server per route, so a relay that wedges a test cannot make
  // the others' servers busy.
  const iperfPorts = new Map<RouteKey, number>();
  for (const key of ["direct", "sshDefault", "sshGcm", "burrow"] as const) {
    const { proc, port } = await startIperfServer(`iperf3 -s (${key})`);
    stack.use(proc);
    iperfPorts.set(key, port);
  }

  const routes: Route[] = [{
    key: "direct",
    label: LABELS.direct,
    iperf: iperfPorts.get("direct")!,
    echo: ports.echo,
    greet: ports.greet,
  }];

  const sshd = await attempt(errors, "start sshd", async () => {
    await Deno.mkdir(`${dir}/ssh`);
    const sshd = await startSshd(`${dir}/ssh`);
    stack.use(sshd.proc);
    return sshd;
  });
  if (sshd) {
    for (const [key, cipher] of [["sshDefault", undefined], ["sshGcm", AES_GCM]] as const) {
      const label = LABELS[key];
      const iperf = iperfPorts.get(key)!;
      const tunnel = await attempt(errors, `start ${label}`, async () => {
        const t = await startSshTunnel(label, sshd, [iperf, ports.echo, ports.greet], {
          ...(cipher ? { cipher } : {}),
        });
        stack.use(t.proc);
        return t;
      });
      if (!tunnel) continue;
      routes.push({
        key,
        label,
        iperf: tunnel.remotePorts.get(iperf)!,
        echo: tunnel.remotePorts.get(ports.echo)!,
        greet: tunnel.remotePorts.get(ports.greet)!,
        relay: { server: sshd.proc.pid, client: tunnel.proc.pid },
      });
    }
    // The round trips' reference, started as the HTTP rows start theirs.
    const pty = await attempt(errors, `start ${LABELS.sshPty}`, async () => {
      const t = await startSshTunnel(LABELS.sshPty, sshd, [ports.echo], { pty: true });
      stack.use(t.proc);
      return t;
    });
    if (pty) {
      routes.push({
        key: "sshPty",
        label: LABELS.sshPty,
        echo: pty.remotePorts.get(ports.echo)!,
        relay: { server: sshd.proc.pid, client: pty.proc.pid },
      });
    }
  }

  const burrow = await attempt(errors, "start Burrow", async () => {
    await Deno.mkdir(`${dir}/burrow`);
    return stack.use(
      await startBurrow(`${dir}/burrow`, [
        { name: "iperf", localPort: iperfPorts.get("burrow")! },
        { name: "echo", localPort: ports.echo },
        { name: "greet", localPort: ports.greet },
      ]),
    );
  });
  if (burrow) {
    routes.push({
      key: "burrow",
      label: LABELS.burrow,
      iperf: burrow.remotePorts.get("iperf")!,
      echo: burrow.remotePorts.get("echo")!,
      greet: burrow.remotePorts.get("greet")!,
      relay: { server: burrow.server.pid, client: burrow.client.pid },
    });
  }

  if (baseline) {
    const label = baselineLabel(baseline);
    const b = await attempt(errors, `start ${label} (${baseline.dir})`, async () => {
      await Deno.mkdir(`${dir}/baseline`);
      return stack.use(
        await startBurrow(`${dir}/baseline`, [{ name: "greet", localPort: ports.greet }], {
          checkout: baseline.dir,
        }),
      );
    });
    if (b) {
      routes.push({
        key: "baseline",
        label,
        greet: b.remotePorts.get("greet")!,
        relay: { server: b.server.pid, client: b.client.pid },
      });
    }
  }
  return routes;
}

/** The baseline's name in the table: `Burrow <commit>`. */
function baselineLabel(baseline: Checkout | undefined): string {
  return baseline ? `Burrow ${baseline.commit}` : LABELS.baseline;
}

/**
 * `runs` rounds of `measure`, each round through every route in turn, so
 * that drift on the machine hits every route alike. A route that fails once
 * is left out of the later rounds and of the result.
 */
async function interleaved<T>(
  routes: Route[],
  runs: number,
  what: string,
  errors: string[],
  measure: (route: Route) => Promise<T>,
): Promise<PerRoute<T[]>> {
  const out: PerRoute<T[]> = {};
  const failed = new Set<RouteKey>();
  for (let i = 0; i < runs; i++) {
    for (const route of routes) {
      if (failed.has(route.key)) continue;
      progress(`${what} ${route.label} (run ${i + 1}/${runs})`);
      const value = await attempt(errors, `${what} through ${route.label}`, () => measure(route));
      if (value === undefined) {
        failed.add(route.key);
        delete out[route.key];
        continue;
      }
      (out[route.key] ??= []).push(value);
    }
  }
  return out;
}

/** `f` of each route's value. */
function mapRoutes<T, U>(values: PerRoute<T>, f: (value: T) => U): PerRoute<U> {
  const out: PerRoute<U> = {};
  for (const [key, value] of Object.entries(values) as Array<[RouteKey, T]>) out[key] = f(value);
  return out;
}

/**
 * iperf3 `runs` times through each route, interleaved. With `cpu`, adds up
 * the relays' CPU time.
 */
async function throughput(
  routes: Route[],
  parallel: number,
  settings: Settings,
  errors: string[],
  cpu?: PerRoute<CpuPerGB>,
): Promise<PerRoute<Throughput>> {
  const totals = new Map<RouteKey, { bytes: number; server: number; client: number }>();
  const runs = await interleaved(
    routes,
    settings.runs,
    `iperf3 -P ${parallel}`,
    errors,
    async (route) => {
      const relay = route.relay;
      const before = relay && [treeCpuSeconds(relay.server), treeCpuSeconds(relay.client)];
      const r = await runIperf(port(route, "iperf"), { seconds: settings.seconds, parallel });
      if (relay && before) {
        const t = totals.get(route.key) ?? { bytes: 0, server: 0, client: 0 };
        t.bytes += r.bytes;
        t.server += treeCpuSeconds(relay.server) - before[0]!;
        t.client += treeCpuSeconds(relay.client) - before[1]!;
        totals.set(route.key, t);
      }
      return r.bitsPerSecond / 1e9;
    },
  );
  if (cpu) {
    for (const [key, t] of totals) {
      if (!runs[key]) continue; // failed: its partial totals would mislead
      const gb = t.bytes / 1e9;
      cpu[key] = { gb, server: t.server / gb, client: t.client / gb };
    }
  }
  return mapRoutes(runs, (values) => ({ gbps: median(values), runs: values }));
}

/** Runs `measure` for each route, collecting what succeeded. */
async function perRoute<T>(
  routes: Route[],
  what: string,
  errors: string[],
  measure: (route: Route) => Promise<T>,
): Promise<PerRoute<T>> {
  const out: PerRoute<T> = {};
  for (const route of routes) {
    progress(`${what} ${route.label}`);
    const value = await attempt(errors, `${what} through ${route.label}`, () => measure(route));
    if (value !== undefined) out[route.key] = value;
  }
  return out;
}

async function measureAll(routes: Route[], s: Settings, results: Results): Promise<void> {
  const errors = results.errors;
  const pick = (...keys: RouteKey[]) => routes.filter((r) => keys.includes(r.key));
  const tcp = pick("direct", "sshDefault", "sshGcm", "burrow");
  const roundTrips = pick("direct", "sshPty", "burrow");
  const connections = pick("direct", "burrow", "baseline");

  // Memory first, while the relays are fresh: after the throughput runs their
  // heaps hold freed buffers that new connections would reuse unseen.
  results.memory = await perRoute(
    pick("sshGcm", "burrow"),
    `RSS with ${s.memoryConnections} idle connections`,
    errors,
    (r) => memoryPerConnection(port(r, "echo"), r.relay!, { connections: s.memoryConnections }),
  );

  if (!s.quick) {
    // Untimed: lets the JIT and the relays' buffers settle before measuring.
    await perRoute(
      tcp.filter((r) => r.relay),
      "warm-up iperf3 -t 1",
      errors,
      (r) => runIperf(port(r, "iperf"), { seconds: 1 }),
    );
  }
  results.throughput1 = await throughput(tcp, 1, s, errors, results.cpu);
  results.throughput8 = await throughput(tcp, 8, s, errors);

  results.roundTrip = mapRoutes(
    await interleaved(
      roundTrips,
      s.runs,
      "round trips",
      errors,
      (r) =>
        pingPong(port(r, "echo"), { count: s.pingCount, size: 32, budgetMs: s.latencyBudgetMs }),
    ),
    latencyMedians,
  );

  if (!s.quick) {
    // Untimed: the baseline has carried nothing yet, and Burrow no new connections.
    await perRoute(
      connections.filter((r) => r.relay),
      "warm-up connections/s 1 s",
      errors,
      (r) => connectionRate(port(r, "greet"), s.rateWorkers, 1),
    );
  }
  results.firstByte = mapRoutes(
    await interleaved(
      connections,
      s.runs,
      "connect-to-first-byte",
      errors,
      (r) =>
        connectToFirstByte(port(r, "greet"), {
          count: s.firstByteCount,
          budgetMs: s.latencyBudgetMs,
        }),
    ),
    latencyMedians,
  );
  results.rate = mapRoutes(
    await interleaved(
      connections,
      s.runs,
      `connections/s (${s.rateWorkers} workers)`,
      errors,
      (r) => connectionRate(port(r, "greet"), s.rateWorkers, s.rateSeconds),
    ),
    rateMedian,
  );
}

/** A target on Burrow's figure, mostly against the route in the "other" column. */
interface Target {
  text: string;
  /** Whether Burrow meets it; undefined when it cannot be judged (no other figure). */
  ok: (burrow: number, other: number | undefined) => boolean | undefined;
}

/** Burrow at least `min` times the other route. */
function atLeast(min: number, note = ""): Target {
  return {
    text: `≥ ${min.toFixed(1)}× other${note}`,
    ok: (b, o) => o === undefined ? undefined : b / o >= min,
  };
}

/** Burrow at most `max` times the other route. */
function atMost(max: number, note = ""): Target {
  return {
    text: `≤ ${max.toFixed(1)}× other${note}`,
    ok: (b, o) => o === undefined ? undefined : b / o <= max,
  };
}

/** One row of the tunnel table: Burrow against `other`. */
interface RowSpec {
  metric: string;
  value: (k: RouteKey) => number | undefined;
  other: RouteKey;
  digits: number;
  /** Default: report only. */
  target?: Target | undefined;
  /** Whether the row has a direct figure. Default true. */
  direct?: boolean;
  /** In place of a missing other figure (default `FAIL`) and of the verdict (default `—`). */
  missing?: { other: string; met: string } | undefined;
}

/**
 * The tunnel rows: issue 13's targets ("Data plane v2"), each on Burrow
 * against a route of the same run. New connections are judged against the
 * BURROW_BASELINE checkout, when there is one.
 */
function rows(r: Results): Row[] {
  const baseline = r.machine.baseline;
  const label = (k: RouteKey) => k === "baseline" ? baselineLabel(baseline) : LABELS[k];
  const row = (spec: RowSpec): Row => {
    const b = spec.value("burrow");
    const o = spec.value(spec.other);
    const d = spec.direct === false ? undefined : spec.value("direct");
    const measured = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v);
    const judged = spec.target && measured(b)
      ? spec.target.ok(b, measured(o) ? o : undefined)
      : undefined;
    const met = judged === undefined ? spec.missing?.met ?? "—" : verdict(judged);
    return {
      metric: `${spec.metric}, other: ${label(spec.other)}`,
      direct: spec.direct === false ? "—" : num(d, spec.digits),
      ssh: num(o, spec.digits, spec.missing?.other),
      burrow: num(b, spec.digits),
      vsSsh: ratio(b, o),
      vsDirect: spec.direct === false ? "—" : ratio(b, d),
      target: spec.target?.text ?? "report",
      met,
    };
  };
  const gbps = (t: PerRoute<Throughput>) => (k: RouteKey) => t[k]?.gbps;
  const runs = ` (median of ${r.settings.runs} run${r.settings.runs === 1 ? "" : "s"})`;
  // Judged only against a baseline; without one, say how to get it.
  const againstBaseline = (target: Target): Pick<RowSpec, "target" | "missing"> =>
    baseline ? { target } : { missing: { other: "—", met: "— (set BURROW_BASELINE)" } };
  const workers = `${r.settings.rateWorkers} workers`;

  return [
    row({
      metric: "TCP 1 stream, Gbit/s",
      value: gbps(r.throughput1),
      other: "sshDefault",
      digits: 2,
      target: atLeast(1.0),
    }),
    row({ metric: "TCP 1 stream, Gbit/s", value: gbps(r.throughput1), other: "sshGcm", digits: 2 }),
    row({
      metric: "TCP 8 streams, Gbit/s",
      value: gbps(r.throughput8),
      other: "sshDefault",
      digits: 2,
      target: atLeast(0.8),
    }),
    row({
      metric: "TCP 8 streams, Gbit/s",
      value: gbps(r.throughput8),
      other: "sshGcm",
      digits: 2,
    }),
    row({
      metric: "round trip 32 B p50, µs",
      value: (k) => r.roundTrip[k]?.p50,
      other: "sshPty",
      digits: 0,
      target: atMost(1.1),
    }),
    row({
      metric: "round trip 32 B p99, µs",
      value: (k) => r.roundTrip[k]?.p99,
      other: "sshPty",
      digits: 0,
      target: atMost(1.3),
    }),
    row({
      metric: "connect-to-first-byte p50, µs",
      value: (k) => r.firstByte[k]?.p50,
      other: "baseline",
      digits: 0,
      ...againstBaseline(atMost(1.0, runs)),
    }),
    row({
      metric: "connect-to-first-byte p99, µs",
      value: (k) => r.firstByte[k]?.p99,
      other: "baseline",
      digits: 0,
      ...againstBaseline(atMost(1.0, runs)),
    }),
    row({
      metric: `new connections/s (${workers})`,
      value: (k) => r.rate[k]?.perSecond,
      other: "baseline",
      digits: 0,
      ...againstBaseline(atLeast(1.0, runs)),
    }),
    row({
      metric: "server (sshd) RSS per idle conn, KiB",
      value: (k) => r.memory[k]?.serverPerConnKiB,
      other: "sshGcm",
      digits: 1,
      direct: false,
      // A negative figure means RSS fell during the measurement (a heap gave memory back): no verdict.
      target: { text: "≤ 16 KiB", ok: (b) => b >= 0 && b <= 16 },
    }),
    row({
      metric: "client (ssh) RSS per idle conn, KiB",
      value: (k) => r.memory[k]?.clientPerConnKiB,
      other: "sshGcm",
      digits: 1,
      direct: false,
    }),
    ...(["sshDefault", "sshGcm"] as const).flatMap((other) => [
      row({
        metric: "server (sshd) CPU-s per GB",
        value: (k) => r.cpu[k]?.server,
        other,
        digits: 2,
        direct: false,
      }),
      row({
        metric: "client (ssh) CPU-s per GB",
        value: (k) => r.cpu[k]?.client,
        other,
        digits: 2,
        direct: false,
      }),
    ]),
  ];
}

function storageRows(r: Results): Row[] {
  const st = r.storage;
  if (!st) return [];
  const fb = st.firstByte;
  const out: Row[] = [];
  for (const key of ["p50", "p99"] as const) {
    for (const [label, value] of [["PGlite", fb.pglite], ["PostgreSQL", fb.postgres]] as const) {
      out.push({
        metric: `connect-to-first-byte ${key}, µs, ${label}`,
        direct: "—",
        ssh: "—",
        burrow: num(value?.[key], 0),
        vsSsh: "—",
        vsDirect: "—",
        target: "report",
        met: "—",
      });
    }
  }
  out.push({
    metric: `DB queries/s, ${st.idle?.clients ?? r.settings.idleClients} idle clients (PostgreSQL)`,
    direct: "—",
    ssh: "—",
    burrow: num(st.idle?.queriesPerSecond, 2),
    vsSsh: "—",
    vsDirect: "—",
    target: "≤ 20/s",
    met: st.idle ? verdict(st.idle.queriesPerSecond <= 20) : "—",
  });
  return out;
}

function monitoringRows(r: Results): Row[] {
  const m = r.monitoring;
  if (!m) return [];
  const row = (metric: string, off?: number, on?: number, digits = 2): Row => ({
    metric,
    direct: "—",
    ssh: num(off, digits),
    burrow: num(on, digits),
    vsSsh: ratio(on, off),
    vsDirect: "—",
    target: "on ≥ 0.9× off",
    met: off !== undefined && on !== undefined ? verdict(on / off >= 0.9) : "—",
  });
  return [
    row("TCP 1 stream, Gbit/s (monitoring off vs on)", m.throughput?.off, m.throughput?.on),
    row("new connections/s (monitoring off vs on)", m.rate?.off, m.rate?.on, 0),
  ];
}

function describeSettings(s: Settings): string {
  return [
    `method:  ${s.runs} interleaved run(s) of each, medians: iperf3 -t ${s.seconds}; ` +
    `${s.pingCount} sequential 32 B round trips on one TCP_NODELAY connection; ` +
    `${s.firstByteCount} sequential connect-to-first-byte; ` +
    `${s.rateWorkers} workers × ${s.rateSeconds} s connect/read 1 byte/close ` +
    `(percentiles and rates: the median of the runs'). ` +
    `RSS (VmRSS) slope over ${s.memoryConnections} echoed idle connections opened in 5 steps; ` +
    `CPU (utime+stime) over the single-stream runs.`,
    `         Tunnel rows: the other column is the route the row names; aes128-gcm is ` +
    `ssh -c ${AES_GCM}. All on 127.0.0.1.`,
  ].join("\n");
}

/** Under the tunnel rows when they were not judged against a baseline. */
const NO_BASELINE_NOTE =
  "New connections are judged against issue 13's starting commit when BURROW_BASELINE names " +
  "its checkout:\n  git worktree add /tmp/burrow-f383716 f383716\n" +
  "  BURROW_BASELINE=/tmp/burrow-f383716 deno task bench --only tunnel";

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "string" },
      only: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      `Usage: deno task bench [--quick] [--json FILE] [--only ${PARTS.join("|")}]\n\n` +
        "  --quick      one 1 s run of each measurement (smoke test)\n" +
        "  --json FILE  also write the raw results as JSON\n" +
        "  --only PART  just the memory, tunnel, storage, monitoring, http or udp rows; or the\n" +
        "               cluster rows (two nodes on PostgreSQL), which only this runs\n\n" +
        "Measures Burrow against a direct connection, `ssh -R`, nginx and pipenet on 127.0.0.1.\n" +
        "BURROWD_BIN / BURROW_BIN select compiled binaries instead of the sources.\n" +
        "BURROW_BASELINE=DIR also runs the Burrow checkout in DIR (e.g. made with\n" +
        "`git worktree add /tmp/burrow-f383716 f383716`) and judges the tunnel rows'\n" +
        "new connections against it.",
    );
    return 0;
  }
  const settings = values.quick ? QUICK : FULL;
  if (values.only !== undefined && !(PARTS as readonly string[]).includes(values.only)) {
    console.error(`bench: --only must be one of ${PARTS.join(", ")}, not "${values.only}"`);
    return 2;
  }
  const only = values.only as Part | undefined;
  const baselineDir = Deno.env.get("BURROW_BASELINE");
  let baseline: Checkout | undefined;
  if (baselineDir && (only === undefined || only === "tunnel")) {
    try {
      baseline = await describeCheckout(baselineDir);
    } catch (error) {
      console.error(`bench: BURROW_BASELINE: ${(error as Error).message}`);
      return 2;
    }
  }
  const results: Results = {
    machine: { ...await describeMachine(), ...(baseline ? { baseline } : {}) },
    settings,
    throughput1: {},
    throughput8: {},
    cpu: {},
    roundTrip: {},
    firstByte: {},
    rate: {},
    memory: {},
    errors: [],
  };

  await using dir = await tempDir("burrow-bench-");
  {
    await using stack = new AsyncDisposableStack();
    const stopOnSignal = () => {
      progress("interrupted: stopping the processes this run started");
      stack.disposeAsync()
        .finally(() => dir[Symbol.asyncDispose]())
        .finally(() => Deno.exit(130));
    };
    Deno.addSignalListener("SIGINT", stopOnSignal);
    Deno.addSignalListener("SIGTERM", stopOnSignal);
    const section = (name: string): Section => ({
      dir: `${dir.path}/${name}`,
      owner: stack,
      errors: results.errors,
      progress,
    });
    try {
      if (only === "memory") {
        results.footprint = await footprintBench(section("memory"), settings);
      } else if (only === "http") {
        results.http = await httpBench(section("http"), settings);
      } else if (only === "udp") {
        results.udp = await udpBench(section("udp"), settings);
      } else if (only === "cluster") {
        // Opt-in: its two idle windows and three routes would add about five minutes to a full run.
        results.cluster = await clusterBench(section("cluster"), {
          ...settings,
          idleSeconds: settings.clusterIdleSeconds,
        });
      } else if (only === "storage" || only === "monitoring") {
        const services = stack.use(spawn("services", Deno.execPath(), {
          args: ["run", "--allow-net", new URL("./_services.ts", import.meta.url).pathname],
          stdinPipe: true,
        }));
        const ports = JSON.parse(
          await services.waitForLine((l) => l.startsWith("{"), 30_000, "services listening"),
        ) as { greet: number };
        if (only === "storage") {
          results.storage = await storageBench(
            dir.path,
            settings,
            ports.greet,
            progress,
            results.errors,
          );
        } else {
          results.monitoring = await monitoringBench(
            dir.path,
            settings,
            ports.greet,
            progress,
            results.errors,
          );
        }
      } else {
        // First, while nothing else of this run holds memory or CPU.
        if (only === undefined) {
          results.footprint = await footprintBench(section("memory"), settings);
        }
        const routes = await setUp(stack, dir.path, results.errors, baseline);
        progress(`routes up: ${routes.map((r) => r.label).join(", ")}`);
        await measureAll(routes, settings, results);
        if (only !== "tunnel") {
          const greet = port(routes.find((r) => r.key === "direct")!, "greet");
          results.storage = await storageBench(dir.path, settings, greet, progress, results.errors);
          results.monitoring = await monitoringBench(
            dir.path,
            settings,
            greet,
            progress,
            results.errors,
          );
          results.http = await httpBench(section("http"), settings);
          results.udp = await udpBench(section("udp"), settings);
        }
      }
    } finally {
      Deno.removeSignalListener("SIGINT", stopOnSignal);
      Deno.removeSignalListener("SIGTERM", stopOnSignal);
      progress("stopping processes");
    }
  }

  const parts = [formatMachine(results.machine)];
  if (only !== "http" && only !== "udp" && only !== "memory" && only !== "cluster") {
    parts.push(describeSettings(settings));
  }
  if (results.footprint) {
    parts.push(
      "",
      `Memory of idle servers: ${results.footprint.method}; target: the memory issue's limits:`,
      formatTable(footprintRows(results.footprint), FOOTPRINT_HEADER),
    );
  }
  if (only === undefined || only === "tunnel") {
    parts.push("", formatTable(rows(results), { ssh: "other", vsSsh: "Burrow/other" }));
    if (!baseline) parts.push("", NO_BASELINE_NOTE);
  }
  if (results.storage) {
    parts.push(
      "",
      "Storage: Burrow with the embedded database and with PostgreSQL; " +
        `${settings.firstByteCount} sequential connect-to-first-byte each; ` +
        `${settings.idleClients} idle clients (heartbeat 10 s), transactions counted ` +
        `over ${settings.idleSeconds} s from pg_stat_database:`,
      formatTable(storageRows(results)),
    );
  }
  if (results.monitoring) {
    parts.push(
      "",
      "Monitoring cost: Burrow with metrics off and no access log (ssh -R column) against metrics " +
        "on and an access log file (Burrow column), interleaved runs" +
        (results.monitoring.accessLines !== undefined
          ? ` (${results.monitoring.accessLines} access lines written)`
          : "") +
        ":",
      formatTable(monitoringRows(results)),
    );
  }
  if (results.http) {
    parts.push(
      "",
      `HTTP: ${results.http.method}; static files of a private nginx origin, directly ` +
        "(direct column) and through each other relay (other column):",
      formatTable(httpRows(results.http), { ssh: "other", vsSsh: "Burrow/other" }),
    );
  }
  if (results.udp) {
    parts.push(
      "",
      `UDP: ${results.udp.method}; other column: nginx stream relay (listen udp + TCP):`,
      formatTable(udpRows(results.udp), { ssh: "nginx stream", vsSsh: "Burrow/nginx" }),
    );
  }
  if (results.cluster) {
    parts.push(
      "",
      `Cluster: ${results.cluster.method}. Two nodes on one PostgreSQL database, n1 on ` +
        "127.0.0.1 holding the client, n2 on 127.0.0.2 relaying over its TLS link to n1; " +
        "the TLS hop is 32 B round trips through a Deno TLS echo process on 127.0.0.1:",
      formatTable(clusterRows(results.cluster), CLUSTER_HEADER),
      "",
      "Idle database cost: the same two burrowd without cluster mode (today), then as nodes " +
        "(default heartbeat, link up, tunnels idle):",
      formatTable(idleRows(results.cluster), IDLE_HEADER),
      ...(results.cluster.idle
        ? [`cluster − today by table, per second: ${idleTables(results.cluster)}`]
        : []),
    );
  }
  const table = parts.join("\n");
  console.log(table);
  if (results.errors.length) {
    console.log(`\nFailures (${results.errors.length}):`);
    for (const error of results.errors) console.log(`- ${error}`);
  }
  if (values.json) {
    await Deno.writeTextFile(values.json, JSON.stringify(results, null, 2) + "\n");
    progress(`wrote ${values.json}`);
  }
  return results.errors.length ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());

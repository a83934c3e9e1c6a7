/**
 * Cluster rows of the benchmark (`--only cluster`): two burrowd nodes in
 * cluster mode on one throwaway PostgreSQL database, n1 on 127.0.0.1 and n2
 * on 127.0.0.2 (Linux routes all of 127/8 to loopback; each node binds its
 * own address, so both can open the same tunnel port), with the default
 * heartbeat and one client connected to n1. Its tunnels are reached at n1,
 * which holds the client, and at n2, which relays each visitor over its TLS
 * link to n1.
 *
 * Measured in one run, interleaved: TCP throughput (iperf3), 32 B round
 * trips, connect-to-first-byte and new connections per second, directly, via
 * n1 and via n2; the round trip of one loopback TLS hop (`_tls_echo.ts`),
 * the allowance the relayed round trip is judged with; and the database
 * load an idle cluster adds: transactions per second on PostgreSQL
 * (`pg_stat_database`) with the same two burrowd first started without
 * cluster mode (today's cost), then as nodes with their link up.
 *
 * @module
 */

import { join } from "node:path";
import postgres from "postgres";
import { dialTls, generateSelfSigned } from "../../lib/transport/mod.ts";
import {
  type BenchTunnel,
  startBurrow,
  type StartBurrowOptions,
  startBurrowServer,
} from "./_burrow.ts";
import { runIperf, startIperfServer } from "./_iperf.ts";
import {
  connectionRate,
  connectToFirstByte,
  latencyMedians,
  type LatencyRuns,
  type LatencySummary,
  median,
  pingPong,
  rateMedian,
  type RateResult,
  type RateRuns,
  roundTrips,
} from "./_latency.ts";
import { delay, type Proc, spawn, treeCpuSeconds } from "./_procs.ts";
import { num, ratio, type Row, verdict } from "./_report.ts";
import { attempt, type Section } from "./_section.ts";
import { throwaway } from "./_storage.ts";

/** Settings of {@linkcode clusterBench} (the bench's, shared with the tunnel rows). */
export interface ClusterSettings {
  quick: boolean;
  /** Interleaved runs of each measurement; the median is reported. */
  runs: number;
  /** iperf3 `-t`. */
  seconds: number;
  pingCount: number;
  firstByteCount: number;
  latencyBudgetMs: number;
  rateWorkers: number;
  rateSeconds: number;
  /** Seconds the database load of each idle phase is counted. */
  idleSeconds: number;
}

/** Ways to reach the local services, in table order. */
export const CLUSTER_ROUTES = ["direct", "n1", "n2"] as const;
/** One of {@linkcode CLUSTER_ROUTES}. */
export type ClusterRoute = typeof CLUSTER_ROUTES[number];

const LABELS: Record<ClusterRoute | "hop", string> = {
  direct: "direct",
  n1: "via n1 (holds the client)",
  n2: "via n2 (relayed to n1)",
  hop: "one loopback TLS hop",
};

/** The targets. */
const MIN_THROUGHPUT_RATIO = 0.6;
const MAX_EXTRA_QUERIES_PER_NODE = 1;

/** Median of iperf3 runs, Gbit/s. */
export interface ClusterThroughput {
  gbps: number;
  runs: number[];
}

/** CPU seconds per GB received through a route, by process. */
export interface ClusterCpu {
  gb: number;
  n1: number;
  n2: number;
  client: number;
}

/** Database load of two burrowd over one idle window. */
export interface IdleWindow {
  seconds: number;
  /** `xact_commit + xact_rollback` of the database per second (both processes). */
  transactionsPerSecond: number;
  /** Each process's `burrow_db_queries_total` per second (its statements; no liveness pings). */
  queriesPerSecond: number[];
  /** Per table: scans (`seq_scan + idx_scan`) and rows written, per second. */
  tables: Record<string, { scans: number; inserts: number; updates: number; deletes: number }>;
}

/** The idle cost of cluster mode. */
export interface IdleCost {
  /** n1 with the client, n2 alone, both without `server.cluster`. */
  today: IdleWindow;
  /** The same two as cluster nodes, their link up, their tunnels idle. */
  cluster: IdleWindow;
  /** (cluster − today) / 2, from PostgreSQL's transaction count. */
  perNode: number;
  /** Each node's own count (`burrow_db_queries_total`), cluster − today. */
  perNodeQueries: number[];
}

/** What the cluster part measured; part of `--json`. */
export interface ClusterResults {
  method: string;
  throughput: Partial<Record<ClusterRoute, ClusterThroughput>>;
  cpu: Partial<Record<"n1" | "n2", ClusterCpu>>;
  roundTrip: Partial<Record<ClusterRoute | "hop", LatencyRuns>>;
  firstByte: Partial<Record<ClusterRoute, LatencyRuns>>;
  rate: Partial<Record<ClusterRoute, RateRuns>>;
  idle?: IdleCost;
}

const SECRET = "burrow-bench-cluster-secret";
/** The idle window opens this long after the last activity: see {@linkcode DbCounter}. */
const SETTLE_MS = 11_000;

/** The public ports of one way to reach the services. */
interface Target {
  hostname: string;
  iperf: number;
  echo: number;
  greet: number;
}

/** Processes whose CPU time the throughput rows read. */
interface Pids {
  n1: number;
  n2: number;
  client: number;
}

/**
 * Counts what PostgreSQL saw of database `name`: its transactions and its
 * tables' scans and writes. Statistics reach the views when a backend goes
 * idle, at most once a second, or up to 10 s later (PGSTAT_IDLE_INTERVAL)
 * when it was busier: a window opens {@linkcode SETTLE_MS} after activity.
 * Each reading is one statement on this counter's own connection, whose
 * transaction is counted in the next reading's figure; it is subtracted.
 */
class DbCounter implements AsyncDisposable {
  #sql: postgres.Sql;
  constructor(url: string) {
    // No type lookup on connect: only the readings' own statements reach the database.
    this.#sql = postgres(url, { max: 1, onnotice: () => {}, fetch_types: false });
  }

  async read(): Promise<{ transactions: number; tables: Map<string, number[]> }> {
    const [row] = await this.#sql.unsafe<[{ transactions: string; tables: string }]>(
      `select (select xact_commit + xact_rollback from pg_stat_database
                where datname = current_database())::text as transactions,
              coalesce((select json_agg(json_build_array(relname,
                  coalesce(seq_scan, 0) + coalesce(idx_scan, 0), n_tup_ins, n_tup_upd,
                  n_tup_del))::text from pg_stat_user_tables), '[]') as tables`,
    );
    const tables = new Map<string, number[]>();
    for (const [name, ...counts] of JSON.parse(row.tables) as [string, ...number[]][]) {
      tables.set(name, counts.map(Number));
    }
    return { transactions: Number(row.transactions), tables };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#sql.end({ timeout: 1 });
  }
}

/** The admin port a burrowd logged. */
async function adminPort(proc: Proc): Promise<number> {
  return Number((await proc.waitForJson({ msg: "admin listening" }, 10_000)).port);
}

/** `burrow_db_queries_total` of the burrowd whose admin port is `hostname:port`. */
async function queriesTotal(hostname: string, port: number): Promise<number> {
  const response = await fetch(`http://${hostname}:${port}/metrics`);
  const text = await response.text();
  const match = /^burrow_db_queries_total(?:\{[^}]*\})?\s+(\S+)/m.exec(text);
  if (!response.ok || !match) {
    throw new Error(`No burrow_db_queries_total at http://${hostname}:${port}/metrics`);
  }
  return Number(match[1]);
}

/**
 * Counts the database load of the burrowd at `admins` (host and admin
 * port) over `seconds`, once {@linkcode SETTLE_MS} have passed.
 */
async function idleWindow(
  db: DbCounter,
  admins: Array<[string, number]>,
  seconds: number,
): Promise<IdleWindow> {
  await delay(SETTLE_MS);
  const queries = () => Promise.all(admins.map(([host, port]) => queriesTotal(host, port)));
  const q0 = await queries();
  const before = await db.read();
  const t0 = performance.now();
  await delay(seconds * 1000);
  const q1 = await queries();
  const after = await db.read();
  const elapsed = (performance.now() - t0) / 1000;
  const tables: IdleWindow["tables"] = {};
  for (const [name, counts] of after.tables) {
    const was = before.tables.get(name) ?? counts.map(() => 0);
    const d = counts.map((c, i) => (c - was[i]!) / elapsed);
    if (d.every((x) => x === 0)) continue;
    tables[name] = { scans: d[0]!, inserts: d[1]!, updates: d[2]!, deletes: d[3]! };
  }
  return {
    seconds: elapsed,
    // Less the counter's own reading, which lands in this window.
    transactionsPerSecond: (after.transactions - before.transactions - 1) / elapsed,
    queriesPerSecond: q1.map((q, i) => (q - q0[i]!) / elapsed),
    tables,
  };
}

/** Server options of node `i` (1 or 2) at 127.0.0.`i`, in cluster mode or not. */
function nodeOptions(
  i: number,
  databaseUrl: string,
  tls: { cert_file: string; key_file: string },
  cluster: boolean,
): StartBurrowOptions {
  const host = `127.0.0.${i}`;
  return {
    databaseUrl,
    // No liveness pings (`select 1` every second, a process's largest idle cost today, the
    // same in both phases): PostgreSQL reports the statistics of a backend queried every
    // second only once a minute (PGSTAT_MAX_INTERVAL), so they would land in one idle window
    // and not the other. Without them each backend's counts arrive within seconds.
    storage: { query_timeout: 0 },
    server: {
      bind_addr: host,
      admin: { bind_addr: host, bind_port: 0 },
      tls,
      // The default heartbeat and dead_after: the cost the target is about.
      ...(cluster
        ? { cluster: { node_id: `n${i}`, advertise_addr: host, relay_port: 0, secret: SECRET } }
        : {}),
    },
  };
}

/** Waits until n2 relays each of `tunnels`; throws with n2's reason when one is refused. */
async function relaysOpened(n2: Proc, tunnels: string[]): Promise<void> {
  for (const name of tunnels) {
    const event = await n2.waitForEvent(
      (e) =>
        e.tunnel === name && (e.msg === "relay opened" || String(e.msg).startsWith("relay not")),
      30_000,
      `n2 relays tunnel "${name}"`,
    );
    if (event.msg !== "relay opened") {
      throw new Error(`n2 did not relay tunnel "${name}": ${String(event.reason)}`);
    }
  }
}

/**
 * `runs` rounds of `measure`, each through every target in turn; a target
 * that fails once is left out of the later rounds and of the result.
 */
async function interleaved<K extends string, T>(
  section: Section,
  keys: readonly K[],
  runs: number,
  what: string,
  measure: (key: K) => Promise<T>,
): Promise<Partial<Record<K, T[]>>> {
  const out: Partial<Record<K, T[]>> = {};
  const failed = new Set<K>();
  for (let i = 0; i < runs; i++) {
    for (const key of keys) {
      if (failed.has(key)) continue;
      const label = LABELS[key as ClusterRoute] ?? key;
      section.progress(`cluster: ${what} ${label} (run ${i + 1}/${runs})`);
      const value = await attempt(section, `cluster: ${what} ${label}`, () => measure(key));
      if (value === undefined) {
        failed.add(key);
        delete out[key];
        continue;
      }
      (out[key] ??= []).push(value);
    }
  }
  return out;
}

function mapValues<K extends string, T, U>(
  values: Partial<Record<K, T>>,
  f: (value: T) => U,
): Partial<Record<K, U>> {
  const out: Partial<Record<K, U>> = {};
  for (const [key, value] of Object.entries(values) as Array<[K, T]>) out[key] = f(value);
  return out;
}

/** Runs the cluster part; failures land in `section.errors` and leave their rows empty. */
export async function clusterBench(
  section: Section,
  s: ClusterSettings,
): Promise<ClusterResults> {
  const results: ClusterResults = {
    method: `iperf3 -t ${s.seconds} (1 stream); ${s.pingCount} sequential 32 B round trips; ` +
      `${s.firstByteCount} sequential connect-to-first-byte; ${s.rateWorkers} workers × ` +
      `${s.rateSeconds} s connect/read 1 byte/close; medians of ${s.runs} interleaved run(s). ` +
      `Idle: ${s.idleSeconds} s of pg_stat_database per phase, ${
        SETTLE_MS / 1000
      } s after activity`,
    throughput: {},
    cpu: {},
    roundTrip: {},
    firstByte: {},
    rate: {},
  };
  await using stack = section.owner.use(new AsyncDisposableStack());
  const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    section.progress(`cluster: ${what}`);
    try {
      return await fn();
    } catch (error) {
      throw new Error(`${what}: ${(error as Error).message}`);
    }
  };
  try {
    await Deno.mkdir(section.dir, { recursive: true });
    // Disposed last (the stack unwinds in reverse): the nodes stop before it is dropped.
    const db = await step(
      "create a throwaway database on PostgreSQL (BURROW_BENCH_PG, default " +
        "postgres://postgres@127.0.0.1:5432/postgres)",
      async () => stack.use(await throwaway()),
    );
    const counter = stack.use(new DbCounter(db.url));

    const services = stack.use(spawn("services", Deno.execPath(), {
      args: ["run", "--allow-net", new URL("./_services.ts", import.meta.url).pathname],
      stdinPipe: true,
    }));
    const local = JSON.parse(
      await services.waitForLine((l) => l.startsWith("{"), 30_000, "services listening"),
    ) as { echo: number; greet: number };
    const iperf = await startIperfServer("iperf3 -s (cluster)");
    stack.use(iperf.proc);

    // One certificate for both nodes (as a cluster behind one name has) and the TLS hop.
    const { cert, key } = await generateSelfSigned([]);
    const tls = {
      cert_file: join(section.dir, "server.crt"),
      key_file: join(section.dir, "server.key"),
    };
    await Deno.writeTextFile(tls.cert_file, cert);
    await Deno.writeTextFile(tls.key_file, key);
    const hop = stack.use(spawn("TLS echo", Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-ffi",
        new URL("./_tls_echo.ts", import.meta.url).pathname,
        tls.cert_file,
        tls.key_file,
      ],
      stdinPipe: true,
    }));
    const hopPort = (JSON.parse(
      await hop.waitForLine((l) => l.startsWith("{"), 30_000, "TLS echo listening"),
    ) as { port: number }).port;

    const tunnels: BenchTunnel[] = [
      { name: "iperf", localPort: iperf.port },
      { name: "echo", localPort: local.echo },
      { name: "greet", localPort: local.greet },
    ];
    const oneRoundTrip = (hostname: string, port: number) =>
      pingPong(port, { hostname, count: 1, warmup: 0, budgetMs: 5_000 });

    // Today's cost first: the same two processes without cluster mode.
    const today = await attempt(
      section,
      "cluster: idle database cost without cluster mode",
      () =>
        step("two burrowd without cluster mode, idle", async () => {
          await using phase = new AsyncDisposableStack();
          await Deno.mkdir(join(section.dir, "s1"));
          await Deno.mkdir(join(section.dir, "s2"));
          const s1 = phase.use(
            await startBurrow(join(section.dir, "s1"), tunnels, nodeOptions(1, db.url, tls, false)),
          );
          const s2 = (await startBurrowServer(
            join(section.dir, "s2"),
            nodeOptions(2, db.url, tls, false),
          )).proc;
          phase.use(s2);
          await oneRoundTrip("127.0.0.1", s1.remotePorts.get("echo")!);
          section.progress(`cluster: counting today's idle database load (${s.idleSeconds} s)`);
          return await idleWindow(counter, [
            ["127.0.0.1", await adminPort(s1.server)],
            ["127.0.0.2", await adminPort(s2)],
          ], s.idleSeconds);
        }),
    );

    await Deno.mkdir(join(section.dir, "n1"));
    await Deno.mkdir(join(section.dir, "n2"));
    const n1 = await step(
      "start n1 (127.0.0.1, cluster mode) and the client",
      async () =>
        stack.use(
          await startBurrow(join(section.dir, "n1"), tunnels, nodeOptions(1, db.url, tls, true)),
        ),
    );
    const n2 = await step("start n2 (127.0.0.2, cluster mode)", async () => {
      const n2 = (await startBurrowServer(
        join(section.dir, "n2"),
        nodeOptions(2, db.url, tls, true),
      )).proc;
      stack.use(n2);
      await relaysOpened(n2, tunnels.map((t) => t.name));
      // A relay dials its link when it opens; a visitor before the link is up is refused.
      await n2.waitForEvent(
        (e) => e.msg === "node link up" && e.peer === "n1",
        30_000,
        "n2's link to n1 up",
      );
      return n2;
    });
    const targets: Record<ClusterRoute, Target> = {
      direct: { hostname: "127.0.0.1", iperf: iperf.port, echo: local.echo, greet: local.greet },
      n1: {
        hostname: "127.0.0.1",
        iperf: n1.remotePorts.get("iperf")!,
        echo: n1.remotePorts.get("echo")!,
        greet: n1.remotePorts.get("greet")!,
      },
      n2: {
        hostname: "127.0.0.2",
        iperf: n1.remotePorts.get("iperf")!,
        echo: n1.remotePorts.get("echo")!,
        greet: n1.remotePorts.get("greet")!,
      },
    };
    // The first relayed visitor brings the link n2 → n1 up; when it fails, the nodes say why.
    await step("a first visitor through n2", async () => {
      try {
        await oneRoundTrip("127.0.0.2", targets.n2.echo);
      } catch (error) {
        throw new Error(
          `${(error as Error).message}\nn2's last output:\n${n2.tail(10)}\n` +
            `n1's last output:\n${n1.server.tail(10)}`,
        );
      }
    });
    await oneRoundTrip("127.0.0.1", targets.n1.echo);

    if (today) {
      const cluster = await attempt(section, "cluster: idle database cost of the cluster", () => {
        section.progress(`cluster: counting the cluster's idle database load (${s.idleSeconds} s)`);
        return Promise.all([adminPort(n1.server), adminPort(n2)]).then(([a1, a2]) =>
          idleWindow(counter, [["127.0.0.1", a1], ["127.0.0.2", a2]], s.idleSeconds)
        );
      });
      if (cluster) {
        results.idle = {
          today,
          cluster,
          perNode: (cluster.transactionsPerSecond - today.transactionsPerSecond) / 2,
          perNodeQueries: cluster.queriesPerSecond.map((q, i) => q - today.queriesPerSecond[i]!),
        };
      }
    }

    await measure(section, s, targets, hopPort, cert, {
      n1: n1.server.pid,
      n2: n2.pid,
      client: n1.client.pid,
    }, results);
  } catch (error) {
    const message = `cluster: ${(error as Error).message}`;
    section.errors.push(message);
    section.progress(`FAILED ${message.split("\n")[0]}`);
  }
  return results;
}

/** The data-plane rows, interleaved over the routes. */
async function measure(
  section: Section,
  s: ClusterSettings,
  targets: Record<ClusterRoute, Target>,
  hopPort: number,
  cert: string,
  pids: Pids,
  results: ClusterResults,
): Promise<void> {
  const tunnelled = ["n1", "n2"] as const;
  if (!s.quick) {
    // Untimed: lets the JIT and the relays' buffers settle, as the tunnel rows do.
    for (const key of tunnelled) {
      section.progress(`cluster: warm-up iperf3 -t 1 ${LABELS[key]}`);
      await attempt(
        section,
        `cluster: warm-up iperf3 ${LABELS[key]}`,
        () => runIperf(targets[key].iperf, { seconds: 1, hostname: targets[key].hostname }),
      );
    }
  }

  const cpu = new Map<"n1" | "n2", { bytes: number; n1: number; n2: number; client: number }>();
  const throughput = await interleaved(section, CLUSTER_ROUTES, s.runs, "iperf3", async (key) => {
    const t = targets[key];
    const read =
      () => [treeCpuSeconds(pids.n1), treeCpuSeconds(pids.n2), treeCpuSeconds(pids.client)];
    const before = read();
    const r = await runIperf(t.iperf, { seconds: s.seconds, hostname: t.hostname });
    if (key !== "direct") {
      const after = read();
      const sum = cpu.get(key) ?? { bytes: 0, n1: 0, n2: 0, client: 0 };
      sum.bytes += r.bytes;
      sum.n1 += after[0]! - before[0]!;
      sum.n2 += after[1]! - before[1]!;
      sum.client += after[2]! - before[2]!;
      cpu.set(key, sum);
    }
    return r.bitsPerSecond / 1e9;
  });
  results.throughput = mapValues(throughput, (runs) => ({ gbps: median(runs), runs }));
  for (const [key, sum] of cpu) {
    if (!throughput[key]) continue; // failed: its partial totals would mislead
    const gb = sum.bytes / 1e9;
    results.cpu[key] = { gb, n1: sum.n1 / gb, n2: sum.n2 / gb, client: sum.client / gb };
  }

  // The hop's connection stays open across runs, as each route's tunnel does.
  const hopConn = await attempt(
    section,
    "cluster: connect to the TLS echo",
    () => dialTls({ hostname: "127.0.0.1", port: hopPort, caCerts: [cert] }),
  );
  try {
    const keys = hopConn ? [...CLUSTER_ROUTES, "hop" as const] : [...CLUSTER_ROUTES];
    const ping = { count: s.pingCount, size: 32, budgetMs: s.latencyBudgetMs };
    results.roundTrip = mapValues(
      await interleaved<ClusterRoute | "hop", LatencySummary>(
        section,
        keys,
        s.runs,
        "round trips",
        (key) =>
          key === "hop"
            ? roundTrips(hopConn!, ping)
            : pingPong(targets[key].echo, { ...ping, hostname: targets[key].hostname }),
      ),
      latencyMedians,
    );
  } finally {
    hopConn?.close();
  }

  if (!s.quick) {
    for (const key of tunnelled) {
      section.progress(`cluster: warm-up connections/s 1 s ${LABELS[key]}`);
      await attempt(
        section,
        `cluster: warm-up connections/s ${LABELS[key]}`,
        () => connectionRate(targets[key].greet, s.rateWorkers, 1, targets[key].hostname),
      );
    }
  }
  results.firstByte = mapValues(
    await interleaved(
      section,
      CLUSTER_ROUTES,
      s.runs,
      "connect-to-first-byte",
      (key) =>
        connectToFirstByte(targets[key].greet, {
          count: s.firstByteCount,
          budgetMs: s.latencyBudgetMs,
          hostname: targets[key].hostname,
        }),
    ),
    latencyMedians,
  );
  results.rate = mapValues(
    await interleaved<ClusterRoute, RateResult>(
      section,
      CLUSTER_ROUTES,
      s.runs,
      `connections/s (${s.rateWorkers} workers)`,
      (key) =>
        connectionRate(targets[key].greet, s.rateWorkers, s.rateSeconds, targets[key].hostname),
    ),
    rateMedian,
  );
}

/** Column names of {@linkcode clusterRows}' table. */
export const CLUSTER_HEADER = {
  direct: "direct",
  ssh: "via n1",
  burrow: "via n2 (relayed)",
  vsSsh: "n2/n1",
  vsDirect: "n2/direct",
};

/** The data-plane rows: n1 (holds the client) in the "via n1" column, n2 beside it. */
export function clusterRows(r: ClusterResults): Row[] {
  const row = (
    metric: string,
    value: (k: ClusterRoute) => number | undefined,
    digits: number,
    target = "report",
    ok?: (n2: number, n1: number) => boolean,
    detail?: (n2: number, n1: number) => string,
  ): Row => {
    const n1 = value("n1");
    const n2 = value("n2");
    const judged = ok && n1 !== undefined && n2 !== undefined ? ok(n2, n1) : undefined;
    return {
      metric,
      direct: num(value("direct"), digits),
      ssh: num(n1, digits),
      burrow: num(n2, digits),
      vsSsh: ratio(n2, n1),
      vsDirect: ratio(n2, value("direct")),
      target,
      met: verdict(judged, judged !== undefined && detail ? detail(n2!, n1!) : ""),
    };
  };
  const only = (metric: string, value: number | undefined, digits: number): Row => ({
    metric,
    direct: num(value, digits),
    ssh: "—",
    burrow: "—",
    vsSsh: "—",
    vsDirect: "—",
    target: "report",
    met: "—",
  });
  const hop = r.roundTrip.hop;
  const cpu = (process: "n1" | "n2" | "client") => (k: ClusterRoute) =>
    k === "direct" ? undefined : r.cpu[k]?.[process];
  const rows: Row[] = [
    row(
      "TCP 1 stream, Gbit/s",
      (k) => r.throughput[k]?.gbps,
      2,
      `n2 ≥ ${MIN_THROUGHPUT_RATIO.toFixed(1)}× n1`,
      (n2, n1) => n2 / n1 >= MIN_THROUGHPUT_RATIO,
    ),
    row(
      "round trip 32 B p50, µs",
      (k) => r.roundTrip[k]?.p50,
      0,
      hop ? `n2 ≤ n1 + hop p50 (${hop.p50.toFixed(0)})` : "n2 ≤ n1 + hop p50 (FAIL)",
      hop ? (n2, n1) => n2 <= n1 + hop.p50 : undefined,
      hop ? (n2, n1) => `n2 − n1 = ${(n2 - n1).toFixed(0)}` : undefined,
    ),
    row("round trip 32 B p99, µs", (k) => r.roundTrip[k]?.p99, 0),
    only("one loopback TLS hop: round trip 32 B p50, µs", hop?.p50, 0),
    only("one loopback TLS hop: round trip 32 B p99, µs", hop?.p99, 0),
    row("connect-to-first-byte p50, µs", (k) => r.firstByte[k]?.p50, 0),
    row("connect-to-first-byte p99, µs", (k) => r.firstByte[k]?.p99, 0),
    row("new connections/s", (k) => r.rate[k]?.perSecond, 0),
    row("n1 CPU-s per GB (iperf3 runs)", cpu("n1"), 2),
    row("n2 CPU-s per GB (iperf3 runs)", cpu("n2"), 2),
    row("client CPU-s per GB (iperf3 runs)", cpu("client"), 2),
  ];
  return rows;
}

/** Column names of {@linkcode idleRows}' table. */
export const IDLE_HEADER = {
  direct: "—",
  ssh: "today (no cluster)",
  burrow: "cluster",
  vsSsh: "cluster − today",
  vsDirect: "—",
};

/** The idle database rows: today's two burrowd against the same two as cluster nodes. */
export function idleRows(r: ClusterResults): Row[] {
  const idle = r.idle;
  const judge = (extra: number | undefined): string => {
    if (extra === undefined) return "—";
    const over = extra - MAX_EXTRA_QUERIES_PER_NODE;
    return verdict(over <= 0, over > 0 ? `${over.toFixed(2)}/s over` : "");
  };
  const row = (
    metric: string,
    today: number | undefined,
    cluster: number | undefined,
    judged = false,
  ): Row => {
    const extra = today === undefined || cluster === undefined ? undefined : cluster - today;
    return {
      metric,
      direct: "—",
      ssh: num(today, 2),
      burrow: num(cluster, 2),
      vsSsh: num(extra, 2),
      vsDirect: "—",
      target: judged ? `≤ ${MAX_EXTRA_QUERIES_PER_NODE}/s more` : "report",
      met: judged ? judge(extra) : "—",
    };
  };
  const perNode = idle
    ? [idle.today.transactionsPerSecond / 2, idle.cluster.transactionsPerSecond / 2]
    : [];
  return [
    row(
      "PostgreSQL transactions/s, both processes",
      idle?.today.transactionsPerSecond,
      idle?.cluster.transactionsPerSecond,
    ),
    row("PostgreSQL transactions/s per node (÷ 2)", perNode[0], perNode[1], true),
    ...[0, 1].map((i) =>
      row(
        `n${i + 1} queries/s, its own count (burrow_db_queries_total, no pings)`,
        idle?.today.queriesPerSecond[i],
        idle?.cluster.queriesPerSecond[i],
        true,
      )
    ),
  ];
}

/** Where the cluster's extra transactions went, table by table, per second. */
export function idleTables(r: ClusterResults): string {
  const idle = r.idle;
  if (!idle) return "";
  const names = new Set([...Object.keys(idle.today.tables), ...Object.keys(idle.cluster.tables)]);
  const parts: string[] = [];
  for (const name of [...names].sort()) {
    const t = idle.today.tables[name];
    const c = idle.cluster.tables[name];
    const field = (f: "scans" | "inserts" | "updates" | "deletes") => (c?.[f] ?? 0) - (t?.[f] ?? 0);
    const fields = (["scans", "inserts", "updates", "deletes"] as const)
      .map((f) => [f, field(f)] as const)
      .filter(([, v]) => Math.abs(v) >= 0.005)
      .map(([f, v]) => `${v.toFixed(2)} ${f}`);
    if (fields.length) parts.push(`${name}: ${fields.join(", ")}`);
  }
  return parts.length ? parts.join("; ") : "no table's counters moved";
}

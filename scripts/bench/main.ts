/**
 * `deno task bench`: Burrow against a direct connection and against OpenSSH's
 * reverse tunnel (`ssh -R`), all measured in one run on 127.0.0.1.
 *
 * Rows: TCP throughput (iperf3, one and eight streams), small request/response
 * round trips, new connections (connect-to-first-byte and connections per
 * second), resident memory per idle relayed connection, and CPU seconds per
 * GB moved; then storage and monitoring costs; then HTTP requests per second
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
 * ```
 *
 * Honours `BURROWD_BIN` / `BURROW_BIN` to measure compiled binaries.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startBurrow } from "./_burrow.ts";
import { runIperf, startIperfServer } from "./_iperf.ts";
import {
  connectionRate,
  connectToFirstByte,
  type LatencySummary,
  median,
  pingPong,
  type RateResult,
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
  httpSeconds: 1,
  udpSeconds: 1,
  footprintSettleMs: 3_000,
};

const AES_GCM = "aes128-gcm@openssh.com";

type RouteKey = "direct" | "sshDefault" | "sshGcm" | "burrow";

/** One way to reach the local services, with the ports to connect to. */
interface Route {
  key: RouteKey;
  label: string;
  iperf: number;
  echo: number;
  greet: number;
  /** The relay's processes; absent for direct. */
  relay?: RelayPids;
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
  roundTrip: PerRoute<LatencySummary>;
  firstByte: PerRoute<LatencySummary>;
  rate: PerRoute<RateResult>;
  memory: PerRoute<MemoryResult>;
  footprint?: FootprintResults;
  storage?: StorageResults;
  monitoring?: MonitoringResults;
  http?: HttpResults;
  udp?: UdpResults;
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

const PARTS = ["memory", "tunnel", "storage", "monitoring", "http", "udp"] as const;
type Part = typeof PARTS[number];

/** Starts the services, the iperf3 servers and the relays; returns the routes that came up. */
async function setUp(stack: AsyncDisposableStack, dir: string, errors: string[]): Promise<Route[]> {
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
    label: "direct",
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
      const label = cipher ? `ssh -R -c ${cipher}` : "ssh -R";
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
      label: "Burrow",
      iperf: burrow.remotePorts.get("iperf")!,
      echo: burrow.remotePorts.get("echo")!,
      greet: burrow.remotePorts.get("greet")!,
      relay: { server: burrow.server.pid, client: burrow.client.pid },
    });
  }
  return routes;
}

/**
 * iperf3 `runs` times through each route, interleaved so that drift on the
 * machine hits every route alike. With `cpu`, adds up the relays' CPU time.
 */
async function throughput(
  routes: Route[],
  parallel: number,
  settings: Settings,
  errors: string[],
  cpu?: PerRoute<CpuPerGB>,
): Promise<PerRoute<Throughput>> {
  const runs = new Map<RouteKey, number[]>();
  const failed = new Set<RouteKey>();
  const totals = new Map<RouteKey, { bytes: number; server: number; client: number }>();
  for (let i = 0; i < settings.runs; i++) {
    for (const route of routes) {
      if (failed.has(route.key)) continue;
      progress(`iperf3 -P ${parallel} ${route.label} (run ${i + 1}/${settings.runs})`);
      const relay = route.relay;
      const result = await attempt(
        errors,
        `iperf3 -P ${parallel} through ${route.label}`,
        async () => {
          const before = relay && [treeCpuSeconds(relay.server), treeCpuSeconds(relay.client)];
          const r = await runIperf(route.iperf, { seconds: settings.seconds, parallel });
          if (relay && before) {
            const t = totals.get(route.key) ?? { bytes: 0, server: 0, client: 0 };
            t.bytes += r.bytes;
            t.server += treeCpuSeconds(relay.server) - before[0]!;
            t.client += treeCpuSeconds(relay.client) - before[1]!;
            totals.set(route.key, t);
          }
          return r;
        },
      );
      if (!result) {
        failed.add(route.key);
        runs.delete(route.key);
        totals.delete(route.key);
        continue;
      }
      runs.set(route.key, [...runs.get(route.key) ?? [], result.bitsPerSecond / 1e9]);
    }
  }
  if (cpu) {
    for (const [key, t] of totals) {
      const gb = t.bytes / 1e9;
      cpu[key] = { gb, server: t.server / gb, client: t.client / gb };
    }
  }
  const out: PerRoute<Throughput> = {};
  for (const [key, values] of runs) out[key] = { gbps: median(values), runs: values };
  return out;
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
  const relayed = routes.filter((r) => r.relay);
  const pick = (...keys: RouteKey[]) => routes.filter((r) => keys.includes(r.key));
  const core = pick("direct", "sshGcm", "burrow");

  // Memory first, while the relays are fresh: after the throughput runs their
  // heaps hold freed buffers that new connections would reuse unseen.
  results.memory = await perRoute(
    core.filter((r) => r.relay),
    `RSS with ${s.memoryConnections} idle connections`,
    errors,
    (r) => memoryPerConnection(r.echo, r.relay!, { connections: s.memoryConnections }),
  );

  if (!s.quick) {
    // Untimed: lets the JIT and the relays' buffers settle before measuring.
    await perRoute(
      relayed,
      "warm-up iperf3 -t 1",
      errors,
      (r) => runIperf(r.iperf, { seconds: 1 }),
    );
  }
  results.throughput1 = await throughput(routes, 1, s, errors, results.cpu);
  results.throughput8 = await throughput(core, 8, s, errors);

  results.roundTrip = await perRoute(
    core,
    "round trips",
    errors,
    (r) => pingPong(r.echo, { count: s.pingCount, size: 32, budgetMs: s.latencyBudgetMs }),
  );
  results.firstByte = await perRoute(
    core,
    "connect-to-first-byte",
    errors,
    (r) => connectToFirstByte(r.greet, { count: s.firstByteCount, budgetMs: s.latencyBudgetMs }),
  );
  results.rate = await perRoute(
    core,
    `connections/s (${s.rateWorkers} workers)`,
    errors,
    (r) => connectionRate(r.greet, s.rateWorkers, s.rateSeconds),
  );
}

function rows(r: Results): Row[] {
  const out: Row[] = [];
  const gbps = (t: PerRoute<Throughput>, k: RouteKey) => t[k]?.gbps;
  const throughputRow = (
    metric: string,
    t: PerRoute<Throughput>,
    ssh: RouteKey,
    min: number,
  ) => {
    const b = gbps(t, "burrow");
    const vs = gbps(t, ssh);
    out.push({
      metric,
      direct: num(gbps(t, "direct"), 2),
      ssh: num(vs, 2),
      burrow: num(b, 2),
      vsSsh: ratio(b, vs),
      vsDirect: ratio(b, gbps(t, "direct")),
      target: `≥ ${min.toFixed(1)}× ssh`,
      met: verdict(b !== undefined && vs !== undefined ? b / vs >= min : undefined),
    });
  };
  throughputRow("TCP 1 stream, Gbit/s (ssh default cipher)", r.throughput1, "sshDefault", 1.4);
  throughputRow("TCP 1 stream, Gbit/s (ssh aes128-gcm)", r.throughput1, "sshGcm", 1.0);
  throughputRow("TCP 8 streams, Gbit/s (ssh aes128-gcm)", r.throughput8, "sshGcm", 1.2);

  const latencyRow = (
    metric: string,
    value: (k: RouteKey) => number | undefined,
    target: string,
    ok: (burrow: number, direct: number) => [boolean, string],
  ) => {
    const b = value("burrow");
    const d = value("direct");
    const s = value("sshGcm");
    const judged = b !== undefined && d !== undefined && Number.isFinite(b) ? ok(b, d) : undefined;
    out.push({
      metric,
      direct: num(d, 0),
      ssh: num(s, 0),
      burrow: num(b, 0),
      vsSsh: ratio(b, s),
      vsDirect: ratio(b, d),
      target,
      met: judged ? verdict(judged[0], judged[1]) : "—",
    });
  };
  const added = (limit: number) => (b: number, d: number): [boolean, string] => [
    b - d <= limit,
    `+${(b - d).toFixed(0)} µs`,
  ];
  latencyRow(
    "round trip 32 B p50, µs",
    (k) => r.roundTrip[k]?.p50,
    "≤ direct + 60 µs",
    added(60),
  );
  latencyRow(
    "round trip 32 B p99, µs",
    (k) => r.roundTrip[k]?.p99,
    "≤ direct + 250 µs",
    added(250),
  );
  latencyRow(
    "connect-to-first-byte p50, µs",
    (k) => r.firstByte[k]?.p50,
    "≤ 500 µs",
    (b) => [b <= 500, ""],
  );
  latencyRow(
    "connect-to-first-byte p99, µs",
    (k) => r.firstByte[k]?.p99,
    "report",
    () => [true, ""],
  );
  out[out.length - 1]!.met = "—";
  latencyRow(
    `new connections/s (${r.settings.rateWorkers} workers)`,
    (k) => r.rate[k]?.perSecond,
    "≥ 5000/s",
    (b) => [b >= 5000, ""],
  );

  const relayRow = (
    metric: string,
    value: (k: RouteKey) => number | undefined,
    ssh: RouteKey,
    digits: number,
    target = "report",
    ok?: (b: number) => boolean,
  ) => {
    const b = value("burrow");
    const s = value(ssh);
    out.push({
      metric,
      direct: "—",
      ssh: num(s, digits),
      burrow: num(b, digits),
      vsSsh: ratio(b, s),
      vsDirect: "—",
      target,
      met: ok && b !== undefined ? verdict(ok(b)) : "—",
    });
  };
  relayRow(
    "server RSS per idle conn, KiB (sshd)",
    (k) => r.memory[k]?.serverPerConnKiB,
    "sshGcm",
    1,
    "≤ 16 KiB",
    (b) => b <= 16,
  );
  relayRow(
    "client RSS per idle conn, KiB (ssh)",
    (k) => r.memory[k]?.clientPerConnKiB,
    "sshGcm",
    1,
  );
  relayRow("server CPU-s per GB (sshd aes128-gcm)", (k) => r.cpu[k]?.server, "sshGcm", 2);
  relayRow("client CPU-s per GB (ssh aes128-gcm)", (k) => r.cpu[k]?.client, "sshGcm", 2);
  relayRow("server CPU-s per GB (sshd default)", (k) => r.cpu[k]?.server, "sshDefault", 2);
  relayRow("client CPU-s per GB (ssh default)", (k) => r.cpu[k]?.client, "sshDefault", 2);
  return out;
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
    `method:  iperf3 -t ${s.seconds}, median of ${s.runs} interleaved run(s); ` +
    `${s.pingCount} sequential 32 B round trips on one TCP_NODELAY connection; ` +
    `${s.firstByteCount} sequential connect-to-first-byte; ` +
    `${s.rateWorkers} workers × ${s.rateSeconds} s connect/read 1 byte/close; ` +
    `RSS (VmRSS) delta over ${s.memoryConnections} echoed idle connections; ` +
    `CPU (utime+stime) over the single-stream runs.`,
    `         ssh -R column: aes128-gcm@openssh.com unless the row says default cipher. ` +
    `All on 127.0.0.1.`,
  ].join("\n");
}

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
        "  --only PART  just the memory, tunnel, storage, monitoring, http or udp rows\n\n" +
        "Measures Burrow against a direct connection, `ssh -R`, nginx and pipenet on 127.0.0.1.\n" +
        "BURROWD_BIN / BURROW_BIN select compiled binaries instead of the sources.",
    );
    return 0;
  }
  const settings = values.quick ? QUICK : FULL;
  if (values.only !== undefined && !(PARTS as readonly string[]).includes(values.only)) {
    console.error(`bench: --only must be one of ${PARTS.join(", ")}, not "${values.only}"`);
    return 2;
  }
  const only = values.only as Part | undefined;
  const results: Results = {
    machine: await describeMachine(),
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
        const routes = await setUp(stack, dir.path, results.errors);
        progress(`routes up: ${routes.map((r) => r.label).join(", ")}`);
        await measureAll(routes, settings, results);
        if (only !== "tunnel") {
          const greet = routes.find((r) => r.key === "direct")!.greet;
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
  if (only !== "http" && only !== "udp" && only !== "memory") {
    parts.push(describeSettings(settings));
  }
  if (results.footprint) {
    parts.push(
      "",
      `Memory of idle servers: ${results.footprint.method}; target: the memory issue's limits:`,
      formatTable(footprintRows(results.footprint), FOOTPRINT_HEADER),
    );
  }
  if (only === undefined || only === "tunnel") parts.push("", formatTable(rows(results)));
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

/**
 * The cost of monitoring: the same Burrow twice, once with Prometheus
 * metrics off and no access log, once with metrics on and every connection
 * written to an access log file; single-stream TCP throughput and the
 * connection rate measured through both, interleaved, in one run.
 *
 * @module
 */

import { startBurrow } from "./_burrow.ts";
import { runIperf, startIperfServer } from "./_iperf.ts";
import { connectionRate, median } from "./_latency.ts";

/** What the monitoring part measured. */
export interface MonitoringResults {
  /** iperf3 -P 1 Gbit/s medians. */
  throughput?: { off: number; on: number; runs: { off: number[]; on: number[] } };
  /** New connections per second. */
  rate?: { off: number; on: number };
  /** Access log lines written during the "on" runs. */
  accessLines?: number;
}

/** Settings of {@linkcode monitoringBench}. */
export interface MonitoringSettings {
  runs: number;
  seconds: number;
  rateWorkers: number;
  rateSeconds: number;
}

/** Runs the comparison; failures land in `errors`. */
export async function monitoringBench(
  dir: string,
  s: MonitoringSettings,
  greetPort: number,
  progress: (m: string) => void,
  errors: string[],
): Promise<MonitoringResults> {
  const out: MonitoringResults = {};
  try {
    await using stack = new AsyncDisposableStack();
    const iperf = await startIperfServer("iperf3 -s (monitoring)");
    stack.use(iperf.proc);
    const tunnels = [
      { name: "iperf", localPort: iperf.port },
      { name: "greet", localPort: greetPort },
    ];
    await Deno.mkdir(`${dir}/monitoring-off`);
    await Deno.mkdir(`${dir}/monitoring-on`);
    const off = stack.use(
      await startBurrow(`${dir}/monitoring-off`, tunnels, { server: { metrics: false } }),
    );
    const accessFile = `${dir}/monitoring-on/access.log`;
    const on = stack.use(
      await startBurrow(`${dir}/monitoring-on`, tunnels, {
        server: {
          metrics: true,
          log: { level: "info", format: "json", access_file: accessFile },
        },
      }),
    );
    const runs = { off: [] as number[], on: [] as number[] };
    for (let i = 0; i < s.runs; i++) {
      for (const [label, b] of [["off", off], ["on", on]] as const) {
        progress(`iperf3 -P 1 Burrow, monitoring ${label} (run ${i + 1}/${s.runs})`);
        const r = await runIperf(b.remotePorts.get("iperf")!, { seconds: s.seconds, parallel: 1 });
        runs[label].push(r.bitsPerSecond / 1e9);
      }
    }
    out.throughput = { off: median(runs.off), on: median(runs.on), runs };
    const rates = { off: [] as number[], on: [] as number[] };
    for (let i = 0; i < Math.max(1, Math.min(2, s.runs)); i++) {
      for (const [label, b] of [["off", off], ["on", on]] as const) {
        progress(`connections/s Burrow, monitoring ${label}`);
        const r = await connectionRate(b.remotePorts.get("greet")!, s.rateWorkers, s.rateSeconds);
        rates[label].push(r.perSecond);
      }
    }
    out.rate = { off: median(rates.off), on: median(rates.on) };
    try {
      out.accessLines = (await Deno.readTextFile(accessFile)).split("\n").filter(Boolean).length;
    } catch {
      out.accessLines = 0;
    }
  } catch (error) {
    const message = `monitoring on/off: ${(error as Error).message}`;
    errors.push(message);
    progress(`FAILED ${message.split("\n")[0]}`);
  }
  return out;
}

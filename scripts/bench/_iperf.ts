/**
 * iperf3 servers and client runs.
 *
 * @module
 */

import { freePort, type Proc, run, spawn } from "./_procs.ts";

/** One iperf3 client run, as the receiver saw it. */
export interface IperfResult {
  bitsPerSecond: number;
  bytes: number;
  seconds: number;
  /** UDP only: datagrams the receiver missed, in % of those sent. */
  lostPercent?: number;
}

/** Options of {@linkcode runIperf}. */
export interface IperfOptions {
  /** Test length in seconds (`-t`). */
  seconds: number;
  /** Parallel streams (`-P`). Default 1. */
  parallel?: number;
  /**
   * UDP instead of TCP (`-u`): the sending rate (`-b`, e.g. `"300M"`, `"0"`
   * for as fast as possible) and the datagram payload size (`-l`).
   */
  udp?: { bitrate: string; length: number };
  /** Address to connect to (`-c`). Default `127.0.0.1`. */
  hostname?: string;
}

/** An `iperf3 -s` on a free loopback port, ready when this resolves. */
export async function startIperfServer(name: string): Promise<{ proc: Proc; port: number }> {
  const port = freePort();
  const proc = spawn(name, "iperf3", {
    args: ["-s", "-B", "127.0.0.1", "-p", String(port), "--forceflush"],
  });
  await proc.waitForLine((l) => l.includes("Server listening on"), 5000, "iperf3 listening");
  return { proc, port };
}

/** Runs `iperf3 -c 127.0.0.1 -p port -J` and returns the receiver's totals. */
export async function runIperf(port: number, options: IperfOptions): Promise<IperfResult> {
  const args = [
    "-c",
    options.hostname ?? "127.0.0.1",
    "-p",
    String(port),
    "-t",
    String(options.seconds),
    "-P",
    String(options.parallel ?? 1),
    "--connect-timeout",
    "5000",
    "-J",
    ...(options.udp ? ["-u", "-b", options.udp.bitrate, "-l", String(options.udp.length)] : []),
  ];
  let text: string;
  try {
    text = await run("iperf3", args, (options.seconds + 20) * 1000);
  } catch (error) {
    // With -J, iperf3 reports its error inside the JSON on stdout.
    throw new Error(`iperf3 to port ${port}: ${(error as Error).message.slice(0, 400)}`);
  }
  const report = JSON.parse(text) as {
    error?: string;
    end?: {
      sum_received?: {
        bits_per_second: number;
        bytes: number;
        seconds: number;
        lost_percent?: number;
      };
    };
  };
  const sum = report.end?.sum_received;
  if (report.error || !sum) {
    throw new Error(`iperf3 to port ${port}: ${report.error ?? "no sum_received in report"}`);
  }
  return {
    bitsPerSecond: sum.bits_per_second,
    bytes: sum.bytes,
    seconds: sum.seconds,
    ...(options.udp ? { lostPercent: sum.lost_percent ?? NaN } : {}),
  };
}

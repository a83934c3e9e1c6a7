/**
 * UDP rows of the benchmark: `iperf3 -u` to an `iperf3 -s` directly, through
 * Burrow's UDP tunnel and through an nginx `stream` relay, measured in the
 * same run: datagram loss and the rate received at a fixed 450 and 900 Mbit/s,
 * and the rate received when the sender goes as fast as it can (`-b 0`).
 *
 * iperf3 runs its test over a TCP control connection to the same port number
 * as the datagrams, so each relay carries both: Burrow a TCP and a UDP tunnel
 * on one public port number, nginx a `listen P` and a `listen P udp` server.
 *
 * @module
 */

import { join } from "node:path";
import { startBurrow } from "./_burrow.ts";
import { type IperfResult, runIperf, startIperfServer } from "./_iperf.ts";
import { median } from "./_latency.ts";
import { startNginx } from "./_nginx.ts";
import { num, ratio, type Row, verdict } from "./_report.ts";
import { attempt, type Section } from "./_section.ts";

/** Settings of {@linkcode udpBench}. */
export interface UdpSettings {
  /** iperf3 runs per route and rate; the median is reported. */
  runs: number;
  /** iperf3 `-t`. */
  udpSeconds: number;
}

/** The routes, in table order. */
export const UDP_ROUTES = ["direct", "nginx", "burrow"] as const;
/** One way to reach the iperf3 server. */
export type UdpRouteKey = typeof UDP_ROUTES[number];

const LABELS: Record<UdpRouteKey, string> = {
  direct: "direct",
  nginx: "nginx stream",
  burrow: "Burrow",
};

/** Datagram payload, bytes (`-l`): below a 1500-byte MTU with IP/UDP headers. */
export const UDP_LENGTH = 1400;
/** The sending rates measured, in table order (`-b`; `"0"`: as fast as the sender can). */
export const UDP_RATES = ["450M", "900M", "0"] as const;
/** One sending rate of {@linkcode UDP_RATES}. */
export type UdpRate = typeof UDP_RATES[number];

/** Medians of one route at one sending rate. */
export interface UdpMeasurement {
  receivedMbps: number;
  lostPercent: number;
  runs: { receivedMbps: number; lostPercent: number }[];
}

/** What the UDP part measured; part of `--json`. */
export interface UdpResults {
  method: string;
  /** Per sending rate (`-b`), per route. */
  rates: Partial<Record<UdpRate, Partial<Record<UdpRouteKey, UdpMeasurement>>>>;
}

/** A port number free for both TCP and UDP on all addresses a moment ago. */
function freeTcpUdpPort(): number {
  for (let i = 0; i < 100; i++) {
    const tcp = Deno.listen({ hostname: "0.0.0.0", port: 0 });
    const port = (tcp.addr as Deno.NetAddr).port;
    try {
      Deno.listenDatagram({ hostname: "0.0.0.0", port, transport: "udp" }).close();
      return port;
    } catch {
      // Taken for UDP: try another.
    } finally {
      tcp.close();
    }
  }
  throw new Error("No port number free for both TCP and UDP after 100 tries");
}

/** Runs the UDP part; failures land in `section.errors` and leave their routes out. */
export async function udpBench(section: Section, s: UdpSettings): Promise<UdpResults> {
  const results: UdpResults = {
    method: `iperf3 -u -l ${UDP_LENGTH} -t ${s.udpSeconds}, at ` +
      `${UDP_RATES.map((b) => `-b ${b}`).join(", ")}, ` +
      `median of ${s.runs} interleaved run(s); receiver's figures`,
    rates: {},
  };
  await using stack = section.owner.use(new AsyncDisposableStack());
  try {
    await Deno.mkdir(section.dir, { recursive: true });
    // One iperf3 server per route, as in the TCP rows.
    const servers = new Map<UdpRouteKey, number>();
    for (const key of UDP_ROUTES) {
      const { proc, port } = await startIperfServer(`iperf3 -s (UDP, ${key})`);
      stack.use(proc);
      servers.set(key, port);
    }
    const ports = new Map<UdpRouteKey, number>([["direct", servers.get("direct")!]]);

    // The two relays start side by side.
    const nginx = attempt(section, "start nginx stream relay (UDP)", async () => {
      const port = freeTcpUdpPort();
      const target = `127.0.0.1:${servers.get("nginx")!}`;
      stack.use(
        await startNginx("nginx (stream)", join(section.dir, "nginx"), {
          readyPort: port,
          stream: `
  # iperf3's control connection.
  server {
    listen 127.0.0.1:${port};
    proxy_pass ${target};
  }
  # Its datagrams; replies unlimited (no proxy_responses), one session per client address.
  server {
    listen 127.0.0.1:${port} udp;
    proxy_pass ${target};
    proxy_timeout 30s;
  }`,
        }),
      );
      ports.set("nginx", port);
    });

    const burrow = attempt(section, "start Burrow (UDP)", async () => {
      const port = freeTcpUdpPort();
      const local = servers.get("burrow")!;
      const dir = join(section.dir, "burrow");
      await Deno.mkdir(dir);
      const burrow = stack.use(
        await startBurrow(dir, [
          { name: "iperf-control", localPort: local, remotePort: port },
          { name: "iperf-data", type: "udp", localPort: local, remotePort: port },
        ]),
      );
      for (const name of ["iperf-control", "iperf-data"]) {
        if (burrow.remotePorts.get(name) !== port) {
          throw new Error(`Tunnel "${name}" got port ${burrow.remotePorts.get(name)}, not ${port}`);
        }
      }
      ports.set("burrow", port);
    });
    await Promise.all([nginx, burrow]);
    section.progress(
      `UDP routes up: ${UDP_ROUTES.filter((k) => ports.has(k)).map((k) => LABELS[k]).join(", ")}`,
    );

    for (const bitrate of UDP_RATES) {
      const runs = new Map<UdpRouteKey, IperfResult[]>();
      const failed = new Set<UdpRouteKey>();
      for (let i = 0; i < s.runs; i++) {
        for (const key of UDP_ROUTES) {
          const port = ports.get(key);
          if (port === undefined || failed.has(key)) continue;
          section.progress(`iperf3 -u -b ${bitrate} ${LABELS[key]} (run ${i + 1}/${s.runs})`);
          const r = await attempt(
            section,
            `iperf3 -u -b ${bitrate} through ${LABELS[key]}`,
            () =>
              runIperf(port, {
                seconds: s.udpSeconds,
                udp: { bitrate, length: UDP_LENGTH },
              }),
          );
          if (!r) {
            failed.add(key);
            runs.delete(key);
            continue;
          }
          runs.set(key, [...runs.get(key) ?? [], r]);
        }
      }
      const measured: Partial<Record<UdpRouteKey, UdpMeasurement>> = {};
      results.rates[bitrate] = measured;
      for (const [key, list] of runs) {
        const each = list.map((r) => ({
          receivedMbps: r.bitsPerSecond / 1e6,
          lostPercent: r.lostPercent ?? NaN,
        }));
        measured[key] = {
          receivedMbps: median(each.map((e) => e.receivedMbps)),
          lostPercent: median(each.map((e) => e.lostPercent)),
          runs: each,
        };
      }
    }
  } catch (error) {
    const message = `UDP: ${(error as Error).message}`;
    section.errors.push(message);
    section.progress(`FAILED ${message.split("\n")[0]}`);
  }
  return results;
}

/** Table rows: the "other" column is the nginx stream relay. */
export function udpRows(r: UdpResults): Row[] {
  const row = (
    metric: string,
    value: (k: UdpRouteKey) => number | undefined,
    digits: number,
    target = "report",
    ok?: (burrow: number, nginx: number | undefined) => boolean | undefined,
  ): Row => {
    const b = value("burrow");
    const n = value("nginx");
    return {
      metric,
      direct: num(value("direct"), digits),
      ssh: num(n, digits),
      burrow: num(b, digits),
      vsSsh: ratio(b, n),
      vsDirect: ratio(b, value("direct")),
      target,
      met: ok && b !== undefined ? verdict(ok(b, n)) : "—",
    };
  };
  const at = (rate: UdpRate, field: "receivedMbps" | "lostPercent") => (k: UdpRouteKey) =>
    r.rates[rate]?.[k]?.[field];
  return [
    row("UDP loss at 450 Mbit/s, %", at("450M", "lostPercent"), 2, "≤ 1.5%", (b) => b <= 1.5),
    row("UDP received at 450 Mbit/s, Mbit/s", at("450M", "receivedMbps"), 0),
    row("UDP loss at 900 Mbit/s, %", at("900M", "lostPercent"), 2),
    row(
      "UDP received at 900 Mbit/s, Mbit/s",
      at("900M", "receivedMbps"),
      0,
      "≥ 0.9× other",
      (b, n) => n === undefined ? undefined : b / n >= 0.9,
    ),
    row(
      "UDP received at -b 0 (unlimited), Mbit/s",
      at("0", "receivedMbps"),
      0,
      "≥ 0.4× other",
      (b, n) => n === undefined ? undefined : b / n >= 0.4,
    ),
    row("UDP loss at -b 0 (unlimited), %", at("0", "lostPercent"), 2),
  ];
}

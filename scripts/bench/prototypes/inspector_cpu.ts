/**
 * What the request inspector costs the client, in CPU per request: two
 * Burrow pairs in front of one nginx origin serving 1 KiB, one client with
 * `client.inspect` and one without, driven in turns by `wrk -c50` for
 * `seconds`; each client's CPU time (from /proc) over its run divided by
 * the requests it served. Client CPU per request moves far less with the
 * machine's other work than the req/s ratio of `deno task bench --only
 * http`, so it is the figure to judge a change to the recorder by. With
 * `PERF=1`, each run also counts the client's system calls per request
 * (`perf stat` on syscall tracepoints). With `TOGETHER=1` both pairs are
 * driven at the same time (`wrk -t1 -c25` each), so that what else the
 * machine does falls on both alike: the steadier comparison.
 *
 *   deno run -A scripts/bench/prototypes/inspector_cpu.ts [rounds] [seconds]
 *
 * @module
 */

import { join } from "node:path";
import { startBurrow } from "../_burrow.ts";
import { startNginx } from "../_nginx.ts";
import { freePort, tempDir, treeCpuSeconds } from "../_procs.ts";
import { runWrk, wrkScript } from "../_wrk.ts";

const ROUNDS = Number(Deno.args[0] ?? 5);
const SECONDS = Number(Deno.args[1] ?? 5);
const HOST = "bench.burrow.test";
const SYSCALLS = ["sendto", "recvfrom", "write", "read", "epoll_wait", "futex"];

await using dir = await tempDir("burrow-inspector-cpu-");
await using stack = new AsyncDisposableStack();
const www = join(dir.path, "www");
await Deno.mkdir(www);
await Deno.writeFile(join(www, "1KiB.bin"), crypto.getRandomValues(new Uint8Array(1024)));
const originPort = freePort();
stack.use(
  await startNginx("origin", join(dir.path, "origin"), {
    readyPort: originPort,
    http: `
  tcp_nodelay on;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:${originPort}; root ${www}; }`,
  }),
);

interface Pair {
  label: "off" | "on";
  port: number;
  clientPid: number;
  serverPid: number;
  cpu: number[];
  serverCpu: number[];
  rates: number[];
}
const pairs: Pair[] = [];
for (const label of ["off", "on"] as const) {
  const port = freePort();
  const d = join(dir.path, label);
  await Deno.mkdir(d);
  const b = stack.use(
    await startBurrow(d, [
      { name: "web", type: "http", localPort: originPort, customDomains: [HOST] },
    ], {
      server: { vhost_http_port: port },
      client: label === "on" ? { inspect: { addr: `127.0.0.1:${freePort()}` } } : {},
    }),
  );
  pairs.push({
    label,
    port,
    clientPid: b.client.pid,
    serverPid: b.server.pid,
    cpu: [],
    serverCpu: [],
    rates: [],
  });
}

/** Starts counting `pid`'s system calls; the returned function stops and reads the counts. */
function countSyscalls(pid: number): () => Promise<Map<string, number>> {
  const perf = new Deno.Command("perf", {
    args: [
      "stat",
      "-x,",
      "-e",
      SYSCALLS.map((s) => `syscalls:sys_enter_${s}`).join(","),
      "-p",
      String(pid),
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return async () => {
    perf.kill("SIGINT");
    const text = new TextDecoder().decode((await perf.output()).stderr);
    const counts = new Map<string, number>();
    for (const line of text.trim().split("\n")) {
      const [count, , event] = line.split(",");
      if (event?.startsWith("syscalls:sys_enter_")) {
        counts.set(event.slice("syscalls:sys_enter_".length), Number(count));
      }
    }
    return counts;
  };
}

const script = await wrkScript(dir.path);
const url = (p: Pair) => `http://127.0.0.1:${p.port}/1KiB.bin`;
const served = new Map<string, number>();
for (const p of pairs) {
  served.set(
    p.label,
    (await runWrk(url(p), script, { seconds: Number(Deno.env.get("WARM") ?? 2), host: HOST }))
      .requests,
  );
}
/** One measured run of `p` (wrk with `connections`), with its client's and server's CPU. */
async function measure(p: Pair, round: number, connections: number): Promise<void> {
  const before = treeCpuSeconds(p.clientPid);
  const serverBefore = treeCpuSeconds(p.serverPid);
  const stop = Deno.env.get("PERF") ? countSyscalls(p.clientPid) : null;
  const w = await runWrk(url(p), script, {
    seconds: SECONDS,
    host: HOST,
    connections,
    threads: TOGETHER ? 1 : 2,
  });
  const us = ((treeCpuSeconds(p.clientPid) - before) * 1e6) / w.requests;
  const serverUs = ((treeCpuSeconds(p.serverPid) - serverBefore) * 1e6) / w.requests;
  const counts = stop ? await stop() : null;
  p.cpu.push(us);
  p.serverCpu.push(serverUs);
  p.rates.push(w.requestsPerSecond);
  served.set(p.label, served.get(p.label)! + w.requests);
  const calls = counts
    ? "; system calls per request: " +
      [...counts].map(([name, n]) => `${name} ${(n / w.requests).toFixed(2)}`).join(", ")
    : "";
  console.log(
    `round ${round} inspector ${p.label.padEnd(3)}: ${w.requestsPerSecond.toFixed(0)} req/s, ` +
      `client ${us.toFixed(1)} µs CPU per request (server ${serverUs.toFixed(1)})${calls}`,
  );
}

// TOGETHER=1: both pairs driven at once (wrk -t1 -c25 each), so that what else the machine
// does falls on both alike; otherwise in turns, as `deno task bench` does.
const TOGETHER = Deno.env.get("TOGETHER") === "1";
for (let round = 1; round <= ROUNDS; round++) {
  if (TOGETHER) await Promise.all(pairs.map((p) => measure(p, round, 25)));
  else for (const p of pairs) await measure(p, round, 50);
}
console.log(
  `requests served in all (warm-up included): ${
    [...served].map(([l, n]) => `${l} ${n}`).join(", ")
  }`,
);
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const [off, on] = pairs as [Pair, Pair];
console.log(
  `median client CPU per request: off ${median(off.cpu).toFixed(1)} µs, on ${
    median(on.cpu).toFixed(1)
  } µs (+${(median(on.cpu) - median(off.cpu)).toFixed(1)}); server off ${
    median(off.serverCpu).toFixed(1)
  } µs, on ${median(on.serverCpu).toFixed(1)} µs; req/s on/off ${
    (median(on.rates) / median(off.rates)).toFixed(2)
  }×`,
);

/**
 * Memory rows of the benchmark: the resident memory of an idle server, once
 * start-up has settled (VmRSS), and the most it held at any moment since it
 * started (VmHWM), for burrowd on the embedded database and on PostgreSQL,
 * against an idle OpenSSH `sshd` and an idle nginx.
 *
 * burrowd with the embedded database is measured three ways, each its own
 * process: the first start on a machine (no cached cluster, so PGlite runs
 * `initdb`; the benchmark gives it a cache directory of its own), a start on
 * a new data directory once the cluster is cached (what every further new
 * server does), and a restart on that same directory; none has a client
 * connected. Then each backend once more with one client connected and one
 * TCP tunnel declared (the server's memory; the client is not counted).
 *
 * @module
 */

import { join } from "node:path";
import { startBurrow, type StartBurrowOptions, startBurrowServer } from "./_burrow.ts";
import { startNginx } from "./_nginx.ts";
import { delay, type Footprint, footprintOf, freePort, type Proc } from "./_procs.ts";
import { num, ratio, type Row, verdict } from "./_report.ts";
import { attempt, type Section } from "./_section.ts";
import { startSshd } from "./_ssh.ts";
import { throwaway } from "./_storage.ts";

/** The processes measured. */
export const FOOTPRINT_KEYS = [
  "embeddedFirst",
  "embeddedNew",
  "embeddedRestart",
  "postgres",
  "embeddedClient",
  "postgresClient",
  "sshd",
  "nginx",
] as const;
/** One of {@linkcode FOOTPRINT_KEYS}. */
export type FootprintKey = typeof FOOTPRINT_KEYS[number];

const LABELS: Record<FootprintKey, string> = {
  embeddedFirst: "burrowd, embedded DB, first start on the machine (initdb)",
  embeddedNew: "burrowd, embedded DB, new data directory (cluster cached)",
  embeddedRestart: "burrowd, embedded DB, restart",
  postgres: "burrowd, PostgreSQL",
  embeddedClient: "burrowd, embedded DB, restart, 1 client with a TCP tunnel",
  postgresClient: "burrowd, PostgreSQL, 1 client with a TCP tunnel",
  sshd: "sshd (OpenSSH, idle listener)",
  nginx: "nginx (one process, idle)",
};

/** Idle limits the memory issue set, in MB. */
const TARGET_MB: Partial<Record<FootprintKey, number>> = {
  embeddedNew: 160,
  embeddedRestart: 160,
  postgres: 100,
};

/** One measured process. */
export interface FootprintResult extends Footprint {
  /** From spawning to ready (burrowd: its "control channel listening" line). */
  readyMs?: number;
}

/** What the memory part measured. */
export interface FootprintResults {
  method: string;
  settleMs: number;
  rows: Partial<Record<FootprintKey, FootprintResult>>;
}

/** Settings of {@linkcode footprintBench}. */
export interface FootprintSettings {
  /** Wait after a process is ready before reading its memory. */
  footprintSettleMs: number;
}

/** Waits `settleMs`, reads `proc`'s memory and stops it. */
async function settle(proc: Proc, settleMs: number, readyMs?: number): Promise<FootprintResult> {
  try {
    await delay(settleMs);
    if (proc.exited) throw new Error(`${proc.name} exited; last output:\n${proc.tail()}`);
    return { ...footprintOf(proc.pid), ...(readyMs !== undefined ? { readyMs } : {}) };
  } finally {
    await proc.stop();
  }
}

/** Runs the memory measurements; failures land in `section.errors`. */
export async function footprintBench(
  section: Section,
  s: FootprintSettings,
): Promise<FootprintResults> {
  const out: FootprintResults = {
    method: `VmRSS ${s.footprintSettleMs / 1000} s after the process is ready (idle), and VmHWM ` +
      "(the most it was resident at any moment since it started), from /proc/PID/status",
    settleMs: s.footprintSettleMs,
    rows: {},
  };
  await using stack = new AsyncDisposableStack();
  section.owner.use(stack);
  const measure = async (key: FootprintKey, run: () => Promise<FootprintResult>) => {
    section.progress(`memory: ${LABELS[key]}`);
    const result = await attempt(section, `memory of ${LABELS[key]}`, run);
    if (result) out.rows[key] = result;
  };
  const burrowd = async (name: string, options: StartBurrowOptions = {}) => {
    const dir = join(section.dir, name);
    await Deno.mkdir(dir, { recursive: true });
    const server = await startBurrowServer(dir, options);
    stack.use(server.proc);
    return await settle(server.proc, s.footprintSettleMs, server.readyMs);
  };

  await Deno.mkdir(section.dir, { recursive: true });
  // A cache of our own, so the first start is one whatever the user's cache holds.
  const env = { BURROW_CACHE_DIR: join(section.dir, "cache") };
  await measure("embeddedFirst", () => burrowd("first", { env }));
  await measure("embeddedNew", () => burrowd("new", { env }));
  await measure("embeddedRestart", () => burrowd("new", { env }));
  await measure("postgres", async () => {
    await using db = await throwaway();
    return await burrowd("postgres", { databaseUrl: db.url });
  });
  const withClient = async (name: string, options: StartBurrowOptions = {}) => {
    const dir = join(section.dir, name);
    await Deno.mkdir(dir, { recursive: true });
    const started = performance.now();
    // The client only dials the local port when a visitor comes; none does.
    const burrow = await startBurrow(dir, [{ name: "idle", localPort: freePort() }], options);
    stack.use(burrow);
    try {
      return await settle(burrow.server, s.footprintSettleMs, performance.now() - started);
    } finally {
      await burrow[Symbol.asyncDispose]();
    }
  };
  await measure("embeddedClient", () => withClient("new", { env }));
  await measure("postgresClient", async () => {
    await using db = await throwaway();
    return await withClient("postgres-client", { databaseUrl: db.url });
  });
  await measure("sshd", async () => {
    const dir = join(section.dir, "ssh");
    await Deno.mkdir(dir, { recursive: true });
    const started = performance.now();
    const sshd = await startSshd(dir);
    stack.use(sshd.proc);
    return await settle(sshd.proc, s.footprintSettleMs, performance.now() - started);
  });
  await measure("nginx", async () => {
    const port = freePort();
    const started = performance.now();
    const proc = stack.use(
      await startNginx("nginx (idle)", join(section.dir, "nginx"), {
        readyPort: port,
        http: `  server {\n    listen 127.0.0.1:${port};\n    location / { return 204; }\n  }`,
      }),
    );
    return await settle(proc, s.footprintSettleMs, performance.now() - started);
  });
  return out;
}

const MB = 1024;

/** The memory table's rows. */
export function footprintRows(r: FootprintResults): Row[] {
  const idle = (key: FootprintKey) => {
    const kib = r.rows[key]?.rssKiB;
    return kib === undefined ? undefined : kib / MB;
  };
  return FOOTPRINT_KEYS.map((key) => {
    const row = r.rows[key];
    const limit = TARGET_MB[key];
    const mb = idle(key);
    return {
      metric: LABELS[key],
      direct: num(mb, 1),
      ssh: num(row && row.peakKiB / MB, 1),
      burrow: num(row?.readyMs !== undefined ? row.readyMs / 1000 : undefined, 2),
      vsSsh: key === "sshd" ? "—" : ratio(mb, idle("sshd")),
      vsDirect: key === "nginx" ? "—" : ratio(mb, idle("nginx")),
      target: limit ? `idle ≤ ${limit} MB` : "report",
      met: limit && mb !== undefined ? verdict(mb <= limit) : "—",
    };
  });
}

/** Column names of {@linkcode footprintRows} for `formatTable`. */
export const FOOTPRINT_HEADER: Partial<Row> = {
  metric: "process",
  direct: "idle RSS, MB",
  ssh: "peak RSS, MB",
  burrow: "ready, s",
  vsSsh: "idle/sshd",
  vsDirect: "idle/nginx",
};

/**
 * The machine description and the results table.
 *
 * @module
 */

import { run } from "./_procs.ts";

/** What the benchmark ran on. */
export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  deno: string;
  iperf3: string;
  openssh: string;
  /** wrk, nginx and Node.js (pipenet), used by the HTTP and UDP rows. */
  wrk: string;
  nginx: string;
  node: string;
  burrow: string;
  /** The other Burrow checkout that new connections were compared with (`BURROW_BASELINE`). */
  baseline?: { dir: string; commit: string };
  date: string;
}

async function firstLine(command: string, args: string[]): Promise<string> {
  try {
    return (await run(command, args, 5000)).split("\n")[0]!.trim();
  } catch (error) {
    return `unknown (${(error as Error).message.slice(0, 80)})`;
  }
}

/** First line of `command args` on stdout or stderr, whatever the exit code (`wrk`, `nginx -v`). */
async function versionLine(command: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return text.trim().split("\n")[0]!.trim();
  } catch (error) {
    return `unknown (${(error as Error).message.slice(0, 80)})`;
  }
}

/** Describes this machine and the tools under test. */
export async function describeMachine(): Promise<Machine> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  // `ssh -V` prints on stderr, which `run` does not return.
  const ssh = new Deno.Command("ssh", { args: ["-V"], stdout: "null", stderr: "piped" });
  const sshVersion = new TextDecoder().decode((await ssh.output()).stderr).trim();
  return {
    cpus: Number((await firstLine("nproc", [])) || navigator.hardwareConcurrency),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memoryGiB: Math.round((memKiB / 1024 / 1024) * 10) / 10,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    iperf3: await firstLine("iperf3", ["--version"]),
    openssh: sshVersion,
    wrk: (await versionLine("wrk", ["--version"])).replace(/ Copyright.*$/, ""),
    nginx: (await versionLine("/usr/sbin/nginx", ["-v"])).replace(/^nginx version: /, ""),
    node: `node ${await versionLine("node", ["--version"])}`,
    burrow: [
      Deno.env.get("BURROWD_BIN") ? `BURROWD_BIN=${Deno.env.get("BURROWD_BIN")}` : "",
      Deno.env.get("BURROW_BIN") ? `BURROW_BIN=${Deno.env.get("BURROW_BIN")}` : "",
    ].filter(Boolean).join(" ") || "deno run main_server.ts / main_client.ts",
    date: new Date().toISOString(),
  };
}

/** Formats the machine block printed above the table. */
export function formatMachine(m: Machine): string {
  return [
    `machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB RAM, Linux ${m.kernel}`,
    `tools:   deno ${m.deno}; ${m.iperf3}; ${m.openssh}; ${m.wrk}; ${m.nginx}; ${m.node}`,
    `burrow:  ${m.burrow}`,
    ...(m.baseline
      ? [`baseline: Burrow ${m.baseline.commit}, deno run from BURROW_BASELINE=${m.baseline.dir}`]
      : []),
    `date:    ${m.date}`,
  ].join("\n");
}

/** Text cells of one table row. */
export interface Row {
  metric: string;
  direct: string;
  ssh: string;
  burrow: string;
  vsSsh: string;
  vsDirect: string;
  target: string;
  met: string;
}

const HEADER: Row = {
  metric: "metric",
  direct: "direct",
  ssh: "ssh -R",
  burrow: "Burrow",
  vsSsh: "Burrow/ssh",
  vsDirect: "Burrow/direct",
  target: "target",
  met: "met?",
};

const NUMERIC: ReadonlySet<keyof Row> = new Set<keyof Row>([
  "direct",
  "ssh",
  "burrow",
  "vsSsh",
  "vsDirect",
]);

/**
 * Renders rows as an aligned Markdown table (readable as plain text too).
 * `header` renames columns, e.g. `{ ssh: "other" }` where the middle column
 * holds another relay than `ssh -R`.
 */
export function formatTable(rows: Row[], header: Partial<Row> = {}): string {
  const keys = Object.keys(HEADER) as Array<keyof Row>;
  const head: Row = { ...HEADER, ...header };
  const all = [head, ...rows];
  const widths = keys.map((k) => Math.max(...all.map((r) => [...r[k]].length)));
  const pad = (s: string, w: number, right: boolean) => {
    const fill = " ".repeat(w - [...s].length);
    return right ? fill + s : s + fill;
  };
  const line = (r: Row, head: boolean) =>
    "| " + keys.map((k, i) => pad(r[k], widths[i]!, !head && NUMERIC.has(k))).join(" | ") + " |";
  const rule = "|" +
    keys.map((k, i) => "-".repeat(widths[i]! + 1) + (NUMERIC.has(k) ? ":" : "-")).join("|") + "|";
  return [line(head, true), rule, ...rows.map((r) => line(r, false))].join("\n");
}

/** A number with `digits` decimals, or `FAIL`/`—` when missing. */
export function num(value: number | undefined, digits: number, missing = "FAIL"): string {
  return value === undefined || !Number.isFinite(value) ? missing : value.toFixed(digits);
}

/** `a / b` as `1.23×`, or `—`. */
export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) {
    return "—";
  }
  return `${(a / b).toFixed(2)}×`;
}

/** `yes`/`no` with an optional detail, or `—` when not measurable. */
export function verdict(ok: boolean | undefined, detail = ""): string {
  if (ok === undefined) return "—";
  return (ok ? "yes" : "NO") + (detail ? ` (${detail})` : "");
}

/**
 * Process and OS helpers for the benchmark: free ports, child processes whose
 * output lines can be awaited, temporary directories, and per-process RSS and
 * CPU time read from `/proc`.
 *
 * Every child is started by {@linkcode spawn} and only those children (and the
 * processes they fork) are ever signalled.
 *
 * @module
 */

/** Returns a port that was free on 127.0.0.1 a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Rejects with `Timed out …` when `promise` takes longer than `ms`. */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string | (() => string),
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const description = typeof what === "function" ? what() : what;
      reject(new Error(`Timed out after ${ms} ms: ${description}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A temporary directory removed on dispose. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

/** Creates a temporary directory that `await using` removes. */
export async function tempDir(prefix: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Options of {@linkcode spawn}. */
export interface SpawnOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Lines of output kept for error messages. Default 200. */
  keepLines?: number;
  /**
   * Give the child a stdin pipe that stays open until {@linkcode Proc.stop}
   * (or until this process dies), so the child can exit on EOF. Default: no stdin.
   */
  stdinPipe?: boolean;
}

interface LineWaiter {
  match: (line: string) => boolean;
  resolve: (line: string) => void;
  reject: (error: Error) => void;
}

/**
 * A child process whose stdout and stderr are drained line by line (so a
 * chatty logger never blocks on a full pipe) and can be waited on.
 */
export class Proc implements AsyncDisposable {
  readonly name: string;
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #recent: string[] = [];
  #keep: number;
  #waiters = new Set<LineWaiter>();
  #exited = false;
  #drained: Promise<void>;
  #stdinOpen: boolean;

  constructor(name: string, child: Deno.ChildProcess, keepLines: number, stdinOpen = false) {
    this.name = name;
    this.#stdinOpen = stdinOpen;
    this.#child = child;
    this.pid = child.pid;
    this.#keep = keepLines;
    this.#drained = Promise.all([
      this.#pump(child.stdout),
      this.#pump(child.stderr),
    ]).then(() => {});
    this.status = child.status.then((status) => {
      this.#exited = true;
      const error = new Error(
        `${this.name} exited with code ${status.code}${
          status.signal ? ` (${status.signal})` : ""
        }; last output:\n${this.tail()}`,
      );
      for (const waiter of this.#waiters) waiter.reject(error);
      this.#waiters.clear();
      return status;
    });
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** The last lines of output, for error messages. */
  tail(lines = 20): string {
    return this.#recent.slice(-lines).map((l) => `  | ${l}`).join("\n");
  }

  /** Waits for an output line that satisfies `match`, returning that line. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    for (const line of this.#recent) if (match(line)) return Promise.resolve(line);
    if (this.#exited) {
      return Promise.reject(new Error(`${this.name} has exited; last output:\n${this.tail()}`));
    }
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    const waiter: LineWaiter = { match, resolve, reject };
    this.#waiters.add(waiter);
    return withTimeout(
      promise,
      timeoutMs,
      () => `${this.name}: ${what}; last output:\n${this.tail()}`,
    ).finally(() => this.#waiters.delete(waiter));
  }

  /** Waits for a JSON log line whose fields include all of `fields`. */
  waitForJson(
    fields: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    return this.waitForEvent(
      (event) => Object.entries(fields).every(([k, v]) => event[k] === v),
      timeoutMs,
      `log line ${JSON.stringify(fields)}`,
    );
  }

  /** Waits for a JSON log line that satisfies `match`, returning it parsed. */
  async waitForEvent(
    match: (event: Record<string, unknown>) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<Record<string, unknown>> {
    const matches = (line: string) => {
      const event = parseJsonLine(line);
      return event !== undefined && match(event);
    };
    return parseJsonLine(await this.waitForLine(matches, timeoutMs, what))!;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; waits for exit and for the pipes to drain. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.#stdinOpen) {
      this.#stdinOpen = false;
      await this.#child.stdin.close().catch(() => {});
    }
    if (!this.#exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          this.#child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, graceMs);
      await this.status;
      clearTimeout(timer);
    }
    await this.#drained;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        let nl;
        while ((nl = pending.indexOf("\n")) >= 0) {
          this.#line(pending.slice(0, nl));
          pending = pending.slice(nl + 1);
        }
      }
    } catch { /* the pipe broke with the process */ }
    if (pending) this.#line(pending);
  }

  #line(raw: string): void {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw; // ssh logs end in \r\n
    this.#recent.push(line);
    if (this.#recent.length > this.#keep) this.#recent.shift();
    for (const waiter of this.#waiters) {
      if (waiter.match(line)) {
        this.#waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  }
}

function parseJsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null
      ? value as Record<string, unknown>
      : undefined;
  } catch {
    return undefined;
  }
}

/** Starts `command` with piped output and stdin closed. */
export function spawn(name: string, command: string, options: SpawnOptions = {}): Proc {
  const child = new Deno.Command(command, {
    args: options.args ?? [],
    // Plain error text from Deno children in the failure report.
    env: { NO_COLOR: "1", ...options.env },
    stdin: options.stdinPipe ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return new Proc(name, child, options.keepLines ?? 200, options.stdinPipe ?? false);
}

/** Runs `command` to completion with a deadline; returns stdout, throws on failure. */
export async function run(
  command: string,
  args: string[],
  timeoutMs: number,
): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const out = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      const reason = controller.signal.aborted
        ? `timed out after ${timeoutMs} ms`
        : `code ${out.code}`;
      throw new Error(
        `${command} ${args.join(" ")} failed (${reason}): ${
          new TextDecoder().decode(out.stderr).trim() || text.trim()
        }`,
      );
    }
    return text;
  } finally {
    clearTimeout(timer);
  }
}

/** Reads `/proc/<pid>/stat`, or undefined when the process is gone. */
function procStat(pid: number): string[] | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may contain spaces; fields resume after ")".
    const rest = text.slice(text.lastIndexOf(")") + 2).trim().split(" ");
    return [String(pid), "comm", ...rest];
  } catch {
    return undefined;
  }
}

/** `pid` and all its live descendants. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = procStat(Number(entry.name));
    if (!stat) continue;
    const ppid = Number(stat[3]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry.name));
    children.set(ppid, list);
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const next = queue.shift()!;
    tree.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** VmRSS of one process in KiB (0 when gone). */
export function rssKiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Resident memory of one process now and at its peak, in KiB. */
export interface Footprint {
  /** VmRSS. */
  rssKiB: number;
  /** VmHWM: the highest VmRSS since the process started. */
  peakKiB: number;
}

/** VmRSS and VmHWM of one process; throws when it is gone. */
export function footprintOf(pid: number): Footprint {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    if (!match) throw new Error(`No ${name} in /proc/${pid}/status`);
    return Number(match[1]);
  };
  return { rssKiB: field("VmRSS"), peakKiB: field("VmHWM") };
}

/** Summed VmRSS of `pid` and its descendants, in KiB. */
export function treeRssKiB(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + rssKiB(p), 0);
}

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

/** Summed user+system CPU seconds of `pid` and its live descendants. */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const stat = procStat(p);
    if (stat) ticks += Number(stat[13]) + Number(stat[14]);
  }
  return ticks / CLOCK_TICKS;
}

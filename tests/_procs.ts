/**
 * End-to-end helpers: spawn the real mains (or `BURROWD_BIN`/`BURROW_BIN`),
 * follow their JSON log lines, and tear down only what they started.
 */

const ROOT = new URL("..", import.meta.url).pathname;
const decoder = new TextDecoder();

/** A port that was free a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A spawned main with its parsed log events. */
export class Proc implements AsyncDisposable {
  readonly events: Array<Record<string, unknown>> = [];
  readonly lines: string[] = [];
  readonly child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  readonly stdout: Promise<string>;
  #pumps: Promise<void>;
  #exited = false;

  /** `denoFlags` replace `-A` when running the mains unbuilt (a compiled binary ignores them). */
  constructor(
    which: "server" | "client",
    args: string[],
    env: Record<string, string> = {},
    denoFlags: string[] = ["-A"],
  ) {
    const bin = Deno.env.get(which === "server" ? "BURROWD_BIN" : "BURROW_BIN");
    const main = which === "server" ? "main_server.ts" : "main_client.ts";
    const command = bin
      ? new Deno.Command(bin, { args, cwd: ROOT, env, stdout: "piped", stderr: "piped" })
      : new Deno.Command(Deno.execPath(), {
        args: ["run", ...denoFlags, "--unstable-net", `${ROOT}${main}`, ...args],
        cwd: ROOT,
        env,
        stdout: "piped",
        stderr: "piped",
      });
    this.child = command.spawn();
    this.status = this.child.status;
    this.status.then(() => (this.#exited = true));
    this.stdout = new Response(this.child.stdout).text();
    this.#pumps = this.#follow(this.child.stderr);
  }

  async #follow(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const chunk of stream) {
      rest += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        this.lines.push(line);
        try {
          this.events.push(JSON.parse(line));
        } catch { /* not a log line */ }
      }
    }
  }

  /** Waits for an event matching `match`, failing with the recent log after `timeoutMs`. */
  async waitFor(
    match: (e: Record<string, unknown>) => boolean,
    timeoutMs = 30_000,
    from = 0,
  ): Promise<Record<string, unknown>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find(match);
      if (found) return found;
      if (performance.now() > deadline || this.#exited) {
        if (this.#exited) await this.#pumps;
        const found = this.events.slice(from).find(match);
        if (found) return found;
        throw new Error(
          `${this.#exited ? "Process exited" : "Timed out"}; last log lines:\n` +
            this.lines.slice(-30).join("\n"),
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends `signal` and waits for the exit code (SIGKILL after 10 s). */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<number> {
    try {
      this.child.kill(signal);
    } catch { /* exited */ }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* exited */ }
    }, 10_000);
    const status = await this.status;
    clearTimeout(timer);
    await this.#pumps;
    await this.stdout;
    return status.code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
  }
}

/** Writes a server config and starts burrowd; resolves once it listens. */
export async function startServer(
  dir: string,
  token: string,
  port = 0,
  extra = "",
  denoFlags?: string[],
): Promise<{ proc: Proc; port: number; fingerprint: string }> {
  const path = `${dir}/server.yaml`;
  await Deno.writeTextFile(
    path,
    `server:
  bind_addr: 127.0.0.1
  bind_port: ${port}
  auth: {method: token, token: "${token}"}
${extra.includes("storage:") ? "" : `  storage: {data_dir: "${dir}/data"}\n`}${
      extra.includes("admin:") ? "" : "  admin: {bind_addr: 127.0.0.1, bind_port: 0}\n"
    }${extra.includes("  log:") ? "" : "  log: {level: info, format: json}"}
${extra}`,
  );
  const proc = new Proc("server", ["--config", path], {}, denoFlags);
  try {
    const ready = await proc.waitFor((e) => e.msg === "control channel listening", 60_000);
    return { proc, port: ready.port as number, fingerprint: ready.fingerprint as string };
  } catch (error) {
    // Not left running (writing into a directory the test is about to remove).
    await proc[Symbol.asyncDispose]();
    throw error;
  }
}

/** Writes a client config with tcp tunnels and starts burrow. */
export async function startClient(
  dir: string,
  options: {
    port: number;
    token: string;
    fingerprint: string;
    tunnels: Array<
      {
        name: string;
        local_port: number;
        remote_port?: number;
        yaml?: string;
        type?: "tcp" | "udp" | "http" | "https";
      }
    >;
    /** More YAML under `client:` (indented by two spaces). */
    extra?: string;
    /** Environment of the process. */
    env?: Record<string, string>;
    /** Deno flags instead of `-A` (unbuilt runs only). */
    denoFlags?: string[];
  },
): Promise<Proc> {
  const path = `${dir}/client-${crypto.randomUUID().slice(0, 6)}.yaml`;
  const tunnels = options.tunnels.map((t) =>
    `    - {name: ${t.name}, type: ${
      t.type ?? "tcp"
    }, local_addr: 127.0.0.1, local_port: ${t.local_port}, ` +
    `remote_port: ${t.remote_port ?? 0}${t.yaml ? `, ${t.yaml}` : ""}}`
  ).join("\n");
  await Deno.writeTextFile(
    path,
    `client:
  server_addr: 127.0.0.1
  server_port: ${options.port}
  auth_token: "${options.token}"
  server_fingerprint: "${options.fingerprint}"
  reconnect: {max_retries: 0, initial_delay: 100ms, max_delay: 1s, backoff_factor: 2, enable_jitter: false}
${options.extra?.includes("  log:") ? "" : "  log: {level: info, format: json}\n"}  tunnels:${
      tunnels ? "\n" + tunnels : " []"
    }
${options.extra ?? ""}`,
  );
  return new Proc("client", ["--config", path], options.env ?? {}, options.denoFlags);
}

/** Waits for the client's "tunnel ready" of `name` after event index `from`. */
export async function tunnelPort(client: Proc, name: string, from = 0): Promise<number> {
  const e = await client.waitFor(
    (e) => e.msg === "tunnel ready" && e.tunnel === name,
    15_000,
    from,
  );
  return e.remote_port as number;
}

/** A local TCP service running `handle` per connection, closed by disposal. */
export function localService(
  handle: (conn: Deno.TcpConn) => Promise<void>,
): { port: number } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.TcpConn>();
  const tasks = new Set<Promise<void>>();
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        const task = handle(conn).catch(() => {}).finally(() => {
          try {
            conn.close();
          } catch { /* closed */ }
          conns.delete(conn);
        });
        tasks.add(task);
        task.finally(() => tasks.delete(task));
      }
    } catch { /* closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
      await Promise.allSettled([...tasks]);
    },
  };
}

/** Echoes every byte back, then half-closes. */
export async function echo(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  for (let n; (n = await conn.read(buf)) !== null;) {
    let off = 0;
    while (off < n) off += await conn.write(buf.subarray(off, n));
  }
  await conn.closeWrite();
}

/** Writes all of `data`. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Runs a one-shot command of burrowd (`user add …`) and returns its output. */
export async function runServerCommand(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = Deno.env.get("BURROWD_BIN");
  const command = bin
    ? new Deno.Command(bin, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", `${ROOT}main_server.ts`, ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    });
  const out = await command.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Whether a TCP connection to `port` is refused (nothing listens). */
export async function refused(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return false;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return true;
    throw error;
  }
}

/** Sends `text` through `hostname:port` and returns what comes back (an echo service). */
export async function echoThrough(
  port: number,
  text: string,
  hostname = "127.0.0.1",
): Promise<string> {
  const conn = await Deno.connect({ hostname, port });
  try {
    await writeAll(conn, new TextEncoder().encode(text));
    await conn.closeWrite();
    let got = "";
    const buf = new Uint8Array(4096);
    for (let n; (n = await conn.read(buf)) !== null;) got += decoder.decode(buf.subarray(0, n));
    return got;
  } finally {
    conn.close();
  }
}

/** Runs a one-shot command of burrow (`status …`) and returns its output. */
export async function runClientCommand(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = Deno.env.get("BURROW_BIN");
  const command = bin
    ? new Deno.Command(bin, { args, cwd: ROOT, env, stdout: "piped", stderr: "piped" })
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", `${ROOT}main_client.ts`, ...args],
      cwd: ROOT,
      env,
      stdout: "piped",
      stderr: "piped",
    });
  const out = await command.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

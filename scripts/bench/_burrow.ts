/**
 * Burrow's server and client as real processes: `deno run main_server.ts` /
 * `main_client.ts`, or the compiled binaries named by `BURROWD_BIN` /
 * `BURROW_BIN`, each waited on through its JSON log lines. The same mains of
 * another checkout (another commit, to compare with) run with `checkout`.
 *
 * @module
 */

import { join } from "node:path";
import { SERVER_V8_FLAGS } from "../build.ts";
import { type Proc, run, spawn } from "./_procs.ts";

const READY_MS = 60_000;

/** YAML text of `value` (JSON is YAML 1.2 flow style; no YAML library needed). */
function yaml(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}
const TOKEN = "bench-token-0123456789abcdef";

/** One tunnel to declare in the client's configuration. */
export interface BenchTunnel {
  name: string;
  localPort: number;
  /** Default `tcp`. */
  type?: "tcp" | "udp" | "http" | "https";
  /** Public port for `tcp`/`udp`; default 0 (the server picks). */
  remotePort?: number;
  /** Host names of an `http` tunnel. */
  customDomains?: string[];
}

function tunnelConfig(t: BenchTunnel): Record<string, unknown> {
  const type = t.type ?? "tcp";
  return {
    name: t.name,
    type,
    local_addr: "127.0.0.1",
    local_port: t.localPort,
    ...(type === "http" || type === "https"
      ? { custom_domains: t.customDomains ?? [] }
      : { remote_port: t.remotePort ?? 0 }),
  };
}

/** A running Burrow server and client. */
export interface Burrow extends AsyncDisposable {
  server: Proc;
  client: Proc;
  /** Tunnel name → public port on the server (NaN for `http` tunnels, which have none). */
  remotePorts: Map<string, number>;
  /** The control port. */
  controlPort: number;
  /** The server's certificate fingerprint. */
  fingerprint: string;
  /** The shared token. */
  token: string;
}

/** Options of {@linkcode startBurrow}. */
export interface StartBurrowOptions {
  /** PostgreSQL URL; default: the embedded database in the data directory. */
  databaseUrl?: string;
  /** More keys under `server.storage:` (e.g. `query_timeout`). */
  storage?: Record<string, unknown>;
  /** More keys under `server:`. */
  server?: Record<string, unknown>;
  /** More keys under `client:` (e.g. `inspect`). */
  client?: Record<string, unknown>;
  /** More environment variables of the server process. */
  env?: Record<string, string>;
  /**
   * A directory holding a checkout of another Burrow commit (see
   * {@linkcode describeCheckout}): its `main_server.ts` and `main_client.ts`
   * run with its own `deno.json` (import map, lock file, and the V8 flags of
   * its `server` task); `BURROWD_BIN` / `BURROW_BIN` do not apply. The
   * configuration written is this file's, so that commit must read the same
   * keys. Default: this checkout.
   */
  checkout?: string;
}

/** A checkout of a Burrow commit, to run next to this one. */
export interface Checkout {
  dir: string;
  /** `git rev-parse --short HEAD` in `dir`, with ` (modified)` when its tree differs. */
  commit: string;
}

/** Checks that `dir` holds a Burrow checkout and names its commit; throws when it does not. */
export async function describeCheckout(dir: string): Promise<Checkout> {
  for (const file of ["deno.json", "main_server.ts", "main_client.ts"]) {
    try {
      await Deno.stat(join(dir, file));
    } catch {
      throw new Error(`"${dir}" is not a Burrow checkout: it has no ${file}`);
    }
  }
  const commit = (await run("git", ["-C", dir, "rev-parse", "--short", "HEAD"], 10_000)).trim();
  const changes = await run(
    "git",
    ["-C", dir, "status", "--porcelain", "--untracked-files=no"],
    10_000,
  );
  return { dir, commit: changes.trim() ? `${commit} (modified)` : commit };
}

/**
 * How to run `main`: the binary `envVar` names, or `deno run` with the flags
 * of its `deno task` (for burrowd, the V8 flags its compiled binary has); in
 * `checkout`, `deno run` with that checkout's configuration and task flags.
 */
async function command(
  envVar: string,
  main: string,
  config: string,
  checkout?: string,
): Promise<[string, string[]]> {
  if (checkout !== undefined) {
    const denoJson = join(checkout, "deno.json");
    const tasks = (JSON.parse(await Deno.readTextFile(denoJson)) as {
      tasks?: Record<string, string>;
    }).tasks ?? {};
    const task = tasks[main === "main_server.ts" ? "server" : "client"] ?? "";
    const v8 = task.match(/--v8-flags=\S+/g) ?? [];
    return [Deno.execPath(), [
      "run",
      "-A",
      "--unstable-net",
      "--config",
      denoJson,
      ...v8,
      join(checkout, main),
      "--config",
      config,
    ]];
  }
  const bin = Deno.env.get(envVar);
  if (bin) return [bin, ["--config", config]];
  const path = new URL(`../../${main}`, import.meta.url).pathname;
  const v8 = main === "main_server.ts" ? [`--v8-flags=${SERVER_V8_FLAGS.join(",")}`] : [];
  return [Deno.execPath(), ["run", "-A", "--unstable-net", ...v8, path, "--config", config]];
}

/** ` (DIR)` after a process name when it runs from another checkout. */
function suffix(options: StartBurrowOptions): string {
  return options.checkout === undefined ? "" : ` (${options.checkout})`;
}

/** A running Burrow server alone. */
export interface BurrowServer {
  proc: Proc;
  /** Its "control channel listening" log line. */
  listening: Record<string, unknown>;
  /** Milliseconds from spawning the process to that line. */
  readyMs: number;
}

/**
 * Writes a server configuration in `dir` (data directory `dir/data`) and
 * starts the server, waiting until its control channel listens.
 */
export async function startBurrowServer(
  dir: string,
  options: StartBurrowOptions = {},
): Promise<BurrowServer> {
  const serverConfig = `${dir}/server.yaml`;
  await Deno.writeTextFile(
    serverConfig,
    yaml({
      server: {
        bind_addr: "127.0.0.1",
        bind_port: 0,
        auth: { method: "token", token: TOKEN },
        storage: {
          data_dir: `${dir}/data`,
          ...(options.databaseUrl ? { url: options.databaseUrl } : {}),
          ...options.storage,
        },
        log: { level: "info", format: "json" },
        admin: { bind_addr: "127.0.0.1", bind_port: 0 },
        ...options.server,
      },
    }),
  );
  const [serverBin, serverArgs] = await command(
    "BURROWD_BIN",
    "main_server.ts",
    serverConfig,
    options.checkout,
  );
  const started = performance.now();
  const proc = spawn(`burrowd${suffix(options)}`, serverBin, {
    args: serverArgs,
    ...(options.env ? { env: options.env } : {}),
  });
  try {
    const listening = await proc.waitForJson({ msg: "control channel listening" }, READY_MS);
    return { proc, listening, readyMs: performance.now() - started };
  } catch (error) {
    await proc.stop();
    throw error;
  }
}

/**
 * Starts the server, then the client with `tunnels`, and waits until all are
 * ready; throws (stopping both) when the client logs that one failed.
 */
export async function startBurrow(
  dir: string,
  tunnels: BenchTunnel[],
  options: StartBurrowOptions = {},
): Promise<Burrow> {
  const { proc: server, listening } = await startBurrowServer(dir, options);
  let client: Proc | undefined;
  try {
    const clientConfig = `${dir}/client.yaml`;
    await Deno.writeTextFile(
      clientConfig,
      yaml({
        client: {
          server_addr: "127.0.0.1",
          server_port: listening.port,
          auth_token: TOKEN,
          server_fingerprint: listening.fingerprint,
          log: { format: "json" },
          tunnels: tunnels.map(tunnelConfig),
          ...options.client,
        },
      }),
    );
    const [clientBin, clientArgs] = await command(
      "BURROW_BIN",
      "main_client.ts",
      clientConfig,
      options.checkout,
    );
    client = spawn(`burrow${suffix(options)}`, clientBin, { args: clientArgs });
    const remotePorts = new Map<string, number>();
    for (const tunnel of tunnels) {
      const event = await client.waitForEvent(
        (e) => e.tunnel === tunnel.name && (e.msg === "tunnel ready" || e.msg === "tunnel failed"),
        READY_MS,
        `tunnel "${tunnel.name}" ready`,
      );
      if (event.msg === "tunnel failed") {
        throw new Error(`Tunnel "${tunnel.name}" failed: ${String(event.reason)}`);
      }
      remotePorts.set(tunnel.name, Number(event.remote_port));
    }
    const c = client;
    return {
      server,
      client: c,
      remotePorts,
      controlPort: Number(listening.port),
      fingerprint: String(listening.fingerprint),
      token: TOKEN,
      async [Symbol.asyncDispose]() {
        await c.stop();
        await server.stop();
      },
    };
  } catch (error) {
    await client?.stop();
    await server.stop();
    throw error;
  }
}

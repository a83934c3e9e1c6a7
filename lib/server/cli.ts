/**
 * The `burrowd` command line: its commands, flags, help text and exit
 * codes, built with commander. The main parses `Deno.args` with it; `run`
 * goes through {@linkcode runServer}, the other commands through the admin
 * service (`./admin/`).
 *
 * @example
 * ```ts ignore
 * import { serverProgram } from "./cli.ts";
 * const program = serverProgram({ exit: Deno.exit, shutdownSignal: () => new AbortController().signal });
 * await program.parseAsync(["user", "list"], { from: "user" });
 * ```
 *
 * @module
 */

import { type Command, Option } from "commander";
import { newProgram } from "../util/cli.ts";
import { loadServerConfig, type ServerOverrides } from "../config/mod.ts";
import { addAdminCommands } from "./admin/mod.ts";
import { runServer } from "./run.ts";

interface RunFlags {
  config?: string;
  adminAddr?: string;
  adminPort?: string;
  bindAddr?: string;
  bindPort?: string;
  token?: string;
  dataDir?: string;
  logLevel?: "debug" | "info" | "warn" | "error";
  logFormat?: "json" | "text";
}

function overridesFrom(flags: RunFlags): ServerOverrides {
  const server: Record<string, unknown> = {};
  if (flags.bindAddr !== undefined) server.bind_addr = flags.bindAddr;
  if (flags.bindPort !== undefined) server.bind_port = Number(flags.bindPort);
  if (flags.token !== undefined) server.auth = { method: "token", token: flags.token };
  if (flags.dataDir !== undefined) server.storage = { data_dir: flags.dataDir };
  if (flags.adminAddr !== undefined || flags.adminPort !== undefined) {
    const admin: Record<string, unknown> = {};
    if (flags.adminAddr !== undefined) admin.bind_addr = flags.adminAddr;
    if (flags.adminPort !== undefined) admin.bind_port = Number(flags.adminPort);
    server.admin = admin;
  }
  const log: Record<string, unknown> = {};
  if (flags.logLevel) log.level = flags.logLevel;
  if (flags.logFormat) log.format = flags.logFormat;
  if (Object.keys(log).length) server.log = log;
  return { server } as ServerOverrides;
}

async function run(flags: RunFlags, options: ServerProgramOptions): Promise<number> {
  const config = await loadServerConfig(flags.config, overridesFrom(flags));
  return await runServer(config, {
    signal: options.shutdownSignal(),
    ...(options.onReload ? { onReload: options.onReload } : {}),
  });
}

/** What the program needs from its main. */
export interface ServerProgramOptions {
  /** Records the exit code of the command that ran. */
  exit: (code: number) => void;
  /** Starts listening for the OS's stop signals; the signal aborts on the first one. */
  shutdownSignal: () => AbortSignal;
  /** Subscribes to certificate reload requests (SIGHUP); see `RunServerOptions` in run.ts. */
  onReload?: (reload: () => void) => () => void;
}

/**
 * The `burrowd` command line: `run` (the default), and the admin
 * subcommands (`fingerprint`, `healthcheck`, `migrate`, `user`, `token`, …).
 */
export function serverProgram(options: ServerProgramOptions): Command {
  const { exit } = options;
  const cmd = newProgram(
    "burrowd",
    "Burrow tunnel server: accepts burrow clients on the control port and publishes their " +
      "local services on public ports.",
    `
Environment:
  BURROW_TOKEN    shared client token (overrides server.auth.token)
  DATABASE_URL    PostgreSQL URL (overrides server.storage.url)
  BURROW_CLUSTER_SECRET  secret of the cluster's nodes (overrides server.cluster.secret)

Examples:
  burrowd --token s3cret                  run with defaults, certificate in ./burrow-data
  burrowd --config server.yaml            run from a config file
  burrowd fingerprint                     print the certificate fingerprint for clients
  burrowd user add alice                  add a user
  burrowd token issue alice --ttl 30d     issue alice a client token (printed once)
  burrowd token revoke <id>               revoke a token; its sessions are closed
  burrowd migrate                         apply database migrations and exit
  burrowd tunnel list                     tunnels, owners, state and traffic (last 24h)
  burrowd group list                      load-balancing groups and each member's share
  burrowd node list                       the cluster's nodes: alive, dead or stopped

Exit codes: 0 clean shutdown, 1 fatal error, 2 usage or configuration error.`,
  );

  cmd.command("run", { isDefault: true })
    .description("run the server (the default command)")
    .option("-c, --config <file>", "server YAML config")
    .option("--bind-addr <addr>", "control channel and tunnel listen address (server.bind_addr)")
    .option("--bind-port <port>", "control channel port, 0 = any free port (server.bind_port)")
    .option("--token <token>", "shared client token (server.auth.token); prefer BURROW_TOKEN")
    .option("--data-dir <dir>", "data directory (server.storage.data_dir)")
    .option("--admin-addr <addr>", "admin listen address (server.admin.bind_addr)")
    .option("--admin-port <port>", "admin port, 0 = any free port (server.admin.bind_port)")
    .addOption(
      new Option("--log-level <level>", "log level").choices(["debug", "info", "warn", "error"]),
    )
    .addOption(new Option("--log-format <format>", "log format").choices(["json", "text"]))
    .action(async (flags: RunFlags) => exit(await run(flags, options)));

  addAdminCommands(cmd, {
    exit,
    loadConfig: (flags) =>
      loadServerConfig(flags.config, overridesFrom({ ...flags, token: "unused" })),
  });
  return cmd;
}

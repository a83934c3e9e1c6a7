/**
 * `burrowd`: the Burrow server. Parses arguments, loads the configuration,
 * runs the server until SIGINT/SIGTERM, then shuts down gracefully.
 *
 * Exit codes: 0 after a clean shutdown, 1 on a fatal error, 2 on a usage or
 * configuration error.
 *
 * @module
 */

import { Command, Option } from "commander";
import { ConfigError, loadServerConfig, type ServerOverrides } from "./lib/config/mod.ts";
import { BurrowServer, startAdmin } from "./lib/server/mod.ts";
import { addAdminCommands } from "./lib/server/admin/mod.ts";
import { Store } from "./lib/storage/mod.ts";
import { createLogger } from "./lib/util/logger.ts";
import { onShutdownSignals, runProgram } from "./lib/util/cli.ts";
import { VERSION } from "./lib/util/version.ts";

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

async function run(flags: RunFlags): Promise<number> {
  const config = await loadServerConfig(flags.config, overridesFrom(flags));
  const logger = createLogger({
    level: config.log.level,
    format: config.log.format,
    ...(config.log.file ? { file: config.log.file } : {}),
    levels: config.log.levels,
    errorFile: config.log.error_file,
    rotate: { maxSize: config.log.max_size, maxFiles: config.log.max_files },
  });
  const store = await Store.open(config.storage, { logger: logger.child("storage") });
  let server: BurrowServer;
  try {
    server = await BurrowServer.start(config, { logger, store });
  } catch (error) {
    await store.close();
    throw error;
  }
  let admin;
  try {
    admin = startAdmin(server, config.admin, logger);
  } catch (error) {
    await server.shutdown(0);
    await store.close();
    throw error;
  }
  if (Deno.stderr.isTerminal()) {
    console.error(
      `\nburrowd ${VERSION} is listening on ${config.bind_addr}:${server.port}\n` +
        `Clients pin this server with:\n  server_fingerprint: "${server.fingerprint}"\n` +
        (config.auth.token
          ? ""
          : `and log in with the token in ${config.storage.data_dir}/token:\n` +
            `  auth_token: "${server.token.reveal()}"\n`),
    );
  }
  const stop = Promise.withResolvers<string>();
  const removeSignals = onShutdownSignals(stop.resolve);
  // SIGHUP: pick up new certificate files for new connections, keep the sessions.
  const reload = () => {
    server.reloadCertificate().catch((error) =>
      logger.child("server").error("certificate reload failed", { error })
    );
  };
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGHUP", reload);
  const signal = await stop.promise;
  logger.child("server").info("signal received", { signal });
  if (Deno.build.os !== "windows") Deno.removeSignalListener("SIGHUP", reload);
  await server.shutdown();
  await admin.close();
  await store.close();
  removeSignals();
  return 0;
}

function program(exit: (code: number) => void): Command {
  const cmd = new Command("burrowd")
    .description(
      "Burrow tunnel server: accepts burrow clients on the control port and publishes their " +
        "local services on public ports.",
    )
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .addHelpText(
      "after",
      `
Environment:
  BURROW_TOKEN    shared client token (overrides server.auth.token)
  DATABASE_URL    PostgreSQL URL (overrides server.storage.url)

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
    .action(async (flags: RunFlags) => exit(await run(flags)));

  addAdminCommands(cmd, {
    exit,
    loadConfig: (flags) =>
      loadServerConfig(flags.config, overridesFrom({ ...flags, token: "unused" })),
  });
  return cmd;
}

if (import.meta.main) await runProgram("burrowd", program, ConfigError);

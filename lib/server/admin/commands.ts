/**
 * The subcommands of `burrowd` besides `run`: `fingerprint`, `healthcheck`,
 * and the database commands (`migrate`, `user`, `token`, `signing-key`,
 * `key`, `tunnel`, `group`, `node`), which work through the admin service that the
 * REST API uses too: on the database itself, or, when a running burrowd
 * holds the embedded database, through that server's admin API (`migrate`
 * and `signing-key`, which the API does not offer, then ask for the server
 * to be stopped). Results go to stdout; a new secret goes to stdout
 * alone (so it can be captured) with its receipt on stderr. Exit code 0 on
 * success, 2 when the request is at fault (unknown user, name taken, bad
 * value), 1 on any other failure.
 *
 * @module
 */

import type { Command } from "commander";
import { loadServerCertificate } from "../../transport/mod.ts";
import { type AdminCommandsOptions, commandKit, type DatabaseFlags } from "./command.ts";
import { addTokenCommands } from "./token_commands.ts";
import { addTunnelCommands } from "./tunnel_commands.ts";
import { addNodeCommands } from "./node_commands.ts";
import { addUserCommands } from "./user_commands.ts";

/**
 * Adds the subcommands of `burrowd` besides `run` to `program`.
 *
 * @example
 * ```ts ignore
 * import { Command } from "commander";
 * import { addAdminCommands } from "./commands.ts";
 * const program = new Command("burrowd");
 * addAdminCommands(program, {
 *   exit: (code) => Deno.exitCode = code,
 *   loadConfig: (flags) => loadServerConfig(flags.config),
 * });
 * await program.parseAsync(["user", "list"], { from: "user" });
 * ```
 */
export function addAdminCommands(program: Command, options: AdminCommandsOptions): void {
  const { exit, loadConfig } = options;
  program.command("fingerprint")
    .description("print the SHA-256 fingerprint clients pin (creates the certificate if needed)")
    .option("-c, --config <file>", "server YAML config")
    .option("--data-dir <dir>", "data directory (server.storage.data_dir)")
    .action(async (flags: DatabaseFlags) => {
      const config = await loadConfig(flags);
      const cert = await loadServerCertificate({
        certFile: config.tls.cert_file,
        keyFile: config.tls.key_file,
        dataDir: config.storage.data_dir,
        names: [Deno.hostname()],
      });
      console.log(cert.fingerprint);
      exit(0);
    });
  program.command("healthcheck")
    .description("exit 0 when the running burrowd answers on its admin port (/healthz), else 1")
    .option("-c, --config <file>", "server YAML config (for server.admin)")
    .option("--url <url>", "check this URL instead, e.g. http://127.0.0.1:7500/readyz")
    .action(async (flags: { config?: string; url?: string }) => {
      let url = flags.url;
      if (!url) {
        const config = await loadConfig(flags);
        const host = ["0.0.0.0", "::", ""].includes(config.admin.bind_addr)
          ? "127.0.0.1"
          : config.admin.bind_addr;
        url = `http://${host.includes(":") ? `[${host}]` : host}:${config.admin.bind_port}/healthz`;
      }
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
        const body = await response.text();
        console.log(`${response.status} ${body.trim()}`);
        exit(response.ok ? 0 : 1);
      } catch (error) {
        console.error(`burrowd healthcheck: ${url}: ${(error as Error).message}`);
        exit(1);
      }
    });

  const kit = commandKit(options);
  kit.db(
    program.command("migrate").description(
      "apply pending database migrations and exit (burrowd also does this at start)",
    ),
  ).action((flags: DatabaseFlags) =>
    kit.withDatabase(flags, "migrate", async (admin) => {
      const { version, name, kind } = await admin.schemaVersion();
      console.log(`schema at version ${version} (${name}) on ${kind}`);
    })
  );
  addUserCommands(program, kit);
  addTokenCommands(program, kit);
  addTunnelCommands(program, kit);
  addNodeCommands(program, kit, loadConfig);
}

/**
 * What the `burrowd` subcommands share: the database flags, reaching the
 * configured database for one command, the exit codes, and the plain-text
 * table they print.
 *
 * A command opens the database itself, with an {@linkcode AdminService} on
 * it, unless a running burrowd holds the embedded database: then a command
 * that the admin API offers goes through that server
 * ({@linkcode RemoteAdmin}, at the address it left in the data directory),
 * and one that it does not (`migrate`, the signing keys) says that the
 * server must be stopped. A directory held by a process that has not (yet)
 * said where its admin API listens (a burrowd starting or stopping, another
 * command) is waited for, up to {@linkcode LOCK_WAIT_MS}.
 *
 * @module
 */

import type { Command } from "commander";
import { TokenError } from "../../auth/mod.ts";
import type { ServerConfig } from "../../config/mod.ts";
import {
  ConflictError,
  DataDirLockedError,
  NotFoundError,
  Store,
  ValidationError,
} from "../../storage/mod.ts";
import { createLogger, parseDuration } from "../../util/mod.ts";
import { type AdminEndpoint, adminEndpointPath, readAdminEndpoint } from "./endpoint.ts";
import { RemoteAdmin } from "./remote.ts";
import { AdminService, type RoutedAdmin } from "./service.ts";

/**
 * How long a command waits for a data directory whose holder does not serve
 * it (yet): longer than a burrowd takes to start on a new directory.
 */
export const LOCK_WAIT_MS = 20_000;

/** The flags of every command that opens the database. */
export interface DatabaseFlags {
  /** `-c, --config`: the server's YAML file. */
  config?: string;
  /** `--data-dir`: the embedded database's directory (`server.storage.data_dir`). */
  dataDir?: string;
}

/** Options of `addAdminCommands`: what the program gives its subcommands. */
export interface AdminCommandsOptions {
  /** Reports a command's exit code. */
  exit: (code: number) => void;
  /** Loads the server configuration that a command's flags point at. */
  loadConfig: (flags: DatabaseFlags) => Promise<ServerConfig>;
}

/** What the database commands are built with. */
export interface CommandKit {
  /** Adds `--config` and `--data-dir` to a command that opens the database. */
  db(command: Command): Command;
  /**
   * Does `work` with the admin work of the configured database, through
   * the running burrowd when one holds the embedded database, and reports
   * exit code 0; a request at fault (unknown user, name taken, bad value)
   * is printed and reported as 2.
   */
  withAdmin(flags: DatabaseFlags, work: (admin: RoutedAdmin) => Promise<void>): Promise<void>;
  /**
   * Like `withAdmin`, for work that the admin API does not offer: it needs
   * the database itself, and `command` (e.g. `"migrate"`) says so
   * when a running burrowd holds the embedded database.
   */
  withDatabase(
    flags: DatabaseFlags,
    command: string,
    work: (admin: AdminService) => Promise<void>,
  ): Promise<void>;
}

/** The database opened by a command, or the running burrowd that holds it. */
type Reached = { store: Store } | { endpoint: AdminEndpoint };

/**
 * Opens the configured database quietly; when a running burrowd that has
 * said where its admin API listens holds the embedded database, that
 * burrowd instead. Waits up to {@linkcode LOCK_WAIT_MS} for any other
 * holder of the directory to start its admin API or let go.
 *
 * @throws {Error} naming the holder when it does neither in time.
 */
async function reach(config: ServerConfig): Promise<Reached> {
  const logger = createLogger({ level: "warn", format: "text" }).child("storage");
  const dir = config.storage.data_dir;
  const deadline = performance.now() + LOCK_WAIT_MS;
  let waiting = false;
  for (;;) {
    let locked: DataDirLockedError;
    try {
      return { store: await Store.open(config.storage, { logger }) };
    } catch (error) {
      if (!(error instanceof DataDirLockedError)) throw error;
      locked = error;
    }
    // Written by the holder once its admin API listens; any other pid is an earlier run's.
    const endpoint = await readAdminEndpoint(dir);
    if (endpoint && endpoint.pid === locked.pid) return { endpoint };
    const holder = locked.pid === null ? "another process" : `pid ${locked.pid}`;
    if (performance.now() > deadline) {
      throw new Error(
        `The embedded database in ${dir} is in use by ${holder}, which has not said where its ` +
          `admin API listens (no ${adminEndpointPath(dir)} of its own). If it is a burrowd ` +
          "still starting, run the command again in a moment; if it is an older burrowd, or " +
          "a command that hangs, stop it first",
      );
    }
    if (!waiting) {
      waiting = true;
      console.error(
        `burrowd: ${dir} is in use by ${holder}; waiting up to ${LOCK_WAIT_MS / 1000} s ` +
          "for it to start its admin API or let go",
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The kit of the database commands of a program with `options`. */
export function commandKit(options: AdminCommandsOptions): CommandKit {
  const answer = async (work: () => Promise<void>): Promise<number> => {
    try {
      await work();
      return 0;
    } catch (error) {
      if (
        error instanceof NotFoundError || error instanceof ConflictError ||
        error instanceof ValidationError || error instanceof TokenError
      ) {
        console.error(`burrowd: ${error.message}`);
        return 2;
      }
      throw error;
    }
  };
  const run = async (
    flags: DatabaseFlags,
    work: (admin: AdminService) => Promise<void>,
    remote: (endpoint: AdminEndpoint, dataDir: string) => Promise<void>,
  ): Promise<number> => {
    const config = await options.loadConfig(flags);
    const reached = await reach(config);
    if ("endpoint" in reached) {
      return await answer(() => remote(reached.endpoint, config.storage.data_dir));
    }
    const { store } = reached;
    try {
      return await answer(() =>
        work(new AdminService(store, { guarded: false, logger: createLogger({ level: "warn" }) }))
      );
    } finally {
      await store.close();
    }
  };
  return {
    db: (command) =>
      command.option("-c, --config <file>", "server YAML config")
        .option(
          "--data-dir <dir>",
          "data directory of the embedded database (server.storage.data_dir)",
        ),
    withAdmin: async (flags, work) =>
      options.exit(
        await run(flags, work, (endpoint, dir) => work(new RemoteAdmin(endpoint, dir))),
      ),
    withDatabase: async (flags, command, work) =>
      options.exit(
        await run(flags, work, (endpoint, dir) => {
          throw new Error(
            `${command} needs the embedded database in ${dir} to itself, so it cannot go ` +
              `through the running burrowd (pid ${endpoint.pid}). Stop that burrowd, run the ` +
              "command, and start it again (on PostgreSQL, server.storage.url, it runs beside " +
              "the server)",
          );
        }),
      ),
  };
}

/** `text` split at commas, trimmed, without empty entries. */
export function list(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

/** A duration flag, or a usage error naming the flag. */
export function durationFlag(text: string, flag: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    throw new ValidationError(`${flag}: ${(error as Error).message}`);
  }
}

/** `rows` as a table under a header line; `(none)` when there are none. */
export function table(rows: Array<Record<string, unknown>>): string {
  if (!rows.length) return "(none)";
  const keys = Object.keys(rows[0]!);
  const text = (v: unknown) =>
    v === null || v === undefined ? "-" : v instanceof Date ? v.toISOString() : String(v);
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => text(r[k]).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(keys), ...rows.map((r) => line(keys.map((k) => text(r[k]))))].join("\n");
}

/**
 * What the `burrowd` subcommands share: the database flags, opening the
 * configured database for one command with an {@linkcode AdminService} on
 * it, the exit codes, and the plain-text table they print.
 *
 * @module
 */

import type { Command } from "commander";
import { TokenError } from "../../auth/mod.ts";
import type { ServerConfig } from "../../config/mod.ts";
import { ConflictError, NotFoundError, Store, ValidationError } from "../../storage/mod.ts";
import { createLogger, parseDuration } from "../../util/mod.ts";
import { AdminService } from "./service.ts";

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
   * Opens the configured database quietly, does `work` with an admin
   * service on it and reports exit code 0; a request at fault (unknown
   * user, name taken, bad value) is printed and reported as 2.
   */
  withAdmin(flags: DatabaseFlags, work: (admin: AdminService) => Promise<void>): Promise<void>;
}

/** The kit of the database commands of a program with `options`. */
export function commandKit(options: AdminCommandsOptions): CommandKit {
  const run = async (flags: DatabaseFlags, work: (admin: AdminService) => Promise<void>) => {
    const config = await options.loadConfig(flags);
    const logger = createLogger({ level: "warn", format: "text" });
    const store = await Store.open(config.storage, { logger: logger.child("storage") });
    try {
      await work(
        new AdminService(store, { guarded: false, logger: createLogger({ level: "warn" }) }),
      );
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
    withAdmin: async (flags, work) => options.exit(await run(flags, work)),
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

/**
 * `burrowd`: the Burrow server. Parses arguments, loads the configuration,
 * runs the server until SIGINT/SIGTERM, then shuts down gracefully.
 *
 * Exit codes: 0 after a clean shutdown, 1 on a fatal error, 2 on a usage or
 * configuration error.
 *
 * The program itself is `lib/server/cli.ts`; this file parses the arguments
 * with it and turns the OS's signals into an abort (SIGINT, SIGTERM) and a
 * certificate reload (SIGHUP).
 *
 * @module
 */

import { ConfigError } from "./lib/config/mod.ts";
import { serverProgram } from "./lib/server/cli.ts";
import { onShutdownSignals, runProgram } from "./lib/util/cli.ts";

/** Aborts on the first SIGINT/SIGTERM (a second one exits at once), with the signal's name as reason. */
function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  onShutdownSignals((signal) => controller.abort(signal));
  return controller.signal;
}

/** Calls `reload` on each SIGHUP (none on Windows); returns the unsubscribe. */
function onReload(reload: () => void): () => void {
  if (Deno.build.os === "windows") return () => {};
  Deno.addSignalListener("SIGHUP", reload);
  return () => Deno.removeSignalListener("SIGHUP", reload);
}

if (import.meta.main) {
  await runProgram(
    "burrowd",
    (exit) => serverProgram({ exit, shutdownSignal, onReload }),
    ConfigError,
  );
}

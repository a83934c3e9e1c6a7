/**
 * `burrow`: the Burrow client. Runs the tunnels of a config file, or one
 * tunnel given on the command line (`burrow tcp 3306 --server host:7000`),
 * until SIGINT/SIGTERM.
 *
 * Exit codes: 0 after a clean shutdown, 1 on a fatal error, 2 on a usage or
 * configuration error, a server address that is not burrowd, or (in quick
 * mode) the server refusing or closing the tunnel; 3 when the server
 * refuses the token.
 *
 * The program itself is `lib/client/cli.ts`; this file parses the arguments
 * with it and turns the OS's stop signals into an abort.
 *
 * @module
 */

import { clientProgram } from "./lib/client/cli.ts";
import { ConfigError } from "./lib/config/mod.ts";
import { onShutdownSignals, runProgram } from "./lib/util/cli.ts";

/** Aborts on the first SIGINT/SIGTERM (a second one exits at once), with the signal's name as reason. */
function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  onShutdownSignals((signal) => controller.abort(signal));
  return controller.signal;
}

if (import.meta.main) {
  await runProgram("burrow", (exit) => clientProgram({ exit, shutdownSignal }), ConfigError);
}

/**
 * One run of the server program: the logger its configuration asks for,
 * the database, the server and its admin port, how clients connect (a log
 * line, and a banner on a terminal), and a graceful shutdown when `signal`
 * aborts.
 *
 * @example
 * ```ts ignore
 * import { runServer } from "./run.ts";
 * const code = await runServer(config, { signal: AbortSignal.timeout(60_000) });
 * ```
 *
 * @module
 */

import type { ServerConfig } from "../config/mod.ts";
import { Store } from "../storage/mod.ts";
import { loggerFromSettings, VERSION } from "../util/mod.ts";
import { startAdmin } from "./admin/mod.ts";
import { connectHint, logConnectHint, startBanner } from "./connect_hint.ts";
import { BurrowServer } from "./server.ts";
import { hasTokenFile } from "./token_file.ts";

/** Options of {@linkcode runServer}. */
export interface RunServerOptions {
  /** Stops the server gracefully; its reason (e.g. `"SIGTERM"`) is logged. */
  signal: AbortSignal;
  /**
   * Subscribes `reload` to requests to re-read the certificate files (SIGHUP)
   * and returns the unsubscribe. Default: no such requests.
   */
  onReload?: (reload: () => void) => () => void;
}

/** Runs burrowd with `config` until `signal` aborts; resolves to the exit code. */
export async function runServer(config: ServerConfig, options: RunServerOptions): Promise<number> {
  const logger = loggerFromSettings(config.log);
  // No token configured and none kept yet: this start generates it.
  const newToken = !config.auth.token && !(await hasTokenFile(config.storage.data_dir));
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
  const hint = connectHint(config, server.port, server.fingerprint);
  logConnectHint(logger.child("server"), hint);
  // Only a person's terminal sees the banner, and with it a token generated now.
  if (Deno.stderr.isTerminal()) {
    console.error(startBanner(hint, {
      version: VERSION,
      listen: `${config.bind_addr}:${server.port}`,
      newToken: newToken ? server.token.reveal() : undefined,
    }));
  }
  // New certificate files serve new connections; the sessions stay.
  const stopReloads = options.onReload?.(() => {
    server.reloadCertificate().catch((error) =>
      logger.child("server").error("certificate reload failed", { error })
    );
  });
  const { signal } = options;
  if (!signal.aborted) {
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  }
  logger.child("server").info("signal received", { signal: String(signal.reason) });
  stopReloads?.();
  await server.shutdown();
  await admin.close();
  await store.close();
  return 0;
}

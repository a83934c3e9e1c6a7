/**
 * One run of the server program: the logger its configuration asks for,
 * the database, the server and its admin port, how clients connect (a log
 * line, and a banner on a terminal), and a graceful shutdown when `signal`
 * aborts. On the embedded database, whose directory this run holds, it also
 * leaves where its admin API listens in `<data_dir>/admin.json` for the
 * `burrowd` subcommands (`admin/endpoint.ts`).
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
import { loggerFromSettings, Secret, VERSION } from "../util/mod.ts";
import { adminUrl, removeAdminEndpoint, startAdmin, writeAdminEndpoint } from "./admin/mod.ts";
import { connectHint, logConnectHint, startBanner } from "./connect_hint.ts";
import { BurrowServer } from "./server.ts";
import { hasTokenFile, randomToken } from "./token_file.ts";

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
  const dataDir = config.storage.data_dir;
  // The embedded database's lock makes this run the directory's only burrowd, so an
  // admin.json found now is an earlier run's.
  const embedded = store.kind === "pglite";
  const localAdminToken = embedded ? new Secret(randomToken()) : undefined;
  let server: BurrowServer;
  try {
    if (embedded) await removeAdminEndpoint(dataDir);
    server = await BurrowServer.start(config, {
      logger,
      store,
      ...(localAdminToken ? { localAdminToken } : {}),
    });
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
  if (localAdminToken) {
    const url = adminUrl(config.admin.bind_addr, admin.port);
    try {
      await writeAdminEndpoint(dataDir, { pid: Deno.pid, url, token: localAdminToken });
    } catch (error) {
      logger.child("admin").warn(
        "cannot leave the admin API's address for the burrowd subcommands: " +
          "they cannot run while this server does",
        { dir: dataDir, error },
      );
    }
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
  // Gone first: a subcommand from now on waits for the lock and opens the database itself.
  if (localAdminToken) await removeAdminEndpoint(dataDir).catch(() => {});
  await server.shutdown();
  await admin.close();
  await store.close();
  return 0;
}

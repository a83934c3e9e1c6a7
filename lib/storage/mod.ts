/**
 * Storage: every setting, user, token, tunnel, session, metric and log in a
 * database, PostgreSQL (`server.storage.url`) or the embedded PGlite default
 * (`server.storage.data_dir`), behind one {@linkcode Store}.
 *
 * @example
 * ```ts ignore
 * import { Store } from "./mod.ts";
 * await using store = await Store.open({ data_dir: "./burrow-data" }, { logger });
 * console.log(await store.users.list());
 * ```
 *
 * @module
 */

export * from "./daos.ts";
export * from "./db.ts";
export * from "./migrate.ts";
export * from "./models.ts";
export * from "./pglite.ts";
export * from "./postgres.ts";
export * from "./store.ts";
export * from "./log_sink.ts";

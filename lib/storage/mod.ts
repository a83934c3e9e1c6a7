/**
 * Storage: every setting, user, token, tunnel, session, metric and log in a
 * database, PostgreSQL (`server.storage.url`) or the embedded PGlite default
 * (`server.storage.data_dir`), behind one {@linkcode Store}. The data
 * access is one DAO per table, grouped by what the tables hold (accounts,
 * tunnels, activity). Every statement is a fixed string with `$n`
 * parameters: user input never becomes SQL text. Batched writes pass their
 * rows as one JSON parameter expanded by `jsonb_to_recordset`, so a batch of
 * any size is one query.
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

export * from "./errors.ts";
export * from "./accounts_dao.ts";
export * from "./tunnels_dao.ts";
export * from "./nodes_dao.ts";
export * from "./activity_dao.ts";
export * from "./placements_dao.ts";
export * from "./db.ts";
export * from "./migrate.ts";
export * from "./models.ts";
export * from "./pglite.ts";
export * from "./postgres.ts";
export * from "./store.ts";
export type { PendingTunnel, QueueTunnelOptions, TunnelRecord, TunnelRef } from "./_write_queue.ts";
export * from "./log_sink.ts";

/**
 * Data access for each table. Every statement is a fixed string with `$n`
 * parameters: user input never becomes SQL text. Batched writes pass their
 * rows as one JSON parameter expanded by `jsonb_to_recordset`, so a batch of
 * any size is one query.
 *
 * @module
 */

export * from "./errors.ts";
export * from "./accounts_dao.ts";
export * from "./tunnels_dao.ts";
export * from "./activity_dao.ts";

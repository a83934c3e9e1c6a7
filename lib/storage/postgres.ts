/**
 * The PostgreSQL backend over `npm:postgres`: a small pool, notices routed to
 * the logger, `LISTEN` that re-subscribes by itself after a reconnect.
 *
 * @module
 */

import type postgres from "postgres";
import type { Logger } from "../util/mod.ts";
import { type Database, DatabaseUnavailableError, maskUrl, type Queryable } from "./db.ts";

/** Options of {@linkcode openPostgres}. */
export interface PostgresOptions {
  /** Most pooled connections. Default 8. */
  max?: number;
  /** Seconds to wait for a connection. Default 5. */
  connectTimeout?: number;
  /** Where progress and problems are logged. */
  logger: Logger;
}

type Sql = postgres.Sql<{ bigint: number }>;

function wrap(sql: Sql | postgres.TransactionSql<{ bigint: number }>): Queryable {
  return {
    async query<T>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      const rows = await sql.unsafe(text, params as postgres.ParameterOrJSON<number>[]);
      return [...rows] as unknown as T[];
    },
    async exec(text: string): Promise<void> {
      await sql.unsafe(text);
    },
  };
}

/**
 * Connects to PostgreSQL and checks the connection with `select 1`.
 *
 * @throws {DatabaseUnavailableError} when the server cannot be reached.
 */
export async function openPostgres(url: string, options: PostgresOptions): Promise<Database> {
  const log = options.logger;
  // Loaded here, not at the top: a server on the embedded database never needs it.
  const { default: postgres } = await import("postgres");
  const sql: Sql = postgres(url, {
    max: options.max ?? 8,
    connect_timeout: options.connectTimeout ?? 5,
    idle_timeout: 60,
    onnotice: (notice) => log.debug("database notice", { message: notice.message }),
    connection: { application_name: "burrowd" },
    // Counts come back as numbers, not strings.
    types: {
      bigint: {
        to: 20,
        from: [20],
        serialize: (x: number | bigint) => String(x),
        parse: (x: string) => Number(x),
      },
    },
  });
  try {
    await sql.unsafe("select 1");
  } catch (error) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw new DatabaseUnavailableError(error);
  }
  const base = wrap(sql);
  return {
    kind: "postgres",
    location: maskUrl(url),
    query: base.query,
    exec: base.exec,
    async transaction<R>(fn: (tx: Queryable) => Promise<R>): Promise<R> {
      return await sql.begin((tx) => fn(wrap(tx))) as R;
    },
    async listen(channel, onMessage, onListen) {
      const sub = await sql.listen(channel, onMessage, onListen);
      return () => sub.unlisten();
    },
    async close() {
      await sql.end({ timeout: 2 });
    },
  };
}

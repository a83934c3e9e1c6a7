/**
 * The PostgreSQL backend over `npm:postgres`: a small pool, notices routed to
 * the logger, `LISTEN` that re-subscribes by itself after a reconnect.
 *
 * @module
 */

import type postgres from "postgres";
import type { Logger } from "../util/mod.ts";
import {
  type Database,
  DatabaseUnavailableError,
  isConnectionError,
  maskUrl,
  type Queryable,
} from "./db.ts";

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
 * A promise that never settles: a new one each time, so that what waits on
 * it is collected with it rather than kept by a shared one forever.
 */
function never(): Promise<never> {
  return new Promise<never>(() => {});
}

/**
 * `sql.begin` that sends nothing down its connection once it is gone.
 * postgres.js ends a transaction with COMMIT or ROLLBACK on its connection
 * when the function settles, and a statement sent to a closed connection
 * throws from a deferred write, where nobody can catch it: the process ends
 * (porsager/postgres#1154 and #1208, unfixed in 3.4.9). So once a statement
 * fails because the connection broke, or the transaction failed because it
 * closed, further statements and the function itself never settle;
 * `sql.begin` has failed by itself with the connection's error.
 */
function begin<R>(sql: Sql, fn: (tx: Queryable) => Promise<R>): Promise<R> {
  let gone = false;
  const held = async <T>(statement: () => Promise<T>): Promise<T> => {
    if (gone) return await never();
    try {
      return await statement();
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      gone = true;
      return await never();
    }
  };
  const done = sql.begin(async (tx) => {
    const base = wrap(tx);
    const result = await fn({
      query: (text, params) => held(() => base.query(text, params)),
      exec: (text) => held(() => base.exec(text)),
    }).catch((error) => gone ? never() : Promise.reject(error));
    return gone ? await never() : result;
  }) as Promise<R>;
  // The connection closed under the transaction (or it ended): nothing more goes down it.
  done.catch(() => (gone = true));
  return done;
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
    // Every column and parameter is a scalar or jsonb: no array types to look up. The lookup
    // runs on each new connection, and one cut meanwhile rejected where nobody catches it.
    fetch_types: false,
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
    transaction: (fn) => begin(sql, fn),
    async listen(channel, onMessage, onListen) {
      const sub = await sql.listen(channel, onMessage, onListen);
      return () => sub.unlisten();
    },
    async close() {
      await sql.end({ timeout: 2 });
    },
  };
}

/**
 * The SQL connection both backends provide: parameterised queries,
 * multi-statement scripts, transactions and `LISTEN`. Everything above this
 * layer (migrations, DAOs) is written once and runs on both.
 *
 * @module
 */

/** Something that runs SQL: the database itself or an open transaction. */
export interface Queryable {
  /** Runs one statement with `$1…` parameters and returns its rows. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs a script of statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** A database connection (a pool for PostgreSQL, an instance for PGlite). */
export interface Database extends Queryable {
  /** Which backend. */
  readonly kind: "postgres" | "pglite";
  /** Where it is, with any password masked: a URL or a directory. */
  readonly location: string;
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<R>(fn: (tx: Queryable) => Promise<R>): Promise<R>;
  /**
   * Subscribes to `NOTIFY` on `channel`. `onListen` runs each time the
   * subscription is (re-)established, so callers can catch up on what they
   * missed while it was down. Resolves with an unsubscribe function.
   */
  listen(
    channel: string,
    onMessage: (payload: string) => void,
    onListen?: () => void,
  ): Promise<() => Promise<void>>;
  /** Closes connections and releases the data directory. */
  close(): Promise<void>;
}

/** The database could not be reached; the operation may succeed later. */
export class DatabaseUnavailableError extends Error {
  /** Wraps the driver's error. */
  constructor(cause: unknown) {
    super(
      `Database unavailable: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = "DatabaseUnavailableError";
  }
}

const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "57P01", // admin_shutdown (pg_terminate_backend)
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, shutting down)
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
]);

/** Whether `error` means the connection failed rather than the statement. */
export function isConnectionError(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
  return error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe;
}

/** A PostgreSQL URL with its password replaced by `***`. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable database URL)";
  }
}

/**
 * Test databases: a throwaway PostgreSQL database on 127.0.0.1:5432 (created
 * and dropped by the test), or a PGlite directory in a temp dir.
 */

import postgres from "postgres";

/** The local PostgreSQL the machines provide (trust auth). */
export const PG_ADMIN_URL: string = Deno.env.get("BURROW_TEST_PG") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

/** Whether PostgreSQL answers; in CI its absence is a failure, not a skip. */
export async function havePostgres(): Promise<boolean> {
  const sql = postgres(PG_ADMIN_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch (error) {
    if (Deno.env.get("CI") === "true") {
      throw new Error(`PostgreSQL is required in CI but not reachable: ${error}`);
    }
    console.warn(`skipping: PostgreSQL not reachable at ${PG_ADMIN_URL}`);
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** A fresh empty database; dropped (connections terminated) on dispose. */
export async function throwawayDatabase(): Promise<{ url: string } & AsyncDisposable> {
  const name = `burrow_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async [Symbol.asyncDispose]() {
      try {
        await admin.unsafe(
          `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' ` +
            `and pid <> pg_backend_pid()`,
        );
        await admin.unsafe(`drop database if exists ${name}`);
      } finally {
        await admin.end({ timeout: 1 });
      }
    },
  };
}

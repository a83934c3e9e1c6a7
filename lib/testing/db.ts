/**
 * Test databases: a throwaway PostgreSQL database on 127.0.0.1:5432 (created
 * and dropped by the test), or a PGlite directory in a temp dir.
 */

import postgres from "postgres";
import { inCI, testIgnoredIf, type TestRegistrar } from "./tools.ts";

/** The local PostgreSQL the machines provide (trust auth). */
export const PG_ADMIN_URL: string = Deno.env.get("BURROW_TEST_PG") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * The `ignore:` of tests that need PostgreSQL, decided once when the test
 * module loads (`const noPostgres = await lacksPostgres();`): `true` outside
 * CI when it does not answer, so `deno test` counts those tests as ignored.
 * In CI (`CI=true`) it is `false` and says so on stderr: the tests fail.
 */
export async function lacksPostgres(): Promise<boolean> {
  const sql = postgres(PG_ADMIN_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return false;
  } catch (error) {
    if (!inCI()) return true;
    console.error(`PostgreSQL is required in CI but not reachable at ${PG_ADMIN_URL}: ${error}`);
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/**
 * Registers tests that need PostgreSQL, ignored outside CI when it does not
 * answer: `const test = { postgres: await testNeedingPostgres() };`.
 */
export async function testNeedingPostgres(): Promise<TestRegistrar> {
  return testIgnoredIf(await lacksPostgres());
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

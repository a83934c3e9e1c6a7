// The PostgreSQL backend against a real server whose connections are cut.

import postgres from "postgres";
import { assert, assertEquals, testNeedingPostgres, throwawayDatabase } from "../testing/mod.ts";
import { nullLogger } from "../util/mod.ts";
import { isConnectionError } from "./db.ts";
import { openPostgres } from "./postgres.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

test.postgres("PostgreSQL: connections cut mid-transaction and mid-connect fail the work, never the process", async () => {
  await using database = await throwawayDatabase();
  const db = await openPostgres(database.url, { logger: nullLogger, max: 4 });
  const killer = postgres(database.url, { max: 1, onnotice: () => {} });
  try {
    await db.exec("create table written (id int primary key)");
    const resolved: number[] = [];
    const failures: unknown[] = [];
    let unanswered = 0;
    let next = 0;
    let stop = false;
    // Shaped like the store's batched write: statements with a turn of the event loop between,
    // bounded as the store bounds it (the driver can leave a BEGIN unanswered after a cut).
    const writer = async () => {
      while (!stop) {
        const id = next++;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const work = db.transaction(async (tx) => {
          await tx.query("select 1");
          await new Promise((resolve) => setTimeout(resolve, 0));
          await tx.query("insert into written (id) values ($1)", [id]);
          await tx.query("select 2");
        });
        const deadline = new Promise<"unanswered">((resolve) => {
          timer = setTimeout(() => resolve("unanswered"), 2000);
        });
        try {
          if (await Promise.race([work, deadline]) === "unanswered") unanswered++;
          else resolved.push(id);
        } catch (error) {
          failures.push(error);
        } finally {
          clearTimeout(timer);
        }
      }
    };
    const writers = [writer(), writer(), writer(), writer()];
    // Every backend of burrowd's pool, every 15 ms: mid-statement, mid-commit, mid-connect.
    let killed = 0;
    const started = performance.now();
    while (performance.now() - started < (killed < 20 ? 4000 : 1500)) {
      const rows = await killer`select pg_terminate_backend(pid) from pg_stat_activity
        where datname = current_database() and application_name = 'burrowd'`;
      killed += rows.length;
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    stop = true;
    await Promise.all(writers);
    const counts = JSON.stringify({
      killed,
      resolved: resolved.length,
      failed: failures.length,
      unanswered,
    });
    assert(killed >= 5 && failures.length > 0, counts);
    for (const error of failures) assert(isConnectionError(error), String(error));
    // What resolved was committed, and the pool still answers.
    const rows = await db.query<{ id: number }>("select id from written");
    const written = new Set(rows.map((r) => r.id));
    assertEquals(resolved.filter((id) => !written.has(id)), []);
    assertEquals(await db.query("select 1 as one"), [{ one: 1 }]);
  } finally {
    await killer.end({ timeout: 1 });
    await db.close();
  }
});

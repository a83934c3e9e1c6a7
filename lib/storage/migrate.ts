/**
 * Schema migrations: numbered files in `sql/` (`001_init.sql`, …), applied in
 * order inside one transaction, recorded in `schema_migrations`. The same
 * files run on PostgreSQL and PGlite. A database migrated by a newer burrowd
 * is refused instead of being used half-understood.
 *
 * @module
 */

import type { Database } from "./db.ts";

/** One migration file. */
export interface Migration {
  /** The number the file name starts with. */
  version: number;
  /** The file name. */
  name: string;
  /** Its SQL. */
  sql: string;
  /** Hex SHA-256 of the SQL, to notice an applied file that was edited later. */
  checksum: string;
}

/** What {@linkcode migrate} did. */
export interface MigrateResult {
  /** Versions applied by this call. */
  applied: number[];
  /** Schema version now. */
  version: number;
}

/** The database is newer than this binary, or the migrations are inconsistent. */
export class MigrationError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "MigrationError";
  }
}

const SQL_DIR = new URL("../../sql/", import.meta.url);
/** Serialises migrations of several burrowd nodes sharing one database. */
const LOCK_KEY = 0x6275_7277; // "burw"

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Reads the migration files shipped with this build, in order. */
export async function loadMigrations(dir: URL | string = SQL_DIR): Promise<Migration[]> {
  const found: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const match = /^(\d+)_[\w-]+\.sql$/.exec(entry.name);
    if (!entry.isFile || !match) continue;
    const sql = await Deno.readTextFile(new URL(entry.name, dir));
    found.push({
      version: Number(match[1]),
      name: entry.name,
      sql,
      checksum: await sha256Hex(sql),
    });
  }
  found.sort((a, b) => a.version - b.version);
  for (let i = 1; i < found.length; i++) {
    if (found[i]!.version === found[i - 1]!.version) {
      throw new MigrationError(
        `Two migrations share version ${found[i]!.version}: ${found[i - 1]!.name}, ${
          found[i]!.name
        }`,
      );
    }
  }
  return found;
}

/**
 * Brings the schema up to date. Idempotent; safe to run from several nodes
 * at once (an advisory lock serialises them).
 *
 * @throws {MigrationError} when the database was migrated by a newer build.
 */
export async function migrate(
  db: Database,
  migrations?: Migration[],
  onApply?: (m: Migration) => void,
): Promise<MigrateResult> {
  const all = migrations ?? await loadMigrations();
  const newest = all.at(-1)?.version ?? 0;
  return await db.transaction(async (tx) => {
    await tx.query("select pg_advisory_xact_lock($1)", [LOCK_KEY]);
    await tx.exec(`create table if not exists schema_migrations (
      version    integer primary key,
      name       text not null,
      checksum   text not null,
      applied_at timestamptz not null default now()
    )`);
    const done = await tx.query<{ version: number; name: string; checksum: string }>(
      "select version, name, checksum from schema_migrations order by version",
    );
    const current = done.at(-1)?.version ?? 0;
    if (current > newest) {
      throw new MigrationError(
        `The database schema is at version ${current} (${done.at(-1)!.name}) but this ` +
          `burrowd knows versions up to ${newest}: upgrade burrowd, or point it at ` +
          `another database.`,
      );
    }
    const applied: number[] = [];
    const doneVersions = new Set(done.map((d) => d.version));
    for (const m of all) {
      if (doneVersions.has(m.version)) continue;
      if (m.version < current) {
        throw new MigrationError(
          `Migration ${m.name} is older than the schema (version ${current}) but was never ` +
            `applied: migrations must only be added with higher numbers.`,
        );
      }
      onApply?.(m);
      await tx.exec(m.sql);
      await tx.query(
        "insert into schema_migrations (version, name, checksum) values ($1, $2, $3)",
        [m.version, m.name, m.checksum],
      );
      applied.push(m.version);
    }
    return { applied, version: Math.max(current, applied.at(-1) ?? 0) };
  });
}

/**
 * A short name for the schema `migrations` produce: their versions and
 * checksums, hashed. Caches of a migrated database are keyed by it.
 *
 * @example
 * ```ts ignore
 * const key = await schemaKey(await loadMigrations()); // "schema-1f0c…"
 * ```
 */
export async function schemaKey(migrations: Migration[]): Promise<string> {
  const text = migrations.map((m) => `${m.version}:${m.checksum}`).join("\n");
  return `schema-${(await sha256Hex(text)).slice(0, 16)}`;
}

/** Applied migrations whose file has changed since (worth a warning, not a refusal). */
export async function changedMigrations(db: Database, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? await loadMigrations();
  const rows = await db.query<{ version: number; checksum: string }>(
    "select version, checksum from schema_migrations",
  );
  const byVersion = new Map(rows.map((r) => [r.version, r.checksum]));
  return all.filter((m) => byVersion.has(m.version) && byVersion.get(m.version) !== m.checksum)
    .map((m) => m.name);
}

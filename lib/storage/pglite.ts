/**
 * The embedded backend: PostgreSQL in WebAssembly (`npm:@electric-sql/pglite`)
 * in a data directory, no server to install.
 *
 * PGlite takes no lock of its own and two processes on one directory lose
 * writes, so this module holds an exclusive lock on `<dir>/burrow.lock` for as
 * long as the database is open. A fresh directory needs `initdb`, which takes
 * 5–8 s here; the first one on a machine saves the blank cluster, and the
 * cluster with Burrow's schema applied, to the user's cache directory, and
 * later fresh directories start from a copy of those.
 *
 * PostgreSQL runs with {@linkcode PGLITE_SETTINGS}, sized for what Burrow
 * stores rather than for a database server.
 *
 * @module
 */

import type { PGlite, PGliteOptions } from "@electric-sql/pglite";
import { basename, dirname, join } from "node:path";
import type { Logger } from "../util/mod.ts";
import type { Database, Queryable } from "./db.ts";

/**
 * PostgreSQL settings of the embedded database, given as `-c name=value` at
 * every start (they take precedence over the cluster's `postgresql.conf`) and
 * to `initdb` for a new cluster.
 *
 * PGlite runs one backend inside this process, and the shared memory sized
 * by these settings is zeroed at start, so all of it is resident whether used
 * or not. Burrow's tables are small (users, keys, tunnels, open sessions) or
 * appended to and read back by index (sessions, metrics, logs); the data
 * files are read through the operating system's page cache, so a buffer miss
 * costs a `read()`, not a disk seek.
 *
 * @example
 * ```ts ignore
 * const db = await openPglite("./burrow-data", { logger });
 * const [row] = await db.query<{ shared_buffers: string }>("show shared_buffers");
 * // row.shared_buffers === PGLITE_SETTINGS.shared_buffers
 * ```
 */
export const PGLITE_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  // Default 128MB; the catalogs and Burrow's hot pages take a few MB.
  shared_buffers: "4MB",
  // One backend. The defaults (100 connections, 16 autovacuum workers, 10 WAL
  // senders) size the lock and process tables for 126.
  max_connections: "5",
  autovacuum_worker_slots: "1",
  max_wal_senders: "0",
  // Per sort or hash; Burrow's largest is a per-tunnel traffic sum. Default 4MB.
  work_mem: "1MB",
  // CREATE INDEX in a migration, VACUUM. Default 64MB, which WebAssembly
  // memory, once grown, would keep for good.
  maintenance_work_mem: "8MB",
  // Burrow creates no temporary tables. Default 8MB.
  temp_buffers: "1MB",
});

/** The PGlite release in use: blank clusters are cached per release. */
const PGLITE_VERSION = /pglite[@/](\d[\w.-]*)/.exec(import.meta.resolve("@electric-sql/pglite"))
  ?.[1];

/** Another process holds the data directory. */
export class DataDirLockedError extends Error {
  /** The data directory. */
  readonly dir: string;
  /** The process holding it, as its lock file says; `null` when the file names none yet. */
  readonly pid: number | null;
  /** Names the directory and, when known, the process holding it. */
  constructor(dir: string, pid: number | null) {
    super(
      `The embedded database in ${dir} is in use by another burrowd${
        pid === null ? "" : ` (pid ${pid})`
      } (lock on ${join(dir, "burrow.lock")}). Stop that process, choose another ` +
        `server.storage.data_dir, or set server.storage.url to share a PostgreSQL database.`,
    );
    this.name = "DataDirLockedError";
    this.dir = dir;
    this.pid = pid;
  }
}

/**
 * Work done once on every new database, such as applying the schema
 * migrations. The result is cached with the blank cluster under `key`, and
 * later new databases start from that copy without doing the work again.
 */
export interface PgliteSetup {
  /** Names the result: a different key for different work (a hash of the migrations). */
  key: string;
  /** The work. */
  run(db: Database): Promise<void>;
}

/** Options of {@linkcode openPglite}. */
export interface PgliteOptions {
  /** Where progress and problems are logged. */
  logger: Logger;
  /** Where clusters are cached; default `$BURROW_CACHE_DIR`, `$XDG_CACHE_HOME/burrow` or `~/.cache/burrow`. */
  cacheDir?: string | null | undefined;
  /** Run on a new database (only), and cached with it. */
  setup?: PgliteSetup | undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function defaultCacheDir(): string | null {
  const env = (name: string) => Deno.env.get(name);
  if (env("BURROW_CACHE_DIR")) return env("BURROW_CACHE_DIR")!;
  if (env("XDG_CACHE_HOME")) return join(env("XDG_CACHE_HOME")!, "burrow");
  if (env("HOME")) return join(env("HOME")!, ".cache", "burrow");
  return null;
}

async function lockDir(dir: string): Promise<Deno.FsFile> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "burrow.lock");
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  if (!(await file.tryLock(true))) {
    let pid: number | null = null;
    try {
      const text = (await Deno.readTextFile(path)).trim();
      // Empty while the holder is between taking the lock and writing its pid.
      if (/^\d+$/.test(text)) pid = Number(text);
    } catch { /* unreadable: no pid to show */ }
    file.close();
    throw new DataDirLockedError(dir, pid);
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  return file;
}

/** Runs `work`, logging every few seconds that it is still going. */
async function withProgress<T>(log: Logger, what: string, work: Promise<T>): Promise<T> {
  const started = performance.now();
  const timer = setInterval(() => {
    log.info(`still ${what}`, { elapsed_s: Math.round((performance.now() - started) / 1000) });
  }, 2000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

function wrap(db: Pick<PGlite, "query" | "exec">): Queryable {
  return {
    async query<T>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await db.query<T>(text, params as unknown[])).rows;
    },
    async exec(text: string): Promise<void> {
      await db.exec(text);
    },
  };
}

/**
 * Opens (creating if needed) the embedded database in `<dataDir>/db`.
 *
 * A new database starts from a copy of the first cached cluster that exists:
 * the one `options.setup` left (no setup to run), the blank one; else from
 * `initdb`. PGlite then opens the copy like any existing database (its own
 * `loadDataDir` would unpack a tarball in memory, about 100 MB that the
 * process kept). What a start creates is cached for the next new one.
 *
 * @throws {DataDirLockedError} when another process has the directory open.
 */
export async function openPglite(dataDir: string, options: PgliteOptions): Promise<Database> {
  const log = options.logger;
  const lock = await lockDir(dataDir);
  const dbDir = join(dataDir, "db");
  let db: PGlite;
  let setupDone = true;
  let prepared: string | null = null;
  try {
    // Loaded here, not at the top: a server on PostgreSQL never needs it.
    const { PGlite } = await import("@electric-sql/pglite");
    const settings = Object.entries(PGLITE_SETTINGS).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
    const open: PGliteOptions = {
      dataDir: dbDir,
      startParams: [...PGlite.defaultStartParams, ...settings],
    };
    const cacheDir = options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir;
    const cached = (name: string) =>
      cacheDir && PGLITE_VERSION ? join(cacheDir, `pglite-${PGLITE_VERSION}-${name}`) : null;
    const blank = cached("blank");
    prepared = options.setup ? cached(options.setup.key) : null;

    let pending = !(await exists(join(dbDir, "PG_VERSION")));
    setupDone = !pending;
    if (pending && prepared && await exists(prepared)) {
      log.info("creating the embedded database from the cached cluster", {
        dir: dbDir,
        template: prepared,
      });
      setupDone = await fromTemplate(prepared, dbDir, log);
      pending = !setupDone;
    }
    if (pending && blank && await exists(blank)) {
      log.info("creating the embedded database from the cached blank cluster", {
        dir: dbDir,
        template: blank,
      });
      pending = !(await fromTemplate(blank, dbDir, log));
    }
    if (pending) {
      log.info("creating the embedded database (first start takes 5-10 s)", { dir: dbDir });
      db = await withProgress(
        log,
        "creating the embedded database",
        PGlite.create({ ...open, initDbStartParams: settings }),
      );
      if (blank) await saveTemplate(db, dbDir, blank, log);
    } else {
      db = await withProgress(log, "opening the embedded database", PGlite.create(open));
    }
  } catch (error) {
    lock.close();
    throw error;
  }
  const database = asDatabase(db, dbDir, lock);
  if (options.setup && !setupDone) {
    try {
      await options.setup.run(database);
    } catch (error) {
      await database.close();
      throw error;
    }
    if (prepared) await saveTemplate(db, dbDir, prepared, log);
  }
  return database;
}

/** `db` as a {@linkcode Database}; closing it also releases `lock`. */
function asDatabase(db: PGlite, dbDir: string, lock: Deno.FsFile): Database {
  const base = wrap(db);
  let closed = false;
  return {
    kind: "pglite",
    location: dbDir,
    query: base.query,
    exec: base.exec,
    transaction<R>(fn: (tx: Queryable) => Promise<R>): Promise<R> {
      return db.transaction((tx) => fn(wrap(tx)));
    },
    async listen(channel, onMessage, onListen) {
      const unlisten = await db.listen(channel, onMessage);
      onListen?.();
      return unlisten;
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        await db.close();
      } finally {
        lock.close();
      }
    },
  };
}

/** Copies the directory tree `from` to `to` (new, mode 0700), in the kernel where it can. */
async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { mode: 0o700 });
  for await (const entry of Deno.readDir(from)) {
    const [src, dst] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory) await copyTree(src, dst);
    else if (entry.isFile) await Deno.copyFile(src, dst);
    else throw new TypeError(`Not a file or directory: ${src}`);
  }
}

/**
 * Copies the cached cluster `template` into `dbDir` (through a temporary
 * sibling, so that a failure leaves no half cluster behind). Returns false,
 * after logging why, when the template cannot be used.
 */
async function fromTemplate(template: string, dbDir: string, log: Logger): Promise<boolean> {
  const tmp = `${dbDir}.${Deno.pid}.tmp`;
  try {
    if (!(await exists(join(template, "PG_VERSION")))) {
      // Not a cluster (a copy cut short, say): out of the way of the next save.
      await Deno.remove(template, { recursive: true }).catch(() => {});
      throw new Error("It holds no PG_VERSION");
    }
    await copyTree(template, tmp);
    // A directory without PG_VERSION is what an interrupted first start leaves.
    await Deno.remove(dbDir, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, dbDir);
    return true;
  } catch (error) {
    log.warn("the cached cluster is unusable, creating the database without it", {
      template,
      error: (error as Error).message,
    });
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    return false;
  }
}

/**
 * Caches the cluster in `dbDir` as the directory `path` for later new
 * databases. A checkpoint first writes every change to the files; nothing
 * else runs in the single PGlite backend meanwhile, so the copy is a
 * consistent cluster. Older prepared (not blank) caches of the same PGlite
 * release go, so the cache holds at most two clusters (about 40 MB each).
 */
async function saveTemplate(db: PGlite, dbDir: string, path: string, log: Logger): Promise<void> {
  const dir = dirname(path);
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    await db.exec("checkpoint");
    await Deno.mkdir(dir, { recursive: true });
    await copyTree(dbDir, tmp);
    // Fails when another process saved the same cluster first: theirs is as good.
    await Deno.rename(tmp, path);
    log.debug("cached the embedded cluster", { template: path });
  } catch (error) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    log.debug("could not cache the embedded cluster", { template: path, error });
    return;
  }
  const name = basename(path);
  const prefix = `pglite-${PGLITE_VERSION}-`;
  if (name.endsWith("-blank")) return;
  for await (const entry of Deno.readDir(dir)) {
    const other = entry.name;
    if (
      entry.isDirectory && other !== name && other.startsWith(prefix) &&
      !other.endsWith("-blank") && !other.endsWith(".tmp")
    ) {
      await Deno.remove(join(dir, other), { recursive: true }).catch(() => {});
    }
  }
}

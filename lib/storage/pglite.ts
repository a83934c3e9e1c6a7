/**
 * The embedded backend: PostgreSQL in WebAssembly (`npm:@electric-sql/pglite`)
 * in a data directory, no server to install.
 *
 * PGlite takes no lock of its own and two processes on one directory lose
 * writes, so this module holds an exclusive lock on `<dir>/burrow.lock` for as
 * long as the database is open. A fresh directory needs `initdb`, which takes
 * 5–8 s here; the first one on a machine saves a blank cluster to the user's
 * cache directory and later fresh directories start from that copy.
 *
 * PostgreSQL runs with {@linkcode PGLITE_SETTINGS}, sized for what Burrow
 * stores rather than for a database server.
 *
 * @module
 */

import type { PGlite, PGliteOptions } from "@electric-sql/pglite";
import { join } from "node:path";
import type { Logger } from "../util/logger.ts";
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
  /** Names the directory. */
  constructor(dir: string, holder: string) {
    super(
      `The embedded database in ${dir} is in use by another burrowd${holder} ` +
        `(lock on ${join(dir, "burrow.lock")}). Stop that process, choose another ` +
        `server.storage.data_dir, or set server.storage.url to share a PostgreSQL database.`,
    );
    this.name = "DataDirLockedError";
  }
}

/** Options of {@linkcode openPglite}. */
export interface PgliteOptions {
  /** Where progress and problems are logged. */
  logger: Logger;
  /** Where blank clusters are cached; default `$BURROW_CACHE_DIR`, `$XDG_CACHE_HOME/burrow` or `~/.cache/burrow`. */
  cacheDir?: string | null | undefined;
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
    let holder = "";
    try {
      const pid = (await Deno.readTextFile(path)).trim();
      if (pid) holder = ` (pid ${pid})`;
    } catch { /* unreadable: no pid to show */ }
    file.close();
    throw new DataDirLockedError(dir, holder);
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
 * @throws {DataDirLockedError} when another process has the directory open.
 */
export async function openPglite(dataDir: string, options: PgliteOptions): Promise<Database> {
  const log = options.logger;
  const lock = await lockDir(dataDir);
  const dbDir = join(dataDir, "db");
  let db: PGlite;
  try {
    // Loaded here, not at the top: a server on PostgreSQL never needs it.
    const { PGlite } = await import("@electric-sql/pglite");
    const settings = Object.entries(PGLITE_SETTINGS).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
    const open: PGliteOptions = {
      dataDir: dbDir,
      startParams: [...PGlite.defaultStartParams, ...settings],
    };
    const fresh = !(await exists(join(dbDir, "PG_VERSION")));
    const cacheDir = options.cacheDir === undefined ? defaultCacheDir() : options.cacheDir;
    const template = cacheDir && PGLITE_VERSION
      ? join(cacheDir, `pglite-${PGLITE_VERSION}-blank.tar.gz`)
      : null;
    if (fresh) {
      if (template && await exists(template)) {
        log.info("creating the embedded database from the cached blank cluster", {
          dir: dbDir,
          template,
        });
        const blob = new Blob([await Deno.readFile(template)]);
        db = await withProgress(
          log,
          "creating the embedded database",
          PGlite.create({ ...open, loadDataDir: blob }),
        );
      } else {
        log.info("creating the embedded database (first start takes 5-10 s)", { dir: dbDir });
        db = await withProgress(
          log,
          "creating the embedded database",
          PGlite.create({ ...open, initDbStartParams: settings }),
        );
        if (template) await saveTemplate(db, template, log);
      }
    } else {
      db = await withProgress(log, "opening the embedded database", PGlite.create(open));
    }
  } catch (error) {
    lock.close();
    throw error;
  }
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

/** Saves a blank cluster so later fresh directories skip `initdb`. */
async function saveTemplate(db: PGlite, path: string, log: Logger): Promise<void> {
  try {
    const dump = await db.dumpDataDir("gzip");
    const dir = path.slice(0, path.lastIndexOf("/"));
    await Deno.mkdir(dir, { recursive: true });
    const tmp = `${path}.${Deno.pid}.tmp`;
    await Deno.writeFile(tmp, new Uint8Array(await dump.arrayBuffer()));
    await Deno.rename(tmp, path);
    log.debug("cached a blank embedded cluster", { template: path });
  } catch (error) {
    log.debug("could not cache a blank embedded cluster", { error });
  }
}

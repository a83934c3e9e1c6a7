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
 * @module
 */

import { PGlite } from "@electric-sql/pglite";
import { join } from "node:path";
import type { Logger } from "../util/logger.ts";
import type { Database, Queryable } from "./db.ts";

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
          PGlite.create({ dataDir: dbDir, loadDataDir: blob }),
        );
      } else {
        log.info("creating the embedded database (first start takes 5-10 s)", { dir: dbDir });
        db = await withProgress(
          log,
          "creating the embedded database",
          PGlite.create({ dataDir: dbDir }),
        );
        if (template) await saveTemplate(db, template, log);
      }
    } else {
      db = await withProgress(log, "opening the embedded database", PGlite.create(dbDir));
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

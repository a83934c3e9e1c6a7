/**
 * Storage rows of the benchmark: new-connection latency through a tunnel with
 * the embedded database and with PostgreSQL side by side (it must not depend
 * on the database: tunnels are served from memory and cache), and the
 * database queries per second caused by many idle connected clients
 * (heartbeats are batched, so this stays flat as clients grow).
 *
 * @module
 */

import postgres from "postgres";
import { BurrowClient } from "../../lib/client/mod.ts";
import { clientConfigFromObject } from "../../lib/config/mod.ts";
import { startBurrow } from "./_burrow.ts";
import { connectToFirstByte, type LatencySummary } from "./_latency.ts";
import { delay } from "./_procs.ts";

/** What the storage part measured. */
export interface StorageResults {
  /** connect-to-first-byte through a tunnel, by backend. */
  firstByte: { pglite?: LatencySummary; postgres?: LatencySummary };
  /** Queries per second PostgreSQL saw while `clients` idle clients were connected. */
  idle?: { clients: number; seconds: number; queriesPerSecond: number; heartbeatMs: number };
}

/** Settings of {@linkcode storageBench}. */
export interface StorageSettings {
  firstByteCount: number;
  latencyBudgetMs: number;
  idleClients: number;
  idleSeconds: number;
}

const ADMIN_URL = Deno.env.get("BURROW_BENCH_PG") ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A new database on the benchmark's PostgreSQL, dropped on dispose. */
export async function throwaway(): Promise<{ url: string; name: string } & AsyncDisposable> {
  const name = `burrow_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async [Symbol.asyncDispose]() {
      await admin.unsafe(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' ` +
          `and pid <> pg_backend_pid()`,
      ).catch(() => {});
      await admin.unsafe(`drop database if exists ${name}`).catch(() => {});
      await admin.end({ timeout: 1 });
    },
  };
}

/** Transactions committed or rolled back in database `name` so far. */
async function transactions(admin: postgres.Sql, name: string): Promise<number> {
  // Statistics reach pg_stat_database within about a second; clear our snapshot.
  await admin`select pg_stat_clear_snapshot()`;
  const [row] = await admin`select (xact_commit + xact_rollback)::bigint::text as n
    from pg_stat_database where datname = ${name}`;
  return Number(row?.n ?? 0);
}

/** Runs the storage measurements; failures land in `errors`. */
export async function storageBench(
  dir: string,
  s: StorageSettings,
  greetPort: number,
  progress: (m: string) => void,
  errors: string[],
): Promise<StorageResults> {
  const out: StorageResults = { firstByte: {} };
  const fail = (what: string, error: unknown) => {
    const message = `${what}: ${(error as Error).message}`;
    errors.push(message);
    progress(`FAILED ${message.split("\n")[0]}`);
  };

  for (const backend of ["pglite", "postgres"] as const) {
    progress(`connect-to-first-byte through Burrow with ${backend}`);
    try {
      await using db = backend === "postgres" ? await throwaway() : null;
      await Deno.mkdir(`${dir}/storage-${backend}`);
      await using burrow = await startBurrow(
        `${dir}/storage-${backend}`,
        [{ name: "greet", localPort: greetPort }],
        db ? { databaseUrl: db.url } : {},
      );
      out.firstByte[backend] = await connectToFirstByte(burrow.remotePorts.get("greet")!, {
        count: s.firstByteCount,
        budgetMs: s.latencyBudgetMs,
      });
    } catch (error) {
      fail(`connect-to-first-byte with ${backend}`, error);
    }
  }

  progress(`database queries/s with ${s.idleClients} idle clients (${s.idleSeconds} s)`);
  try {
    await using db = await throwaway();
    await Deno.mkdir(`${dir}/storage-idle`);
    const heartbeatMs = 10_000;
    await using burrow = await startBurrow(`${dir}/storage-idle`, [], {
      databaseUrl: db.url,
      server: { max_clients: s.idleClients + 10, heartbeat_interval: `${heartbeatMs / 1000}s` },
    });
    const controller = new AbortController();
    const clients: Promise<void>[] = [];
    let connected = 0;
    for (let i = 0; i < s.idleClients; i++) {
      const config = clientConfigFromObject({
        client: {
          server_addr: "127.0.0.1",
          server_port: burrow.controlPort,
          auth_token: burrow.token,
          server_fingerprint: burrow.fingerprint,
          client_id: `idle-${i}`,
          tunnels: [],
        },
      });
      const client = new BurrowClient(config, {
        logger: {
          debug() {},
          info(msg) {
            if (msg === "connected") connected++;
          },
          warn() {},
          error() {},
          child() {
            return this;
          },
          enabled: () => false,
        },
      });
      clients.push(client.run(controller.signal).catch(() => {}));
      if (i % 50 === 49) await delay(50);
    }
    const deadline = performance.now() + 120_000;
    while (connected < s.idleClients && performance.now() < deadline) await delay(100);
    if (connected < s.idleClients) throw new Error(`only ${connected} clients connected`);
    // Idle backends report their statistics up to 10 s late (PGSTAT_IDLE_INTERVAL):
    // let the logins' queries land before the window opens, and the window's after it.
    await delay(12_000);
    const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    try {
      const before = await transactions(admin, db.name);
      const t0 = performance.now();
      await delay(s.idleSeconds * 1000);
      const seconds = (performance.now() - t0) / 1000;
      await delay(11_000);
      const after = await transactions(admin, db.name);
      out.idle = {
        clients: s.idleClients,
        seconds,
        queriesPerSecond: (after - before) / seconds,
        heartbeatMs,
      };
    } finally {
      await admin.end({ timeout: 1 });
      controller.abort();
      await Promise.all(clients);
    }
  } catch (error) {
    fail("queries/s with idle clients", error);
  }
  return out;
}

/**
 * What `/metrics` reads from the server at scrape time (the gauges):
 * sessions and their tunnels' open connections, cache hit rates, the
 * database's write queue, and the alerts in force. Nothing here costs
 * anything between scrapes.
 *
 * @module
 */

import type { MetricsSource } from "../monitor/mod.ts";
import type { AlertEngine } from "../monitor/mod.ts";
import type { TokenService } from "../auth/mod.ts";
import type { Store } from "../storage/mod.ts";
import type { ClientSession } from "./session.ts";

/** Hits and misses of a cache. */
type CacheCounts = { hits: number; misses: number };

/** The parts of the server the gauges read. */
export interface GaugedServer {
  /** Connected, authenticated sessions. */
  readonly sessions: ReadonlySet<ClientSession>;
  /** User tokens, when the server has a database. */
  readonly tokens: TokenService | null;
  /** The database, when the server has one. */
  readonly store: Store | null;
  /** The alert rules engine. */
  readonly alerts: AlertEngine;
}

/** The gauges of `server`; `managed` counts the managed-tunnel cache's hits. */
export function gaugeSource(server: GaugedServer, managed: () => CacheCounts): MetricsSource {
  const none = { hits: 0, misses: 0 };
  return {
    sessions: () =>
      [...server.sessions].map((s) => ({
        user: s.principal?.userName ?? "admin",
        tunnels: [...s.tunnels.values()].map((t) => ({
          name: t.name,
          type: t.type,
          activeConnections: t.activeConnections,
          liveTransfers: t.liveTransfers,
        })),
      })),
    caches: () => ({
      tokens: server.tokens ? server.tokens.cache : none,
      managed_tunnels: managed(),
    }),
    database: () => {
      const store = server.store;
      if (!store) return null;
      return {
        available: store.available,
        pendingWrites: store.pendingWrites,
        maxPendingWrites: store.maxPendingWrites,
        droppedWrites: store.droppedWrites,
        queries: store.queries,
      };
    },
    alerts: () => {
      const severity = new Map(server.alerts.rules.map((r) => [r.name, r.severity]));
      return server.alerts.active.map((a) => ({
        state: a.state,
        severity: severity.get(a.rule) ?? "",
      }));
    },
  };
}

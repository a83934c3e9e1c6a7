/**
 * The small stores that the folders below the server ask for, kept in the
 * server's database: the server is the one room that knows both sides.
 *
 * @module
 */

import type { AlertStore } from "../monitor/mod.ts";
import type { Store } from "../storage/mod.ts";

/** The alert engine's states as rows of the `alerts` table. */
export function alertStore(store: Store): AlertStore {
  return {
    fire: async (rule, severity, message, labels, state) =>
      (await store.run((s) => s.alerts.fire(rule, severity, message, labels, state))).id,
    firing: (id, message) => store.run((s) => s.alerts.firing(id, message)),
    resolve: (id) => store.run((s) => s.alerts.resolve(id)),
    discard: (id) => store.run((s) => s.alerts.discard(id)),
  };
}

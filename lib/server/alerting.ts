/**
 * The server's alert engine: the configured rules with the seed's defaults
 * added, their notifiers, and where alert states are kept.
 *
 * @module
 */

import type { ServerConfig } from "../config/mod.ts";
import {
  AlertEngine,
  type AlertRuleSpec,
  DEFAULT_RULES,
  notifiersFor,
  type TunnelStats,
} from "../monitor/mod.ts";
import type { Store } from "../storage/mod.ts";
import type { Logger } from "../util/mod.ts";
import { alertStore } from "./stores.ts";
import { ClusterStats, type PublishedStats } from "./cluster/mod.ts";

/** Options of {@linkcode alertEngine}. */
export interface AlertEngineSetup {
  /** Where tunnel states come from (cluster mode: every node's, merged). */
  stats: Pick<TunnelStats, "snapshot">;
  /** Where alert states are kept; none without a database. */
  store: Store | null;
  /** Where alerts and their problems are logged (as `alerts`). */
  logger: Logger;
  /** Whether rounds evaluate now (cluster mode: while this node holds the `alerts` lease). */
  evaluating: () => boolean;
  /** Cluster mode: the other alive nodes' published windows, merged with `stats`. */
  peers?: () => Iterable<PublishedStats>;
}

/**
 * The alert engine of `config`: `server.alerts`, plus the seed's default
 * rules that `alerts` does not redefine (unless `alerting.default_rules` is
 * off), notifying the log and `alerting.webhook_url`.
 */
export function alertEngine(config: ServerConfig, setup: AlertEngineSetup): AlertEngine {
  const rules: AlertRuleSpec[] = config.alerts.map((r) => ({ ...r }));
  if (config.alerting.default_rules) {
    for (const d of DEFAULT_RULES) if (!rules.some((r) => r.name === d.name)) rules.push(d);
  }
  const logger = setup.logger.child("alerts");
  return new AlertEngine({
    rules,
    stats: config.cluster && setup.peers
      ? new ClusterStats(config.cluster.node_id, setup.stats, setup.peers)
      : setup.stats,
    store: setup.store ? alertStore(setup.store) : null,
    notifiers: notifiersFor(config.alerting, logger),
    logger,
    intervalMs: config.alerting.evaluate_every,
    evaluating: setup.evaluating,
  });
}

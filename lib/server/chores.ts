/**
 * What the server does on a timer besides serving: probing the tunnels that
 * asked for it (`probe: true`, every `server.alerting.probe_interval`) and
 * deleting history past `server.storage.retention` (hourly, and once at
 * start).
 *
 * @module
 */

import type { ServerConfig } from "../config/mod.ts";
import { DatabaseUnavailableError, type Store } from "../storage/mod.ts";
import type { Logger } from "../util/mod.ts";
import { probeTunnel } from "./prober.ts";
import type { Recorder } from "./recorder.ts";
import type { ClientSession } from "./session.ts";

/** How long a probe waits for the local service. */
const PROBE_TIMEOUT = 3000;
/** How often history is pruned. */
const PRUNE_EVERY = 3_600_000;

/** What the chores need of the server. */
export interface ChoreOptions {
  /** `alerting.probe_interval` and `storage.retention`. */
  config: Pick<ServerConfig, "alerting" | "storage">;
  /** The database; no pruning without one. */
  store: Store | null;
  /** Where pruning is logged. */
  logger: Logger;
  /** The connected sessions now. */
  sessions: () => Iterable<ClientSession>;
  /** Where probe results go. */
  recorder: Pick<Recorder, "probed">;
}

/** The running chores of one server; `stop` ends them. */
export class Chores {
  #o: ChoreOptions;
  #prober: ReturnType<typeof setInterval>;
  #pruner: ReturnType<typeof setInterval> | undefined;
  #pruning: Promise<void> | null = null;

  /** Starts the chores that `options.config` asks for. */
  constructor(options: ChoreOptions) {
    this.#o = options;
    this.#prober = setInterval(() => this.probeAll(), options.config.alerting.probe_interval);
    if (options.store && (options.config.storage.retention ?? 0) > 0) {
      this.#pruner = setInterval(() => this.#pruneOnce(), PRUNE_EVERY);
      this.#pruneOnce();
    }
  }

  /** Probes every tunnel that asked for it, end to end, one at a time. */
  async probeAll(): Promise<void> {
    for (const session of [...this.#o.sessions()]) {
      for (const tunnel of [...session.tunnels.values()]) {
        const probe = tunnel.probe;
        if (!probe) continue;
        const failure = await probeTunnel(session.mux, tunnel.name, PROBE_TIMEOUT);
        if (session.mux.isClosed || session.tunnels.get(tunnel.name) !== tunnel) continue;
        this.#o.recorder.probed(session, tunnel, probe, failure);
      }
    }
  }

  /** Deletes history older than `server.storage.retention`. */
  async prune(): Promise<void> {
    const { store, logger, config } = this.#o;
    const retention = config.storage.retention ?? 0;
    if (!store || retention <= 0) return;
    try {
      const deleted = await store.prune(new Date(Date.now() - retention));
      if (Object.values(deleted).some((n) => n > 0)) {
        logger.info("pruned history past retention", { ...deleted, retention_ms: retention });
      }
    } catch (error) {
      if (!(error instanceof DatabaseUnavailableError)) {
        logger.warn("pruning history failed", { error });
      }
    }
  }

  /** One prune at a time, remembered so that `stop` can wait for it. */
  #pruneOnce(): void {
    this.#pruning ??= this.prune().finally(() => (this.#pruning = null));
  }

  /**
   * Stops both timers and waits for a prune under way, so that the store is
   * not closed under it (a start-up that fails right away would otherwise log
   * "pruning history failed … PGlite is closing").
   */
  async stop(): Promise<void> {
    clearInterval(this.#prober);
    clearInterval(this.#pruner);
    await this.#pruning;
  }
}

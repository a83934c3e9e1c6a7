/**
 * What a burrowd does as a node of a cluster (`server.cluster`), started by
 * the server in cluster mode only: its node registry (row, heartbeat, the
 * `alerts` lease), and what it does when the registry reports that another
 * node died (its tunnels go offline) or that this one was taken for dead
 * (its sessions are closed, so their clients reconnect and are recorded
 * anew).
 *
 * @module
 */

import { type NodeEvictedEvent, type NodeLostEvent, NodeRegistry } from "../cluster/mod.ts";
import type { ServerConfig } from "../config/mod.ts";
import type { Store } from "../storage/mod.ts";
import { type Logger, VERSION } from "../util/mod.ts";

/** The lease of evaluating alert rules for the whole cluster. */
export const ALERTS_LEASE = "alerts";

/** What the cluster node needs from its server. */
export interface ClusterHost {
  /** The server's configuration, with `cluster` set. */
  readonly config: ServerConfig;
  /** This node's id. */
  readonly node: string;
  /** `sha256:` fingerprint of the control certificate. */
  readonly fingerprint: string;
  /** The connected sessions. */
  readonly sessions: Iterable<{ close(reason: string): void }>;
}

/**
 * This burrowd as a node of its cluster.
 *
 * @example
 * ```ts ignore
 * const cluster = await ClusterNode.start(server, store, logger);
 * console.log(cluster.leadsAlerts);
 * await cluster.stop();
 * ```
 */
export class ClusterNode {
  /** The node registry (listen to its `nodelost` events for what the dead node held). */
  readonly registry: NodeRegistry;

  private constructor(registry: NodeRegistry) {
    this.registry = registry;
  }

  /**
   * Registers `host` as a node and starts its heartbeat.
   *
   * @throws {Error} on the embedded database, which cannot be shared; the
   * database's error when the node's row cannot be written.
   */
  static async start(host: ClusterHost, store: Store, logger: Logger): Promise<ClusterNode> {
    const cluster = host.config.cluster;
    if (!cluster) throw new Error("Cluster mode is off (server.cluster is not set)");
    if (store.kind !== "postgres") {
      // The configuration refuses this already; a server started in code gets it here.
      throw new Error(
        "Cluster mode needs PostgreSQL, which all the nodes share: set server.storage.url (or " +
          "env DATABASE_URL); the embedded database serves one burrowd alone",
      );
    }
    const log = logger.child("cluster");
    const registry = await NodeRegistry.start({
      store,
      logger: log,
      heartbeatMs: cluster.heartbeat,
      deadAfterMs: cluster.dead_after,
      leases: [ALERTS_LEASE],
      node: {
        id: host.node,
        advertise_addr: cluster.advertise_addr,
        relay_port: cluster.relay_port,
        fingerprint: host.fingerprint,
        version: VERSION,
      },
    });
    registry.addEventListener("nodelost", (e) => {
      const { node } = e as NodeLostEvent;
      const reason = `node ${node.id} lost`;
      // Their statuses said active on a node that is gone; placements will say exactly which.
      store.run((s) => s.nodes.releaseTunnels(node.sessions, reason)).then(
        (tunnels) => log.info("released the lost node's tunnels", { node: node.id, tunnels }),
        (error) => log.warn("could not release the lost node's tunnels", { node: node.id, error }),
      );
    });
    registry.addEventListener("evicted", (e) => {
      const sessions = [...host.sessions];
      log.warn(
        "closing this node's sessions: their rows were closed by the node that took it " +
          "for dead",
        { by: (e as NodeEvictedEvent).by, sessions: sessions.length },
      );
      for (const session of sessions) {
        session.close("This server lost its database for a while; reconnect");
      }
    });
    return new ClusterNode(registry);
  }

  /** Whether this node evaluates the alert rules now (it holds the `alerts` lease). */
  get leadsAlerts(): boolean {
    return this.registry.holds(ALERTS_LEASE);
  }

  /** Stops the heartbeat, gives the lease up and marks the node stopped. Safe to call twice. */
  stop(): Promise<void> {
    return this.registry.stop();
  }
}

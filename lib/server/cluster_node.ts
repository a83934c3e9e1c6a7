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

import {
  type NodeEvictedEvent,
  NodeLinks,
  type NodeLostEvent,
  NodeRegistry,
  type PeerNode,
} from "../cluster/mod.ts";
import type { ClusterConfig, ServerConfig } from "../config/mod.ts";
import type { Store } from "../storage/mod.ts";
import { dialTls, type TlsListener } from "../transport/mod.ts";
import { type Logger, VERSION } from "../util/mod.ts";
import {
  acceptRelayConnections,
  ClusterTunnels,
  listenRelayPort,
  type LocalSession,
  relayAddress,
  type RelayHost as TunnelsHost,
} from "./cluster/mod.ts";
import { type KickableSession, listenKicks } from "./kicks.ts";

/** The lease of evaluating alert rules for the whole cluster. */
export const ALERTS_LEASE = "alerts";

/** What the cluster node needs from its server. */
export interface ClusterHost extends TunnelsHost {
  /** The server's configuration, with `cluster` set. */
  readonly config: ServerConfig;
  /** This node's id. */
  readonly node: string;
  /** `sha256:` fingerprint of the control certificate. */
  readonly fingerprint: string;
  /** The connected sessions. */
  readonly sessions: Iterable<LocalSession & KickableSession>;
  /** This node's tunnel windows (relays counted too), published with each heartbeat. */
  readonly stats: TunnelsHost["stats"] & { snapshot(): unknown };
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
  /** The links to the other nodes. */
  readonly links: NodeLinks;
  /** This node's tunnels in `placements`, and its relays of the other nodes' tunnels. */
  readonly tunnels: ClusterTunnels;
  #relayPort: TlsListener;
  #accepting: Promise<void>;
  #stopping: Promise<void> | null = null;
  /** Ends the subscription to kicks (`NOTIFY burrow_kick`) sent by the other nodes. */
  #unlistenKicks: (() => Promise<void>) | null = null;

  private constructor(
    registry: NodeRegistry,
    links: NodeLinks,
    tunnels: ClusterTunnels,
    relayPort: TlsListener,
  ) {
    this.registry = registry;
    this.links = links;
    this.tunnels = tunnels;
    this.#relayPort = relayPort;
    this.#accepting = acceptRelayConnections(relayPort, (conn, remote) => {
      links.accept(conn, remote);
    });
  }

  /** The relay port (the real one when `relay_port` was 0). */
  get relayPort(): number {
    return this.#relayPort.port;
  }

  /**
   * Registers `host` as a node and starts its heartbeat.
   *
   * @throws {Error} on the embedded database, which cannot be shared; the
   * database's error when the node's row cannot be written.
   */
  static async start(
    host: ClusterHost,
    store: Store,
    logger: Logger,
    tls: { cert: string; key: string },
  ): Promise<ClusterNode> {
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
    const config = host.config as ServerConfig & { cluster: ClusterConfig };
    // Generated per node, these differ between nodes: a client listing several cannot fit all.
    if (!config.tls.cert_file) {
      log.warn("this node uses a certificate of its own", {
        fix: "give every node the same server.tls.cert_file and key_file (or certificates " +
          "of one CA), so that clients listing several nodes can pin or verify them all",
      });
    }
    if (!config.auth.token) {
      log.warn("this node uses a shared token of its own", {
        fix: "give every node the same server.auth.token (or env BURROW_TOKEN), or log clients " +
          "in with user tokens, which every node accepts",
      });
    }
    const relayPort = await listenRelayPort(config, tls, log);
    // With a client CA, nodes show their certificates to each other (mutual TLS), and
    // verify them against that CA rather than by fingerprint: a CA issues them.
    const clientCa = config.tls.client_ca_file;
    const mutual = clientCa ? await Deno.readTextFile(clientCa) : null;
    // Set below: the links and the tunnels each need the other.
    const late: { tunnels?: ClusterTunnels } = {};
    const links = new NodeLinks({
      node: host.node,
      secret: cluster.secret ?? null,
      logger: log,
      dial: (peer) =>
        dialTls({
          hostname: peer.host,
          port: peer.port,
          timeout: 5_000,
          ...(mutual ? { clientCert: tls, caCerts: [mutual] } : { fingerprint: peer.fingerprint }),
        }),
      onStream: (stream, peer) => {
        if (late.tunnels) late.tunnels.onStream(stream, peer);
        else stream.reset("This node is starting");
      },
    });
    let registry: NodeRegistry;
    try {
      registry = await NodeRegistry.start({
        store,
        logger: log,
        heartbeatMs: cluster.heartbeat,
        deadAfterMs: cluster.dead_after,
        leases: [ALERTS_LEASE],
        // The tunnel windows of this node, merged by the node that evaluates alerts.
        publish: () => host.stats.snapshot(),
        node: {
          id: host.node,
          advertise_addr: cluster.advertise_addr,
          relay_port: relayPort.port,
          fingerprint: host.fingerprint,
          version: VERSION,
        },
      });
    } catch (error) {
      relayPort.close();
      throw error;
    }
    const peer = (id: string): PeerNode | undefined => {
      const row = registry.peers.get(id);
      return row ? { id, ...relayAddress(row), fingerprint: row.fingerprint } : undefined;
    };
    const tunnels = new ClusterTunnels({ node: host.node, store, links, peer, host, logger: log });
    late.tunnels = tunnels;
    const node = new ClusterNode(registry, links, tunnels, relayPort);
    registry.addEventListener("peers", () => tunnels.refresh());
    registry.addEventListener("nodelost", (e) => {
      const { node } = e as NodeLostEvent;
      const reason = `node ${node.id} lost`;
      tunnels.nodeLost(node.id).catch((error) => {
        log.warn("could not remove the lost node's placements", { node: node.id, error });
      });
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
        session.close(
          "Another node took this one for dead (its heartbeat stopped reaching the database); " +
            "reconnect",
        );
      }
    });
    try {
      await tunnels.start();
      // Logged by the admin component, as a kick through this node's own admin API is.
      node.#unlistenKicks = await listenKicks(store, {
        node: host.node,
        sessions: () => host.sessions,
        log: logger.child("admin"),
      });
    } catch (error) {
      await node.stop();
      throw error;
    }
    log.info("relay port listening", { addr: config.bind_addr, port: relayPort.port });
    return node;
  }

  /** Whether this node evaluates the alert rules now (it holds the `alerts` lease). */
  get leadsAlerts(): boolean {
    return this.registry.holds(ALERTS_LEASE);
  }

  /** Stops the heartbeat, gives the lease up and marks the node stopped. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    await this.#unlistenKicks?.().catch(() => {});
    this.#relayPort.close();
    await this.tunnels.close();
    this.links.close();
    await this.#accepting;
    await this.registry.stop();
  }
}

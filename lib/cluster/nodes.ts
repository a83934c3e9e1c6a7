/**
 * The node registry of cluster mode: this node's row in `nodes`, its
 * heartbeat, the leases it competes for, and the nodes it finds dead.
 *
 * Each heartbeat records that this node is alive, renews its leases, and
 * claims the nodes whose rows are stale (see `NodesDao.claimDead`): the one
 * survivor whose claim lands closes their sessions and announces each as a
 * {@linkcode NodeLostEvent}, so the server releases what the dead node held.
 * A node that could not reach the database itself claims nobody until it
 * has beaten for `deadAfterMs` again: after an outage every row is stale,
 * and the first node back must not take the others, which were only
 * waiting for the database too, for dead.
 *
 * @module
 */

import type { LostNode, NodeInput, NodeListing, Store } from "../storage/mod.ts";
import type { Logger } from "../util/mod.ts";
import { Leases } from "./lease.ts";

/** Options of {@linkcode NodeRegistry.start}. */
export interface NodeRegistryOptions {
  /** The shared database. */
  store: Store;
  /** What this node records about itself. */
  node: NodeInput;
  /** Milliseconds between heartbeats. */
  heartbeatMs: number;
  /** Milliseconds after which a node not heard from is dead; also the leases' lifetime. */
  deadAfterMs: number;
  /** Where the registry logs. */
  logger: Logger;
  /** Leases this node competes for, taken and renewed with each heartbeat. Default: none. */
  leases?: readonly string[];
  /** What this node publishes with each heartbeat (in its row's `stats`). Default: nothing. */
  publish?: () => unknown;
}

/** Another node was found dead by this one, which closed its sessions. */
export class NodeLostEvent extends Event {
  /** The dead node, its last heartbeat and its sessions, now closed. */
  readonly node: LostNode;
  /** Creates the event (`type` `"nodelost"`). */
  constructor(node: LostNode) {
    super("nodelost");
    this.node = node;
  }
}

/**
 * This node found its own row stopped: another node took it for dead (it
 * could not reach the database for `dead_after`) and closed its sessions.
 * The registry has registered it again; the server should close its
 * sessions too, so that their clients reconnect and are recorded anew.
 */
export class NodeEvictedEvent extends Event {
  /** The node that took this one for dead, if the row says. */
  readonly by: string | null;
  /** Creates the event (`type` `"evicted"`). */
  constructor(by: string | null) {
    super("evicted");
    this.by = by;
  }
}

/**
 * This node's membership of the cluster.
 *
 * Events: `nodelost` ({@linkcode NodeLostEvent}) and `evicted`
 * ({@linkcode NodeEvictedEvent}).
 *
 * @example
 * ```ts ignore
 * import { NodeRegistry } from "./nodes.ts";
 * const registry = await NodeRegistry.start({
 *   store, logger, heartbeatMs: 5000, deadAfterMs: 15_000, leases: ["alerts"],
 *   node: { id: "n1", advertise_addr: "10.0.0.1", relay_port: 7001, fingerprint, version },
 * });
 * registry.addEventListener("nodelost", (e) => console.log((e as NodeLostEvent).node.id));
 * await registry.stop();
 * ```
 */
export class NodeRegistry extends EventTarget {
  #options: NodeRegistryOptions;
  /** The other nodes alive at the last heartbeat, by id. */
  #peers = new Map<string, NodeListing>();
  #leases: Leases;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #beating: Promise<void> | null = null;
  #stopped: Promise<void> | null = null;
  /** Whether the last heartbeat failed (the warning is logged once per outage). */
  #failing = false;
  /** `performance.now()` of the first heartbeat of the current unbroken run. */
  #healthySince: number;

  private constructor(options: NodeRegistryOptions) {
    super();
    this.#options = options;
    this.#leases = new Leases(options.store, options.node.id);
    this.#healthySince = performance.now();
  }

  /**
   * Registers this node (its row as started now) and starts its heartbeat.
   *
   * @throws the database's error when the row cannot be written: a node
   * that cannot say it is alive must not start.
   */
  static async start(options: NodeRegistryOptions): Promise<NodeRegistry> {
    const registry = new NodeRegistry(options);
    await options.store.run((s) => s.nodes.register(options.node));
    options.logger.info("node registered", {
      node: options.node.id,
      advertise_addr: options.node.advertise_addr,
      relay_port: options.node.relay_port,
      heartbeat_ms: options.heartbeatMs,
      dead_after_ms: options.deadAfterMs,
    });
    await registry.beat();
    registry.#schedule(options.heartbeatMs);
    return registry;
  }

  /** This node's id. */
  get id(): string {
    return this.#options.node.id;
  }

  /**
   * The other nodes alive at the last heartbeat, by id (a `peers` event
   * follows each change: a node came, went, or moved its relay port).
   */
  get peers(): ReadonlyMap<string, NodeListing> {
    return this.#peers;
  }

  /** Whether this node holds lease `name` now. */
  holds(name: string): boolean {
    return this.#stopped === null && this.#leases.holds(name);
  }

  #schedule(delay: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      const started = performance.now();
      this.#beating = this.beat().finally(() => {
        this.#beating = null;
        // Every heartbeatMs from the start of the last beat; a slow beat is followed at once.
        this.#schedule(Math.max(0, this.#options.heartbeatMs - (performance.now() - started)));
      });
    }, delay);
  }

  /**
   * One heartbeat: records that this node is alive, renews its leases and
   * claims dead nodes. Never rejects: a failure is logged (once per outage)
   * and the next heartbeat tries again. The timer calls it; tests may too.
   */
  async beat(): Promise<void> {
    const { store, logger, node, deadAfterMs } = this.#options;
    try {
      const stats = this.#options.publish?.();
      if (!await store.run((s) => s.nodes.beat(node.id, stats))) await this.#evicted();
      for (const name of this.#options.leases ?? []) {
        const had = this.#leases.holds(name);
        const has = await this.#leases.try(name, deadAfterMs);
        if (has !== had) logger.info(has ? "lease taken" : "lease lost", { lease: name });
      }
      if (this.#failing) {
        this.#failing = false;
        this.#healthySince = performance.now();
        logger.info("node heartbeat recorded again", { node: node.id });
      }
      if (performance.now() - this.#healthySince >= deadAfterMs) await this.#claim();
      await this.#readPeers();
    } catch (error) {
      if (!this.#failing) {
        this.#failing = true;
        logger.warn("node heartbeat failed; retrying", {
          node: node.id,
          retry_ms: this.#options.heartbeatMs,
          error,
        });
      }
    }
  }

  /** Reads which other nodes are alive; tells listeners when that changed. */
  async #readPeers(): Promise<void> {
    const { store, node, deadAfterMs } = this.#options;
    const listed = await store.run((s) => s.nodes.list(deadAfterMs));
    const peers = new Map<string, NodeListing>();
    for (const row of listed) {
      if (row.id !== node.id && row.state === "alive") peers.set(row.id, row);
    }
    const shape = (m: ReadonlyMap<string, NodeListing>) =>
      [...m.values()].map((n) => `${n.id}@${n.advertise_addr}:${n.relay_port}/${n.fingerprint}`)
        .sort().join(" ");
    const changed = shape(peers) !== shape(this.#peers);
    this.#peers = peers;
    if (changed) this.dispatchEvent(new Event("peers"));
  }

  async #claim(): Promise<void> {
    const { store, logger, node, deadAfterMs } = this.#options;
    const lost = await store.run((s) => s.nodes.claimDead(node.id, deadAfterMs));
    for (const dead of lost) {
      logger.warn("node lost", {
        node: dead.id,
        last_seen: new Date(dead.last_seen).toISOString(),
        sessions_closed: dead.sessions.length,
      });
      this.dispatchEvent(new NodeLostEvent(dead));
    }
  }

  async #evicted(): Promise<void> {
    const { store, logger, node } = this.#options;
    const row = await store.run((s) => s.nodes.get(node.id));
    logger.error("this node was taken for dead by another node; registering again", {
      node: node.id,
      by: row?.lost_by ?? null,
    });
    await store.run((s) => s.nodes.register(node));
    this.dispatchEvent(new NodeEvictedEvent(row?.lost_by ?? null));
  }

  /**
   * Stops the heartbeat, gives up the leases and marks this node stopped
   * (its row stays, for the list). A database that does not answer is
   * logged; the row then goes stale and another node finds it dead. Safe to
   * call twice.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#beating;
    clearTimeout(this.#timer);
    const { store, logger, node } = this.#options;
    try {
      for (const name of this.#options.leases ?? []) await this.#leases.release(name);
      await store.run((s) => s.nodes.stop(node.id));
      logger.info("node stopped", { node: node.id });
    } catch (error) {
      logger.warn("could not record this node's stop; the others will find it dead", {
        node: node.id,
        error,
      });
    }
  }
}

/**
 * Leases: work that one node of the cluster does for all of them (alert
 * rules are evaluated once per cluster, not once per node). A lease is a
 * row of `cluster_leases` held by one node until it expires, renewed by its
 * holder, taken over by another node once its holder stops renewing it.
 *
 * @module
 */

import type { Store } from "../storage/mod.ts";

/**
 * The leases of one node: taking, renewing and giving them up, and whether
 * it holds one now.
 *
 * Whether it holds a lease is judged on this node's monotonic clock from
 * the moment it asked, before the database answered: it counts itself the
 * holder for a little less than the database does, never longer, so two
 * nodes never both act on the same lease.
 *
 * @example
 * ```ts ignore
 * import { Leases } from "./lease.ts";
 * const leases = new Leases(store, "n1");
 * if (await leases.try("alerts", 15_000)) console.log(leases.holds("alerts"));
 * ```
 */
export class Leases {
  #store: Store;
  #node: string;
  /** Lease name → `performance.now()` until which this node holds it. */
  #held = new Map<string, number>();

  /** The leases of node `node` in `store`. */
  constructor(store: Store, node: string) {
    this.#store = store;
    this.#node = node;
  }

  /**
   * Takes or renews lease `name` for `ttlMs`. Returns whether this node
   * holds it now; a failed query (e.g. the database is down) rejects and
   * leaves what this node held to expire on its own.
   */
  async try(name: string, ttlMs: number): Promise<boolean> {
    const asked = performance.now();
    const got = await this.#store.run((s) => s.nodes.tryLease(name, this.#node, ttlMs));
    if (got) this.#held.set(name, asked + ttlMs);
    else this.#held.delete(name);
    return got;
  }

  /** Whether this node holds lease `name` now. */
  holds(name: string): boolean {
    const until = this.#held.get(name);
    return until !== undefined && performance.now() < until;
  }

  /** Gives lease `name` up (if this node holds it), so another node takes it at once. */
  async release(name: string): Promise<void> {
    this.#held.delete(name);
    await this.#store.run((s) => s.nodes.releaseLease(name, this.#node));
  }
}

/**
 * Cluster mode: several burrowd nodes on one PostgreSQL. The node registry
 * (each node's row in `nodes`, its heartbeat, dead nodes found and their
 * sessions closed) and the leases that let one node do work for all.
 *
 * @example
 * ```ts ignore
 * import { NodeRegistry } from "./mod.ts";
 * const registry = await NodeRegistry.start({
 *   store, logger, heartbeatMs: 5000, deadAfterMs: 15_000, leases: ["alerts"],
 *   node: { id: "n1", advertise_addr: "10.0.0.1", relay_port: 7001, fingerprint, version },
 * });
 * console.log(registry.holds("alerts"));
 * await registry.stop();
 * ```
 *
 * @module
 */

export * from "./lease.ts";
export * from "./nodes.ts";

/**
 * Cluster mode: several burrowd nodes on one PostgreSQL acting as one
 * service. The node registry (each node's row in `nodes`, its heartbeat,
 * dead nodes found and their sessions closed), the leases that let one node
 * do work for all, and the links that carry visitors between nodes.
 *
 * @example
 * ```ts ignore
 * import { NodeLinks, NodeRegistry } from "./mod.ts";
 * const registry = await NodeRegistry.start({
 *   store, logger, heartbeatMs: 5000, deadAfterMs: 15_000, leases: ["alerts"],
 *   node: { id: "n1", advertise_addr: "10.0.0.1", relay_port: 7001, fingerprint, version },
 * });
 * const links = new NodeLinks({ node: "n1", secret, logger, dial, onStream });
 * await registry.stop();
 * ```
 *
 * @module
 */

export * from "./lease.ts";
export * from "./nodes.ts";
export * from "./link.ts";
export * from "./link_handshake.ts";
export * from "./relayed_opener.ts";
// Types of the layers below that this folder's API names.
export type { Duplex } from "../transport/mod.ts";
export type { Logger, Secret } from "../util/mod.ts";

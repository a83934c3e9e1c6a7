/**
 * Cluster mode: several burrowd nodes on one PostgreSQL acting as one
 * service. The links that carry visitors between nodes.
 *
 * @example
 * ```ts ignore
 * import { NodeLinks } from "./mod.ts";
 * const links = new NodeLinks({ node: "n1", secret, logger, dial, onStream });
 * ```
 *
 * @module
 */

export * from "./link.ts";
export * from "./link_handshake.ts";
export * from "./relayed_opener.ts";
// Types of the layers below that this folder's API names.
export type { Duplex } from "../transport/mod.ts";
export type { Logger, Secret } from "../util/mod.ts";

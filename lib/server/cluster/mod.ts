/**
 * Cluster mode on a node: its tunnels written to `placements`, and the
 * relays of the tunnels other nodes hold.
 *
 * @module
 */

export * from "./tunnels.ts";
export * from "./host.ts";
export * from "./relay_port.ts";
export * from "./stats.ts";

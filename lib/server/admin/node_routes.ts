/**
 * `/nodes`: the nodes of the cluster, as the shared database records them.
 *
 * @module
 */

import { listing, type Resource } from "./route.ts";

/** The routes of the cluster's nodes. */
export const NODE_ROUTES: readonly Resource[] = [
  {
    path: "/nodes",
    get: {
      ...listing(
        "The cluster's nodes (cluster mode; an empty list outside it), by id",
        "Node",
        ({ server, service }) => service().nodes(server.config.cluster?.dead_after),
      ),
      description: "OK. A node is alive while it beats, dead once unseen for dead_after, " +
        "stopped after a graceful shutdown",
    },
  },
];

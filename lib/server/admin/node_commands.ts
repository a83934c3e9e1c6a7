/**
 * `burrowd node list`: the nodes of the cluster, through the admin service.
 *
 * @module
 */

import type { Command } from "commander";
import type { NodeListing } from "../../storage/mod.ts";
import { type CommandKit, type DatabaseFlags, table } from "./command.ts";
import type { ServerConfig } from "../../config/mod.ts";

/** `ms` as people read an age: `800ms`, `12s`, `5m`, `3h`, `2d`. */
export function ago(ms: number): string {
  const s = ms / 1000;
  if (s < 1) return `${Math.max(0, Math.round(ms))}ms ago`;
  if (s < 120) return `${Math.round(s)}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

/** The rows of `node list`. */
export function nodeRows(nodes: NodeListing[]): Array<Record<string, unknown>> {
  return nodes.map((n) => ({
    id: n.id,
    advertise: `${n.advertise_addr}${/:\d+$/.test(n.advertise_addr) ? "" : `:${n.relay_port}`}`,
    version: n.version,
    started: n.started_at,
    "last seen": ago(n.last_seen_ago_ms),
    state: n.lost_by ? `dead (found by ${n.lost_by})` : n.state,
    sessions: n.sessions,
  }));
}

/** Adds `node` and its subcommands to `program`. */
export function addNodeCommands(
  program: Command,
  { db, withAdmin }: CommandKit,
  loadConfig: (flags: DatabaseFlags) => Promise<ServerConfig>,
): void {
  const node = program.command("node").description(
    "show the nodes of a cluster (several burrowd on one PostgreSQL, server.cluster)",
  );
  db(node.command("list").description("every node with its state and open sessions"))
    .option("--json", "print JSON instead of a table")
    .action((flags: DatabaseFlags & { json?: boolean }) =>
      withAdmin(flags, async (admin) => {
        const config = await loadConfig(flags);
        const nodes = await admin.nodes(config.cluster?.dead_after);
        if (flags.json) {
          console.log(JSON.stringify(nodes, null, 2));
          return;
        }
        console.log(table(nodeRows(nodes)));
        if (!nodes.length && !config.cluster) {
          console.error(
            "burrowd: no nodes: they register in cluster mode only (server.cluster, on " +
              "PostgreSQL); a burrowd alone is not listed",
          );
        }
      })
    );
}

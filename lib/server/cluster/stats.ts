/**
 * The tunnel windows of a whole cluster, for the node that evaluates the
 * alert rules (the holder of the `alerts` lease): its own, merged with what
 * every other alive node published with its last heartbeat.
 *
 * - Counts (connections, errors, first-byte samples) add up over the nodes:
 *   a visitor relayed by one node to another is counted where it arrived.
 * - A tunnel's status is said by the nodes that hold it (`held`): connected
 *   when any of them says so (a client with sessions to two nodes).
 * - A tunnel whose holding nodes all died is disconnected from when that
 *   was noticed; one that disappeared from an alive holder's windows was
 *   removed on purpose and is forgotten, as on a single node.
 *
 * @module
 */

import type { TunnelSnapshot } from "../../monitor/mod.ts";

/** What another node published: its id and its windows (as JSON; checked here). */
export interface PublishedStats {
  /** The node. */
  id: string;
  /** Its `TunnelSnapshot[]`, as it wrote it. */
  stats: unknown;
}

interface Seen {
  /** Nodes that held the tunnel at the last merge. */
  nodes: Set<string>;
  /** The merged entry of the last merge. */
  last: TunnelSnapshot;
  /** When every holder was found gone; `null` while one is alive. */
  lostAt: number | null;
}

function isSnapshot(value: unknown): value is TunnelSnapshot {
  const v = value as Record<string, unknown>;
  return typeof v === "object" && v !== null && typeof v.key === "string" &&
    typeof v.user === "string" && typeof v.name === "string" && typeof v.type === "string" &&
    (v.status === "connected" || v.status === "disconnected") && typeof v.since === "number" &&
    typeof v.connections === "number" && typeof v.errors === "number" &&
    typeof v.held === "boolean" && typeof v.latency_sum === "number" &&
    typeof v.latency_count === "number";
}

/** Merges this node's tunnel windows with the other nodes'. */
export class ClusterStats {
  #node: string;
  #local: { snapshot(): TunnelSnapshot[] };
  #peers: () => Iterable<PublishedStats>;
  #now: () => number;
  #seen = new Map<string, Seen>();

  /**
   * The windows of node `node` (`local`) and of the nodes `peers` returns
   * (the alive ones, with what they published).
   */
  constructor(
    node: string,
    local: { snapshot(): TunnelSnapshot[] },
    peers: () => Iterable<PublishedStats>,
    now: () => number = Date.now,
  ) {
    this.#node = node;
    this.#local = local;
    this.#peers = peers;
    this.#now = now;
  }

  /** Every tunnel of the cluster, merged. */
  snapshot(): TunnelSnapshot[] {
    const merged = new Map<string, TunnelSnapshot>();
    const holders = new Map<string, Set<string>>();
    const alive = new Set<string>([this.#node]);
    const add = (node: string, s: TunnelSnapshot) => {
      if (s.held) {
        let set = holders.get(s.key);
        if (!set) holders.set(s.key, set = new Set());
        set.add(node);
      }
      const m = merged.get(s.key);
      if (!m) {
        merged.set(s.key, { ...s });
        return;
      }
      m.connections += s.connections;
      m.errors += s.errors;
      m.latency_sum += s.latency_sum;
      m.latency_count += s.latency_count;
      if (s.held && (!m.held || statusWins(s, m))) {
        m.status = s.status;
        m.since = s.since;
        m.type = s.type;
      }
      m.held ||= s.held;
    };
    for (const s of this.#local.snapshot()) add(this.#node, s);
    for (const peer of this.#peers()) {
      alive.add(peer.id);
      if (!Array.isArray(peer.stats)) continue;
      for (const s of peer.stats) if (isSnapshot(s)) add(peer.id, s);
    }
    const now = this.#now();
    for (const [key, seen] of this.#seen) {
      if (holders.has(key)) continue;
      if ([...seen.nodes].some((n) => alive.has(n))) {
        // An alive holder no longer lists it: removed on purpose.
        this.#seen.delete(key);
        continue;
      }
      // Every holder died: down from when that was noticed, until a client brings it back.
      seen.lostAt ??= now;
      const m = merged.get(key);
      const down = {
        ...(m ?? { ...seen.last, connections: 0, errors: 0, latency_sum: 0, latency_count: 0 }),
        status: "disconnected" as const,
        since: seen.lostAt,
        held: true,
      };
      merged.set(key, down);
    }
    for (const [key, nodes] of holders) {
      this.#seen.set(key, { nodes, last: merged.get(key)!, lostAt: null });
    }
    return [...merged.values()].map((m) => ({
      ...m,
      error_rate: m.connections ? m.errors / m.connections : 0,
      avg_latency: m.latency_count ? m.latency_sum / m.latency_count : null,
    }));
  }
}

/** Of two holders' views, connected wins; of two alike, the later change. */
function statusWins(a: TunnelSnapshot, b: TunnelSnapshot): boolean {
  if (a.status !== b.status) return a.status === "connected";
  return a.since > b.since;
}

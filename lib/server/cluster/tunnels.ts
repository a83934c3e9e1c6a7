/**
 * Cluster mode's tunnels: every node serves every tunnel. A tunnel a
 * session of this node opens is written to `placements`; every other node
 * opens the same public side (the port it got, its host names, its place in
 * a load-balancing group) as a *relay*, whose visitors go over the link to
 * this node, which joins them to the client (`onStream`).
 *
 * Which relay a node opens is decided from the placements it knows
 * (loaded at start, kept by `NOTIFY burrow_placements`):
 *
 * - A tunnel (by user and name) this node holds itself needs no relay: a
 *   session that opens it here makes this node's relay of it give way
 *   first (`beforeOpen`), and when it closes, the relay opens again if
 *   another node still holds it.
 * - A tunnel several nodes hold (a client with sessions to two nodes) gets
 *   one relay, whose visitors go to whichever of them is reachable.
 * - Each member of a load-balancing group held elsewhere joins this node's
 *   group as a member of its own, so the group's balancer spreads visitors
 *   over the members of every node.
 *
 * Placements of nodes that are not alive (per the node registry) are left
 * out; the survivor that finds a node dead deletes them.
 *
 * @module
 */

import type { NodeLinks, PeerNode, RelayHolder } from "../../cluster/mod.ts";
import { RelayedOpener } from "../../cluster/mod.ts";
import type { MuxStream } from "../../mux/mod.ts";
import type { TunnelRequest } from "../../protocol/mod.ts";
import type { PlacementChange, PlacementRow, Store } from "../../storage/mod.ts";
import type { Logger } from "../../util/mod.ts";
import type { LocalSession, RelayHost } from "./host.ts";
import { joinRelayedStream, relayContext } from "./relay_context.ts";
import { type OpenRequest, openTunnel, type PublicTunnel, visitorPolicy } from "../tunnels/mod.ts";

/** Options of {@linkcode ClusterTunnels}. */
export interface ClusterTunnelsOptions {
  /** This node's id. */
  node: string;
  /** The database with `placements`. */
  store: Store;
  /** The links to the other nodes. */
  links: NodeLinks;
  /** Where another node's relay port is; `undefined` for a node not alive. */
  peer(id: string): PeerNode | undefined;
  /** The server. */
  host: RelayHost;
  /** Where it logs. */
  logger: Logger;
}

/** One relay this node serves. */
interface Relay {
  opener: RelayedOpener;
  tunnel: PublicTunnel | null;
  /** The request it was opened from (as text: a changed request re-opens it). */
  request: string;
  /** Why it could not open, logged once. */
  failed: string | null;
  /** Its user's name, once open (its windows' key). */
  user?: string;
}

/** Who a tunnel is to the cluster: its user (or client, for the shared token) and name. */
function identity(userId: number | null, clientId: string, name: string): string {
  return `${userId ?? `client:${clientId}`}/${name}`;
}

function rowKey(row: Pick<PlacementRow, "node_id" | "session_id" | "tunnel">): string {
  return `${row.node_id}/${row.session_id}/${row.tunnel}`;
}

/** The tunnels of a cluster node: its own written to `placements`, the others' relayed. */
export class ClusterTunnels {
  #o: ClusterTunnelsOptions;
  /** Placements of other nodes, by node/session/tunnel. */
  #remote = new Map<string, PlacementRow>();
  /** Relays by identity (or node/session/tunnel for a group member). */
  #relays = new Map<string, Relay>();
  /** What this node's tunnels were opened from, by session/name. */
  #opened = new Map<string, { open: OpenRequest; key: string | null }>();
  /**
   * Tunnels (by identity) this node's sessions hold or are opening: from
   * `beforeOpen` on, so that no relay of the same tunnel takes its port
   * between the relay's giving way and the session's bind.
   */
  #holding = new Map<string, number>();
  /** Opens between `beforeOpen` and `opened`, by session/name: their identity. */
  #pending = new Map<string, string>();
  #unlisten: (() => Promise<void>) | null = null;
  #queue: Promise<void> = Promise.resolve();
  #writes: Promise<void> = Promise.resolve();
  #closed = false;

  /** The tunnels of node `options.node`. */
  constructor(options: ClusterTunnelsOptions) {
    this.#o = options;
  }

  /** Loads the placements, follows their changes, and opens the relays. */
  async start(): Promise<void> {
    const { store, node } = this.#o;
    // A previous run of this node (a crash) may have left rows behind.
    await store.placements.withdrawNode(node);
    this.#unlisten = await store.listenPlacements((change) => this.#changed(change));
    await this.#reload();
  }

  // ---------------------------------------------------------------- this node's tunnels

  /**
   * A session of this node is about to open `open`: a relay of the same
   * tunnel gives way. Resolves with why it may not open when another client
   * of the user holds it through another node.
   */
  async beforeOpen(session: LocalSession, open: OpenRequest): Promise<string | undefined> {
    if (open.request.group !== undefined) return undefined;
    const userId = session.principal?.userId ?? null;
    const key = identity(userId, session.clientId, open.name);
    for (const row of this.#remote.values()) {
      if (row.client_id === session.clientId || !this.#o.peer(row.node_id)) continue;
      // Same user, same name, another client id: one name is one tunnel in the cluster.
      if (
        userId !== null && row.user_id === userId && row.tunnel === open.name &&
        row.request.group === undefined
      ) {
        return `Tunnel "${open.name}" is online from client ${row.client_id} through node ` +
          `${row.node_id}; stop it there first, or give this one another name`;
      }
    }
    this.#hold(key, +1);
    this.#pending.set(`${session.sessionId}/${open.name}`, key);
    await this.#serialised(async () => {
      const relay = this.#relays.get(key);
      if (!relay) return;
      this.#relays.delete(key);
      await this.#closeRelay(relay);
      this.#o.logger.info("relay closed", { tunnel: open.name, reason: "held on this node now" });
    });
    return undefined;
  }

  /**
   * Who holds `port` through another node, in words for a client whose
   * tunnel could not bind it here; `null` when no relay of this node has it.
   */
  portHolder(port: number, transport: "tcp" | "udp"): string | null {
    for (const relay of this.#relays.values()) {
      const tunnel = relay.tunnel;
      if (!tunnel || tunnel.port !== port || (tunnel.type === "udp") !== (transport === "udp")) {
        continue;
      }
      const nodes = [...new Set(relay.opener.holders.map((h) => h.node.id))].join(", ");
      return `Port ${port} is held by a tunnel of another client through node ${nodes}; ` +
        "choose another port";
    }
    return null;
  }

  #hold(key: string, by: 1 | -1): void {
    const n = (this.#holding.get(key) ?? 0) + by;
    if (n > 0) this.#holding.set(key, n);
    else this.#holding.delete(key);
  }

  /**
   * A session of this node opened `tunnel` (`null`: it could not): other
   * nodes are told (a placement).
   */
  opened(session: LocalSession, tunnel: PublicTunnel | null, open: OpenRequest): void {
    const id = `${session.sessionId}/${open.name}`;
    const key = this.#pending.get(id) ?? null;
    this.#pending.delete(id);
    if (!tunnel) {
      if (key !== null) this.#hold(key, -1);
      this.#reconcileLater();
      return;
    }
    const entry = { open, key };
    this.#opened.set(id, entry);
    const request: TunnelRequest = { ...open.request };
    if (request.protocol === "tcp" || request.protocol === "udp") request.remote_port = tunnel.port;
    // Written once the session has set the tunnel's row id, right after this returns.
    setTimeout(() => {
      if (this.#opened.get(id) !== entry) return;
      const row = {
        node_id: this.#o.node,
        session_id: session.sessionId,
        tunnel: open.name,
        user_id: session.principal?.userId ?? null,
        // As the recorder names users (the shared token's sessions are the admin's).
        user_name: session.principal?.userName ?? "admin",
        client_id: session.clientId,
        tunnel_id: tunnel.dbId,
        type: request.protocol,
        port: tunnel.port,
        request: request as unknown as Record<string, unknown>,
      };
      this.#write((store) => store.placements.place(row)).catch((error) => {
        this.#o.logger.warn("placement not written: other nodes do not relay this tunnel", {
          tunnel: open.name,
          error: (error as Error).message,
        });
      });
    }, 0);
  }

  /** A tunnel of a session of this node closed: other nodes stop relaying it. */
  closed(session: { readonly sessionId: string }, name: string): void {
    const id = `${session.sessionId}/${name}`;
    const entry = this.#opened.get(id);
    if (!entry) return;
    this.#opened.delete(id);
    if (entry.key !== null) this.#hold(entry.key, -1);
    const node = this.#o.node;
    this.#write((s) => s.placements.withdraw(node, session.sessionId, name)).catch((error) => {
      this.#o.logger.warn("placement not deleted", {
        tunnel: name,
        error: (error as Error).message,
      });
    });
    // A relay of the same tunnel held elsewhere may open again.
    this.#reconcileLater();
  }

  /** A group member of a session of this node changed health: other nodes' relays of it follow. */
  healthChanged(session: { readonly sessionId: string }, name: string, healthy: boolean): void {
    if (!this.#opened.has(`${session.sessionId}/${name}`)) return;
    const node = this.#o.node;
    this.#write((s) => s.placements.setHealthy(node, session.sessionId, name, healthy)).catch(
      (error) => {
        this.#o.logger.warn("member health not shared with other nodes", {
          tunnel: name,
          error: (error as Error).message,
        });
      },
    );
  }

  /**
   * A stream another node relays to a tunnel of this node: joined to a new
   * stream to the client, or reset naming why not.
   */
  onStream(stream: MuxStream, peer: string): void {
    joinRelayedStream(stream, peer, this.#o.node, this.#o.host.sessions, this.#o.logger);
  }

  // ---------------------------------------------------------------- other nodes' tunnels

  /** Node `id` was found dead by this node: its placements go (the others hear it too). */
  async nodeLost(id: string): Promise<void> {
    const removed = await this.#o.store.run((s) => s.placements.withdrawNode(id));
    this.#o.links.drop(id);
    if (removed) this.#o.logger.info("placements of a lost node removed", { node: id, removed });
  }

  /** Placements are read again (a node came or went). */
  refresh(): void {
    this.#serialised(() => this.#reload()).catch(() => {});
  }

  #changed(change: PlacementChange): void {
    if (change.op === "resync") {
      this.refresh();
      return;
    }
    const { node_id: node, session_id: session, tunnel } = change;
    if (!node || !session || !tunnel || node === this.#o.node) return;
    this.#serialised(async () => {
      if (change.op === "delete") {
        this.#remote.delete(rowKey({ node_id: node, session_id: session, tunnel }));
      } else {
        const row = await this.#o.store.run((s) => s.placements.get(node, session, tunnel));
        if (row) this.#remote.set(rowKey(row), row);
      }
      await this.#reconcile();
    }).catch(() => {});
  }

  async #reload(): Promise<void> {
    const rows = await this.#o.store.run((s) => s.placements.list());
    this.#remote.clear();
    for (const row of rows) if (row.node_id !== this.#o.node) this.#remote.set(rowKey(row), row);
    await this.#reconcile();
  }

  #reconcileLater(): void {
    this.#serialised(() => this.#reconcile()).catch(() => {});
  }

  /** Writes placements in the order asked (a tunnel's row is never written after its deletion). */
  #write(work: (store: Store) => Promise<void>): Promise<void> {
    const run = this.#writes.then(() => this.#o.store.run(work));
    this.#writes = run.catch(() => {});
    return run;
  }

  /** Runs `work` after what is queued; a failure is logged and does not stop the queue. */
  #serialised(work: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(() => (this.#closed ? undefined : work()));
    this.#queue = run.catch((error) => {
      this.#o.logger.warn("cluster tunnels not updated", { error: (error as Error).message });
    });
    return run;
  }

  /** Whether a session of this node holds (or is opening) the tunnel `key` names. */
  #heldHere(key: string): boolean {
    return this.#holding.has(key);
  }

  /** Closes `relay` (already out of the map). */
  async #closeRelay(relay: Relay): Promise<void> {
    const tunnel = relay.tunnel;
    if (!tunnel) return;
    relay.tunnel = null;
    await tunnel.close();
    if (relay.user !== undefined) this.#o.host.stats.unrelayed(relay.user, tunnel.name);
  }

  /** Opens, updates and closes relays to match the placements. */
  async #reconcile(): Promise<void> {
    const wanted = new Map<string, PlacementRow[]>();
    for (const [rowId, row] of this.#remote) {
      if (!this.#o.peer(row.node_id)) continue;
      const key = row.request.group !== undefined
        ? `member:${rowId}`
        : identity(row.user_id, row.client_id, row.tunnel);
      if (!key.startsWith("member:") && this.#heldHere(key)) continue;
      const rows = wanted.get(key) ?? [];
      rows.push(row);
      wanted.set(key, rows);
    }
    for (const [key, relay] of this.#relays) {
      if (wanted.has(key)) continue;
      this.#relays.delete(key);
      if (relay.tunnel) this.#o.logger.info("relay closed", { relay: key });
      await this.#closeRelay(relay);
    }
    for (const [key, rows] of wanted) await this.#serve(key, rows);
  }

  async #serve(key: string, rows: PlacementRow[]): Promise<void> {
    const holders: RelayHolder[] = rows.map((row) => ({
      node: this.#o.peer(row.node_id)!,
      session: row.session_id,
      tunnel: row.tunnel,
    }));
    const first = rows[0]!;
    const request = JSON.stringify(first.request);
    let relay = this.#relays.get(key);
    if (relay && relay.request !== request) {
      // The tunnel was opened again with other settings: so is its relay.
      this.#relays.delete(key);
      await this.#closeRelay(relay);
      relay = undefined;
    }
    if (relay) {
      relay.opener.holders = holders;
      // A group member relayed here leaves the rotation when its client says it is unhealthy.
      if (relay.tunnel?.group) relay.tunnel.healthy = first.healthy;
      if (relay.tunnel || relay.failed) return;
    }
    relay ??= {
      opener: new RelayedOpener(this.#o.links, holders),
      tunnel: null,
      request,
      failed: null,
    };
    this.#relays.set(key, relay);
    const opened = await this.#open(first, relay.opener);
    if (this.#relays.get(key) !== relay) {
      if (typeof opened !== "string") await opened.close();
      return;
    }
    if (typeof opened === "string") {
      relay.failed = opened;
      this.#o.logger.warn("relay not opened: visitors of this tunnel at this node are refused", {
        tunnel: first.tunnel,
        held_by: first.node_id,
        reason: opened,
      });
      return;
    }
    opened.dbId = first.tunnel_id;
    if (opened.group) opened.healthy = first.healthy;
    relay.tunnel = opened;
    relay.user = first.user_name;
    this.#o.host.stats.relayed(first.user_name, first.tunnel, first.type);
    this.#o.logger.info("relay opened", {
      tunnel: first.tunnel,
      type: first.type,
      port: opened.port,
      held_by: [...new Set(rows.map((r) => r.node_id))].join(","),
    });
  }

  /** Opens the public side of `row`'s tunnel on this node, carried by `opener`. */
  #open(row: PlacementRow, opener: RelayedOpener): Promise<PublicTunnel | string> {
    const request = row.request as unknown as TunnelRequest;
    let policy;
    try {
      policy = visitorPolicy(request.allow_ips, request.deny_ips);
    } catch (error) {
      return Promise.resolve((error as Error).message);
    }
    const context = relayContext(row, opener, this.#o.node, this.#o.host, this.#o.logger);
    return openTunnel({ name: row.tunnel, request, policy }, context);
  }

  /** Closes the relays and stops following placements; this node's own rows are deleted. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
    await this.#unlisten?.();
    await this.#writes;
    for (const relay of this.#relays.values()) await this.#closeRelay(relay);
    this.#relays.clear();
    await this.#o.store.run((s) => s.placements.withdrawNode(this.#o.node)).catch(() => {});
  }
}

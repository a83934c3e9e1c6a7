/**
 * The stream opener of a tunnel whose client another node holds: each
 * visitor's stream goes over the link to that node, which joins it to a
 * stream to its client (the stream's `relay` field says which session).
 * When several nodes hold the tunnel (a client with sessions to two nodes),
 * visitors go to the first whose link is up, in turn.
 *
 * @module
 */

import type { MuxStream, StreamOpener } from "../mux/mod.ts";
import type { NodeLinks, PeerNode } from "./link.ts";

/** One node's holding of a tunnel. */
export interface RelayHolder {
  /** The node whose session holds it. */
  node: PeerNode;
  /** The session on that node. */
  session: string;
  /** The tunnel's name as the client knows it. */
  tunnel: string;
}

/** What a relayed stream's metadata carries besides the tunnel's own fields. */
export interface RelayField {
  /** The session, on the node the stream is opened to, that holds the tunnel. */
  session: string;
}

/** Opens visitors' streams to the nodes that hold a tunnel. */
export class RelayedOpener implements StreamOpener {
  /** Largest data payload per frame: the links' default. */
  readonly maxFrameData: number = 128 * 1024;
  #links: NodeLinks;
  #holders: RelayHolder[];
  #next = 0;

  /** Relays over `links` to `holders`. */
  constructor(links: NodeLinks, holders: RelayHolder[] = []) {
    this.#links = links;
    this.#holders = holders;
    this.connect();
  }

  /** The holders now. */
  get holders(): readonly RelayHolder[] {
    return this.#holders;
  }

  /** Replaces the holders (placements came or went); links to new ones are dialled now. */
  set holders(holders: RelayHolder[]) {
    this.#holders = holders;
    this.connect();
  }

  /** Dials the holders' nodes that have no link yet (in the background: failures are logged by the links). */
  connect(): void {
    for (const holder of this.#holders) {
      if (!this.#links.ready(holder.node.id)) this.#links.to(holder.node).catch(() => {});
    }
  }

  /** Whether no node holds the tunnel any more. */
  get isClosed(): boolean {
    return this.#holders.length === 0;
  }

  /**
   * Whether no holder can be reached now (no link up): a group's balancer
   * then passes this member over, and an HTTP route answers that the client
   * is offline. Asking also dials the holders whose link is down, for the
   * visitors after this one.
   */
  get peerGoingAway(): boolean {
    const reachable = this.#holders.some((h) => this.#links.ready(h.node.id) !== null);
    if (!reachable) this.connect();
    return !reachable;
  }

  /**
   * Resolves `true` once a holder's link is up (dialling those that are
   * down), `false` when `ms` pass first: a visitor who arrives while the
   * link is being dialled waits for it instead of being turned away.
   */
  async ready(ms: number): Promise<boolean> {
    if (!this.peerGoingAway) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    const dials = this.#holders.map((h) => this.#links.to(h.node).then(() => {}, () => late));
    await Promise.race([Promise.any(dials).catch(() => late), late]);
    clearTimeout(timer);
    return !this.peerGoingAway;
  }

  /**
   * Opens a visitor's stream to a holder whose link is up; links that are
   * down are dialled again for the visitors after this one.
   *
   * @throws {Error} naming the nodes when none can be reached now.
   */
  open(meta: Record<string, unknown>): MuxStream {
    const holders = this.#holders;
    for (let k = 0; k < holders.length; k++) {
      const i = (this.#next + k) % holders.length;
      const holder = holders[i]!;
      const mux = this.#links.ready(holder.node.id);
      if (!mux) {
        this.#links.to(holder.node).catch(() => {});
        continue;
      }
      try {
        const relay: RelayField = { session: holder.session };
        const stream = mux.open({ ...meta, tunnel: holder.tunnel, relay });
        this.#next = (i + 1) % holders.length;
        return stream;
      } catch {
        // The link closed just now: the next holder, if any.
      }
    }
    const nodes = [...new Set(holders.map((h) => h.node.id))].join(", ");
    throw new Error(
      nodes ? `No link to node ${nodes}, which holds this tunnel` : "No node holds this tunnel",
    );
  }
}

/**
 * The links between the nodes of a cluster: one multiplexed connection per
 * pair of nodes, over TLS, opened when one node first needs to relay a
 * visitor to another and kept while both live. Either node may open
 * streams on it. The node a link was dialled to checks the dialer's proof
 * of the cluster secret (`link_handshake.ts`); the dialer pins the
 * listener's certificate.
 *
 * When both nodes of a pair dial each other at the same moment, the link
 * dialled by the node with the smaller id is kept; the other one is told to
 * go away (streams on it finish, new ones take the kept link).
 *
 * @example
 * ```ts ignore
 * const links = new NodeLinks({ node: "n1", secret, logger, dial, onStream });
 * const mux = await links.to({ id: "n2", host: "10.0.0.2", port: 7001, fingerprint });
 * const stream = mux.open({ relay: "…" });
 * ```
 *
 * @module
 */

import { Mux, type MuxOptions, type MuxStream } from "../mux/mod.ts";
import type { Duplex } from "../transport/mod.ts";
import type { Logger, Secret } from "../util/mod.ts";
import { acceptLinkHandshake, dialLinkHandshake, LinkRefusedError } from "./link_handshake.ts";

/** Where another node's relay port is, as its row in the `nodes` table says. */
export interface PeerNode {
  /** The node's id. */
  id: string;
  /** Host name or address its relay port is reached at. */
  host: string;
  /** Its relay port. */
  port: number;
  /** `sha256:` fingerprint of its certificate (pinned when dialling); empty: verify by CA. */
  fingerprint: string;
}

/** Options of {@linkcode NodeLinks}. */
export interface NodeLinksOptions {
  /** This node's id. */
  node: string;
  /** The cluster secret; `null` when nodes are authenticated by mutual TLS. */
  secret: Secret | null;
  /** Where links log. */
  logger: Logger;
  /** Opens a TLS connection to `peer`'s relay port, checking its certificate. */
  dial: (peer: PeerNode) => Promise<Duplex>;
  /** Receives each stream a peer opens, with the peer's id. */
  onStream: (stream: MuxStream, peer: string) => void;
  /** Multiplexer settings of links. */
  mux?: Pick<MuxOptions, "initialWindow" | "maxWindow">;
  /**
   * Milliseconds between pings on each link; a link whose ping goes
   * unanswered for as long is closed (a node whose machine vanished closes
   * nothing). 0 disables. Default 5000.
   */
  pingInterval?: number;
}

/** One established link, as {@linkcode NodeLinks.list} shows it. */
export interface LinkInfo {
  /** The other node. */
  peer: string;
  /** Which node dialled. */
  dialer: string;
  /** Streams open on it now. */
  streams: number;
  /** Smoothed round trip in ms (0 before the first ping). */
  rtt: number;
  /** When it was established. */
  since: Date;
}

interface Link {
  mux: Mux;
  dialer: string;
  since: Date;
}

/** The links of this node to the other nodes of its cluster. */
export class NodeLinks {
  #options: NodeLinksOptions;
  #links = new Map<string, Link>();
  #dialing = new Map<string, Promise<Mux>>();
  #accepted = new Set<Duplex>();
  #closed = false;

  /** Links of `options.node`. */
  constructor(options: NodeLinksOptions) {
    this.#options = options;
  }

  /**
   * The link to `peer`: the open one, or a new one dialled now (callers
   * asking at once share the dial).
   *
   * @throws {LinkRefusedError} when the peer refuses (other secret, other node).
   * @throws the dial's error when the peer cannot be reached.
   */
  to(peer: PeerNode): Promise<Mux> {
    const open = this.ready(peer.id);
    if (open) return Promise.resolve(open);
    let dialing = this.#dialing.get(peer.id);
    if (!dialing) {
      dialing = this.#dial(peer).finally(() => this.#dialing.delete(peer.id));
      this.#dialing.set(peer.id, dialing);
    }
    return dialing;
  }

  /** The open link to node `peer`, if one is usable now (no dial). */
  ready(peer: string): Mux | null {
    const open = this.#links.get(peer);
    return open && !open.mux.isClosed && !open.mux.peerGoingAway ? open.mux : null;
  }

  async #dial(peer: PeerNode): Promise<Mux> {
    if (this.#closed) throw new Error("This node is shutting down");
    const { node, secret, logger } = this.#options;
    const conn = await this.#options.dial(peer);
    try {
      await dialLinkHandshake(conn, { node, to: peer.id, secret });
    } catch (error) {
      logger.warn("node link refused", {
        peer: peer.id,
        addr: `${peer.host}:${peer.port}`,
        error: (error as Error).message,
      });
      throw error;
    }
    return this.#established(conn, peer.id, node, "client");
  }

  /**
   * Takes a connection accepted on the relay port: runs the listener's side
   * of the handshake, then keeps the link. Refusals are logged with the
   * remote address; they never throw.
   */
  async accept(conn: Duplex, remote: string): Promise<void> {
    if (this.#closed) {
      conn.close();
      return;
    }
    const { node, secret, logger } = this.#options;
    this.#accepted.add(conn);
    let peer: string;
    try {
      peer = await acceptLinkHandshake(conn, { node, secret });
    } catch (error) {
      const silent = error instanceof LinkRefusedError && error.silent;
      logger[silent ? "debug" : "warn"]("node link refused", {
        remote,
        error: error instanceof Error ? error.message : String(error),
      });
      return;
    } finally {
      this.#accepted.delete(conn);
    }
    this.#established(conn, peer, peer, "server");
  }

  #established(conn: Duplex, peer: string, dialer: string, role: "client" | "server"): Mux {
    const { logger, onStream } = this.#options;
    const mux = new Mux(conn, {
      role,
      // Pinged below, with a deadline the mux's own pings do not have.
      pingInterval: 0,
      ...this.#options.mux,
      onStream: (stream) => onStream(stream, peer),
    });
    const every = this.#options.pingInterval ?? 5_000;
    const pinger = every > 0 ? setInterval(() => this.#ping(mux, peer, every), every) : undefined;
    if (every > 0) this.#ping(mux, peer, every);
    const link: Link = { mux, dialer, since: new Date() };
    const current = this.#links.get(peer);
    if (current && !current.mux.isClosed && !current.mux.peerGoingAway) {
      // Both nodes dialled at once: keep the link the smaller id dialled, on both sides alike.
      const [keep, drop] = current.dialer < dialer ? [current, link] : [link, current];
      drop.mux.goAway("a link between these nodes already exists");
      this.#links.set(peer, keep);
    } else {
      this.#links.set(peer, link);
    }
    if (this.#closed) mux.close();
    logger.info("node link up", { peer, dialer });
    mux.closed.then((error) => {
      clearInterval(pinger);
      if (this.#links.get(peer) === link) this.#links.delete(peer);
      if (!this.#closed) {
        logger.info("node link down", { peer, ...(error ? { error: error.message } : {}) });
      }
    });
    return this.#links.get(peer)!.mux;
  }

  /** Pings `mux`; closes it when no answer comes within `ms`. */
  #ping(mux: Mux, peer: string, ms: number): void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ms)));
    Promise.race([mux.ping(), late]).then((answer) => {
      if (answer !== "late" || mux.isClosed) return;
      this.#options.logger.warn("node link closed: no answer to a ping", { peer, wait_ms: ms });
      mux.close(new Error(`Node ${peer} did not answer a ping within ${ms} ms`));
    }, () => {}).finally(() => clearTimeout(timer));
  }

  /** The open links. */
  list(): LinkInfo[] {
    return [...this.#links].map(([peer, link]) => ({
      peer,
      dialer: link.dialer,
      streams: link.mux.streamCount,
      rtt: link.mux.rtt,
      since: link.since,
    }));
  }

  /** Closes the link to `peer` (a node found dead), if open. */
  drop(peer: string): void {
    this.#links.get(peer)?.mux.close();
    this.#links.delete(peer);
  }

  /** Closes every link and handshake in progress; new ones are refused. */
  close(): void {
    this.#closed = true;
    for (const conn of this.#accepted) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    for (const link of this.#links.values()) link.mux.close();
    this.#links.clear();
  }
}

/**
 * Kicks: an administrator closing a client's session (it may reconnect).
 * The admin API closes a session of its own node at once; in cluster mode
 * it sends a kick for another node's session as `NOTIFY burrow_kick`,
 * which every node hears and the one holding the session carries out
 * (see {@linkcode listenKicks}). Both log the same line, so that a kick
 * reads alike in the log of the node that held the session wherever it
 * was asked for.
 *
 * @module
 */

import type { KickNotice, Store } from "../storage/mod.ts";
import type { Logger } from "../util/mod.ts";

/** What a kicked client is told. */
export const KICK_REASON = "Disconnected by an administrator";

/** A session as a kick sees it. */
export interface KickableSession {
  /** Id given to the client in `ack`. */
  readonly sessionId: string;
  /** The client's stable id. */
  readonly clientId: string;
  /** The client's connection. */
  readonly mux: { flush(): Promise<void> };
  /** Tells the client the server is going away, and why. */
  goAway(reason: string): void;
  /** Closes the connection. */
  close(reason: string): void;
}

/** How long a kick waits for the go-away frame to be written before it closes anyway. */
const GO_AWAY_WAIT_MS = 1000;

/**
 * Closes `session` after telling its client why: closing alone would leave
 * it "Connection closed by peer", so the reason goes first in a go-away
 * frame (which the client logs), and the connection closes once that is
 * written, or after {@linkcode GO_AWAY_WAIT_MS} when the connection is stuck.
 */
function closeTelling(session: KickableSession, reason: string): void {
  session.goAway(reason);
  const close = () => {
    clearTimeout(timer);
    session.close(reason);
  };
  const timer = setTimeout(close, GO_AWAY_WAIT_MS);
  session.mux.flush().then(close, close);
}

/** Options of {@linkcode kickLocal}. */
export interface KickOptions {
  /** Where the kick is logged. */
  log: Logger;
  /** What the client is told. Default {@linkcode KICK_REASON}. */
  reason?: string;
  /** More fields of the log line. */
  fields?: Record<string, unknown>;
}

/**
 * Closes the session `id` among `sessions`, telling its client why, and
 * logs it. Returns whether this node held it.
 */
export function kickLocal(
  sessions: Iterable<KickableSession>,
  id: string,
  options: KickOptions,
): boolean {
  let session: KickableSession | undefined;
  for (const s of sessions) if (s.sessionId === id) session = s;
  if (!session) return false;
  options.log.info("session kicked through the admin API", {
    session_id: session.sessionId,
    client_id: session.clientId,
    ...options.fields,
  });
  closeTelling(session, options.reason ?? KICK_REASON);
  return true;
}

/** Options of {@linkcode listenKicks}. */
export interface ListenKicksOptions {
  /** This node's id: kicks for other nodes are theirs. */
  node: string;
  /** This node's sessions now. */
  sessions: () => Iterable<KickableSession>;
  /** Where kicks are logged. */
  log: Logger;
}

/**
 * Carries out the kicks that the admin APIs of the cluster send to this
 * node: closes each session it holds. Resolves with the unsubscribe
 * function.
 */
export function listenKicks(
  store: Pick<Store, "listenKicks">,
  options: ListenKicksOptions,
): Promise<() => Promise<void>> {
  const { node, sessions, log } = options;
  return store.listenKicks((kick: KickNotice) => {
    if (kick.node !== node) return;
    const fields = { via: kick.by };
    const reason = kick.reason || KICK_REASON;
    if (!kickLocal(sessions(), kick.session, { log, reason, fields })) {
      // It closed between the sender's look at the database and now: nothing left to do.
      log.debug("kicked session already gone", { session_id: kick.session, via: kick.by });
    }
  });
}

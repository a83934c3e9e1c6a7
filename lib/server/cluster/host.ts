/**
 * What cluster mode's tunnels need of the node they run on: its sessions
 * and the parts of the server a relay opens in.
 *
 * @module
 */

import type { ServerConfig } from "../../config/mod.ts";
import type { MuxStream } from "../../mux/mod.ts";
import type { HttpFront } from "../http_front.ts";
import type { Principal } from "../login.ts";
import type { SessionRecorder } from "../recorder.ts";
import type { GroupRegistry, PublicTunnel } from "../tunnels/mod.ts";
import type { Throttle } from "../../util/mod.ts";

/** What the cluster's tunnels need of a local session. */
export interface LocalSession {
  /** Id given to the client in `ack`. */
  readonly sessionId: string;
  /** The client's stable id. */
  readonly clientId: string;
  /** Who logged in. */
  readonly principal: Principal | null;
  /** Open tunnels by name. */
  readonly tunnels: ReadonlyMap<string, PublicTunnel>;
  /** Tunnel `name`'s bandwidth limit (visitors relayed from other nodes share it). */
  limitOf(name: string): { in: Throttle; out: Throttle } | undefined;
  /** The client's connection. */
  readonly mux: { open(meta: Record<string, unknown>): MuxStream; readonly isClosed: boolean };
}

/** What the cluster's tunnels need of their server. */
export interface RelayHost {
  /** The validated server configuration. */
  readonly config: ServerConfig;
  /** Load-balancing groups of this node. */
  readonly groups: GroupRegistry;
  /** The shared HTTP and HTTPS ports, when configured. */
  readonly vhosts: { http: HttpFront | null; https: HttpFront | null };
  /** Where visitors of relays are reported. */
  readonly recorder: SessionRecorder;
  /** This node's sessions. */
  readonly sessions: Iterable<LocalSession>;
  /** The tunnel windows alerts read: a relay's visitors are counted there too. */
  readonly stats: {
    relayed(user: string, name: string, type: string): void;
    unrelayed(user: string, name: string): void;
  };
}

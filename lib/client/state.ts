/**
 * What the client knows of its tunnels and itself, as its callbacks, its
 * status endpoint and `burrow status` report it.
 *
 * @module
 */

/** State of one tunnel as last reported by the server. */
export interface TunnelState {
  /** Name, unique within its list. */
  name: string;
  /** State being reported: `closed` when the server removed it. */
  status: "pending" | "active" | "failed" | "closed";
  /** Defined in the server's database rather than in this client's config. */
  managed?: boolean;
  /** Public port on the server. */
  remotePort?: number;
  /** Public address visitors use. */
  publicAddr?: string;
  /** HTTP(S) tunnels: every public URL. */
  urls?: string[];
  /** Why the tunnel failed. */
  error?: string;
}

/** A client's state as `burrow status` shows it. */
export interface ClientStatus {
  /** This client's id. */
  client_id: string;
  /** `host:port` of the burrowd of the first connected session, else the addresses configured. */
  server: string;
  /** Whether a control connection is up. */
  connected: boolean;
  /** Last heartbeat round trip of that session. */
  rtt_ms: number | null;
  /**
   * Each session (one per `ha_connections`): the address it is on or
   * trying (null while none is free). Absent from older clients.
   */
  sessions?: Array<{ server: string | null; connected: boolean; rtt_ms: number | null }>;
  /** Every tunnel. */
  tunnels: Array<{
    name: string;
    type: string;
    status: TunnelState["status"];
    public_addr: string | null;
    local: string | null;
    managed: boolean;
    error: string | null;
    connections: number;
    active_connections: number;
    bytes_in: number;
    bytes_out: number;
  }>;
}

/** How the configured tunnels fared once the server answered for each on a connection. */
export interface Registration {
  /** Tunnels the server opened. */
  up: number;
  /** Tunnels in the configuration. */
  total: number;
  /** Tunnels the server refused, with its reason. */
  refused: Array<{ name: string; reason: string }>;
  /** The server that answered, when the client has several (`server_addrs`, `ha_connections`). */
  server?: string;
}

/**
 * The one line that sums up a registration.
 *
 * @example
 * ```ts
 * import { formatRegistration } from "./state.ts";
 * const line = formatRegistration({ up: 2, total: 3, refused: [{ name: "db", reason: "No" }] });
 * console.assert(line === '2 of 3 tunnels up; "db" refused: No');
 * const ha = formatRegistration({ up: 1, total: 1, refused: [], server: "10.0.0.5:7000" });
 * console.assert(ha === "1 of 1 tunnel up on 10.0.0.5:7000");
 * ```
 */
export function formatRegistration(registration: Registration): string {
  const { up, total, refused, server } = registration;
  return [
    `${up} of ${total} tunnel${total === 1 ? "" : "s"} up${server ? ` on ${server}` : ""}`,
    ...refused.map((r) => `"${r.name}" refused: ${r.reason}`),
  ].join("; ");
}

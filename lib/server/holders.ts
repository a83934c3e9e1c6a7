/**
 * Who on this server already holds what a tunnel asks for (its name, or its
 * public port), in words for the client that asks: its own tunnels and, to
 * an administrator, anyone's are named; another user's are not.
 *
 * @example
 * ```ts
 * import { portTakenMessage } from "./holders.ts";
 * const me = { userId: 1, userName: "ann", tokenId: null };
 * console.assert(portTakenMessage(2222, "tcp", me, null) ===
 *   "Port 2222 is in use on the server by another program; choose another port");
 * ```
 *
 * @module
 */

import type { Principal } from "./login.ts";

/** What the wording needs of a session: who logged in, from where, under which client id. */
export interface HolderSession {
  /** Who logged in. */
  readonly principal: Principal | null;
  /** The client's stable id. */
  readonly clientId: string;
  /** The client's `host:port`. */
  readonly remote: string;
  /** Its open tunnels by name. */
  readonly tunnels: ReadonlyMap<string, HeldTunnel>;
}

/** What the wording needs of a tunnel. */
export interface HeldTunnel {
  /** Its name. */
  readonly name: string;
  /** Its type. */
  readonly type: string;
  /** Its public port. */
  readonly port: number;
  /** Set for a database-managed tunnel. */
  readonly managed: unknown;
  /** Set for a member of a load-balancing group. */
  readonly group?: { readonly name: string } | undefined;
}

/** Whether `a` and `b` are the same user. */
export function sameUser(a: Principal | null, b: Principal | null): boolean {
  if (!a || !b) return false;
  return a.userId !== null && b.userId !== null ? a.userId === b.userId : a.userName === b.userName;
}

/**
 * Another session of `asker`'s user that has the client-declared tunnel
 * `name` open (or opening, per `opening`), if any: a second one would share
 * its row, its metrics and its place in the lists.
 */
export function nameHolder<S extends HolderSession>(
  sessions: Iterable<S>,
  asker: S,
  name: string,
  opening: (session: S, name: string) => boolean,
): S | null {
  for (const session of sessions) {
    if (session === asker || !sameUser(session.principal, asker.principal)) continue;
    const tunnel = session.tunnels.get(name);
    if ((tunnel && !tunnel.managed) || opening(session, name)) return session;
  }
  return null;
}

/** Why a declared tunnel whose name `holder` (another client of the same user) has open is refused. */
export function nameTakenMessage(name: string, holder: HolderSession): string {
  return `Tunnel "${name}" is already online from another client of user ` +
    `"${holder.principal?.userName ?? "admin"}" (client id "${holder.clientId}", ` +
    `address ${holder.remote}); stop that client, or give this tunnel another name ` +
    `(burrow --name, or tunnels[].name in the client config)`;
}

/** A live tunnel on `port` and the session that holds it. */
export interface PortHolder<S extends HolderSession> {
  /** The session. */
  session: S;
  /** Its tunnel on the port. */
  tunnel: HeldTunnel;
}

/**
 * The live tunnel that holds public port `port` for `transport` (HTTP(S)
 * tunnels on a port of their own hold a TCP port), if any.
 */
export function portHolder<S extends HolderSession>(
  sessions: Iterable<S>,
  port: number,
  transport: "tcp" | "udp",
): PortHolder<S> | null {
  for (const session of sessions) {
    for (const tunnel of session.tunnels.values()) {
      if (tunnel.port === port && (tunnel.type === "udp") === (transport === "udp")) {
        return { session, tunnel };
      }
    }
  }
  return null;
}

/**
 * Why a tunnel of `asker` cannot have public port `port`: burrowd's own
 * port (`own` says which), a live tunnel (`holder`: named to its own user
 * and to administrators, "another user's" to anyone else), or, when neither,
 * another program on the server.
 */
export function portTakenMessage(
  port: number,
  transport: "tcp" | "udp",
  asker: Principal | null,
  holder: PortHolder<HolderSession> | null,
  own: string | null = null,
): string {
  const what = `${transport === "udp" ? "UDP port" : "Port"} ${port}`;
  if (own) return `${what} is burrowd's own ${own}; choose another port`;
  if (!holder) return `${what} is in use on the server by another program; choose another port`;
  const { session, tunnel } = holder;
  const group = tunnel.group ? ` (group "${tunnel.group.name}")` : "";
  const where = `which is online (client id "${session.clientId}")`;
  if (sameUser(asker, session.principal)) {
    return `${what} is in use by your tunnel "${tunnel.name}"${group}, ${where}`;
  }
  if (asker?.admin) {
    return `${what} is in use by user "${session.principal?.userName}"'s tunnel ` +
      `"${tunnel.name}"${group}, ${where}`;
  }
  return `${what} is taken by another user's tunnel; choose another port`;
}

/** burrowd's own listening ports; `undefined`: not listening. */
export interface OwnPorts {
  /** The control port. */
  control: number;
  /** `server.vhost_http_port`, as bound. */
  http?: number | undefined;
  /** `server.vhost_https_port`, as bound. */
  https?: number | undefined;
  /** `server.admin.bind_port` (0: picked by the OS, not known here). */
  admin?: number | undefined;
}

/** Which of burrowd's own ports `port` is, in words, or `null`. */
export function ownPortName(port: number, own: OwnPorts): string | null {
  if (port === own.control) return "control port (server.bind_port)";
  if (port === own.http) return "HTTP port (server.vhost_http_port)";
  if (port === own.https) return "HTTPS port (server.vhost_https_port)";
  if (own.admin && port === own.admin) return "admin port (server.admin.bind_port)";
  return null;
}

/** What {@linkcode portHeld} needs of the server. */
export interface PortsHost<S extends HolderSession> {
  /** The control port, as bound. */
  readonly port: number;
  /** Every registered session. */
  readonly sessions: Iterable<S>;
  /** The vhost ports, when configured. */
  readonly vhosts: { http: { port: number } | null; https: { port: number } | null };
  /** `server.admin.bind_port`. */
  readonly config: { admin: { bind_port: number } };
}

/**
 * Who holds public `port` that this server knows of (one of its own ports,
 * or a live tunnel), in words for `asker`; `null` when none.
 */
export function portHeld<S extends HolderSession>(
  host: PortsHost<S>,
  asker: Principal | null,
  port: number,
  transport: "tcp" | "udp",
): string | null {
  const own = transport === "tcp"
    ? ownPortName(port, {
      control: host.port,
      http: host.vhosts.http?.port,
      https: host.vhosts.https?.port,
      admin: host.config.admin.bind_port,
    })
    : null;
  const holder = portHolder(host.sessions, port, transport);
  return own || holder ? portTakenMessage(port, transport, asker, holder, own) : null;
}

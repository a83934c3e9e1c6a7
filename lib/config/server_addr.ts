/**
 * `HOST[:PORT]` of a burrowd control port as `client.server_addrs` and
 * `--server` write it: a host name, an IPv4 address, or an IPv6 address in
 * brackets, with the port 7000 (`server.bind_port`'s default) when left out.
 *
 * @example
 * ```ts
 * import { formatServerAddr, parseServerAddr } from "./server_addr.ts";
 * const a = parseServerAddr("[::1]:7100");
 * console.assert(a.host === "::1" && a.port === 7100);
 * console.assert(formatServerAddr(parseServerAddr("node1.example.com")) === "node1.example.com:7000");
 * ```
 *
 * @module
 */

/** One configured server address. */
export interface ServerAddr {
  /** Host name or IP address, without brackets. */
  host: string;
  /** Control port. */
  port: number;
}

/** The port of an entry that names none: burrowd's default `server.bind_port`. */
export const DEFAULT_SERVER_PORT = 7000;

const HOST_NAME =
  /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;
const IPV6 = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;

/**
 * Parses `HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT`.
 *
 * @throws {TypeError} saying what is wrong with `text`.
 */
export function parseServerAddr(text: string, defaultPort = DEFAULT_SERVER_PORT): ServerAddr {
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  let host: string;
  let port: string | undefined;
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2];
    if (!IPV6.test(host)) throw new TypeError(`"${host}" in brackets is not an IPv6 address`);
  } else {
    if (IPV6.test(text) && text.split(":").length > 2) {
      throw new TypeError(`"${text}": write an IPv6 address in brackets, as in [::1]:7000`);
    }
    [host, port] = text.split(":") as [string, string | undefined];
    if (!HOST_NAME.test(host) || text.split(":").length > 2) {
      throw new TypeError(`Expected HOST:PORT (such as node1.example.com:7000), got "${text}"`);
    }
  }
  if (port === undefined) return { host, port: defaultPort };
  const n = /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (!(n >= 1 && n <= 65535)) {
    throw new TypeError(`Expected a port 1-65535 after "${host}:", got "${port}"`);
  }
  return { host, port: n };
}

/** `host:port`, with an IPv6 host in brackets. */
export function formatServerAddr(addr: ServerAddr): string {
  return addr.host.includes(":") ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

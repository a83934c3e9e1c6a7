/**
 * Network address helpers.
 *
 * @example
 * ```ts
 * import { formatAddr } from "./net.ts";
 * console.assert(formatAddr({ transport: "tcp", hostname: "::1", port: 80 }) === "[::1]:80");
 * ```
 *
 * @module
 */

/** `host:port`, with IPv6 hosts in brackets. */
export function formatAddr(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return addr.transport;
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** `HOST:PORT` (`[v6]:PORT` for IPv6) split, or null when it is not of that form. */
export function splitHostPort(text: string): { hostname: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) return null;
  return { hostname: m[1] ?? m[2]!, port };
}

/** True for the loopback addresses (`127.0.0.0/8`, `::1`) and `localhost`. */
export function isLoopbackHost(hostname: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname) || hostname === "::1" ||
    hostname === "localhost";
}

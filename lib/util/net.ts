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

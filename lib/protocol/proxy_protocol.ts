/**
 * The PROXY protocol header (HAProxy's spec, versions 1 and 2) that the
 * client writes to a local service before a connection's first byte, so
 * the service learns the visitor's address and the public address the
 * visitor reached. Encoding is pure and happens once per connection (for
 * UDP, once per visitor session: the same header precedes each datagram).
 *
 * @example
 * ```ts
 * import { encodeProxyHeader } from "./proxy_protocol.ts";
 * const header = encodeProxyHeader("v1", {
 *   source: { hostname: "203.0.113.7", port: 51234 },
 *   destination: { hostname: "198.51.100.1", port: 443 },
 * });
 * console.assert(
 *   new TextDecoder().decode(header) === "PROXY TCP4 203.0.113.7 198.51.100.1 51234 443\r\n",
 * );
 * ```
 *
 * @module
 */

import { parseIp } from "../util/mod.ts";

/** The versions of the PROXY protocol. */
export const PROXY_PROTOCOL_VERSIONS = ["v1", "v2"] as const;

/** A version of the PROXY protocol. */
export type ProxyProtocolVersion = typeof PROXY_PROTOCOL_VERSIONS[number];

/** An IP address (v4 or v6, without brackets) and a port. */
export interface ProxyEndpoint {
  /** The address, e.g. `203.0.113.7` or `2001:db8::1`. */
  hostname: string;
  /** The port, 0-65535. */
  port: number;
}

/** Who connected (`source`) and where to (`destination`). */
export interface ProxyEndpoints {
  /** The visitor. */
  source: ProxyEndpoint;
  /** The public address and port the visitor reached. */
  destination: ProxyEndpoint;
}

/** The twelve bytes every version 2 header starts with. */
export const PROXY_V2_SIGNATURE: Uint8Array = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);

const V2_PROXY = 0x21;
const V2_LOCAL = 0x20;
const encoder = new TextEncoder();

/**
 * Parses `host:port` or `[v6]:port` as the server writes addresses in a
 * stream's open frame; `null` when it is not an IP address and a port
 * (e.g. the server's probes, whose remote is `probe`).
 *
 * @example
 * ```ts
 * import { parseEndpoint } from "./proxy_protocol.ts";
 * console.assert(parseEndpoint("[::1]:8080")?.hostname === "::1");
 * console.assert(parseEndpoint("probe") === null);
 * ```
 */
export function parseEndpoint(text: unknown): ProxyEndpoint | null {
  if (typeof text !== "string") return null;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  if (!match) return null;
  const hostname = (match[1] ?? match[2])!;
  const port = Number(match[3]);
  if (port > 65535 || parseIp(hostname) === null) return null;
  return { hostname, port };
}

/**
 * The header for `endpoints`, or the one that says "no addresses" when
 * `endpoints` is `null` (`PROXY UNKNOWN` in v1, the LOCAL command in v2):
 * the service then uses the connection's own addresses. Version 1 is for
 * TCP only; version 2 also carries UDP (`transport: "udp"`).
 *
 * When the two addresses are of different families, the IPv4 one is
 * written as IPv4-mapped IPv6; an IPv4-mapped address alone is written as
 * IPv4.
 *
 * @throws {RangeError} for v1 over UDP, an address that is not an IP
 * address, or a port outside 0-65535.
 *
 * @example
 * ```ts
 * import { encodeProxyHeader } from "./proxy_protocol.ts";
 * const local = encodeProxyHeader("v2", null);
 * console.assert(local.length === 16 && local[12] === 0x20 && local[13] === 0x00);
 * ```
 */
export function encodeProxyHeader(
  version: ProxyProtocolVersion,
  endpoints: ProxyEndpoints | null,
  transport: "tcp" | "udp" = "tcp",
): Uint8Array {
  if (version === "v1" && transport === "udp") {
    throw new RangeError("PROXY protocol v1 carries TCP only; use v2 for UDP");
  }
  if (endpoints === null) {
    return version === "v1" ? encoder.encode("PROXY UNKNOWN\r\n") : v2Head(V2_LOCAL, 0x00, 0);
  }
  const { source, destination } = endpoints;
  let src = ipOf(source), dst = ipOf(destination);
  if (src.version !== dst.version) {
    src = asV6(src);
    dst = asV6(dst);
  }
  if (version === "v1") {
    const family = src.version === 4 ? "TCP4" : "TCP6";
    return encoder.encode(
      `PROXY ${family} ${src.text} ${dst.text} ${source.port} ${destination.port}\r\n`,
    );
  }
  const size = src.version === 4 ? 4 : 16;
  const family = (src.version === 4 ? 0x10 : 0x20) | (transport === "tcp" ? 0x01 : 0x02);
  const out = v2Head(V2_PROXY, family, size * 2 + 4);
  const view = new DataView(out.buffer);
  writeBig(out, 16, src.value, size);
  writeBig(out, 16 + size, dst.value, size);
  view.setUint16(16 + size * 2, source.port);
  view.setUint16(18 + size * 2, destination.port);
  return out;
}

/** A version 2 header decoded by {@linkcode decodeProxyHeaderV2}. */
export interface ProxyHeaderV2 {
  /** `proxy`: the addresses are the visitor's; `local`: none were given. */
  command: "proxy" | "local";
  /** `tcp`, `udp`, or `null` with no addresses. */
  transport: "tcp" | "udp" | null;
  /** The addresses, `null` for the LOCAL command or an unspecified family. */
  endpoints: ProxyEndpoints | null;
  /** Bytes the header took; what follows is the payload. */
  length: number;
}

/**
 * Decodes a version 2 header at the start of `bytes` (as a service does;
 * used by the tests); `null` when `bytes` does not start with one.
 *
 * @example
 * ```ts
 * import { decodeProxyHeaderV2, encodeProxyHeader } from "./proxy_protocol.ts";
 * const header = encodeProxyHeader("v2", {
 *   source: { hostname: "10.0.0.1", port: 5000 },
 *   destination: { hostname: "10.0.0.2", port: 53 },
 * }, "udp");
 * console.assert(decodeProxyHeaderV2(header)?.endpoints?.source.port === 5000);
 * ```
 */
export function decodeProxyHeaderV2(bytes: Uint8Array): ProxyHeaderV2 | null {
  if (bytes.length < 16) return null;
  for (let i = 0; i < 12; i++) if (bytes[i] !== PROXY_V2_SIGNATURE[i]) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const command = bytes[12] === V2_PROXY ? "proxy" : bytes[12] === V2_LOCAL ? "local" : null;
  if (command === null) return null;
  const length = 16 + view.getUint16(14);
  if (bytes.length < length) return null;
  const family = bytes[13]! >> 4, proto = bytes[13]! & 0x0f;
  const transport = proto === 1 ? "tcp" : proto === 2 ? "udp" : null;
  const size = family === 1 ? 4 : family === 2 ? 16 : 0;
  if (command === "local" || size === 0 || transport === null || length < 16 + size * 2 + 4) {
    return { command, transport, endpoints: null, length };
  }
  const at = (offset: number): string =>
    size === 4 ? bytes.subarray(offset, offset + 4).join(".") : Array.from(
      { length: 8 },
      (_, i) => view.getUint16(offset + i * 2).toString(16),
    ).join(":");
  return {
    command,
    transport,
    endpoints: {
      source: { hostname: at(16), port: view.getUint16(16 + size * 2) },
      destination: { hostname: at(16 + size), port: view.getUint16(18 + size * 2) },
    },
    length,
  };
}

interface Ip {
  version: 4 | 6;
  value: bigint;
  /** As written in a version 1 header. */
  text: string;
}

function ipOf(endpoint: ProxyEndpoint): Ip {
  const ip = parseIp(endpoint.hostname);
  if (ip === null || endpoint.hostname.includes("[")) {
    throw new RangeError(`Not an IP address: ${JSON.stringify(endpoint.hostname)}`);
  }
  if (!Number.isInteger(endpoint.port) || endpoint.port < 0 || endpoint.port > 65535) {
    throw new RangeError(`Not a port: ${JSON.stringify(endpoint.port)}`);
  }
  const text = ip.version === 4 ? v4Text(ip.value) : endpoint.hostname.toLowerCase();
  return { ...ip, text };
}

function v4Text(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
}

function asV6(ip: Ip): Ip {
  if (ip.version === 6) return ip;
  return { version: 6, value: (0xffffn << 32n) | ip.value, text: `::ffff:${ip.text}` };
}

function v2Head(command: number, family: number, length: number): Uint8Array {
  const out = new Uint8Array(16 + length);
  out.set(PROXY_V2_SIGNATURE);
  out[12] = command;
  out[13] = family;
  out[14] = length >> 8;
  out[15] = length & 0xff;
  return out;
}

function writeBig(out: Uint8Array, offset: number, value: bigint, size: number): void {
  for (let i = size - 1; i >= 0; i--) {
    out[offset + i] = Number(value & 0xffn);
    value >>= 8n;
  }
}

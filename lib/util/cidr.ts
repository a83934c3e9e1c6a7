/**
 * IP allow/deny lists: CIDR blocks of IPv4 and IPv6 (`10.0.0.0/8`,
 * `2001:db8::/32`, or single addresses). IPv4-mapped IPv6 addresses
 * (`::ffff:10.1.2.3`) match IPv4 blocks.
 *
 * @example
 * ```ts
 * import { IpPolicy } from "./cidr.ts";
 * const policy = IpPolicy.parse(["10.0.0.0/8"], ["10.9.0.0/16"]);
 * console.assert(policy.allows("10.1.2.3") && !policy.allows("10.9.1.1") && !policy.allows("192.0.2.1"));
 * ```
 *
 * @module
 */

/** A CIDR block. */
export interface Cidr {
  /** 4 or 6. */
  version: 4 | 6;
  /** The network address as a big integer. */
  network: bigint;
  /** Prefix length. */
  prefix: number;
  /** As written. */
  text: string;
}

function parseV4(text: string): bigint | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let n = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    n = (n << 8n) | BigInt(Number(p));
  }
  return n;
}

function parseV6(text: string): bigint | null {
  let s = text;
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  // Trailing embedded IPv4 (::ffff:1.2.3.4).
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".") && lastColon >= 0) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    tail = [Number(v4 >> 16n), Number(v4 & 0xffffn)];
    s = s.slice(0, lastColon);
    if (s.endsWith(":")) s += ":"; // "::1.2.3.4", "64:ff9b::1.2.3.4"
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const group = (h: string) => (h === "" ? [] : h.split(":"));
  const head = group(halves[0]!);
  const rest = halves.length === 2 ? group(halves[1]!) : [];
  const total = 8 - tail.length;
  if (halves.length === 1 && head.length !== total) return null;
  if (head.length + rest.length > total) return null;
  const groups = [
    ...head,
    ...Array(halves.length === 2 ? total - head.length - rest.length : 0).fill("0"),
    ...rest,
  ];
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return null;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  for (const t of tail) n = (n << 16n) | BigInt(t);
  return n;
}

/** Parses an address; IPv4-mapped IPv6 becomes IPv4. `null` when it is not an IP address. */
export function parseIp(text: string): { version: 4 | 6; value: bigint } | null {
  const t = text.replace(/^\[|\]$/g, "");
  const v4 = parseV4(t);
  if (v4 !== null) return { version: 4, value: v4 };
  const v6 = t.includes(":") ? parseV6(t) : null;
  if (v6 === null) return null;
  if (v6 >> 32n === 0xffffn) return { version: 4, value: v6 & 0xffffffffn };
  return { version: 6, value: v6 };
}

/**
 * Parses `addr/prefix` or a single address.
 *
 * @throws {Error} naming the bad block.
 */
export function parseCidr(text: string): Cidr {
  const [addr, prefixText, extra] = text.trim().split("/");
  const ip = extra === undefined && addr ? parseIp(addr) : null;
  if (!ip) throw new Error(`"${text}" is not an IP address or CIDR block`);
  const bits = ip.version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits || !/^\d*$/.test(prefixText ?? "")) {
    throw new Error(`"${text}": the prefix length must be 0-${bits}`);
  }
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  return { version: ip.version, network: ip.value & mask, prefix, text };
}

function contains(block: Cidr, ip: { version: 4 | 6; value: bigint }): boolean {
  if (block.version !== ip.version) return false;
  const bits = block.version === 4 ? 32 : 128;
  const mask = block.prefix === 0
    ? 0n
    : ((1n << BigInt(block.prefix)) - 1n) << BigInt(bits - block.prefix);
  return (ip.value & mask) === block.network;
}

/** An allow list (empty: everyone) and a deny list (wins over allow). */
export class IpPolicy {
  /** Allowed blocks; empty allows all. */
  readonly allow: readonly Cidr[];
  /** Denied blocks. */
  readonly deny: readonly Cidr[];

  /** A policy of parsed blocks. */
  constructor(allow: Cidr[] = [], deny: Cidr[] = []) {
    this.allow = allow;
    this.deny = deny;
  }

  /**
   * Parses both lists.
   *
   * @throws {Error} naming the first bad block.
   */
  static parse(allow: readonly string[] = [], deny: readonly string[] = []): IpPolicy {
    return new IpPolicy(allow.map(parseCidr), deny.map(parseCidr));
  }

  /** Whether the policy restricts anything. */
  get empty(): boolean {
    return this.allow.length === 0 && this.deny.length === 0;
  }

  /** Whether `address` (a host, not `host:port`) may connect. */
  allows(address: string): boolean {
    if (this.empty) return true;
    const ip = parseIp(address);
    if (!ip) return false;
    if (this.deny.some((b) => contains(b, ip))) return false;
    return this.allow.length === 0 || this.allow.some((b) => contains(b, ip));
  }
}

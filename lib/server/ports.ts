/**
 * Port policy: which public ports tunnels may take (`server.allow_ports`).
 *
 * @example
 * ```ts
 * import { formatPortRanges, portAllowed } from "./ports.ts";
 * console.assert(portAllowed(2500, [[2000, 3000]]));
 * console.assert(formatPortRanges([[2000, 3000], [3306, 3306]]) === "2000-3000,3306");
 * ```
 *
 * @module
 */

/** Inclusive port ranges; empty allows every port. */
export type PortRanges = ReadonlyArray<readonly [number, number]>;

/** Whether `port` lies in `ranges` (or `ranges` is empty). */
export function portAllowed(port: number, ranges: PortRanges): boolean {
  return ranges.length === 0 || ranges.some(([lo, hi]) => port >= lo && port <= hi);
}

/** `2000-3000,3306`. */
export function formatPortRanges(ranges: PortRanges): string {
  return ranges.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(",");
}

/**
 * Ports to try for a tunnel that asked for any port: just `0` (the OS picks)
 * when every port is allowed, else up to `limit` distinct random ports from
 * the ranges.
 */
export function candidatePorts(ranges: PortRanges, limit = 64, random = Math.random): number[] {
  if (ranges.length === 0) return [0];
  const total = ranges.reduce((n, [lo, hi]) => n + hi - lo + 1, 0);
  const picked = new Set<number>();
  const want = Math.min(limit, total);
  for (let guard = 0; picked.size < want && guard < want * 8; guard++) {
    let k = Math.floor(random() * total);
    for (const [lo, hi] of ranges) {
      const size = hi - lo + 1;
      if (k < size) {
        picked.add(lo + k);
        break;
      }
      k -= size;
    }
  }
  return [...picked];
}

/** The port ranges that bound a tunnel request; `null`: no limit at that level. */
export interface PortLimits {
  /** `server.allow_ports` (empty: every port). */
  server: PortRanges;
  /** The user's `allow_ports`. */
  user: PortRanges | null;
  /** The token's `ports` limit. */
  token: PortRanges | null;
  /** The user, for the messages. */
  userName: string;
}

/**
 * The ports a tunnel asking for `requested` (0: any) may try, within the
 * server's, the user's and the token's ranges (a port must be in each that
 * is set); or why it may not, naming the ranges that refuse it.
 *
 * @example
 * ```ts
 * import { portsFor } from "./ports.ts";
 * const limits = { server: [[2000, 3000]] as const, user: null, token: null, userName: "ann" };
 * console.assert(portsFor(2222, limits)[0] === 2222);
 * console.assert(typeof portsFor(22, limits) === "string");
 * ```
 */
export function portsFor(
  requested: number,
  limits: PortLimits,
  random: () => number = Math.random,
): number[] | string {
  const { server, user, token, userName } = limits;
  if (token && requested !== 0 && !portAllowed(requested, token)) {
    return `Port ${requested} is not allowed for this token (allowed: ${formatPortRanges(token)})`;
  }
  // The token's ranges narrow the user's (when both are set, a port must be in both).
  const mine = token && user ? intersectRanges(token, user) : token ?? user;
  if (requested !== 0) {
    if (!portAllowed(requested, server)) {
      return `Port ${requested} is not allowed on this server (allowed: ${
        formatPortRanges(server)
      })`;
    }
    if (mine && !portAllowed(requested, mine)) {
      return `Port ${requested} is not allowed for user "${userName}" ` +
        `(allowed: ${formatPortRanges(mine)})`;
    }
    return [requested];
  }
  if (!mine) return candidatePorts(server, 64, random);
  const ports = candidatePorts(mine, 64, random).filter((p) => portAllowed(p, server));
  return ports.length ? ports : `No port is allowed both for user "${userName}" ` +
    `(${formatPortRanges(mine)}) and on this server (${formatPortRanges(server)})`;
}

/** Port ranges in both `a` and `b`. */
function intersectRanges(a: PortRanges, b: PortRanges): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a0, a1] of a) {
    for (const [b0, b1] of b) {
      const lo = Math.max(a0, b0);
      const hi = Math.min(a1, b1);
      if (lo <= hi) out.push([lo, hi]);
    }
  }
  return out;
}

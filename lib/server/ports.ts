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

/**
 * Bandwidth limits of tunnels: each tunnel's own (`server.limits.max_bandwidth`)
 * and its user's (`users.max_bandwidth`), which all the user's tunnels on
 * this server share. A tunnel with both takes from both.
 *
 * @module
 */

import { bothLimits, type Throttle, TokenBucket } from "../util/mod.ts";
import type { Principal } from "./login.ts";

/** A limit per direction: from visitors (`in`) and to them (`out`). */
export type Limits = { in: Throttle; out: Throttle };

/** The bandwidth limits of one server's tunnels. */
export class Bandwidth {
  #perTunnel: number;
  #users = new Map<number, { rate: number; in: TokenBucket; out: TokenBucket }>();

  /** `perTunnel`: bytes per second each tunnel may move each way; 0: unlimited. */
  constructor(perTunnel: number) {
    this.#perTunnel = perTunnel;
  }

  /** The limits of a new tunnel of `principal`; `undefined` when nothing limits it. */
  forTunnel(principal: Principal | null): Limits | undefined {
    const rate = this.#perTunnel;
    const own = rate > 0 ? { in: new TokenBucket(rate), out: new TokenBucket(rate) } : undefined;
    const user = this.#forUser(principal);
    if (!own || !user) return own ?? user;
    return { in: bothLimits(own.in, user.in), out: bothLimits(own.out, user.out) };
  }

  /** The buckets the user's tunnels share, when the user has a limit (a new rate starts anew). */
  #forUser(principal: Principal | null): Limits | undefined {
    if (!principal || principal.userId == null || !principal.maxBandwidth) return undefined;
    const rate = principal.maxBandwidth;
    let buckets = this.#users.get(principal.userId);
    if (!buckets || buckets.rate !== rate) {
      buckets = { rate, in: new TokenBucket(rate), out: new TokenBucket(rate) };
      this.#users.set(principal.userId, buckets);
    }
    return buckets;
  }
}

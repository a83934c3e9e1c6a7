/**
 * Picks the member of a load-balancing group that takes the next connection:
 * smooth weighted round robin (equal weights: plain round robin, exactly
 * even), or least connections relative to weight. Unhealthy members are
 * skipped.
 *
 * @module
 */

/** One member as the balancer sees it. */
export interface BalancerMember {
  /** Share of connections relative to the others (≥ 1). */
  weight: number;
  /** Connections open through this member now. */
  active: number;
  /** Whether the member takes new connections. */
  healthy: boolean;
}

/** Strategies of the seed's `load_balance`. */
export type Strategy = "round_robin" | "least_connections";

/**
 * Chooses a group member per connection.
 *
 * @example
 * ```ts
 * import { Balancer } from "./balancer.ts";
 * const b = new Balancer<{ weight: number; active: number; healthy: boolean }>("round_robin");
 * const a = { weight: 3, active: 0, healthy: true };
 * const c = { weight: 1, active: 0, healthy: true };
 * b.add(a);
 * b.add(c);
 * const picks = Array.from({ length: 4 }, () => b.pick());
 * console.assert(picks.filter((m) => m === a).length === 3);
 * ```
 */
export class Balancer<M extends BalancerMember> {
  /** The strategy in use. */
  readonly strategy: Strategy;
  #members: M[] = [];
  #current = new Map<M, number>();
  #next = 0;

  /** An empty balancer. */
  constructor(strategy: Strategy) {
    this.strategy = strategy;
  }

  /** Members in join order. */
  get members(): readonly M[] {
    return this.#members;
  }

  /** Adds a member. */
  add(member: M): void {
    this.#members.push(member);
    this.#current.set(member, 0);
  }

  /** Removes a member; false if it was not there. */
  remove(member: M): boolean {
    const i = this.#members.indexOf(member);
    if (i < 0) return false;
    this.#members.splice(i, 1);
    this.#current.delete(member);
    return true;
  }

  /** The member for the next connection, or `null` when none is healthy. */
  pick(): M | null {
    const healthy = this.#members.filter((m) => m.healthy);
    if (!healthy.length) return null;
    if (this.strategy === "least_connections") {
      // Lowest load per weight; ties go round robin so equal members share evenly.
      let best: M | null = null;
      let bestLoad = Infinity;
      const n = healthy.length;
      for (let k = 0; k < n; k++) {
        const m = healthy[(this.#next + k) % n]!;
        const load = m.active / m.weight;
        if (load < bestLoad) {
          best = m;
          bestLoad = load;
        }
      }
      this.#next = (healthy.indexOf(best!) + 1) % n;
      return best;
    }
    // Smooth weighted round robin: every member gains its weight; the
    // richest is picked and pays the total.
    let total = 0;
    let best: M | null = null;
    for (const m of healthy) {
      const c = (this.#current.get(m) ?? 0) + m.weight;
      this.#current.set(m, c);
      total += m.weight;
      if (!best || c > this.#current.get(best)!) best = m;
    }
    this.#current.set(best!, this.#current.get(best!)! - total);
    return best;
  }
}

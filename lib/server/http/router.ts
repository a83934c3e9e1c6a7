/**
 * Routing of the vhost ports: host name and path prefix (a tunnel's
 * `locations`) to the tunnel, or the load-balancing group, that serves them;
 * the longest matching prefix wins. A host whose tunnel went away answers
 * 502 (offline) for a while rather than 404.
 *
 * @module
 */

import { timingSafeEqualTextSync } from "../../util/mod.ts";
import { Balancer, type Strategy } from "../balancer.ts";
import { hostOf, type HttpTunnel } from "../tunnels/http_tunnel.ts";

/** The tunnels of one host and path prefix: one, or a load-balancing group. */
interface Slot {
  location: string;
  group: { name: string; key: string } | undefined;
  balancer: Balancer<HttpTunnel>;
}

/** Routes host + path to tunnels. */
export class HttpRouter {
  #hosts = new Map<string, Slot[]>();
  /** Hosts whose tunnel went away, and when: they answer 502 (offline) rather than 404. */
  #gone = new Map<string, { tunnel: string; since: number }>();

  /** Tunnels routed now. */
  get size(): number {
    let n = 0;
    for (const slots of this.#hosts.values()) {
      for (const slot of slots) n += slot.balancer.members.length;
    }
    return n;
  }

  /** Adds `tunnel` under all its hosts and locations, or returns why not (nothing is added then). */
  add(tunnel: HttpTunnel, strategy: Strategy = "round_robin"): string | null {
    for (const host of tunnel.hosts) {
      for (const location of tunnel.locations) {
        const slot = this.#hosts.get(host)?.find((s) => s.location === location);
        if (!slot) continue;
        const owner = slot.balancer.members[0];
        const where = location === "/" ? `Host "${host}"` : `Host "${host}" path "${location}"`;
        if (!slot.group || !tunnel.group || slot.group.name !== tunnel.group.name) {
          return `${where} is already served by tunnel "${owner?.name}"` +
            (slot.group ? ` (group "${slot.group.name}")` : "");
        }
        if (!timingSafeEqualTextSync(slot.group.key, tunnel.group.key)) {
          return `Wrong group_key for group "${tunnel.group.name}"`;
        }
      }
    }
    for (const host of tunnel.hosts) {
      this.#gone.delete(host);
      for (const location of tunnel.locations) {
        let slots = this.#hosts.get(host);
        if (!slots) this.#hosts.set(host, slots = []);
        let slot = slots.find((s) => s.location === location);
        if (!slot) {
          slot = { location, group: tunnel.group, balancer: new Balancer(strategy) };
          slots.push(slot);
          // Longest prefix first.
          slots.sort((a, b) => b.location.length - a.location.length);
        }
        slot.balancer.add(tunnel);
      }
    }
    return null;
  }

  /** Removes `tunnel`; hosts left without a tunnel answer "offline" for a while. */
  remove(tunnel: HttpTunnel): void {
    for (const host of tunnel.hosts) {
      const slots = this.#hosts.get(host);
      if (!slots) continue;
      for (const slot of slots) {
        if (slot.balancer.members.includes(tunnel)) slot.balancer.remove(tunnel);
      }
      const left = slots.filter((s) => s.balancer.members.length > 0);
      if (left.length) {
        this.#hosts.set(host, left);
      } else {
        this.#hosts.delete(host);
        this.#gone.set(host, { tunnel: tunnel.name, since: Date.now() });
        // Bounded: the oldest tombstones go first.
        if (this.#gone.size > 10_000) this.#gone.delete(this.#gone.keys().next().value!);
      }
    }
  }

  /** The slots serving `host` (exact name, then wildcards from the most specific, then `*`). */
  #slots(host: string): Slot[] | undefined {
    const exact = this.#hosts.get(host);
    if (exact) return exact;
    let dot = host.indexOf(".");
    while (dot >= 0) {
      const wild = this.#hosts.get("*" + host.slice(dot));
      if (wild) return wild;
      dot = host.indexOf(".", dot + 1);
    }
    return this.#hosts.get("*");
  }

  /**
   * The tunnel for a request: a tunnel, `"unhealthy"` when the route exists
   * but no member takes requests, `"offline"` when its tunnel went away, or
   * `null` for an unknown host.
   */
  match(
    hostHeader: string | undefined,
    path: string,
  ): HttpTunnel | { offline: string } | "unhealthy" | null {
    const host = hostOf(hostHeader);
    const slots = this.#slots(host);
    if (!slots) {
      const gone = this.#gone.get(host);
      return gone ? { offline: gone.tunnel } : null;
    }
    for (const slot of slots) {
      if (!underLocation(path, slot.location)) continue;
      const picked = slot.balancer.pick();
      if (picked) return picked;
      const members = slot.balancer.members;
      return members.some((m) => m.online) ? "unhealthy" : { offline: members[0]?.name ?? "" };
    }
    return null;
  }

  /** Tunnels serving `host` at all (for TLS: passthrough and certificate decisions). */
  tunnelsFor(host: string): HttpTunnel[] {
    return (this.#slots(host) ?? []).flatMap((s) => [...s.balancer.members]);
  }
}

/** Whether `path` is under the prefix `location` (`/api` covers `/api`, `/api/x`, `/api?q`). */
export function underLocation(path: string, location: string): boolean {
  if (location === "/" || path === location) return true;
  if (!path.startsWith(location)) return false;
  if (location.endsWith("/")) return true;
  const next = path[location.length];
  return next === "/" || next === "?" || next === "#";
}

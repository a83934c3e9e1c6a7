/**
 * Per-tunnel state and sliding windows (connections, errors, connect
 * latency) that alert rules and the admin API read. Tunnels are keyed
 * `user/name`; a tunnel whose client went away stays known as
 * `disconnected` until it returns or is removed on purpose.
 *
 * @module
 */

/** One tunnel's state as alert rules see it. */
export interface TunnelSnapshot {
  /** `user/name`. */
  key: string;
  /** Owner. */
  user: string;
  /** Tunnel name. */
  name: string;
  /** Tunnel type. */
  type: string;
  /** `connected` while a client serves it, else `disconnected`. */
  status: "connected" | "disconnected";
  /** When the status last changed (Unix ms). */
  since: number;
  /** Connections that ended within the window. */
  connections: number;
  /** Of those, how many failed. */
  errors: number;
  /** errors / connections (0 without connections). */
  error_rate: number;
  /** Mean ms from accept to first byte back within the window; `null` without samples. */
  avg_latency: number | null;
  /**
   * Whether a session of this server holds the tunnel (its `status` is
   * known here); `false` for a tunnel this node of a cluster only relays to
   * another node, whose visitors it counts but whose status it does not know.
   */
  held: boolean;
  /** Sum of the first-byte samples within the window, in ms (to merge averages). */
  latency_sum: number;
  /** First-byte samples within the window. */
  latency_count: number;
}

interface Bucket {
  start: number;
  connections: number;
  errors: number;
  latencySum: number;
  latencyCount: number;
}

interface Entry
  extends Pick<TunnelSnapshot, "key" | "user" | "name" | "type" | "status" | "since" | "held"> {
  buckets: Bucket[];
}

/** Options of {@linkcode TunnelStats}. */
export interface TunnelStatsOptions {
  /** Window of the rates and averages in ms. Default 60000. */
  windowMs?: number;
  /** Clock (tests). Default `Date.now`. */
  now?: () => number;
}

/** Tunnel states and windows of one server. */
export class TunnelStats {
  #entries = new Map<string, Entry>();
  /** The entry of the last record call: one request after another mostly hits one tunnel. */
  #last: Entry | null = null;
  #window: number;
  #bucketMs: number;
  #now: () => number;

  /** An empty registry. */
  constructor(options: TunnelStatsOptions = {}) {
    this.#window = options.windowMs ?? 60_000;
    this.#bucketMs = Math.max(100, Math.floor(this.#window / 12));
    this.#now = options.now ?? Date.now;
  }

  /** Window length in ms. */
  get windowMs(): number {
    return this.#window;
  }

  #entry(user: string, name: string, type = "tcp"): Entry {
    const key = `${user}/${name}`;
    let e = this.#entries.get(key);
    if (!e) {
      e = {
        key,
        user,
        name,
        type,
        status: "connected",
        since: this.#now(),
        held: true,
        buckets: [],
      };
      this.#entries.set(key, e);
    }
    return e;
  }

  /** The entry of a tracked tunnel, without building its key when it was the last one asked. */
  #known(user: string, name: string): Entry | undefined {
    const last = this.#last;
    if (last !== null && last.name === name && last.user === user) return last;
    const e = this.#entries.get(`${user}/${name}`);
    if (e) this.#last = e;
    return e;
  }

  /** A client serves the tunnel (again). */
  connected(user: string, name: string, type: string): void {
    const e = this.#entry(user, name, type);
    e.type = type;
    e.held = true;
    if (e.status !== "connected") {
      e.status = "connected";
      e.since = this.#now();
    }
  }

  /** The tunnel's client went away; it stays known as down. */
  disconnected(user: string, name: string): void {
    const e = this.#entries.get(`${user}/${name}`);
    if (e?.held && e.status !== "disconnected") {
      e.status = "disconnected";
      e.since = this.#now();
    }
  }

  /**
   * Cluster mode: this node relays the tunnel to the node that holds it; its
   * visitors here are counted (their connections, errors, latency) while
   * its status is the holder's to say.
   */
  relayed(user: string, name: string, type: string): void {
    const key = `${user}/${name}`;
    if (this.#entries.has(key)) return;
    this.#entries.set(key, {
      key,
      user,
      name,
      type,
      status: "connected",
      since: this.#now(),
      held: false,
      buckets: [],
    });
  }

  /** Cluster mode: this node stopped relaying the tunnel; a tunnel held here stays. */
  unrelayed(user: string, name: string): void {
    const key = `${user}/${name}`;
    if (this.#entries.get(key)?.held === false) {
      this.#entries.delete(key);
      this.#last = null;
    }
  }

  /** The tunnel was removed on purpose: forget it (no alert). */
  forget(user: string, name: string): void {
    this.#entries.delete(`${user}/${name}`);
    this.#last = null;
  }

  #bucket(e: Entry): Bucket {
    const now = this.#now();
    const start = now - (now % this.#bucketMs);
    let b = e.buckets.at(-1);
    if (!b || b.start !== start) {
      b = { start, connections: 0, errors: 0, latencySum: 0, latencyCount: 0 };
      e.buckets.push(b);
      const oldest = now - this.#window - this.#bucketMs;
      while (e.buckets.length && e.buckets[0]!.start < oldest) e.buckets.shift();
    }
    return b;
  }

  /** A connection through the tunnel ended. */
  recordConnection(user: string, name: string, failed: boolean): void {
    const e = this.#known(user, name);
    if (!e) return;
    const b = this.#bucket(e);
    b.connections++;
    if (failed) b.errors++;
  }

  /** The first byte came back `ms` after the connection was accepted. */
  recordLatency(user: string, name: string, ms: number): void {
    const e = this.#known(user, name);
    if (!e) return;
    const b = this.#bucket(e);
    b.latencySum += ms;
    b.latencyCount++;
  }

  /** Every known tunnel's state over the window. */
  snapshot(): TunnelSnapshot[] {
    const from = this.#now() - this.#window;
    return [...this.#entries.values()].map((e) => {
      let connections = 0, errors = 0, latencySum = 0, latencyCount = 0;
      for (const b of e.buckets) {
        if (b.start + this.#bucketMs <= from) continue;
        connections += b.connections;
        errors += b.errors;
        latencySum += b.latencySum;
        latencyCount += b.latencyCount;
      }
      return {
        key: e.key,
        user: e.user,
        name: e.name,
        type: e.type,
        status: e.status,
        since: e.since,
        connections,
        errors,
        error_rate: connections ? errors / connections : 0,
        avg_latency: latencyCount ? latencySum / latencyCount : null,
        held: e.held,
        latency_sum: latencySum,
        latency_count: latencyCount,
      };
    });
  }
}

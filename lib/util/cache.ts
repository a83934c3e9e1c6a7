/**
 * A small LRU cache with a time to live, counting hits and misses. It keeps
 * hot reads (token → user, user → tunnels) off the database and is what the
 * server serves from while the database is down: {@linkcode LruCache.getStale}
 * returns an expired entry that has not been evicted yet.
 *
 * @module
 */

interface Entry<V> {
  value: V;
  expires: number;
}

/** Options of {@linkcode LruCache}. */
export interface LruCacheOptions {
  /** Most entries kept; the least recently used goes first. */
  max: number;
  /** Milliseconds an entry stays fresh. */
  ttl: number;
  /** Clock (tests). Default `performance.now`. */
  now?: () => number;
}

/**
 * Least-recently-used cache with a time to live per entry.
 *
 * @example
 * ```ts
 * import { LruCache } from "./cache.ts";
 * const cache = new LruCache<string, number>({ max: 2, ttl: 60_000 });
 * cache.set("a", 1);
 * console.assert(cache.get("a") === 1 && cache.hits === 1);
 * ```
 */
export class LruCache<K, V> {
  /** Lookups answered from the cache. */
  hits = 0;
  /** Lookups that found nothing fresh. */
  misses = 0;
  #map = new Map<K, Entry<V>>();
  #max: number;
  #ttl: number;
  #now: () => number;

  /** Creates an empty cache. */
  constructor(options: LruCacheOptions) {
    if (!(options.max >= 1)) throw new RangeError("LruCache max must be at least 1");
    this.#max = options.max;
    this.#ttl = options.ttl;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Entries held, fresh or stale. */
  get size(): number {
    return this.#map.size;
  }

  /** The fresh value of `key`, counting a hit or a miss. */
  get(key: K): V | undefined {
    const entry = this.#map.get(key);
    if (!entry || entry.expires <= this.#now()) {
      this.misses++;
      return undefined;
    }
    this.#map.delete(key);
    this.#map.set(key, entry);
    this.hits++;
    return entry.value;
  }

  /** The value of `key` even if expired (for use while the source is down). */
  getStale(key: K): V | undefined {
    return this.#map.get(key)?.value;
  }

  /** Stores `value`, evicting the least recently used entry when full. */
  set(key: K, value: V, ttl: number = this.#ttl): void {
    this.#map.delete(key);
    this.#map.set(key, { value, expires: this.#now() + ttl });
    while (this.#map.size > this.#max) {
      this.#map.delete(this.#map.keys().next().value as K);
    }
  }

  /** Keys held, fresh or stale, least recently used first. */
  keys(): K[] {
    return [...this.#map.keys()];
  }

  /** Forgets `key`. */
  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  /** Forgets every entry whose key matches. */
  deleteWhere(match: (key: K, value: V) => boolean): void {
    for (const [key, entry] of this.#map) if (match(key, entry.value)) this.#map.delete(key);
  }

  /** Forgets everything. */
  clear(): void {
    this.#map.clear();
  }
}

import { assertEquals } from "../testing/mod.ts";
import { LruCache } from "./cache.ts";

Deno.test("LRU cache: evicts the least recently used, expires by TTL, counts hits and misses", () => {
  let now = 0;
  const cache = new LruCache<string, number>({ max: 2, ttl: 100, now: () => now });
  cache.set("a", 1);
  cache.set("b", 2);
  assertEquals(cache.get("a"), 1); // a is now the most recent
  cache.set("c", 3); // evicts b
  assertEquals(cache.get("b"), undefined);
  assertEquals([cache.get("a"), cache.get("c")], [1, 3]);
  assertEquals([cache.hits, cache.misses], [3, 1]);
  now = 150;
  assertEquals(cache.get("a"), undefined, "expired");
  assertEquals(cache.getStale("a"), 1, "stale value still there for outages");
  cache.set("a", 5, 10);
  now = 159;
  assertEquals(cache.get("a"), 5);
  cache.deleteWhere((_, v) => v === 5);
  assertEquals(cache.getStale("a"), undefined);
  cache.clear();
  assertEquals(cache.size, 0);
});

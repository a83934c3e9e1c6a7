/**
 * A small seeded pseudo-random generator (xorshift32) for fuzz tests: fast,
 * and reproducible from its seed, so a failing case can be replayed.
 *
 * @example
 * ```ts
 * import { xorshift32 } from "./rng.ts";
 * const next = xorshift32(42);
 * const a = next();
 * console.assert(a >= 0 && a < 1 && xorshift32(42)() === a);
 * ```
 *
 * @module
 */

/** A generator of numbers in [0, 1) from `seed` (0 is taken as 1). */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

/**
 * Constant-time comparison of secrets.
 *
 * @example
 * ```ts
 * import { timingSafeEqualText } from "./timing_safe.ts";
 * console.assert(await timingSafeEqualText("a", "a"));
 * console.assert(!(await timingSafeEqualText("a", "b")));
 * ```
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";

const encoder = new TextEncoder();

/**
 * Whether `a` equals `b`, in time that does not depend on where they differ
 * or on their lengths (both are hashed to 32 bytes first).
 */
export async function timingSafeEqualText(a: string, b: string): Promise<boolean> {
  const [ha, hb] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  return timingSafeEqual(new Uint8Array(ha), new Uint8Array(hb));
}

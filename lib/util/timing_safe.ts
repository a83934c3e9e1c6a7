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

import { createHash, timingSafeEqual } from "node:crypto";

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

/**
 * {@linkcode timingSafeEqualText} without awaiting, for checks on a path
 * that must not yield (a request head being answered).
 */
export function timingSafeEqualTextSync(a: string, b: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}

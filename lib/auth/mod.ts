/**
 * Authentication: user tokens (JWT via `npm:jose`) with revocation.
 *
 * @example
 * ```ts
 * import { looksLikeJwt } from "./mod.ts";
 * console.assert(looksLikeJwt("a.b.c") && !looksLikeJwt("shared-token"));
 * ```
 *
 * @module
 */

export * from "./tokens.ts";

/**
 * Authentication: user tokens (JWT via `npm:jose`) with revocation, kept in
 * a {@linkcode TokenStore} that the server provides.
 *
 * @example
 * ```ts
 * import { looksLikeJwt } from "./mod.ts";
 * console.assert(looksLikeJwt("a.b.c") && !looksLikeJwt("shared-token"));
 * ```
 *
 * @module
 */

export * from "./token_store.ts";
export * from "./tokens.ts";
export * from "./errors.ts";
export * from "./limits.ts";

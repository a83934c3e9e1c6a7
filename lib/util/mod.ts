/**
 * Small shared pieces: logging, masked secrets, backoff, the seed's units,
 * address formatting, constant-time comparison, the build version and socket
 * options through FFI (optional, feature-detected). The mains' CLI helpers
 * live in `cli.ts`, outside this public face.
 *
 * @example
 * ```ts
 * import { parseDuration, Secret } from "./mod.ts";
 * console.assert(parseDuration("2m") === 120_000 && String(new Secret("x")) === "***");
 * ```
 *
 * @module
 */

export * from "./backoff.ts";
export * from "./logger.ts";
export * from "./net.ts";
export * from "./secret.ts";
export * from "./timing_safe.ts";
export * from "./units.ts";
export * from "./version.ts";
export * from "./cidr.ts";
export * from "./rate.ts";
export * from "./names.ts";
export * from "./spelling.ts";
export * from "./sockopt.ts";
export * from "./socket_buffers.ts";
export * from "./datagram_queue.ts";
export * from "./sockopt.ts";
export * from "./socket_buffers.ts";
export * from "./rng.ts";
export * from "./cache.ts";
export * from "./files.ts";

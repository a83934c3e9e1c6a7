/**
 * Configuration: the YAML keys of the seed and DESIGN.md, validated with
 * exact error paths, defaults, units, env overrides and masked secrets.
 *
 * @example
 * ```ts
 * import { clientConfigFromObject } from "./mod.ts";
 * const c = clientConfigFromObject({ client: { server_addr: "example.com", auth_token: "t" } });
 * console.assert(c.server_port === 7000 && String(c.auth_token) === "***");
 * ```
 *
 * @module
 */

export * from "./types.ts";
export * from "./schema.ts";
export * from "./load.ts";
export * from "./server_addr.ts";

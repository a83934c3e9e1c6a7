/**
 * The version of this build, stamped from `deno.json`.
 *
 * @example
 * ```ts
 * import { VERSION } from "./version.ts";
 * console.assert(/^\d+\.\d+\.\d+/.test(VERSION));
 * ```
 *
 * @module
 */

import meta from "../../deno.json" with { type: "json" };

/** Semantic version of Burrow. */
export const VERSION: string = meta.version;

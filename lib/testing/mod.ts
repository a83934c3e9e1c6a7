/**
 * What the tests share, unit tests beside their code and end-to-end tests
 * in `tests/` alike: assertions, waiting with deadlines, throwaway
 * databases, and whether the tools an end-to-end test needs are
 * installed. Production code never imports it (`deno task deps` checks).
 *
 * @example
 * ```ts ignore
 * import { assertEquals, until } from "../testing/mod.ts";
 * await until("the tunnel is up", () => tunnel.isOpen);
 * ```
 *
 * @module
 */

export * from "./assert.ts";
export * from "./db.ts";
export * from "./tools.ts";
export * from "./servers.ts";
export * from "./wait.ts";
export * from "./cdp.ts";

/**
 * The Burrow server (`burrowd`): control channel, client sessions, tunnels.
 *
 * @example
 * ```ts ignore
 * import { BurrowServer } from "./mod.ts";
 * const server = await BurrowServer.start(config);
 * await server.shutdown();
 * ```
 *
 * @module
 */

export { BurrowServer, type BurrowServerOptions } from "./server.ts";
export type { ClientSession, SessionHost } from "./session.ts";

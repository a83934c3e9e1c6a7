/**
 * The Burrow client (`burrow`): control loop with reconnect, and the local
 * side of every tunnel.
 *
 * @example
 * ```ts ignore
 * import { BurrowClient } from "./mod.ts";
 * await new BurrowClient(config).run(AbortSignal.timeout(60_000));
 * ```
 *
 * @module
 */

export * from "./client.ts";
export { AuthenticationError, FatalClientError } from "./errors.ts";
export * from "./state.ts";
export * from "./status.ts";
export * from "./run.ts";
// The inspector's recorder, which `BurrowClientOptions.recorder` takes.
export * from "./inspect/recorder.ts";
export * from "./inspect/http_tap.ts";

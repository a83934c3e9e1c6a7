/**
 * Administration of a Burrow server: one {@linkcode AdminService} (add a
 * user, issue or revoke a token, list or release tunnels, …) for every
 * face of it, and the `burrowd` subcommands built on it.
 *
 * @example
 * ```ts ignore
 * import { AdminService } from "./mod.ts";
 * const admin = new AdminService(store, { guarded: false });
 * await admin.addUser("alice");
 * ```
 *
 * @module
 */

export { addAdminCommands } from "./commands.ts";
export type { AdminCommandsOptions, DatabaseFlags } from "./command.ts";
export {
  AdminService,
  type AdminServiceOptions,
  type SchemaVersion,
  type TokenListing,
  type TunnelOverview,
  type UserPolicy,
} from "./service.ts";

/**
 * Administration of a Burrow server: one {@linkcode AdminService} (add a
 * user, issue or revoke a token, list or release tunnels, …) that both the
 * REST API on the admin port and the `burrowd` subcommands use; the admin
 * listener (`/healthz`, `/readyz`, `/metrics`, JWKS, `/api/v1`); the API's
 * route table, whose declared schemas check requests and generate the
 * OpenAPI document; and the subcommands.
 *
 * @example
 * ```ts ignore
 * import { startAdmin } from "./mod.ts";
 * const admin = startAdmin(server, config.admin, logger);
 * await admin.close();
 * ```
 *
 * @module
 */

export { type AdminServer, readiness, startAdmin } from "./listener.ts";
export { AdminApi, type AdminRequestOptions } from "./api.ts";
export { ApiError, type ApiErrorOptions } from "./route.ts";
export { openApiDocument } from "./openapi.ts";
export { addAdminCommands } from "./commands.ts";
export {
  type AdminEndpoint,
  adminEndpointPath,
  adminUrl,
  readAdminEndpoint,
  removeAdminEndpoint,
  writeAdminEndpoint,
} from "./endpoint.ts";
export type { AdminCommandsOptions, DatabaseFlags } from "./command.ts";
export {
  AdminService,
  type AdminServiceOptions,
  type SchemaVersion,
  type TokenListing,
  type TunnelOverview,
  type UserPolicy,
} from "./service.ts";

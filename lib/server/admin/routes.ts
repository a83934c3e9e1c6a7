/**
 * The route table of the admin API: every path under `/api/v1` with what
 * each method takes, answers and does. The router dispatches on it and the
 * OpenAPI document is generated from it, so a route is added here (or in
 * the file of its resource) and nowhere else.
 *
 * @module
 */

import { VERSION } from "../../util/mod.ts";
import { ALERT_ROUTES } from "./alert_routes.ts";
import { LIVE_ROUTES } from "./live_routes.ts";
import { NODE_ROUTES } from "./node_routes.ts";
import type { Resource } from "./route.ts";
import { object } from "./schemas.ts";
import { SESSION_ROUTES } from "./session_routes.ts";
import { TOKEN_ROUTES } from "./token_routes.ts";
import { TUNNEL_ROUTES } from "./tunnel_routes.ts";
import { USER_ROUTES } from "./user_routes.ts";

/** Every route of the admin API, in the order the OpenAPI document lists them. */
export const ROUTES: readonly Resource[] = [
  {
    path: "/",
    get: {
      summary: "The server's name and version",
      response: object({ name: { const: "burrowd" }, version: { type: "string" } }, [
        "name",
        "version",
      ]),
      handle: () => ({ name: "burrowd", version: VERSION }),
    },
  },
  ...USER_ROUTES,
  ...TOKEN_ROUTES,
  ...TUNNEL_ROUTES,
  ...SESSION_ROUTES,
  ...LIVE_ROUTES,
  ...ALERT_ROUTES,
  ...NODE_ROUTES,
];

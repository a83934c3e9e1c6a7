/**
 * `/alerts`: list alerts (all, or those firing) and silence one.
 *
 * @module
 */

import { ApiError, durationOf, page, type Resource } from "./route.ts";
import { closed, listOf, ref } from "./schemas.ts";

/** The routes of alerts. */
export const ALERT_ROUTES: readonly Resource[] = [
  {
    path: "/alerts",
    get: {
      summary: "Alerts, newest first",
      paged: true,
      query: { state: { enum: ["firing"] } },
      response: listOf(ref("Alert")),
      handle: async ({ url, service }) => {
        const state = url.searchParams.get("state");
        if (state !== null && state !== "firing") {
          throw new ApiError(400, "bad_request", `Query parameter state must be "firing"`);
        }
        // The database pages alerts itself, so the total counts up to this page only.
        const { limit, offset } = page(url);
        const items = await service().alerts({ firing: state === "firing", limit, offset });
        return { items, total: items.length + offset, limit, offset };
      },
    },
  },
  {
    path: "/alerts/{id}/silence",
    params: { id: { type: "integer" } },
    post: {
      summary: "Silence an alert's notifications",
      body: closed({ duration: { type: "string", examples: ["1h"] } }, ["duration"]),
      response: ref("Alert"),
      handle: async ({ params, body, server, service }) => {
        const until = new Date(
          Date.now() + durationOf(body.duration as string, `Field "duration"`),
        );
        const row = await service().silenceAlert(Number(params.id), until);
        server.alerts.silence(row, until);
        return row;
      },
    },
  },
];

/**
 * `/users`: list, add, show, and change a user (its policy, or disable it).
 *
 * @module
 */

import { parseSize } from "../../util/mod.ts";
import { ApiError, listing, type Resource } from "./route.ts";
import { closed, ref, stringList } from "./schemas.ts";
import type { UserPolicy } from "./service.ts";

/** The routes of users. */
export const USER_ROUTES: readonly Resource[] = [
  {
    path: "/users",
    get: listing("List users", "User", ({ service }) => service().users()),
    post: {
      summary: "Add a user",
      body: closed({ name: { type: "string" }, admin: { type: "boolean" } }, ["name"]),
      status: 201,
      response: ref("User"),
      handle: ({ body, service }) =>
        service().addUser(body.name as string, { admin: (body.admin as boolean) ?? false }),
    },
  },
  {
    path: "/users/{name}",
    get: {
      summary: "One user",
      response: ref("User"),
      handle: ({ params, service }) => service().user(params.name!),
    },
    patch: {
      summary: "Disable or enable a user (its sessions close when disabled), or set its policy",
      body: closed({
        disabled: { type: "boolean" },
        allowed_clients: stringList,
        allow_ports: { type: ["string", "null"], examples: ["2000-2100,2222"] },
        allow_ips: stringList,
        deny_ips: stringList,
        max_bandwidth: {
          type: ["string", "integer", "null"],
          examples: ["10MB"],
          description: "bytes per second per direction across the user's tunnels",
        },
      }),
      response: ref("User"),
      handle: async ({ params, body, service }) => {
        const policy = policyOf(body);
        const admin = service();
        let user = await admin.setUserPolicy(params.name!, policy);
        if (body.disabled !== undefined && body.disabled !== null) {
          user = await admin.setUserDisabled(params.name!, body.disabled as boolean);
        }
        return user;
      },
    },
  },
];

/** The policy fields of a `PATCH /users/{name}` body; fields left out keep their value. */
function policyOf(body: Readonly<Record<string, unknown>>): UserPolicy {
  const policy: UserPolicy = {};
  const texts = (v: unknown) => (v as unknown[]).map(String);
  if (body.allowed_clients) policy.allowed_clients = texts(body.allowed_clients);
  if (body.allow_ports !== undefined) policy.allow_ports = body.allow_ports as string | null;
  if (body.allow_ips) policy.allow_ips = texts(body.allow_ips);
  if (body.deny_ips) policy.deny_ips = texts(body.deny_ips);
  if (body.max_bandwidth === null) policy.max_bandwidth = null;
  else if (body.max_bandwidth !== undefined) {
    try {
      policy.max_bandwidth = parseSize(body.max_bandwidth as string | number);
    } catch (error) {
      throw new ApiError(400, "bad_request", `Field "max_bandwidth": ${(error as Error).message}`);
    }
  }
  return policy;
}

/**
 * `/tokens` and `/keys`: list, issue and revoke the credentials clients
 * and administrators log in with.
 *
 * @module
 */

import type { TokenLimits } from "../../storage/mod.ts";
import { durationOf, listing, type Operation, type Resource } from "./route.ts";
import { issued, issueRequest, ref, type Schema } from "./schemas.ts";

/** `POST /tokens` (a JWT) and `POST /keys` (an API key): the same request, the same checks. */
function issue(kind: "token" | "key", summary: string, ttl: string, response: Schema): Operation {
  return {
    summary,
    body: issueRequest(ttl),
    status: 201,
    response,
    handle: async ({ body, service }) => {
      const options = {
        ttlMs: body.ttl === undefined || body.ttl === null
          ? null
          : durationOf(body.ttl as string, `Field "ttl"`),
        ...(body.scopes ? { scopes: (body.scopes as unknown[]).map(String) } : {}),
        ...(body.limits ? { limits: body.limits as TokenLimits } : {}),
      };
      const made = await service().issue(kind, body.user as string, options);
      return { id: made.id, [kind]: made.token, expires_at: made.expiresAt };
    },
  };
}

/** The routes of tokens and API keys. */
export const TOKEN_ROUTES: readonly Resource[] = [
  {
    path: "/tokens",
    get: listing(
      "List tokens (never their secret)",
      "Token",
      ({ url, service }) => service().tokens(url.searchParams.get("user") || undefined),
      { user: { type: "string" } },
    ),
    post: issue("token", "Issue a token; the JWT is returned once", "30d", ref("IssuedToken")),
  },
  {
    path: "/keys",
    post: issue(
      "key",
      "Create an API key; the key is returned once and stored only as a hash",
      "90d",
      issued("key"),
    ),
  },
  {
    path: "/tokens/{id}",
    delete: {
      summary: "Revoke a token; sessions using it close",
      status: 204,
      description: "Revoked",
      handle: ({ params, service }) => service().revoke(params.id!),
    },
  },
];

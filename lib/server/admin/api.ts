/**
 * The admin REST API under `/api/v1` that the separate front end is built
 * on: users, tokens, tunnels (changes reach connected clients live), live
 * sessions (list, kick), traffic time series, groups, alerts (list,
 * silence). JSON in and out; errors are `{error: {code, message}}`; lists are
 * `{items, total, limit, offset}`. Authenticated by
 * `Authorization: Bearer <token>`: the shared `server.auth.token` or a user
 * token with the `admin` scope. Bearer tokens share the control port's
 * login limiter: once an address has failed too often, its requests are
 * answered `429` with `Retry-After` before their token is checked. The
 * OpenAPI 3.1 description, generated from the route table, is served at
 * `/api/v1/openapi.json`.
 *
 * @module
 */

import { TokenError } from "../../auth/mod.ts";
import {
  ConflictError,
  DatabaseUnavailableError,
  NotFoundError,
  ValidationError,
} from "../../storage/mod.ts";
import type { Logger } from "../../util/mod.ts";
import type { BurrowServer } from "../server.ts";
import { openApiDocument } from "./openapi.ts";
import { ApiError, checkBody, METHODS, Reply, type Resource, type RouteContext } from "./route.ts";
import { ROUTES } from "./routes.ts";
import { AdminService } from "./service.ts";

/** Options of {@linkcode AdminApi.handle}. */
export interface AdminRequestOptions {
  /** The caller's address (the login limiter counts failed tokens per address). */
  remote: string;
}

function json(status: number, body: unknown): Response {
  return new Response(status === 204 ? null : JSON.stringify(body) + "\n", {
    status,
    headers: status === 204 ? {} : { "content-type": "application/json; charset=utf-8" },
  });
}

/** A route's path as a pattern, with the names of its parameters in order. */
function compile(resource: Resource): { pattern: RegExp; keys: string[]; resource: Resource } {
  const keys: string[] = [];
  const pattern = new RegExp(
    "^" + resource.path.replace(/\{(\w+)\}/g, (_, k) => {
      keys.push(k);
      return "([^/]+)";
    }) + "$",
  );
  return { pattern, keys, resource };
}

async function jsonObject(request: Request): Promise<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = await request.json();
  } catch {
    throw new ApiError(400, "bad_request", "Request body must be a JSON object");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ApiError(400, "bad_request", "Request body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

const COMPILED = ROUTES.map(compile);

/** Routes `/api/v1/…` requests of the admin port. */
export class AdminApi {
  #server: BurrowServer;
  #log: Logger;
  #service: AdminService | null;

  /** The API of `server`. */
  constructor(server: BurrowServer, logger: Logger) {
    this.#server = server;
    this.#log = logger;
    const { store, tokens } = server;
    this.#service = store && tokens ? new AdminService(store, { tokens }) : null;
  }

  #serviceOrUnavailable = (): AdminService => {
    if (!this.#service) {
      throw new ApiError(503, "unavailable", "This server runs without a database");
    }
    return this.#service;
  };

  async #authorize(request: Request, remote: string): Promise<void> {
    const header = request.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) {
      throw new ApiError(401, "unauthorized", "Send Authorization: Bearer <admin token>");
    }
    const token = m[1]!;
    // The same secrets as on the control port, so the same bucket of failed attempts.
    const login = this.#server.login;
    const attempt = login.attempt(remote);
    if ("reason" in attempt) {
      throw new ApiError(429, "too_many_requests", attempt.message, {
        retryAfter: attempt.retryAfter,
      });
    }
    try {
      await login.verify(token, "admin");
      attempt.succeeded();
    } catch (error) {
      if (error instanceof TokenError) {
        // Without a database only the shared token can be right.
        if (!this.#server.tokens) throw new ApiError(401, "unauthorized", "Invalid token");
        const status = error.message.includes("scope") ? 403 : 401;
        throw new ApiError(status, status === 403 ? "forbidden" : "unauthorized", error.message);
      }
      throw error;
    }
  }

  /** Handles one request under `/api/v1`. */
  async handle(request: Request, url: URL, options: AdminRequestOptions): Promise<Response> {
    const path = url.pathname.slice("/api/v1".length) || "/";
    try {
      if (path === "/openapi.json" && request.method === "GET") return json(200, openApiDocument());
      const route = COMPILED.find((r) => r.pattern.test(path));
      if (!route) {
        throw new ApiError(404, "not_found", `No such endpoint: ${url.pathname}`);
      }
      const { resource } = route;
      const method = METHODS.find((m) => m.toUpperCase() === request.method && resource[m]);
      const op = method && resource[method];
      if (!op) {
        const allowed = METHODS.filter((m) => resource[m]).map((m) => m.toUpperCase()).join(", ");
        throw new ApiError(
          405,
          "method_not_allowed",
          `${request.method} not allowed; use ${allowed}`,
        );
      }
      await this.#authorize(request, options.remote);
      const values = route.pattern.exec(path)!.slice(1).map(decodeURIComponent);
      const params = Object.fromEntries(route.keys.map((k, i) => [k, values[i]!]));
      let body: Record<string, unknown> = {};
      if (op.body) {
        body = await jsonObject(request);
        checkBody(body, op.body);
      }
      const context: RouteContext = {
        url,
        params,
        body,
        server: this.#server,
        log: this.#log,
        service: this.#serviceOrUnavailable,
      };
      const result = await op.handle(context);
      if (result instanceof Reply) return json(result.status, result.body);
      return json(op.status ?? 200, result ?? null);
    } catch (error) {
      return this.#error(error);
    }
  }

  #error(error: unknown): Response {
    const e = error instanceof ApiError
      ? error
      : error instanceof NotFoundError
      ? new ApiError(404, "not_found", error.message)
      : error instanceof ConflictError
      ? new ApiError(409, "conflict", error.message)
      : error instanceof ValidationError || error instanceof TokenError
      ? new ApiError(400, "bad_request", error.message)
      : error instanceof DatabaseUnavailableError
      ? new ApiError(503, "unavailable", "The database is unreachable; try again shortly")
      : null;
    if (e) {
      const response = json(e.status, { error: { code: e.code, message: e.message } });
      if (e.retryAfter) response.headers.set("retry-after", String(e.retryAfter));
      return response;
    }
    this.#log.error("admin API request failed", { error });
    return json(500, {
      error: { code: "internal", message: "Internal error (logged on the server)" },
    });
  }
}

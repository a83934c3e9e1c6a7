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
 * OpenAPI 3.1 description is served at `/api/v1/openapi.json`.
 *
 * @module
 */

import { TokenError } from "../auth/mod.ts";
import {
  ConflictError,
  DatabaseUnavailableError,
  NotFoundError,
  type Store,
  type TokenLimits,
  type TunnelInput,
  ValidationError,
} from "../storage/mod.ts";
import type { Logger } from "../util/logger.ts";
import { timingSafeEqualText } from "../util/timing_safe.ts";
import { parseDuration, parseSize } from "../util/units.ts";
import { VERSION } from "../util/version.ts";
import type { BurrowServer } from "./server.ts";

/** An API error with its HTTP status and stable code. */
export class ApiError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** Stable machine-readable code. */
  readonly code: string;
  /** Seconds for a `Retry-After` header, if any. */
  readonly retryAfter: number | undefined;
  /** Creates the error. */
  constructor(status: number, code: string, message: string, options: ApiErrorOptions = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = options.retryAfter;
  }
}

/** Options of {@linkcode ApiError}. */
export interface ApiErrorOptions {
  /** Seconds the caller should wait before trying again (`Retry-After`). */
  retryAfter?: number;
}

/** Options of {@linkcode AdminApi.handle}. */
export interface AdminRequestOptions {
  /** The caller's address (the login limiter counts failed tokens per address). */
  remote: string;
}

type Params = Record<string, string>;
type Handler = (ctx: {
  request: Request;
  url: URL;
  params: Params;
  body: () => Promise<Record<string, unknown>>;
}) => Promise<Response> | Response;

function json(status: number, body: unknown): Response {
  return new Response(status === 204 ? null : JSON.stringify(body) + "\n", {
    status,
    headers: status === 204 ? {} : { "content-type": "application/json; charset=utf-8" },
  });
}

/** A duration from a request, or a 400 naming where it came from. */
function durationOf(text: string, what: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    throw new ApiError(400, "bad_request", `${what}: ${(error as Error).message}`);
  }
}

function page(url: URL): { limit: number; offset: number } {
  const num = (name: string, def: number, max: number) => {
    const raw = url.searchParams.get(name);
    if (raw === null) return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > max) {
      throw new ApiError(400, "bad_request", `Query parameter ${name} must be an integer 0-${max}`);
    }
    return n;
  };
  return { limit: num("limit", 100, 1000) || 100, offset: num("offset", 0, 1_000_000_000) };
}

function list<T>(items: T[], url: URL): Response {
  const { limit, offset } = page(url);
  return json(200, {
    items: items.slice(offset, offset + limit),
    total: items.length,
    limit,
    offset,
  });
}

function field<T>(
  body: Record<string, unknown>,
  name: string,
  type: string,
  required = false,
): T | undefined {
  const v = body[name];
  if (v === undefined || v === null) {
    if (required) throw new ApiError(400, "bad_request", `Field "${name}" is required`);
    return undefined;
  }
  const actual = Array.isArray(v) ? "array" : typeof v;
  if (actual !== type) {
    throw new ApiError(400, "bad_request", `Field "${name}" must be a ${type}, got ${actual}`);
  }
  return v as T;
}

/** A tunnel row as the API shows it: secrets in its options (basic auth, group key) masked. */
function masked<T extends { options?: Record<string, unknown> | null }>(row: T): T {
  const options = row.options;
  if (!options || (!options.basic_auth && !options.group_key)) return row;
  const copy: Record<string, unknown> = { ...options };
  if (copy.group_key) copy.group_key = "***";
  if (copy.basic_auth && typeof copy.basic_auth === "object") {
    copy.basic_auth = { ...(copy.basic_auth as Record<string, unknown>), password: "***" };
  }
  return { ...row, options: copy };
}

function allowOnly(body: Record<string, unknown>, names: string[]): void {
  for (const key of Object.keys(body)) {
    if (!names.includes(key)) {
      throw new ApiError(
        400,
        "bad_request",
        `Unknown field "${key}"; expected ${names.join(", ")}`,
      );
    }
  }
}

function tunnelInput(body: Record<string, unknown>, partial: boolean): Partial<TunnelInput> {
  const out: Partial<TunnelInput> = {};
  const set = <K extends keyof TunnelInput>(key: K, type: string, required = false) => {
    const v = field<TunnelInput[K]>(body, key, type, required && !partial);
    if (v !== undefined) out[key] = v;
    else if (body[key] === null && partial) (out as Record<string, unknown>)[key] = null;
  };
  set("name", "string", true);
  set("type", "string", true);
  set("client_id", "string");
  set("local_addr", "string");
  set("local_port", "number");
  set("remote_port", "number");
  set("custom_domains", "array");
  set("subdomain", "string");
  set("options", "object");
  set("enabled", "boolean");
  return out;
}

/** Routes `/api/v1/…` requests of the admin port. */
export class AdminApi {
  #server: BurrowServer;
  #log: Logger;
  #routes: Array<{ method: string; pattern: RegExp; keys: string[]; handler: Handler }> = [];

  /** The API of `server`. */
  constructor(server: BurrowServer, logger: Logger) {
    this.#server = server;
    this.#log = logger;
    this.#define();
  }

  #route(method: string, path: string, handler: Handler): void {
    const keys: string[] = [];
    const pattern = new RegExp(
      "^" + path.replace(/\{(\w+)\}/g, (_, k) => {
        keys.push(k);
        return "([^/]+)";
      }) + "$",
    );
    this.#routes.push({ method, pattern, keys, handler });
  }

  #store(): Store {
    const store = this.#server.store;
    if (!store) throw new ApiError(503, "unavailable", "This server runs without a database");
    return store;
  }

  async #authorize(request: Request, remote: string): Promise<void> {
    const header = request.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) {
      throw new ApiError(401, "unauthorized", "Send Authorization: Bearer <admin token>");
    }
    const token = m[1]!;
    // The same secrets as on the control port, so the same bucket of failed attempts.
    const attempt = this.#server.logins.attempt(remote);
    if ("reason" in attempt) {
      this.#server.loginRefused(attempt, remote);
      throw new ApiError(429, "too_many_requests", attempt.message, {
        retryAfter: attempt.retryAfter,
      });
    }
    if (await timingSafeEqualText(token, this.#server.token.reveal())) return attempt.succeeded();
    const tokens = this.#server.tokens;
    if (!tokens) throw new ApiError(401, "unauthorized", "Invalid token");
    try {
      await tokens.verify(token, "admin");
      attempt.succeeded();
    } catch (error) {
      if (error instanceof TokenError) {
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
      const matches = this.#routes.filter((r) => r.pattern.test(path));
      if (!matches.length) {
        throw new ApiError(404, "not_found", `No such endpoint: ${url.pathname}`);
      }
      const route = matches.find((r) => r.method === request.method);
      if (!route) {
        const allowed = matches.map((r) => r.method).join(", ");
        throw new ApiError(
          405,
          "method_not_allowed",
          `${request.method} not allowed; use ${allowed}`,
        );
      }
      await this.#authorize(request, options.remote);
      const values = route.pattern.exec(path)!.slice(1).map(decodeURIComponent);
      const params = Object.fromEntries(route.keys.map((k, i) => [k, values[i]!]));
      const body = async () => {
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
      };
      return await route.handler({ request, url, params, body });
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

  #define(): void {
    const server = this.#server;

    this.#route("GET", "/", () => json(200, { name: "burrowd", version: VERSION }));

    // ---- users
    this.#route(
      "GET",
      "/users",
      async ({ url }) => list(await this.#store().run((s) => s.users.list()), url),
    );
    this.#route("POST", "/users", async ({ body }) => {
      const b = await body();
      allowOnly(b, ["name", "admin"]);
      const name = field<string>(b, "name", "string", true)!;
      const admin = field<boolean>(b, "admin", "boolean") ?? false;
      return json(201, await this.#store().run((s) => s.users.add(name, { admin })));
    });
    this.#route("GET", "/users/{name}", async ({ params }) => {
      const user = await this.#store().run((s) => s.users.byName(params.name!));
      if (!user) throw new ApiError(404, "not_found", `No user "${params.name}"`);
      return json(200, user);
    });
    this.#route("PATCH", "/users/{name}", async ({ params, body }) => {
      const b = await body();
      allowOnly(b, [
        "disabled",
        "allowed_clients",
        "allow_ports",
        "allow_ips",
        "deny_ips",
        "max_bandwidth",
      ]);
      const disabled = field<boolean>(b, "disabled", "boolean");
      const policy: Parameters<Store["users"]["setPolicy"]>[1] = {};
      const clients = field<string[]>(b, "allowed_clients", "array");
      if (clients) policy.allowed_clients = clients.map(String);
      if (b.allow_ports === null) policy.allow_ports = null;
      else {
        const ports = field<string>(b, "allow_ports", "string");
        if (ports !== undefined) policy.allow_ports = ports;
      }
      const allow = field<string[]>(b, "allow_ips", "array");
      if (allow) policy.allow_ips = allow.map(String);
      const deny = field<string[]>(b, "deny_ips", "array");
      if (deny) policy.deny_ips = deny.map(String);
      if (b.max_bandwidth === null) policy.max_bandwidth = null;
      else if (b.max_bandwidth !== undefined) {
        try {
          policy.max_bandwidth = parseSize(b.max_bandwidth as string | number);
        } catch (error) {
          throw new ApiError(
            400,
            "bad_request",
            `Field "max_bandwidth": ${(error as Error).message}`,
          );
        }
      }
      const store = this.#store();
      let user = await store.run((s) => s.users.setPolicy(params.name!, policy));
      if (disabled !== undefined) {
        user = await store.run((s) => s.users.setDisabled(params.name!, disabled));
      }
      return json(200, user);
    });

    // ---- tokens
    this.#route("GET", "/tokens", async ({ url }) => {
      const name = url.searchParams.get("user");
      const store = this.#store();
      let userId: number | undefined;
      if (name) {
        const u = await store.run((s) => s.users.byName(name));
        if (!u) throw new ApiError(404, "not_found", `No user "${name}"`);
        userId = u.id;
      }
      return list(await store.run((s) => s.apiKeys.list(userId)), url);
    });
    // A JWT (POST /tokens) or an API key (POST /keys): same request, same checks.
    const issue =
      (kind: "token" | "key") =>
      async ({ body }: { body: () => Promise<Record<string, unknown>> }) => {
        const b = await body();
        allowOnly(b, ["user", "ttl", "scopes", "limits"]);
        const user = field<string>(b, "user", "string", true)!;
        const ttl = field<string>(b, "ttl", "string");
        const scopes = field<string[]>(b, "scopes", "array");
        const limits = field<Record<string, unknown>>(b, "limits", "object");
        if (limits) allowOnly(limits, ["types", "ports", "domains"]);
        const options = {
          ttlMs: ttl === undefined ? null : durationOf(ttl, `Field "ttl"`),
          ...(scopes ? { scopes: scopes.map(String) } : {}),
          ...(limits ? { limits: limits as TokenLimits } : {}),
        };
        const tokens = server.tokens;
        if (!tokens) throw new ApiError(503, "unavailable", "This server runs without a database");
        const issued = await this.#store().run(() =>
          kind === "token" ? tokens.issue(user, options) : tokens.createApiKey(user, options)
        );
        return json(201, { id: issued.id, [kind]: issued.token, expires_at: issued.expiresAt });
      };
    this.#route("POST", "/tokens", issue("token"));
    this.#route("POST", "/keys", issue("key"));
    this.#route("DELETE", "/tokens/{id}", async ({ params }) => {
      await this.#store().run((s) => s.apiKeys.revoke(params.id!));
      return json(204, null);
    });

    // ---- tunnels
    this.#route("GET", "/tunnels", async ({ url }) => {
      const since = new Date(
        Date.now() - durationOf(url.searchParams.get("since") ?? "24h", "Query parameter since"),
      );
      const rows = (await this.#store().run((s) => s.tunnels.overview(since))).map(masked);
      const user = url.searchParams.get("user");
      return list(user ? rows.filter((r) => r.user_name === user) : rows, url);
    });
    this.#route("POST", "/tunnels", async ({ body }) => {
      const b = await body();
      allowOnly(b, [
        "user",
        "name",
        "type",
        "client_id",
        "local_addr",
        "local_port",
        "remote_port",
        "custom_domains",
        "subdomain",
        "options",
        "enabled",
      ]);
      const userName = field<string>(b, "user", "string", true)!;
      const input = tunnelInput(b, false) as TunnelInput;
      const store = this.#store();
      const user = await store.run((s) => s.users.byName(userName));
      if (!user) throw new ApiError(404, "not_found", `No user "${userName}"`);
      return json(201, masked(await store.run((s) => s.tunnels.create(user.id, input))));
    });
    this.#route("GET", "/tunnels/{id}", async ({ params }) => {
      const row = await this.#store().run((s) => s.tunnels.get(Number(params.id)));
      if (!row) throw new ApiError(404, "not_found", `No tunnel with id ${params.id}`);
      return json(200, masked(row));
    });
    this.#route("PATCH", "/tunnels/{id}", async ({ params, body }) => {
      const b = await body();
      allowOnly(b, [
        "name",
        "type",
        "client_id",
        "local_addr",
        "local_port",
        "remote_port",
        "custom_domains",
        "subdomain",
        "options",
        "enabled",
      ]);
      const patch = tunnelInput(b, true);
      const updated = await this.#store().run((s) => s.tunnels.update(Number(params.id), patch));
      return json(200, masked(updated));
    });
    this.#route("DELETE", "/tunnels/{id}", async ({ params }) => {
      const removed = await this.#store().run((s) => s.tunnels.remove(Number(params.id)));
      if (!removed) throw new ApiError(404, "not_found", `No tunnel with id ${params.id}`);
      return json(204, null);
    });
    this.#route("GET", "/tunnels/{id}/metrics", async ({ params, url }) => {
      const since = new Date(
        Date.now() - durationOf(url.searchParams.get("since") ?? "1h", "Query parameter since"),
      );
      const rows = await this.#store().run((s) => s.metrics.list(Number(params.id), since));
      return list(rows, url);
    });

    // ---- live state
    this.#route("GET", "/sessions", ({ url }) =>
      list(
        [...server.sessions].map((s) => ({
          id: s.sessionId,
          client_id: s.clientId,
          user: s.principal?.userName ?? null,
          remote_addr: s.remote,
          client_version: s.software,
          connected_at: s.connectedAt,
          rtt_ms: s.mux.rtt || null,
          bytes_in: s.mux.bytes.in,
          bytes_out: s.mux.bytes.out,
          tunnels: [...s.tunnels.values()].map((t) => ({
            name: t.name,
            port: t.port,
            active_connections: t.activeConnections,
          })),
        })),
        url,
      ));
    this.#route("DELETE", "/sessions/{id}", ({ params }) => {
      const session = [...server.sessions].find((s) => s.sessionId === params.id);
      if (!session) throw new ApiError(404, "not_found", `No connected session ${params.id}`);
      this.#log.info("session kicked through the admin API", {
        session_id: session.sessionId,
        client_id: session.clientId,
      });
      session.close("Disconnected by an administrator");
      return json(204, null);
    });
    this.#route("GET", "/stats", ({ url }) => list(server.stats.snapshot(), url));
    this.#route("GET", "/groups", ({ url }) =>
      list(
        [...server.groups.groups.values()].map((g) => ({
          name: g.name,
          key: g.key,
          port: g.port,
          strategy: g.balancer.strategy,
          members: g.balancer.members.map((m) => ({
            tunnel: m.name,
            client_id: m.clientId,
            weight: m.weight,
            healthy: m.healthy,
            active_connections: m.active,
            connections: m.connections,
          })),
        })),
        url,
      ));

    // ---- TLS
    this.#route("POST", "/tls/reload", async () => {
      const fingerprint = await server.reloadCertificate();
      return json(200, { fingerprint });
    });

    // ---- alerts
    this.#route("GET", "/alerts", async ({ url }) => {
      const state = url.searchParams.get("state");
      if (state !== null && state !== "firing") {
        throw new ApiError(400, "bad_request", `Query parameter state must be "firing"`);
      }
      const { limit, offset } = page(url);
      const rows = await this.#store().run((s) =>
        s.alerts.list({ firing: state === "firing", limit, offset })
      );
      return json(200, { items: rows, total: rows.length + offset, limit, offset });
    });
    this.#route("POST", "/alerts/{id}/silence", async ({ params, body }) => {
      const b = await body();
      allowOnly(b, ["duration"]);
      const text = field<string>(b, "duration", "string", true)!;
      const until = new Date(Date.now() + durationOf(text, `Field "duration"`));
      const row = await this.#store().run((s) => s.alerts.silence(Number(params.id), until));
      server.alerts.silence(row, until);
      return json(200, row);
    });
  }
}

// ---------------------------------------------------------------- OpenAPI

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const listOf = (name: string) => ({
  type: "object",
  required: ["items", "total", "limit", "offset"],
  properties: {
    items: { type: "array", items: ref(name) },
    total: { type: "integer" },
    limit: { type: "integer" },
    offset: { type: "integer" },
  },
});
const dateTime = { type: ["string", "null"], format: "date-time" };
const ok = (schema: unknown, status = "200", description = "OK") => ({
  [status]: { description, content: { "application/json": { schema } } },
  default: {
    description: "Error",
    content: { "application/json": { schema: ref("Error") } },
  },
});
const body = (schema: unknown) => ({
  required: true,
  content: { "application/json": { schema } },
});
const pathId = (name: string, type = "string") => ({
  name,
  in: "path",
  required: true,
  schema: { type },
});
const paging = [
  { name: "limit", in: "query", schema: { type: "integer", minimum: 0, maximum: 1000 } },
  { name: "offset", in: "query", schema: { type: "integer", minimum: 0 } },
];

/** The OpenAPI 3.1 description of the admin API. */
export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: {
      title: "Burrow admin API",
      version: VERSION,
      description: "Manage users, tokens, tunnels, sessions and alerts of a burrowd server. " +
        "After too many failed tokens from one address, its requests are answered 429 with " +
        "Retry-After until then.",
    },
    servers: [{ url: "/api/v1" }],
    security: [{ bearer: [] }],
    paths: {
      "/users": {
        get: { summary: "List users", parameters: paging, responses: ok(listOf("User")) },
        post: {
          summary: "Add a user",
          requestBody: body({
            type: "object",
            required: ["name"],
            properties: { name: { type: "string" }, admin: { type: "boolean" } },
            additionalProperties: false,
          }),
          responses: ok(ref("User"), "201", "Created"),
        },
      },
      "/users/{name}": {
        parameters: [pathId("name")],
        get: { summary: "One user", responses: ok(ref("User")) },
        patch: {
          summary: "Disable or enable a user (its sessions close when disabled), or set its policy",
          requestBody: body({
            type: "object",
            properties: {
              disabled: { type: "boolean" },
              allowed_clients: { type: "array", items: { type: "string" } },
              allow_ports: { type: ["string", "null"], examples: ["2000-2100,2222"] },
              allow_ips: { type: "array", items: { type: "string" } },
              deny_ips: { type: "array", items: { type: "string" } },
              max_bandwidth: {
                type: ["string", "integer", "null"],
                examples: ["10MB"],
                description: "bytes per second per direction across the user's tunnels",
              },
            },
            additionalProperties: false,
          }),
          responses: ok(ref("User")),
        },
      },
      "/tokens": {
        get: {
          summary: "List tokens (never their secret)",
          parameters: [...paging, { name: "user", in: "query", schema: { type: "string" } }],
          responses: ok(listOf("Token")),
        },
        post: {
          summary: "Issue a token; the JWT is returned once",
          requestBody: body({
            type: "object",
            required: ["user"],
            properties: {
              user: { type: "string" },
              ttl: { type: "string", examples: ["30d"] },
              scopes: { type: "array", items: { enum: ["tunnel", "admin"] } },
              limits: ref("TokenLimits"),
            },
            additionalProperties: false,
          }),
          responses: ok(ref("IssuedToken"), "201", "Created"),
        },
      },
      "/keys": {
        post: {
          summary: "Create an API key; the key is returned once and stored only as a hash",
          requestBody: body({
            type: "object",
            required: ["user"],
            properties: {
              user: { type: "string" },
              ttl: { type: "string", examples: ["90d"] },
              scopes: { type: "array", items: { enum: ["tunnel", "admin"] } },
              limits: ref("TokenLimits"),
            },
            additionalProperties: false,
          }),
          responses: ok(
            {
              type: "object",
              required: ["id", "key", "expires_at"],
              properties: { id: { type: "string" }, key: { type: "string" }, expires_at: dateTime },
            },
            "201",
            "Created",
          ),
        },
      },
      "/tokens/{id}": {
        parameters: [pathId("id")],
        delete: {
          summary: "Revoke a token; sessions using it close",
          responses: { "204": { description: "Revoked" }, default: ok({})["default"] },
        },
      },
      "/tunnels": {
        get: {
          summary: "List tunnels with owner, state and traffic totals",
          parameters: [
            ...paging,
            { name: "user", in: "query", schema: { type: "string" } },
            { name: "since", in: "query", schema: { type: "string", examples: ["24h"] } },
          ],
          responses: ok(listOf("TunnelOverview")),
        },
        post: {
          summary: "Create a managed tunnel; it reaches the user's client at once",
          requestBody: body(ref("TunnelCreate")),
          responses: ok(ref("Tunnel"), "201", "Created"),
        },
      },
      "/tunnels/{id}": {
        parameters: [pathId("id", "integer")],
        get: { summary: "One tunnel", responses: ok(ref("Tunnel")) },
        patch: {
          summary: "Change, disable or enable a tunnel; the client follows at once",
          requestBody: body(ref("TunnelPatch")),
          responses: ok(ref("Tunnel")),
        },
        delete: {
          summary: "Delete a tunnel; its port closes",
          responses: { "204": { description: "Deleted" }, default: ok({})["default"] },
        },
      },
      "/tunnels/{id}/metrics": {
        parameters: [pathId("id", "integer")],
        get: {
          summary: "Per-minute traffic of a tunnel",
          parameters: [...paging, { name: "since", in: "query", schema: { type: "string" } }],
          responses: ok(listOf("MetricBucket")),
        },
      },
      "/sessions": {
        get: { summary: "Connected clients", parameters: paging, responses: ok(listOf("Session")) },
      },
      "/sessions/{id}": {
        parameters: [pathId("id")],
        delete: {
          summary: "Disconnect a client (it may reconnect)",
          responses: { "204": { description: "Disconnected" }, default: ok({})["default"] },
        },
      },
      "/stats": {
        get: {
          summary: "Per-tunnel state and window (what alert rules see)",
          parameters: paging,
          responses: ok(listOf("TunnelStats")),
        },
      },
      "/groups": {
        get: {
          summary: "Load-balancing groups",
          parameters: paging,
          responses: ok(listOf("Group")),
        },
      },
      "/tls/reload": {
        post: {
          summary: "Re-read the control certificate for new connections (like SIGHUP)",
          responses: ok({
            type: "object",
            required: ["fingerprint"],
            properties: { fingerprint: { type: "string" } },
          }),
        },
      },
      "/alerts": {
        get: {
          summary: "Alerts, newest first",
          parameters: [...paging, { name: "state", in: "query", schema: { enum: ["firing"] } }],
          responses: ok(listOf("Alert")),
        },
      },
      "/alerts/{id}/silence": {
        parameters: [pathId("id", "integer")],
        post: {
          summary: "Silence an alert's notifications",
          requestBody: body({
            type: "object",
            required: ["duration"],
            properties: { duration: { type: "string", examples: ["1h"] } },
            additionalProperties: false,
          }),
          responses: ok(ref("Alert")),
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "server.auth.token, or a user token with the admin scope",
        },
      },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: { code: { type: "string" }, message: { type: "string" } },
            },
          },
        },
        User: {
          type: "object",
          required: ["id", "name", "is_admin", "disabled", "created_at"],
          properties: {
            id: { type: "integer" },
            name: { type: "string" },
            is_admin: { type: "boolean" },
            disabled: { type: "boolean" },
            allowed_clients: { type: "array", items: { type: "string" } },
            allow_ports: { type: ["string", "null"] },
            allow_ips: { type: "array", items: { type: "string" } },
            deny_ips: { type: "array", items: { type: "string" } },
            max_bandwidth: { type: ["integer", "null"] },
            created_at: { type: "string", format: "date-time" },
          },
        },
        Token: {
          type: "object",
          required: ["id", "user_id", "user_name", "scopes", "created_at", "kind"],
          properties: {
            id: { type: "string" },
            kind: { enum: ["jwt", "key"] },
            user_id: { type: "integer" },
            user_name: { type: "string" },
            scopes: { type: "array", items: { type: "string" } },
            limits: ref("TokenLimits"),
            created_at: { type: "string", format: "date-time" },
            expires_at: dateTime,
            revoked_at: dateTime,
            last_used_at: dateTime,
          },
        },
        TokenLimits: {
          type: "object",
          description: "What a client logged in with the token may publish",
          properties: {
            types: { type: "array", items: { enum: ["tcp", "udp", "http", "https"] } },
            ports: { type: "string", examples: ["2000-3000,3306"] },
            domains: { type: "array", items: { type: "string" }, examples: [["*.example.com"]] },
          },
          additionalProperties: false,
        },
        IssuedToken: {
          type: "object",
          required: ["id", "token", "expires_at"],
          properties: { id: { type: "string" }, token: { type: "string" }, expires_at: dateTime },
        },
        Tunnel: {
          type: "object",
          required: ["id", "user_id", "name", "type", "source", "enabled", "status"],
          properties: {
            id: { type: "integer" },
            user_id: { type: "integer" },
            name: { type: "string" },
            type: { enum: ["tcp", "udp", "http", "https"] },
            source: { enum: ["client", "api"] },
            client_id: { type: ["string", "null"] },
            local_addr: { type: "string" },
            local_port: { type: ["integer", "null"] },
            remote_port: { type: ["integer", "null"] },
            custom_domains: { type: "array", items: { type: "string" } },
            subdomain: { type: ["string", "null"] },
            options: { type: "object" },
            enabled: { type: "boolean" },
            status: { enum: ["offline", "active", "failed"] },
            active_port: { type: ["integer", "null"] },
            last_error: { type: ["string", "null"] },
            created_at: { type: "string", format: "date-time" },
            updated_at: { type: "string", format: "date-time" },
          },
        },
        TunnelOverview: {
          allOf: [ref("Tunnel"), {
            type: "object",
            required: ["user_name", "total_connections", "total_bytes_in", "total_bytes_out"],
            properties: {
              user_name: { type: "string" },
              total_connections: { type: "integer" },
              total_bytes_in: { type: "integer" },
              total_bytes_out: { type: "integer" },
              total_errors: { type: "integer" },
            },
          }],
        },
        TunnelCreate: {
          type: "object",
          required: ["user", "name", "type"],
          properties: {
            user: { type: "string" },
            name: { type: "string" },
            type: { enum: ["tcp", "udp", "http", "https"] },
            client_id: { type: ["string", "null"] },
            local_addr: { type: "string" },
            local_port: { type: "integer" },
            remote_port: { type: "integer" },
            custom_domains: { type: "array", items: { type: "string" } },
            subdomain: { type: "string" },
            options: { type: "object" },
            enabled: { type: "boolean" },
          },
          additionalProperties: false,
        },
        TunnelPatch: {
          type: "object",
          properties: {
            name: { type: "string" },
            type: { enum: ["tcp", "udp", "http", "https"] },
            client_id: { type: ["string", "null"] },
            local_addr: { type: "string" },
            local_port: { type: ["integer", "null"] },
            remote_port: { type: ["integer", "null"] },
            custom_domains: { type: "array", items: { type: "string" } },
            subdomain: { type: ["string", "null"] },
            options: { type: "object" },
            enabled: { type: "boolean" },
          },
          additionalProperties: false,
        },
        MetricBucket: {
          type: "object",
          required: ["tunnel_id", "bucket", "bytes_in", "bytes_out", "connections", "errors"],
          properties: {
            tunnel_id: { type: "integer" },
            bucket: { type: "string", format: "date-time" },
            bytes_in: { type: "integer" },
            bytes_out: { type: "integer" },
            connections: { type: "integer" },
            errors: { type: "integer" },
            latency_ms_sum: { type: "number" },
            latency_count: { type: "integer" },
          },
        },
        Session: {
          type: "object",
          required: ["id", "client_id", "remote_addr", "connected_at", "tunnels"],
          properties: {
            id: { type: "string" },
            client_id: { type: "string" },
            user: { type: ["string", "null"] },
            remote_addr: { type: "string" },
            client_version: { type: "string" },
            connected_at: { type: "string", format: "date-time" },
            rtt_ms: { type: ["number", "null"] },
            bytes_in: { type: "integer" },
            bytes_out: { type: "integer" },
            tunnels: {
              type: "array",
              items: {
                type: "object",
                required: ["name", "port", "active_connections"],
                properties: {
                  name: { type: "string" },
                  port: { type: "integer" },
                  active_connections: { type: "integer" },
                },
              },
            },
          },
        },
        TunnelStats: {
          type: "object",
          required: ["key", "user", "name", "status", "connections", "errors", "error_rate"],
          properties: {
            key: { type: "string" },
            user: { type: "string" },
            name: { type: "string" },
            type: { type: "string" },
            status: { enum: ["connected", "disconnected"] },
            since: { type: "integer" },
            connections: { type: "integer" },
            errors: { type: "integer" },
            error_rate: { type: "number" },
            avg_latency: { type: ["number", "null"] },
          },
        },
        Group: {
          type: "object",
          required: ["name", "port", "strategy", "members"],
          properties: {
            name: { type: "string" },
            key: { type: "string" },
            port: { type: "integer" },
            strategy: { enum: ["round_robin", "least_connections"] },
            members: {
              type: "array",
              items: {
                type: "object",
                required: ["tunnel", "client_id", "weight", "healthy"],
                properties: {
                  tunnel: { type: "string" },
                  client_id: { type: "string" },
                  weight: { type: "integer" },
                  healthy: { type: "boolean" },
                  active_connections: { type: "integer" },
                  connections: { type: "integer" },
                },
              },
            },
          },
        },
        Alert: {
          type: "object",
          required: ["id", "rule", "severity", "state", "message", "labels", "started_at"],
          properties: {
            id: { type: "integer" },
            rule: { type: "string" },
            severity: { enum: ["critical", "warning", "info"] },
            state: { enum: ["pending", "firing", "resolved"] },
            message: { type: "string" },
            labels: { type: "object" },
            started_at: { type: "string", format: "date-time" },
            fired_at: dateTime,
            resolved_at: dateTime,
            silenced_until: dateTime,
          },
        },
      },
    },
  };
}

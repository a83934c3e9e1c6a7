/**
 * What a route of the admin API declares: its path, and per method a
 * summary, the query parameters, the request and response schemas and the
 * handler. The router (`AdminApi`) dispatches on these declarations and
 * checks request bodies against them; the OpenAPI document is generated
 * from them. Also the small helpers that handlers share.
 *
 * @module
 */

import type { Logger } from "../../util/mod.ts";
import { parseDuration } from "../../util/mod.ts";
import type { BurrowServer } from "../server.ts";
import { listOf, ref, type Schema, type SchemaName, SCHEMAS } from "./schemas.ts";
import type { AdminService } from "./service.ts";

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

/** What a handler is given. */
export interface RouteContext {
  /** The request's URL, for its query parameters. */
  readonly url: URL;
  /** The path parameters, decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The request body, checked against the operation's `body` schema; `{}` without one. */
  readonly body: Readonly<Record<string, unknown>>;
  /** The running server: live sessions, groups, statistics, alerts. */
  readonly server: BurrowServer;
  /** The API's logger. */
  readonly log: Logger;
  /** The admin service on the server's database; a 503 when the server runs without one. */
  service(): AdminService;
}

/** One method of a {@linkcode Resource}. */
export interface Operation {
  /** One line for the documentation. */
  readonly summary: string;
  /** Takes `limit` and `offset` and answers a page (see {@linkcode paged}). */
  readonly paged?: boolean;
  /** Further query parameters and their schemas. */
  readonly query?: Readonly<Record<string, Schema>>;
  /** The JSON object the request carries, checked by {@linkcode checkBody} before `handle`. */
  readonly body?: Schema;
  /** The status of success; default 200. */
  readonly status?: 200 | 201 | 204;
  /** What success means, for the documentation; default "OK" (200) or "Created" (201). */
  readonly description?: string;
  /** The schema of the body `handle` returns; none for 204. */
  readonly response?: Schema;
  /**
   * Other successes, by status, which `handle` answers by returning a
   * {@linkcode Reply}: e.g. a 202 for work handed to another node.
   */
  readonly others?: Readonly<Record<number, OtherSuccess>>;
  /** Does the work and returns the response body (nothing for 204). */
  readonly handle: (ctx: RouteContext) => unknown;
}

/** A success an operation may answer besides its `status` (see {@linkcode Reply}). */
export interface OtherSuccess {
  /** What it means, for the documentation. */
  readonly description: string;
  /** The schema of its body; none for an empty body. */
  readonly response?: Schema;
}

/**
 * What a handler returns to answer with one of its operation's `others`
 * rather than its `status`.
 *
 * @example
 * ```ts
 * import { Reply } from "./route.ts";
 * const accepted = new Reply(202, { node: "n2" });
 * console.log(accepted.status); // 202
 * ```
 */
export class Reply {
  /** The HTTP status, one of the operation's `others`. */
  readonly status: number;
  /** The body, `null` for none. */
  readonly body: unknown;
  /** The answer `status` with `body`. */
  constructor(status: number, body: unknown = null) {
    this.status = status;
    this.body = body;
  }
}

/** The methods a resource may have, in the order the API lists them. */
export const METHODS = ["get", "post", "patch", "delete"] as const;

/** A path of the API and what each of its methods does. */
export type Resource =
  & {
    /** Below `/api/v1`, with `{name}` for each path parameter. */
    readonly path: string;
    /** Schemas of the path parameters; default `{type: "string"}`. */
    readonly params?: Readonly<Record<string, Schema>>;
  }
  & { readonly [M in typeof METHODS[number]]?: Operation };

/** The largest page a list answers. */
export const MAX_LIMIT = 1000;

/** The `limit` and `offset` query parameters of a list. */
export const PAGE_QUERY: Readonly<Record<string, Schema>> = {
  limit: { type: "integer", minimum: 0, maximum: MAX_LIMIT },
  offset: { type: "integer", minimum: 0 },
};

/** The page a list request asks for, or a 400 naming the bad parameter. */
export function page(url: URL): { limit: number; offset: number } {
  const num = (name: string, def: number, max: number) => {
    const raw = url.searchParams.get(name);
    if (raw === null) return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > max) {
      throw new ApiError(400, "bad_request", `Query parameter ${name} must be an integer 0-${max}`);
    }
    return n;
  };
  return {
    limit: num("limit", 100, MAX_LIMIT) || 100,
    offset: num("offset", 0, 1_000_000_000),
  };
}

/** The page of `items` that `url` asks for: `{items, total, limit, offset}`. */
export function paged<T>(items: readonly T[], url: URL): {
  items: T[];
  total: number;
  limit: number;
  offset: number;
} {
  const { limit, offset } = page(url);
  return { items: items.slice(offset, offset + limit), total: items.length, limit, offset };
}

/**
 * A `GET` that answers a page of what `items` returns, each one of the
 * named schema `item`; `query` declares its parameters besides the page's.
 */
export function listing(
  summary: string,
  item: SchemaName,
  items: (ctx: RouteContext) => readonly unknown[] | Promise<readonly unknown[]>,
  query?: Readonly<Record<string, Schema>>,
): Operation {
  return {
    summary,
    paged: true,
    ...(query ? { query } : {}),
    response: listOf(ref(item)),
    handle: async (ctx) => paged(await items(ctx), ctx.url),
  };
}

/** A duration from a request, or a 400 naming where it came from. */
export function durationOf(text: string, what: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    throw new ApiError(400, "bad_request", `${what}: ${(error as Error).message}`);
  }
}

/** `schema` itself, or the named schema it refers to. */
function resolve(schema: Schema): Schema {
  const target = typeof schema.$ref === "string" ? schema.$ref.split("/").pop() : undefined;
  return target ? SCHEMAS[target as keyof typeof SCHEMAS] ?? schema : schema;
}

/** The JavaScript type a field of `schema` must have, when it allows only one besides null. */
function jsonType(schema: Schema): string | undefined {
  const declared = schema.type ??
    (Array.isArray(schema.enum) ? schema.enum.map((v) => typeof v) : undefined);
  const types = new Set(
    [declared].flat().filter((t) => t !== undefined && t !== "null").map((t) =>
      t === "integer" ? "number" : String(t)
    ),
  );
  return types.size === 1 ? [...types][0] : undefined;
}

/** Refuses the fields of `value` that a closed object schema does not name. */
function checkKnown(value: Readonly<Record<string, unknown>>, schema: Schema): void {
  const properties = schema.properties as Record<string, Schema> | undefined;
  if (schema.additionalProperties !== false || !properties) return;
  const names = Object.keys(properties);
  for (const key of Object.keys(value)) {
    if (!names.includes(key)) {
      throw new ApiError(
        400,
        "bad_request",
        `Unknown field "${key}"; expected ${names.join(", ")}`,
      );
    }
  }
}

/**
 * Checks a request body against its declared object schema, in the order
 * of its properties: no unknown fields (here and in closed objects nested
 * one level down), the required ones present and not `null`, and each
 * field of the JSON type it declares. The values themselves (names, ports,
 * scopes, durations) are checked where they are used, with messages that
 * name the rule.
 *
 * @throws {ApiError} 400 naming the first field at fault.
 */
export function checkBody(body: Readonly<Record<string, unknown>>, declared: Schema): void {
  const schema = resolve(declared);
  checkKnown(body, schema);
  const properties = (schema.properties ?? {}) as Record<string, Schema>;
  const required = (schema.required ?? []) as string[];
  for (const [name, property] of Object.entries(properties)) {
    const value = body[name];
    if (value === undefined || value === null) {
      if (required.includes(name)) {
        throw new ApiError(400, "bad_request", `Field "${name}" is required`);
      }
      continue;
    }
    const field = resolve(property);
    const type = jsonType(field);
    const actual = Array.isArray(value) ? "array" : typeof value;
    if (type !== undefined && actual !== type) {
      throw new ApiError(400, "bad_request", `Field "${name}" must be a ${type}, got ${actual}`);
    }
    if (actual === "object") checkKnown(value as Record<string, unknown>, field);
  }
}

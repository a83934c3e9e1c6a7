/**
 * The OpenAPI 3.1 document of the admin API, generated from the route
 * table: a path item per route, an operation per method with its query
 * parameters, request body and responses (the declared success, and the
 * `Error` shape for everything else), and the named schemas as components.
 *
 * @module
 */

import { VERSION } from "../../util/mod.ts";
import { METHODS, type Operation, PAGE_QUERY, type Resource } from "./route.ts";
import { ROUTES } from "./routes.ts";
import { ref, type Schema, SCHEMAS } from "./schemas.ts";

/** The body of a request or response: JSON of `schema`. */
function jsonContent(schema: Schema): Record<string, unknown> {
  return { "application/json": { schema } };
}

/** The parameters of a path: one for each `{name}` in it. */
function pathParameters(resource: Resource): Array<Record<string, unknown>> {
  return [...resource.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name,
    in: "path",
    required: true,
    schema: resource.params?.[name!] ?? { type: "string" },
  }));
}

/** The OpenAPI operation object of `op`. */
function operation(op: Operation): Record<string, unknown> {
  const query = { ...(op.paged ? PAGE_QUERY : {}), ...op.query };
  const parameters = Object.entries(query).map(([name, schema]) => ({ name, in: "query", schema }));
  const status = op.status ?? 200;
  const description = op.description ?? (status === 201 ? "Created" : "OK");
  return {
    summary: op.summary,
    ...(parameters.length ? { parameters } : {}),
    ...(op.body ? { requestBody: { required: true, content: jsonContent(op.body) } } : {}),
    responses: {
      [status]: op.response ? { description, content: jsonContent(op.response) } : { description },
      ...Object.fromEntries(
        Object.entries(op.others ?? {}).map(([other, { description, response }]) => [
          other,
          response ? { description, content: jsonContent(response) } : { description },
        ]),
      ),
      default: { description: "Error", content: jsonContent(ref("Error")) },
    },
  };
}

/**
 * The OpenAPI 3.1 description of the admin API, generated from its route
 * table, as served at `/api/v1/openapi.json`.
 *
 * @example
 * ```ts
 * import { openApiDocument } from "./openapi.ts";
 * const doc = openApiDocument();
 * console.log(Object.keys(doc.paths as object).includes("/users")); // true
 * ```
 */
export function openApiDocument(): Record<string, unknown> {
  return openApiDocumentOf(ROUTES);
}

/** The OpenAPI 3.1 document of `routes`. */
export function openApiDocumentOf(routes: readonly Resource[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const resource of routes) {
    const parameters = pathParameters(resource);
    const item: Record<string, unknown> = parameters.length ? { parameters } : {};
    for (const method of METHODS) {
      const op = resource[method];
      if (op) item[method] = operation(op);
    }
    paths[resource.path] = item;
  }
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
    paths,
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "server.auth.token, or a user token with the admin scope",
        },
      },
      schemas: SCHEMAS,
    },
  };
}

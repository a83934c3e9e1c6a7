import assert from "node:assert/strict";
import Ajv2020 from "ajv/dist/2020.js";
import { fullFormats } from "ajv-formats/dist/formats.js";
import { openApiDocument, openApiDocumentOf } from "./openapi.ts";
import { listing, METHODS } from "./route.ts";
import { ROUTES } from "./routes.ts";

Deno.test("openApiDocument: every route and method, with schemas that compile", () => {
  const doc = openApiDocument();
  // deno-lint-ignore no-explicit-any
  const Ajv = Ajv2020 as any;
  const ajv = new Ajv({ strict: false, formats: fullFormats });
  ajv.addSchema({ $id: "doc", ...doc });
  // deno-lint-ignore no-explicit-any
  const paths = doc.paths as Record<string, any>;
  assert.deepEqual(Object.keys(paths), ROUTES.map((r) => r.path));
  let operations = 0;
  for (const route of ROUTES) {
    const item = paths[route.path];
    const names = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    assert.deepEqual((item.parameters ?? []).map((p: { name: string }) => p.name), names);
    for (const method of METHODS) {
      assert.equal(method in item, route[method] !== undefined, `${method} ${route.path}`);
      if (!route[method]) continue;
      operations++;
      const pointer = `doc#/paths/${route.path.replaceAll("/", "~1")}/${method}`;
      for (const [status, response] of Object.entries(item[method].responses)) {
        if (!(response as { content?: unknown }).content) continue;
        assert.ok(
          ajv.getSchema(`${pointer}/responses/${status}/content/application~1json/schema`),
          `${method} ${route.path} ${status} compiles`,
        );
      }
      if (item[method].requestBody) {
        assert.ok(ajv.getSchema(`${pointer}/requestBody/content/application~1json/schema`));
      }
    }
  }
  assert.ok(operations >= 20, `${operations} operations`);
});

Deno.test("openApiDocumentOf: a route's declarations become its operation", () => {
  const doc = openApiDocumentOf([{
    path: "/things/{id}",
    params: { id: { type: "integer" } },
    get: listing("List things", "User", () => [], { q: { type: "string" } }),
    delete: {
      summary: "Drop a thing",
      status: 204,
      description: "Dropped",
      others: { 202: { description: "Dropped elsewhere", response: { type: "object" } } },
      handle: () => {},
    },
  }]);
  const error = {
    description: "Error",
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
  assert.deepEqual((doc.paths as Record<string, unknown>)["/things/{id}"], {
    parameters: [{ name: "id", in: "path", required: true, schema: { type: "integer" } }],
    get: {
      summary: "List things",
      parameters: [
        { name: "limit", in: "query", schema: { type: "integer", minimum: 0, maximum: 1000 } },
        { name: "offset", in: "query", schema: { type: "integer", minimum: 0 } },
        { name: "q", in: "query", schema: { type: "string" } },
      ],
      responses: {
        200: {
          description: "OK",
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["items", "total", "limit", "offset"],
                properties: {
                  items: { type: "array", items: { $ref: "#/components/schemas/User" } },
                  total: { type: "integer" },
                  limit: { type: "integer" },
                  offset: { type: "integer" },
                },
              },
            },
          },
        },
        default: error,
      },
    },
    delete: {
      summary: "Drop a thing",
      responses: {
        204: { description: "Dropped" },
        202: {
          description: "Dropped elsewhere",
          content: { "application/json": { schema: { type: "object" } } },
        },
        default: error,
      },
    },
  });
});

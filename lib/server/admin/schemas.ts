/**
 * The JSON Schemas of the admin API's bodies: the named ones that routes
 * refer to with {@linkcode ref} (they become the OpenAPI document's
 * `components.schemas`) and the small builders routes use for the rest.
 *
 * @module
 */

/** A JSON Schema (2020-12, the dialect of OpenAPI 3.1) as a plain object. */
export type Schema = { readonly [keyword: string]: unknown };

/**
 * A reference to the named schema `name` of {@linkcode SCHEMAS}.
 *
 * @example
 * ```ts
 * import { ref } from "./schemas.ts";
 * console.log(ref("User")); // { $ref: "#/components/schemas/User" }
 * ```
 */
export function ref(name: SchemaName): Schema {
  return { $ref: `#/components/schemas/${name}` };
}

/** An object with `properties`, of which `required` must be present. */
export function object(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: "object", ...(required.length ? { required } : {}), properties };
}

/** An object with exactly `properties`, of which `required` must be present. */
export function closed(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { ...object(properties, required), additionalProperties: false };
}

const integer: Schema = { type: "integer" };
const string: Schema = { type: "string" };
const time: Schema = { type: "string", format: "date-time" };
const tunnelType: Schema = { enum: ["tcp", "udp", "http", "https"] };

/** A time that may be absent (`null`). */
export const dateTime: Schema = { type: ["string", "null"], format: "date-time" };

/** A list of strings. */
export const stringList: Schema = { type: "array", items: string };

/** The page of a list response: `{items, total, limit, offset}` with items of `item`. */
export function listOf(item: Schema): Schema {
  return object(
    { items: { type: "array", items: item }, total: integer, limit: integer, offset: integer },
    ["items", "total", "limit", "offset"],
  );
}

/**
 * The fields of a tunnel that a request sets (the storage's `TunnelInput`);
 * with `clearable`, those a change may clear take `null` too.
 */
function tunnelFields(clearable: boolean): Record<string, Schema> {
  const orNull = (type: string): Schema => ({ type: clearable ? [type, "null"] : type });
  return {
    name: string,
    type: tunnelType,
    client_id: { type: ["string", "null"] },
    local_addr: string,
    local_port: orNull("integer"),
    remote_port: orNull("integer"),
    custom_domains: stringList,
    subdomain: orNull("string"),
    options: { type: "object" },
    enabled: { type: "boolean" },
  };
}

/** The names of the tunnel fields a request sets, in their documented order. */
export const TUNNEL_FIELDS: readonly string[] = Object.keys(tunnelFields(true));

/** A credential as issued (shown once): its id, the secret under `secret`, its expiry. */
export function issued(secret: "token" | "key"): Schema {
  return object({ id: string, [secret]: string, expires_at: dateTime }, [
    "id",
    secret,
    "expires_at",
  ]);
}

/** The request of `POST /tokens` and `POST /keys`; `ttlExample` shows a typical lifetime. */
export function issueRequest(ttlExample: string): Schema {
  return closed({
    user: string,
    ttl: { type: "string", examples: [ttlExample] },
    scopes: { type: "array", items: { enum: ["tunnel", "admin"] } },
    limits: ref("TokenLimits"),
  }, ["user"]);
}

/** The name of one of the {@linkcode SCHEMAS}. */
export type SchemaName =
  | "Error"
  | "User"
  | "Token"
  | "TokenLimits"
  | "IssuedToken"
  | "Tunnel"
  | "TunnelOverview"
  | "TunnelCreate"
  | "TunnelPatch"
  | "MetricBucket"
  | "Session"
  | "TunnelStats"
  | "Group"
  | "Alert"
  | "Node";

/** The named schemas, served as the OpenAPI document's `components.schemas`. */
export const SCHEMAS: Readonly<Record<SchemaName, Schema>> = {
  Error: object({ error: object({ code: string, message: string }, ["code", "message"]) }, [
    "error",
  ]),
  User: object({
    id: integer,
    name: string,
    is_admin: { type: "boolean" },
    disabled: { type: "boolean" },
    allowed_clients: stringList,
    allow_ports: { type: ["string", "null"] },
    allow_ips: stringList,
    deny_ips: stringList,
    max_bandwidth: { type: ["integer", "null"] },
    created_at: time,
  }, ["id", "name", "is_admin", "disabled", "created_at"]),
  Token: object({
    id: string,
    kind: { enum: ["jwt", "key"] },
    user_id: integer,
    user_name: string,
    scopes: stringList,
    limits: ref("TokenLimits"),
    created_at: time,
    expires_at: dateTime,
    revoked_at: dateTime,
    last_used_at: dateTime,
  }, ["id", "user_id", "user_name", "scopes", "created_at", "kind"]),
  TokenLimits: {
    description: "What a client logged in with the token may publish",
    ...closed({
      types: { type: "array", items: tunnelType },
      ports: { type: "string", examples: ["2000-3000,3306"] },
      domains: { ...stringList, examples: [["*.example.com"]] },
    }),
  },
  IssuedToken: issued("token"),
  Tunnel: object({
    id: integer,
    user_id: integer,
    source: { enum: ["client", "api"] },
    ...tunnelFields(true),
    status: { enum: ["offline", "active", "failed"] },
    active_port: { type: ["integer", "null"] },
    last_error: { type: ["string", "null"] },
    created_at: time,
    updated_at: time,
  }, ["id", "user_id", "name", "type", "source", "enabled", "status"]),
  TunnelOverview: {
    allOf: [
      ref("Tunnel"),
      object({
        user_name: string,
        total_connections: integer,
        total_bytes_in: integer,
        total_bytes_out: integer,
        total_errors: integer,
        nodes: {
          ...stringList,
          description: "The nodes whose sessions hold it now (this one, and in cluster mode " +
            "the other alive nodes, by their placements)",
        },
      }, ["user_name", "total_connections", "total_bytes_in", "total_bytes_out", "nodes"]),
    ],
  },
  TunnelCreate: closed({ user: string, ...tunnelFields(false) }, ["user", "name", "type"]),
  TunnelPatch: closed(tunnelFields(true)),
  MetricBucket: object({
    tunnel_id: integer,
    bucket: time,
    bytes_in: integer,
    bytes_out: integer,
    connections: integer,
    errors: integer,
    latency_ms_sum: { type: "number" },
    latency_count: integer,
  }, ["tunnel_id", "bucket", "bytes_in", "bytes_out", "connections", "errors"]),
  Session: object({
    id: string,
    node: { ...string, description: "The burrowd it is connected to (server.cluster.node_id)" },
    client_id: string,
    user: { type: ["string", "null"] },
    remote_addr: string,
    client_version: string,
    connected_at: time,
    rtt_ms: { type: ["number", "null"] },
    bytes_in: integer,
    bytes_out: integer,
    tunnels: {
      type: "array",
      items: object({
        name: string,
        port: integer,
        active_connections: { ...integer, description: "Known for this node's sessions only" },
      }, ["name", "port"]),
    },
  }, ["id", "node", "client_id", "remote_addr", "connected_at", "tunnels"]),
  TunnelStats: object({
    key: string,
    user: string,
    name: string,
    type: string,
    status: { enum: ["connected", "disconnected"] },
    since: integer,
    connections: integer,
    errors: integer,
    error_rate: { type: "number" },
    avg_latency: { type: ["number", "null"] },
  }, ["key", "user", "name", "status", "connections", "errors", "error_rate"]),
  Group: object({
    name: string,
    key: string,
    port: integer,
    strategy: { enum: ["round_robin", "least_connections"] },
    members: {
      type: "array",
      items: object({
        tunnel: string,
        client_id: string,
        weight: integer,
        healthy: { type: "boolean" },
        active_connections: integer,
        connections: integer,
      }, ["tunnel", "client_id", "weight", "healthy"]),
    },
  }, ["name", "port", "strategy", "members"]),
  Alert: object({
    id: integer,
    rule: string,
    severity: { enum: ["critical", "warning", "info"] },
    state: { enum: ["pending", "firing", "resolved"] },
    message: string,
    labels: { type: "object" },
    started_at: time,
    fired_at: dateTime,
    resolved_at: dateTime,
    silenced_until: dateTime,
  }, ["id", "rule", "severity", "state", "message", "labels", "started_at"]),
  Node: object({
    id: string,
    advertise_addr: { ...string, description: "Host or host:port of its relay port" },
    relay_port: integer,
    fingerprint: { ...string, description: "SHA-256 of its control certificate" },
    version: string,
    started_at: time,
    last_seen: time,
    last_seen_ago_ms: { type: "number", description: "By the database's clock" },
    stopped_at: dateTime,
    lost_by: { type: ["string", "null"], description: "The node that found it dead" },
    state: { enum: ["alive", "dead", "stopped"] },
    sessions: { ...integer, description: "Sessions its rows say are open" },
  }, ["id", "advertise_addr", "relay_port", "version", "started_at", "last_seen", "state"]),
};

/**
 * Typed rows of Burrow's tables (see `sql/001_init.sql`).
 *
 * @module
 */

import type { TunnelType as SpecTunnelType } from "../protocol/mod.ts";

/** A person or machine that owns tunnels and tokens. */
export interface User {
  /** Row id. */
  id: number;
  /** Login name, unique. */
  name: string;
  /** May use the admin API and every scope. */
  is_admin: boolean;
  /** Disabled users cannot log in; their sessions are closed. */
  disabled: boolean;
  /** Client ids allowed to log in as this user; empty: any. */
  allowed_clients: string[];
  /** Port ranges (`"2000-2100,2222"`) the user's tunnels may take; `null`: the server's. */
  allow_ports: string | null;
  /** Addresses the user's clients may connect from; empty: any. */
  allow_ips: string[];
  /** Addresses the user's clients may not connect from. */
  deny_ips: string[];
  /** Bytes per second per direction across all the user's tunnels; `null`: no user limit. */
  max_bandwidth: number | null;
  /** When the user was added. */
  created_at: Date;
}

/** An issued token (the JWT's `jti`). */
export interface ApiKey {
  /** The JWT id. */
  id: string;
  /** Owner. */
  user_id: number;
  /** What the token may do, e.g. `["tunnel"]`. */
  scopes: string[];
  /** Issue time. */
  created_at: Date;
  /** Expiry; `null` never expires. */
  expires_at: Date | null;
  /** Set once revoked. */
  revoked_at: Date | null;
  /** Last successful login with it. */
  last_used_at: Date | null;
  /** `jwt` (signed token) or `key` (random API key, stored hashed). */
  kind: "jwt" | "key";
  /** SHA-256 (hex) of an API key; `null` for JWTs. */
  secret_hash: string | null;
  /** What the token may publish; `{}`: no limit of its own. */
  limits: TokenLimits;
}

/** Limits a token carries on what its client may publish. */
export interface TokenLimits {
  /** Tunnel types allowed, e.g. `["tcp", "http"]`. */
  types?: string[];
  /** Public port ranges allowed, e.g. `"2000-3000,3306"`. */
  ports?: string;
  /** Host names allowed for HTTP(S) tunnels; `*.example.com` covers any name under it. */
  domains?: string[];
}

/** A key that signs user tokens. */
export interface SigningKey {
  /** JWT `kid`. */
  kid: string;
  /** JWT algorithm, `HS256`. */
  alg: string;
  /** base64url secret. */
  secret: string;
  /** When it was made. */
  created_at: Date;
  /** Set when it no longer verifies. */
  retired_at: Date | null;
}

/** Tunnel kinds: the tunnel spec's types. */
export type TunnelType = SpecTunnelType;

/** A tunnel: declared by a client (`source: client`) or managed in the database (`api`). */
export interface TunnelRow {
  /** Row id. */
  id: number;
  /** Owner. */
  user_id: number;
  /** Unique per user. */
  name: string;
  /** Tunnel kind. */
  type: TunnelType;
  /** Where the definition lives. */
  source: "client" | "api";
  /** Only this client id serves it; `null`: the user's newest session. */
  client_id: string | null;
  /** Local service host, dialled by the client. */
  local_addr: string;
  /** Local service port. */
  local_port: number | null;
  /** Public port asked for; 0 or `null` lets the server choose. */
  remote_port: number | null;
  /** Host names routed to an http(s) tunnel. */
  custom_domains: string[];
  /** Label under `server.subdomain_host`. */
  subdomain: string | null;
  /**
   * The tunnel spec's keys that have no column (locations, header rules,
   * basic_auth, allow_ips, group, session_timeout, …; see `protocol/`).
   */
  options: Record<string, unknown>;
  /** Disabled tunnels are closed and not served. */
  enabled: boolean;
  /** Last state a server reported. */
  status: "offline" | "active" | "failed";
  /** Public port bound now, when active. */
  active_port: number | null;
  /** Why it last failed. */
  last_error: string | null;
  /** Row creation. */
  created_at: Date;
  /** Last change of its definition. */
  updated_at: Date;
}

/** The definition part of a tunnel, as created or changed. */
export interface TunnelInput {
  /** Unique per user. */
  name: string;
  /** Tunnel kind. */
  type: TunnelType;
  /** Only this client id serves it. */
  client_id?: string | null;
  /** Default `127.0.0.1`. */
  local_addr?: string;
  /** Local service port. */
  local_port?: number | null;
  /** Public port; 0 lets the server choose. */
  remote_port?: number | null;
  /** Host names for http(s). */
  custom_domains?: string[];
  /** Label under `server.subdomain_host`. */
  subdomain?: string | null;
  /** Further settings. */
  options?: Record<string, unknown>;
  /** Default true. */
  enabled?: boolean;
}

/** A client connection. */
export interface SessionRow {
  /** Session id (also sent to the client in `ack`). */
  id: string;
  /** Authenticated user. */
  user_id: number | null;
  /** The client's stable id. */
  client_id: string;
  /** `host:port` of the client. */
  remote_addr: string;
  /** e.g. `burrow/0.1.0`. */
  client_version: string;
  /** The burrowd that holds it. */
  node: string;
  /** Login time. */
  connected_at: Date;
  /** Set when it ended. */
  disconnected_at: Date | null;
  /** Last heartbeat seen (written in batches). */
  last_heartbeat: Date | null;
  /** Last measured round trip. */
  rtt_ms: number | null;
  /** Bytes from the client. */
  bytes_in: number;
  /** Bytes to the client. */
  bytes_out: number;
  /** Why it ended. */
  close_reason: string | null;
}

/** One tunnel's counters over one time bucket. */
export interface MetricRow {
  /** The tunnel. */
  tunnel_id: number;
  /** Start of the bucket. */
  bucket: Date;
  /** Bytes from visitors. */
  bytes_in: number;
  /** Bytes to visitors. */
  bytes_out: number;
  /** Connections accepted. */
  connections: number;
  /** Connections that failed. */
  errors: number;
  /** Sum of connect latencies in ms. */
  latency_ms_sum: number;
  /** How many latencies were summed. */
  latency_count: number;
}

/** An access or error event. */
export interface LogRow {
  /** Row id. */
  id: number;
  /** When it happened. */
  at: Date;
  /** Severity. */
  level: "debug" | "info" | "warn" | "error";
  /** Access (a visitor connection) or error or other event. */
  kind: "access" | "error" | "event";
  /** Related tunnel. */
  tunnel_id: number | null;
  /** Related session. */
  session_id: string | null;
  /** What happened. */
  message: string;
  /** Details. */
  fields: Record<string, unknown>;
}

/** A raised alert. */
export interface AlertRow {
  /** Row id. */
  id: number;
  /** Rule name. */
  rule: string;
  /** How urgent. */
  severity: "critical" | "warning" | "info";
  /** Pending while the condition holds for less than the rule's duration, then firing, then resolved. */
  state: "pending" | "firing" | "resolved";
  /** Explanation. */
  message: string;
  /** Extra labels (tunnel, node, …). */
  labels: Record<string, unknown>;
  /** When it fired. */
  started_at: Date;
  /** When it resolved. */
  resolved_at: Date | null;
  /** When it turned from pending to firing. */
  fired_at: Date | null;
  /** Notifications suppressed until then. */
  silenced_until: Date | null;
}

/** A change announced on `burrow_config`. */
export interface ConfigChange {
  /** Table changed; `*` after a reconnect of the listener (anything may have changed). */
  table: "tunnels" | "users" | "api_keys" | "*";
  /** What happened. */
  op: "insert" | "update" | "delete" | "resync";
  /** Row id. */
  id?: number | string;
  /** Owner of the row. */
  user_id?: number;
  /** For tunnels. */
  source?: "client" | "api";
}

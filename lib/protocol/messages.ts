/**
 * The control message catalog: JSON objects carried in `Control` frames on
 * stream 0, in the seed's shape (`type`, `action`, `tunnel_id`, `config`).
 *
 * Session start: client `hello` → server `hello` (or `error`) → client `auth`
 * → server `ack` (or `error`). Then the client sends `control` messages with
 * `action: create_tunnel | destroy_tunnel`, the server answers each with a
 * `tunnel_status`, and both sides exchange `heartbeat`s. Graceful shutdown is
 * the multiplexer's `GoAway` frame, which carries its reason.
 *
 * @example
 * ```ts
 * import { decodeControl, encodeControl } from "./messages.ts";
 * const bytes = encodeControl({ type: "heartbeat", timestamp: 1, status: "online" });
 * console.assert(decodeControl(bytes).type === "heartbeat");
 * ```
 *
 * @module
 */

import { ProtocolError } from "./frame.ts";
import { checkTunnel, TUNNEL_TYPES, type TunnelType } from "./tunnel_spec.ts";
import type { SpecProblem } from "./tunnel_rules.ts";

/** The protocol version this build speaks. */
export const PROTOCOL_VERSION = 2;
/** The oldest peer version this build still accepts. */
export const MIN_PROTOCOL_VERSION = 1;

/** First message of each side. */
export interface HelloMessage {
  /** Message kind. */
  type: "hello";
  /** Newest protocol version the sender speaks. */
  version: number;
  /** Oldest protocol version the sender accepts. */
  min_version: number;
  /** e.g. `burrow/0.1.0`. */
  software: string;
  /** Client only: stable id of this client instance. */
  client_id?: string;
}

/** Client credentials. */
export interface AuthMessage {
  /** Message kind. */
  type: "auth";
  /** Authentication method; only `token` so far. */
  method: "token";
  /** The shared token. */
  token: string;
}

/** Server's acceptance of `auth`. */
export interface AckMessage {
  /** Message kind. */
  type: "ack";
  /** Id of the new session. */
  session_id: string;
  /** Milliseconds between heartbeats the server expects. */
  heartbeat_interval: number;
}

/** A refusal; `code` is stable, `message` is for people. */
export interface ErrorMessage {
  /** Message kind. */
  type: "error";
  /** Stable machine-readable reason. */
  code:
    | "version_mismatch"
    | "auth_failed"
    | "bad_request"
    | "limit"
    | "server_busy"
    | "unavailable";
  /** Explanation for people. */
  message: string;
  /**
   * Seconds the client should wait before trying again (`limit` refusals of
   * the login limiter); absent when retrying soon is fine.
   */
  retry_after?: number;
}

/**
 * Tunnel settings a client asks for, as in the seed's `config`: the keys of
 * the tunnel spec (`tunnel_spec.ts`) in the wire's units, with the type
 * under the seed's name `protocol` and the name in `tunnel_id`. The server
 * checks them with {@linkcode checkTunnelRequest}.
 */
export interface TunnelRequest {
  /** Tunnel type. */
  protocol: TunnelType;
  /** Port of the local service. */
  local_port: number;
  /** Public port; 0 lets the server choose. */
  remote_port?: number;
  /** The seed's single custom domain. */
  domain?: string;
  /** Domains routed to this tunnel. */
  custom_domains?: string[];
  /** Label under `server.subdomain_host`. */
  subdomain?: string;
  /** Load-balancing group (shared with other clients' tunnels). */
  group?: string;
  /** The group's shared secret. */
  group_key?: string;
  /** How the group spreads connections. */
  load_balance?: "round_robin" | "least_connections";
  /** This member's share. */
  weight?: number;
  /** Settings of later tunnel types, passed through. */
  [key: string]: unknown;
}

/** The seed's control message. */
export interface ControlMessage {
  /** Message kind. */
  type: "control";
  /** What to do with the tunnel. */
  action: "create_tunnel" | "destroy_tunnel";
  /** Tunnel name. */
  tunnel_id: string;
  /** Tunnel settings for `create_tunnel`. */
  config?: TunnelRequest;
}

/** Server's answer to `create_tunnel` / `destroy_tunnel`, or a later change. */
export interface TunnelStatusMessage {
  /** Message kind. */
  type: "tunnel_status";
  /** Tunnel name. */
  tunnel_id: string;
  /** State being reported. */
  status: "active" | "failed" | "closed";
  /** Public port; 0 lets the server choose. */
  remote_port?: number;
  /** Public address for visitors. */
  public_addr?: string;
  /** Why the tunnel failed. */
  error?: string;
  /** HTTP(S) tunnels: the public URLs. */
  urls?: string[];
}

/** The seed's heartbeat; the server echoes the client's `timestamp` (Unix ms). */
export interface HeartbeatMessage {
  /** Message kind. */
  type: "heartbeat";
  /** Sender clock in Unix milliseconds (echoed back). */
  timestamp: number;
  /** State being reported. */
  status: "online" | "draining";
}

/** A tunnel managed on the server, as pushed to the client that serves it. */
export interface PushedTunnel {
  /** Tunnel name (unique per user). */
  name: string;
  /** Tunnel kind. */
  type: TunnelType;
  /** Local service host the client dials. */
  local_addr: string;
  /** Local service port (0 when the row has none; such a tunnel is failed). */
  local_port: number;
  /** The PROXY protocol header the client writes to the local service, if any. */
  proxy_protocol?: "v1" | "v2";
  /** Public port, when active. */
  remote_port?: number;
  /** HTTP(S) tunnels: the public URLs. */
  urls?: string[];
  /** Whether the server serves it now. */
  status: "active" | "failed";
  /** Why it failed. */
  error?: string;
}

/**
 * Server → client: the complete list of database-managed tunnels this client
 * serves now. Sent after login and after every change; tunnels missing from
 * the list are gone.
 */
export interface ConfigPushMessage {
  /** Message kind. */
  type: "config_push";
  /** Every managed tunnel of this client. */
  tunnels: PushedTunnel[];
}

/** Client → server: the local service behind a tunnel passed or failed its health check. */
export interface TunnelHealthMessage {
  /** Message kind. */
  type: "tunnel_health";
  /** Tunnel name. */
  tunnel_id: string;
  /** Whether the local service answers. */
  healthy: boolean;
  /** What the last check saw. */
  reason?: string;
}

/**
 * Server → client (protocol 2 and later): something the client's user should
 * know about one of its tunnels, such as a limit it hit.
 */
export interface NoticeMessage {
  /** Message kind. */
  type: "notice";
  /** Tunnel name. */
  tunnel_id: string;
  /** What happened, e.g. `bandwidth_limit`, `connection_limit`. */
  code: string;
  /** In words, for the client's log. */
  message: string;
}

/** Every control message. */
export type Message =
  | HelloMessage
  | AuthMessage
  | AckMessage
  | ErrorMessage
  | ControlMessage
  | TunnelStatusMessage
  | HeartbeatMessage
  | ConfigPushMessage
  | TunnelHealthMessage
  | NoticeMessage;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a message as UTF-8 JSON. */
export function encodeControl(message: Message): Uint8Array {
  return encoder.encode(JSON.stringify(message));
}

type Shape = Record<
  string,
  "string" | "number" | "boolean" | "object" | "string?" | "number?"
>;

const SHAPES: Record<Message["type"], Shape> = {
  hello: { version: "number", min_version: "number", software: "string", client_id: "string?" },
  auth: { method: "string", token: "string" },
  ack: { session_id: "string", heartbeat_interval: "number" },
  error: { code: "string", message: "string", retry_after: "number?" },
  control: { action: "string", tunnel_id: "string" },
  tunnel_status: {
    tunnel_id: "string",
    status: "string",
    remote_port: "number?",
    public_addr: "string?",
    error: "string?",
  },
  heartbeat: { timestamp: "number", status: "string" },
  config_push: { tunnels: "object" },
  tunnel_health: { tunnel_id: "string", healthy: "boolean", reason: "string?" },
  notice: { tunnel_id: "string", code: "string", message: "string" },
};

const ENUMS: Record<string, readonly string[]> = {
  "auth.method": ["token"],
  "control.action": ["create_tunnel", "destroy_tunnel", "heartbeat"],
  "tunnel_status.status": ["active", "failed", "closed"],
  "heartbeat.status": ["online", "draining"],
  "error.code": [
    "version_mismatch",
    "auth_failed",
    "bad_request",
    "limit",
    "server_busy",
    "unavailable",
  ],
};

/**
 * Decodes and checks one control message. The seed's `{type: "control",
 * action: "heartbeat"}` form is accepted as a heartbeat.
 *
 * @throws {ProtocolError} on invalid UTF-8 or JSON, an unknown type, or a
 * missing or mistyped field; the message names the field.
 */
export function decodeControl(bytes: Uint8Array): Message {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new ProtocolError("Control message is not valid UTF-8 JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("Control message must be a JSON object");
  }
  const obj = value as Record<string, unknown>;
  const type = obj.type;
  if (typeof type !== "string" || !Object.hasOwn(SHAPES, type)) {
    throw new ProtocolError(`Unknown control message type ${JSON.stringify(type)}`);
  }
  if (type === "control" && obj.action === "heartbeat") {
    return {
      type: "heartbeat",
      timestamp: typeof obj.timestamp === "number" ? obj.timestamp : Date.now(),
      status: "online",
    };
  }
  for (const [field, kind] of Object.entries(SHAPES[type as Message["type"]])) {
    const v = obj[field];
    const optional = kind.endsWith("?");
    if (v === undefined && optional) continue;
    const expected = kind.replace("?", "");
    const actual: string = typeof v;
    if (actual !== expected) {
      throw new ProtocolError(
        `Control message "${type}": field "${field}" must be a ${expected}`,
      );
    }
    const allowed = ENUMS[`${type}.${field}`];
    if (allowed && !allowed.includes(v as string)) {
      throw new ProtocolError(
        `Control message "${type}": field "${field}" must be one of ${allowed.join(", ")}`,
      );
    }
  }
  if (type === "control" && obj.action === "create_tunnel") {
    const config = obj.config;
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      throw new ProtocolError(`Control message "control": create_tunnel needs a "config" object`);
    }
    const c = config as Record<string, unknown>;
    if (!TUNNEL_TYPES.includes(c.protocol as TunnelType)) {
      throw new ProtocolError(
        `Control message "control": config.protocol must be one of ${TUNNEL_TYPES.join(", ")}`,
      );
    }
    for (const port of ["local_port", "remote_port"]) {
      const p = c[port];
      if (p === undefined && port === "remote_port") continue;
      if (typeof p !== "number" || !Number.isInteger(p) || p < 0 || p > 65535) {
        throw new ProtocolError(
          `Control message "control": config.${port} must be an integer 0-65535`,
        );
      }
    }
  }
  if (type === "config_push") checkPushedTunnels(obj.tunnels);
  if (
    type === "tunnel_status" && obj.urls !== undefined &&
    !(Array.isArray(obj.urls) && obj.urls.every((u) => typeof u === "string"))
  ) {
    throw new ProtocolError(
      `Control message "tunnel_status": field "urls" must be a list of strings`,
    );
  }
  return obj as unknown as Message;
}

function checkPushedTunnels(tunnels: unknown): void {
  const bad = (what: string) => {
    throw new ProtocolError(`Control message "config_push": ${what}`);
  };
  if (!Array.isArray(tunnels)) bad(`field "tunnels" must be an array`);
  for (const [i, t] of (tunnels as unknown[]).entries()) {
    if (typeof t !== "object" || t === null || Array.isArray(t)) {
      bad(`tunnels[${i}] must be an object`);
    }
    const o = t as Record<string, unknown>;
    if (typeof o.name !== "string" || !o.name) bad(`tunnels[${i}].name must be a non-empty string`);
    if (!TUNNEL_TYPES.includes(o.type as TunnelType)) {
      bad(`tunnels[${i}].type must be one of ${TUNNEL_TYPES.join(", ")}`);
    }
    if (typeof o.local_addr !== "string") bad(`tunnels[${i}].local_addr must be a string`);
    const lp = o.local_port;
    if (typeof lp !== "number" || !Number.isInteger(lp) || lp < 0 || lp > 65535) {
      bad(`tunnels[${i}].local_port must be an integer 0-65535`);
    }
    if (o.status !== "active" && o.status !== "failed") {
      bad(`tunnels[${i}].status must be active or failed`);
    }
    if (o.remote_port !== undefined && typeof o.remote_port !== "number") {
      bad(`tunnels[${i}].remote_port must be a number`);
    }
    if (o.error !== undefined && typeof o.error !== "string") {
      bad(`tunnels[${i}].error must be a string`);
    }
    if (o.proxy_protocol !== undefined && o.proxy_protocol !== "v1" && o.proxy_protocol !== "v2") {
      bad(`tunnels[${i}].proxy_protocol must be v1 or v2`);
    }
  }
}

/**
 * The wire check of a `create_tunnel` request for the tunnel `name`: what
 * the tunnel spec finds wrong with it (empty when nothing). Keys the spec
 * does not know are ignored: they are a newer client's settings.
 *
 * @example
 * ```ts
 * import { checkTunnelRequest } from "./messages.ts";
 * const [p] = checkTunnelRequest("db", { protocol: "udp", local_port: 53, compression: "gzip" });
 * console.assert(p?.field === "compression");
 * ```
 */
export function checkTunnelRequest(name: string, request: TunnelRequest): SpecProblem[] {
  const { protocol, ...settings } = request;
  return checkTunnel({ ...settings, name, type: protocol }, { unknownKeys: "ignore" });
}

/**
 * Checks a peer's `hello` against this build; returns the version to speak
 * or an error text that tells the user which side to upgrade.
 */
export function negotiateVersion(
  peer: Pick<HelloMessage, "version" | "min_version" | "software">,
  peerRole: "client" | "server",
): { version: number } | { error: string } {
  const version = Math.min(peer.version, PROTOCOL_VERSION);
  if (version < MIN_PROTOCOL_VERSION) {
    const upgrade = peerRole === "client" ? "burrow (the client)" : "burrowd (the server)";
    return {
      error: `Protocol version ${peer.version} of ${peer.software} is too old; ` +
        `this side needs at least ${MIN_PROTOCOL_VERSION}: upgrade ${upgrade}`,
    };
  }
  if (version < peer.min_version) {
    const upgrade = peerRole === "client" ? "burrowd (the server)" : "burrow (the client)";
    return {
      error: `${peer.software} needs protocol version ${peer.min_version} or newer, ` +
        `this side speaks ${PROTOCOL_VERSION}: upgrade ${upgrade}`,
    };
  }
  return { version };
}

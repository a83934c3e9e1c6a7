/**
 * Who may use an HTTP tunnel, asked before anything of a visitor reaches its
 * client: the IP policy and the connection limit (the tunnel's
 * {@linkcode VisitorGuard}), HTTP basic auth, and whether the client is
 * still connected. A refusal is a status and words for the visitor; how it
 * is sent (a splice-engine answer, a node:http response, a closed TLS
 * connection) and whether it is counted are the caller's.
 *
 * @module
 */

import { timingSafeEqualTextSync } from "../../util/mod.ts";
import type { VisitorGuard } from "./guards.ts";

/** Why a visitor is refused: the HTTP status, words for them, and any headers (a 401's challenge). */
export interface Refusal {
  /** 403 (IP policy), 401 (basic auth), 503 (connection limit) or 502 (client offline). */
  status: number;
  /** What the visitor is told. */
  message: string;
  /** Headers of the answer. */
  headers?: Record<string, string>;
}

/** What the gate asks of the tunnel it guards. */
export interface GatedTunnel {
  /** Tunnel name (the basic-auth realm, and the offline message). */
  readonly name: string;
  /** Whether its client connection is still usable. */
  readonly online: boolean;
  /** Requests (and upgraded or passed-through connections) in flight. */
  readonly activeConnections: number;
}

/** Options of {@linkcode HttpGate}. */
export interface HttpGateOptions {
  /** The tunnel's IP policy and connection limit. */
  guard: VisitorGuard;
  /** HTTP basic auth visitors must pass. Default none. */
  basicAuth?: { user: string; password: string } | undefined;
}

/**
 * The refusals of one HTTP tunnel, in the order they are asked: IP policy,
 * basic auth, connection limit, client offline.
 *
 * @example
 * ```ts
 * import { nullLogger } from "../../util/logger.ts";
 * import { VisitorGuard } from "./guards.ts";
 * import { HttpGate } from "./http_gate.ts";
 * const tunnel = { name: "web", online: true, activeConnections: 0 };
 * const gate = new HttpGate(tunnel, {
 *   guard: new VisitorGuard("web", { logger: nullLogger }),
 *   basicAuth: { user: "ann", password: "s3cret" },
 * });
 * console.assert(gate.refusal("192.0.2.1", undefined)?.status === 401);
 * console.assert(gate.refusal("192.0.2.1", `Basic ${btoa("ann:s3cret")}`) === null);
 * ```
 */
export class HttpGate {
  #tunnel: GatedTunnel;
  #guard: VisitorGuard;
  #basicAuth: { user: string; password: string } | undefined;

  /** The gate of `tunnel`. */
  constructor(tunnel: GatedTunnel, options: HttpGateOptions) {
    this.#tunnel = tunnel;
    this.#guard = options.guard;
    this.#basicAuth = options.basicAuth;
  }

  /**
   * The answer to refuse a visitor from `remote` (sending `authorization`)
   * with before anything reaches the client, or `null` to go ahead.
   */
  refusal(remote: string, authorization: string | undefined): Refusal | null {
    const guard = this.#guard;
    const tunnel = this.#tunnel;
    if (!guard.admits(remote)) {
      return { status: 403, message: "Forbidden: your address may not use this tunnel" };
    }
    const auth = this.#basicAuth;
    if (auth && !checkBasic(authorization, auth)) {
      return {
        status: 401,
        message: "This tunnel needs a user name and password",
        headers: { "www-authenticate": `Basic realm="${tunnel.name}", charset="UTF-8"` },
      };
    }
    if (guard.full(tunnel.activeConnections)) {
      return { status: 503, message: "Too many requests in flight for this tunnel; try again" };
    }
    if (!tunnel.online) {
      return {
        status: 502,
        message: `Tunnel "${tunnel.name}" is offline: its client is not connected`,
      };
    }
    return null;
  }
}

/** Whether the Authorization `header` carries the user and password of `auth`. */
function checkBasic(
  header: string | undefined,
  auth: { user: string; password: string },
): boolean {
  if (!header?.startsWith("Basic ")) return false;
  let decoded: string;
  try {
    decoded = atob(header.slice(6).trim());
  } catch {
    return false;
  }
  // Hashed first, so the comparison's time depends on neither length nor content.
  return timingSafeEqualTextSync(decoded, `${auth.user}:${auth.password}`);
}

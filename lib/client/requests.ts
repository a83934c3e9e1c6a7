/**
 * What the client asks the server for each tunnel: the `create_tunnel`
 * settings built from a tunnel of its configuration (secrets revealed here
 * only, on their way into the TLS connection).
 *
 * @example
 * ```ts ignore
 * import { tunnelRequest } from "./requests.ts";
 * send(mux, { type: "control", action: "create_tunnel", tunnel_id: t.name, config: tunnelRequest(t) });
 * ```
 *
 * @module
 */

import type { TunnelConfig } from "../config/mod.ts";
import type { TunnelRequest } from "../protocol/mod.ts";

/** The `create_tunnel` settings of `tunnel`; keys left at their defaults are not sent. */
export function tunnelRequest(tunnel: TunnelConfig): TunnelRequest {
  return {
    protocol: tunnel.type,
    local_port: tunnel.local_port,
    remote_port: tunnel.remote_port ?? 0,
    ...(tunnel.type === "udp" ? { session_timeout: tunnel.session_timeout ?? 30_000 } : {}),
    ...(tunnel.probe ? { probe: true } : {}),
    ...(tunnel.compression === "gzip" ? { compression: "gzip" } : {}),
    ...httpRequestFields(tunnel),
    ...(tunnel.allow_ips?.length ? { allow_ips: tunnel.allow_ips } : {}),
    ...(tunnel.deny_ips?.length ? { deny_ips: tunnel.deny_ips } : {}),
    ...(tunnel.group !== undefined
      ? {
        group: tunnel.group,
        group_key: tunnel.group_key?.reveal() ?? "",
        load_balance: tunnel.load_balance ?? "round_robin",
        weight: tunnel.weight ?? 1,
      }
      : {}),
  };
}

/** The HTTP keys of a tunnel request (the server applies them). */
function httpRequestFields(tunnel: TunnelConfig): Record<string, unknown> {
  if (tunnel.type !== "http" && tunnel.type !== "https") return {};
  return {
    ...(tunnel.custom_domains?.length ? { custom_domains: tunnel.custom_domains } : {}),
    ...(tunnel.subdomain ? { subdomain: tunnel.subdomain } : {}),
    ...(tunnel.locations ? { locations: tunnel.locations } : {}),
    ...(tunnel.custom_headers ? { custom_headers: tunnel.custom_headers } : {}),
    ...(tunnel.request_headers ? { request_headers: tunnel.request_headers } : {}),
    ...(tunnel.response_headers ? { response_headers: tunnel.response_headers } : {}),
    ...(tunnel.basic_auth
      ? {
        basic_auth: { user: tunnel.basic_auth.user, password: tunnel.basic_auth.password.reveal() },
      }
      : {}),
    ...(tunnel.ssl_cert ? { ssl_cert: tunnel.ssl_cert } : {}),
    ...(tunnel.tls_passthrough ? { tls_passthrough: true } : {}),
  };
}

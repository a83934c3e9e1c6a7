/**
 * HTTP and HTTPS tunnels: their request settings read (the tunnel spec
 * checked them), their host names routed on the shared vhost port (or on a port
 * of their own), and an {@linkcode HttpTunnel} that carries each request.
 * HTTP groups are members of one route on the vhost port.
 *
 * @module
 */

import type { HeaderRulesSpec, TunnelRequest, TunnelSpec } from "../../protocol/mod.ts";
import { patternCovers } from "../../util/mod.ts";
import type { Strategy } from "../balancer.ts";
import { HttpFront } from "../http_front.ts";
import type { OpenRequest, TunnelContext, TunnelKind } from "./context.ts";
import { type HeaderRules, HttpTunnel } from "./http_tunnel.ts";
import { groupSettings } from "./membership.ts";

/** The HTTP settings of a tunnel request, checked. */
interface HttpSpec {
  domains: string[];
  subdomain: string | undefined;
  locations: string[] | undefined;
  requestHeaders: HeaderRules;
  responseHeaders: HeaderRules;
  basicAuth: { user: string; password: string } | undefined;
  passthrough: boolean;
  autoCert: boolean;
  group: { name: string; key: string } | undefined;
  strategy: Strategy;
  weight: number;
}

/**
 * The HTTP keys of `request`, as the tunnel uses them: host names in lower
 * case, `custom_headers` under the request's `set` rules, removals in lower
 * case. The tunnel spec checked them before (see `openTunnel`).
 */
function httpSpec(request: TunnelRequest): HttpSpec {
  const listed = [...request.custom_domains ?? [], ...(request.domain ? [request.domain] : [])];
  const rules = (value: unknown, also: Record<string, string> = {}): HeaderRules => {
    const { set = {}, remove = [] } = (value ?? {}) as HeaderRulesSpec;
    // Own properties even for a header called "__proto__"; the rules' `set` wins.
    const entries = [...Object.entries(also), ...Object.entries(set)];
    return { set: Object.fromEntries(entries), remove: remove.map((r) => r.toLowerCase()) };
  };
  const basicAuth = request.basic_auth as TunnelSpec["basic_auth"];
  const group = request.group === undefined ? undefined : groupSettings(request);
  return {
    domains: [...new Set(listed.map((d) => d.toLowerCase()))],
    subdomain: request.subdomain,
    locations: request.locations as string[] | undefined,
    requestHeaders: rules(
      request.request_headers,
      request.custom_headers as Record<string, string>,
    ),
    responseHeaders: rules(request.response_headers),
    basicAuth: basicAuth && { user: basicAuth.user, password: basicAuth.password },
    passthrough: request.tls_passthrough === true,
    autoCert: request.ssl_cert === "auto",
    group: group && { name: group.name, key: group.key },
    strategy: group?.strategy ?? "round_robin",
    weight: group?.weight ?? 1,
  };
}

/** The public URLs of an HTTP(S) tunnel, for the client to print. */
function urlsOf(
  tunnel: {
    type: "http" | "https";
    hosts: string[];
    location: string;
    port: number;
    autoCert: boolean;
  },
  httpsPort: number | undefined,
): string[] {
  const urls: string[] = [];
  const hostPart = (host: string) => host === "*" ? "<any host>" : host;
  const url = (scheme: string, host: string, port: number) =>
    `${scheme}://${hostPart(host)}${port === (scheme === "https" ? 443 : 80) ? "" : `:${port}`}${
      tunnel.location === "/" ? "" : tunnel.location
    }`;
  for (const host of tunnel.hosts) {
    if (tunnel.type === "http") urls.push(url("http", host, tunnel.port));
    if (httpsPort !== undefined && (tunnel.type === "https" || tunnel.autoCert)) {
      urls.push(url("https", host, httpsPort));
    }
  }
  return urls;
}

/**
 * Opens an HTTP(S) tunnel: its host names (custom domains, the subdomain
 * under `subdomain_host`, or every host when neither is given) on the
 * shared vhost port, or on a port of its own when `remote_port` names
 * another one. A request naming a group joins that group's route.
 */
async function openHttp(
  { name, request, policy }: OpenRequest,
  context: TunnelContext,
): Promise<HttpTunnel | string> {
  const config = context.config;
  const vhosts = context.vhosts;
  const type = request.protocol as "http" | "https";
  const spec = httpSpec(request);
  const hosts = [...spec.domains];
  if (spec.subdomain) {
    if (!config.subdomain_host) {
      return "This server gives no subdomains (server.subdomain_host is not set); " +
        "use custom_domains (burrow --domain) instead";
    }
    hosts.push(`${spec.subdomain}.${config.subdomain_host}`.toLowerCase());
  }
  const allowedDomains = context.allowedDomains;
  if (allowedDomains) {
    const outside = hosts.find((h) => !allowedDomains.some((d) => patternCovers(d, h)));
    if (outside !== undefined || !hosts.length) {
      return `This token may not serve host ${
        outside !== undefined ? `"${outside}"` : "names other than its own"
      } (allowed: ${allowedDomains.join(", ")})`;
    }
  }
  const requested = request.remote_port ?? 0;
  let front: HttpFront | null = type === "https" ? vhosts.https : vhosts.http;
  let own: HttpFront | null = null;
  if (type === "https" && !front) {
    return "This server has no HTTPS port (server.vhost_https_port is not set)";
  }
  if (requested !== 0 && requested !== front?.port) {
    if (type === "https") {
      return `https tunnels are served on the HTTPS port ${
        front!.port
      }; remove remote_port ${requested}`;
    }
    // A port of its own, serving every host name that reaches it.
    const candidates = context.ports(requested);
    if (typeof candidates === "string") return candidates;
    try {
      own = await HttpFront.listen({
        hostname: config.bind_addr,
        port: requested,
        scheme: "http",
        logger: context.logger,
        headerTimeout: config.handshake_timeout ?? 10_000,
      });
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) return context.portTaken(requested, "tcp");
      return `Port ${requested} is not available: ${(error as Error).message}`;
    }
    front = own;
    hosts.length = 0;
    hosts.push("*");
  }
  if (!front) {
    return "This server has no HTTP port (server.vhost_http_port is not set); " +
      "give the tunnel a remote_port of its own";
  }
  if (!hosts.length) hosts.push("*");
  const alsoHttps = type === "http" && spec.autoCert && !own ? vhosts.https : null;
  if (type === "http" && spec.autoCert && !vhosts.https) {
    context.logger.warn("ssl_cert: auto ignored: this server has no HTTPS port", { tunnel: name });
  }
  const routers = [front.router, ...(alsoHttps ? [alsoHttps.router] : [])];
  const autoCert = spec.autoCert && !own;
  const tunnel: HttpTunnel = new HttpTunnel({
    ...context.guards(name, policy),
    name,
    type,
    hosts,
    locations: spec.locations,
    port: front.port,
    mux: context.mux,
    requestHeaders: spec.requestHeaders,
    responseHeaders: spec.responseHeaders,
    basicAuth: spec.basicAuth,
    passthrough: spec.passthrough,
    autoCert,
    group: spec.group,
    weight: spec.weight,
    urls: urlsOf(
      { type, hosts, location: spec.locations?.[0] ?? "/", port: front.port, autoCert },
      vhosts.https?.port,
    ),
    onConnection: (event) => context.onConnection(tunnel, event),
    onFirstByte: (ms) => context.onFirstByte(tunnel, ms),
    onClose: () => {
      for (const router of routers) router.remove(tunnel);
      if (own) void own.close();
    },
  });
  for (const [i, router] of routers.entries()) {
    const refused = router.add(tunnel, spec.strategy);
    if (refused) {
      for (const added of routers.slice(0, i)) added.remove(tunnel);
      await own?.close();
      return refused;
    }
  }
  if (spec.group) {
    context.logger.info("group member joined", {
      group: spec.group.name,
      tunnel: name,
      client_id: context.clientId,
    });
  }
  return tunnel;
}

/** HTTP (`http`) or HTTPS (`https`) tunnels: routes on a vhost port, alone or in a group. */
export const httpTunnels: TunnelKind = {
  // A group of HTTP tunnels is one route whose members the vhost's balancer picks.
  open: openHttp,
  join: openHttp,
  requestOf(row) {
    return {
      ...row.options,
      protocol: row.type,
      local_port: row.local_port ?? 0,
      remote_port: row.remote_port ?? 0,
      custom_domains: row.custom_domains,
      ...(row.subdomain ? { subdomain: row.subdomain } : {}),
    };
  },
  publicSide: (row) =>
    `|${JSON.stringify(row.custom_domains)}|${row.subdomain}|${JSON.stringify(row.options)}`,
};

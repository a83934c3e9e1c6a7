/**
 * HTTP and HTTPS tunnels: their request settings checked (they come from
 * the wire), their host names routed on the shared vhost port (or on a port
 * of their own), and an {@linkcode HttpTunnel} that carries each request.
 * HTTP groups are members of one route on the vhost port.
 *
 * @module
 */

import type { TunnelRequest } from "../../protocol/mod.ts";
import { DNS_LABEL, HEADER_NAME, HOST_PATTERN, patternCovers } from "../../util/mod.ts";
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

/** Reads and checks the HTTP keys of `request` (they come from the wire: trust nothing). */
function httpSpec(request: TunnelRequest): HttpSpec | string {
  const domains: string[] = [];
  const listed = request.custom_domains ?? [];
  if (!Array.isArray(listed)) return "custom_domains must be a list of host names";
  for (const d of [...listed, ...(request.domain ? [request.domain] : [])]) {
    if (typeof d !== "string" || !HOST_PATTERN.test(d)) {
      return `${JSON.stringify(d)} is not a host name (custom_domains)`;
    }
    if (!domains.includes(d.toLowerCase())) domains.push(d.toLowerCase());
  }
  const subdomain = request.subdomain;
  if (
    subdomain !== undefined &&
    !(typeof subdomain === "string" && DNS_LABEL.test(subdomain))
  ) {
    return `subdomain ${JSON.stringify(subdomain)} is not a DNS label`;
  }
  let locations: string[] | undefined;
  if (request.locations !== undefined) {
    if (
      !Array.isArray(request.locations) ||
      !request.locations.every((l) => typeof l === "string" && /^\/\S*$/.test(l))
    ) {
      return "locations must be a list of paths starting with /";
    }
    locations = request.locations as string[];
  }
  const rules = (value: unknown, what: string): HeaderRules | string => {
    const out: HeaderRules = { set: {}, remove: [] };
    if (value === undefined) return out;
    if (typeof value !== "object" || value === null) return `${what} must be a mapping`;
    const { set = {}, remove = [] } = value as { set?: unknown; remove?: unknown };
    if (typeof set !== "object" || set === null) return `${what}.set must be a mapping`;
    for (const [k, v] of Object.entries(set)) {
      if (!HEADER_NAME.test(k) || typeof v !== "string" || /[\r\n\0]/.test(v)) {
        return `${what}.set: ${JSON.stringify(k)} is not a valid header`;
      }
      out.set[k] = v;
    }
    if (
      !Array.isArray(remove) || !remove.every((r) => typeof r === "string" && HEADER_NAME.test(r))
    ) {
      return `${what}.remove must be a list of header names`;
    }
    out.remove = remove.map((r: string) => r.toLowerCase());
    return out;
  };
  const requestHeaders = rules(request.request_headers, "request_headers");
  if (typeof requestHeaders === "string") return requestHeaders;
  const custom = rules({ set: request.custom_headers ?? {} }, "custom_headers");
  if (typeof custom === "string") return custom;
  requestHeaders.set = { ...custom.set, ...requestHeaders.set };
  const responseHeaders = rules(request.response_headers, "response_headers");
  if (typeof responseHeaders === "string") return responseHeaders;
  let basicAuth: { user: string; password: string } | undefined;
  if (request.basic_auth !== undefined) {
    const a = request.basic_auth as { user?: unknown; password?: unknown };
    if (
      typeof a !== "object" || a === null || typeof a.user !== "string" || !a.user ||
      a.user.includes(":") || typeof a.password !== "string" || !a.password
    ) {
      return 'basic_auth needs a user (without ":") and a password';
    }
    basicAuth = { user: a.user, password: a.password };
  }
  const passthrough = request.tls_passthrough === true;
  if (passthrough && request.protocol !== "https") return "Only https tunnels pass TLS through";
  const autoCert = request.ssl_cert === "auto";
  let group: { name: string; key: string } | undefined;
  let strategy: Strategy = "round_robin";
  let weight = 1;
  if (request.group !== undefined) {
    const settings = groupSettings(request);
    if (typeof settings === "string") return settings;
    group = { name: settings.name, key: settings.key };
    strategy = settings.strategy;
    weight = settings.weight;
  }
  return {
    domains,
    subdomain: subdomain as string | undefined,
    locations,
    requestHeaders,
    responseHeaders,
    basicAuth,
    passthrough,
    autoCert,
    group,
    strategy,
    weight,
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
  if (typeof spec === "string") return spec;
  const hosts = [...spec.domains];
  if (spec.subdomain) {
    if (!config.subdomain_host) {
      return `This server gives no subdomains (server.subdomain_host is not set); use custom_domains`;
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
  compresses: false,
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

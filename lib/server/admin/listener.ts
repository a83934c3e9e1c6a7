/**
 * The admin port (`server.admin`, default 127.0.0.1:7500): `/healthz` (the
 * process answers), `/readyz` (control listener up and database reachable),
 * `/metrics` (Prometheus text) and the REST API under `/api/v1`, with CORS
 * for the origins in `server.admin.cors_origins`.
 *
 * @module
 */

import { AdminApi } from "./api.ts";

import type { AdminConfig } from "../../config/mod.ts";
import type { Logger } from "../../util/mod.ts";
import type { BurrowServer } from "../server.ts";

/** A running admin listener. */
export interface AdminServer {
  /** The bound port (the real one when 0 was asked). */
  readonly port: number;
  /** Stops listening. */
  close(): Promise<void>;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

/** Readiness of `server`: what is not ready, if anything. */
export function readiness(
  server: BurrowServer,
): { ready: boolean; checks: Record<string, string> } {
  const checks: Record<string, string> = {
    control_listener: server.listening ? "ok" : "not listening",
    database: !server.store ? "none" : server.store.available ? "ok" : "unreachable",
  };
  return { ready: Object.values(checks).every((v) => v === "ok" || v === "none"), checks };
}

/**
 * Starts the admin listener.
 *
 * @throws {Error} naming `server.admin.bind_port` when the port is taken.
 */
export function startAdmin(server: BurrowServer, config: AdminConfig, logger: Logger): AdminServer {
  const log = logger.child("admin");
  const api = new AdminApi(server, log);
  const origins = new Set(config.cors_origins ?? []);
  const cors = (request: Request, response: Response): Response => {
    const origin = request.headers.get("origin");
    if (!origin || !origins.has(origin)) return response;
    response.headers.set("access-control-allow-origin", origin);
    response.headers.set("vary", "origin");
    return response;
  };
  const ready = Promise.withResolvers<number>();
  let http: Deno.HttpServer<Deno.NetAddr>;
  try {
    http = Deno.serve({
      hostname: config.bind_addr,
      port: config.bind_port,
      onListen: (addr) => ready.resolve(addr.port),
      onError: (error) => {
        log.error("admin request failed", { error });
        return json(500, { error: "internal error" });
      },
    }, async (request, info) => {
      const url = new URL(request.url);
      if (url.pathname === "/api/v1" || url.pathname.startsWith("/api/v1/")) {
        if (request.method === "OPTIONS") {
          const origin = request.headers.get("origin");
          if (!origin || !origins.has(origin)) return new Response(null, { status: 403 });
          return new Response(null, {
            status: 204,
            headers: {
              "access-control-allow-origin": origin,
              "access-control-allow-methods": "GET, POST, PATCH, DELETE, OPTIONS",
              "access-control-allow-headers": "authorization, content-type",
              "access-control-max-age": "600",
              vary: "origin",
            },
          });
        }
        return cors(request, await api.handle(request, url, { remote: info.remoteAddr.hostname }));
      }
      if (request.method !== "GET" && request.method !== "HEAD") {
        return json(405, { error: `${request.method} is not allowed here` });
      }
      switch (url.pathname) {
        case "/.well-known/jwks.json":
          // Public halves of the token signing keys, for services that verify Burrow tokens.
          return json(200, server.tokens ? server.tokens.jwks() : { keys: [] });
        case "/metrics":
          if (!server.config.metrics) {
            return json(404, { error: "Metrics are off (server.metrics: false)" });
          }
          return new Response(await server.metrics.render(), {
            headers: { "content-type": server.metrics.contentType },
          });
        case "/healthz":
          return json(200, { status: "ok" });
        case "/readyz": {
          const { ready, checks } = readiness(server);
          return json(ready ? 200 : 503, { status: ready ? "ready" : "not ready", checks });
        }
        default:
          return json(404, { error: `No such endpoint: ${url.pathname}` });
      }
    });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Admin port ${config.bind_addr}:${config.bind_port} is already in use ` +
          `(server.admin.bind_port; 0 picks a free one)`,
      );
    }
    throw error;
  }
  ready.promise.then((p) => log.info("admin listening", { addr: config.bind_addr, port: p }));
  return {
    // Bound by now (the real port when 0 was asked), not once the log line is out.
    get port() {
      return http.addr.port;
    },
    async close() {
      await http.shutdown();
    },
  };
}

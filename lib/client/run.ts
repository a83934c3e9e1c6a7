/**
 * One run of the client program: the logger its configuration asks for,
 * the local status endpoint, the live status line on a terminal, and the
 * client until `signal` aborts; resolves to the program's exit code.
 *
 * @example
 * ```ts ignore
 * import { runClient } from "./run.ts";
 * const code = await runClient(config, { signal: AbortSignal.timeout(60_000) });
 * ```
 *
 * @module
 */

import type { ClientConfig, InspectConfig } from "../config/mod.ts";
import type { ProxyProtocolVersion } from "../protocol/mod.ts";
import { type Logger, loggerFromSettings, splitHostPort } from "../util/mod.ts";
import { type InspectServer, Recorder, startInspectServer } from "./inspect/mod.ts";
import { BurrowClient } from "./client.ts";
import { AuthenticationError, NotBurrowdError } from "./errors.ts";
import { formatRegistration, type TunnelState } from "./state.ts";
import { liveStatusLine, startStatusEndpoint, type StatusEndpoint } from "./status.ts";

/** Exit codes of `burrow`. */
export const CLIENT_EXIT = {
  /** A clean shutdown. */
  ok: 0,
  /** A fatal error. */
  fatal: 1,
  /**
   * A usage or configuration error, a server address that is not burrowd;
   * in quick mode also the server refusing (or closing) its one tunnel:
   * what was asked cannot be had as asked.
   */
  usage: 2,
  /** The server refused the token. */
  auth: 3,
} as const;

/** Options of {@linkcode runClient}. */
export interface RunClientOptions {
  /** Stops the client; its reason (e.g. `"SIGTERM"`) is logged. */
  signal: AbortSignal;
  /**
   * Quick mode (`burrow tcp 22 …`): print each public address as its tunnel
   * comes up, and end (exit code 2) with the reason when the server refuses
   * or closes the tunnel. Otherwise: print a summary line once the server
   * has answered for every tunnel of a connection.
   */
  quick?: boolean;
}

/** Runs the client of `config` until `signal` aborts or a fatal error; resolves to the exit code. */
export async function runClient(config: ClientConfig, options: RunClientOptions): Promise<number> {
  const logger = loggerFromSettings(config.log);
  const log = logger.child("client");
  let stopLine: (() => void) | null = null;
  /** Prints a line on stdout, above the live status line if there is one. */
  const say = (text: string) => {
    if (stopLine) Deno.stdout.writeSync(new TextEncoder().encode("\r\x1b[K"));
    console.log(text);
  };
  // Quick mode has one tunnel: refused or closed, there is nothing left to run for.
  const refusal = new AbortController();
  const onTunnel = (state: TunnelState) => {
    if (state.managed) return;
    if (state.status === "failed" || state.status === "closed") {
      const what = state.status === "failed" ? "refused" : "closed by the server";
      if (!refusal.signal.aborted) refusal.abort(`tunnel "${state.name}" ${what}: ${state.error}`);
      return;
    }
    if (state.status !== "active") return;
    const tunnel = config.tunnels.find((t) => t.name === state.name)!;
    const local = `${tunnel.local_addr}:${tunnel.local_port}`;
    for (const url of state.urls ?? [`${tunnel.type}://${state.publicAddr}`]) {
      say(`Forwarding  ${url} -> ${local}`);
    }
  };
  const recorder = config.inspect
    ? new Recorder({ maxRequests: config.inspect.max_requests, maxBody: config.inspect.max_body })
    : null;
  // A replay to a service that expects a PROXY protocol header sends one (managed tunnels too).
  const proxyProtocol = (name: string) => client.tunnelConfig(name)?.proxy_protocol;
  const inspect = config.inspect && recorder
    ? await startInspector(config.inspect, recorder, log, options.quick === true, proxyProtocol)
    : null;
  if (inspect) say(`Inspect  ${inspect.url}`);
  const client: BurrowClient = new BurrowClient(config, {
    logger,
    recorder: recorder ?? undefined,
    ...(options.quick
      ? { onTunnel }
      : { onRegistered: (registration) => say(formatRegistration(registration)) }),
  });
  let status: StatusEndpoint | null = null;
  try {
    status = await startStatusEndpoint(client, config.status, log);
  } catch (error) {
    log.warn("status endpoint not started; burrow status cannot see this client", {
      addr: `${config.status.bind_addr}:${config.status.bind_port}`,
      error,
    });
  }
  stopLine = Deno.stdout.isTerminal() && Deno.env.get("BURROW_NO_STATUS_LINE") === undefined
    ? liveStatusLine(client)
    : null;
  const onAbort = () => log.info("stopping", { signal: String(options.signal.reason) });
  options.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await client.run(AbortSignal.any([options.signal, refusal.signal]));
    log.info("stopped");
    if (refusal.signal.aborted && !options.signal.aborted) {
      console.error(`burrow: ${refusal.signal.reason}`);
      return CLIENT_EXIT.usage;
    }
    return CLIENT_EXIT.ok;
  } catch (error) {
    if (error instanceof AuthenticationError) {
      console.error(
        `burrow: authentication failed: ${error.message} (check auth_token / BURROW_TOKEN)`,
      );
      return CLIENT_EXIT.auth;
    }
    if (error instanceof NotBurrowdError) {
      log.error("not burrowd", { error: error.message });
      console.error(`burrow: ${error.message}`);
      return CLIENT_EXIT.usage;
    }
    log.error("fatal", { error: (error as Error).message });
    console.error(`burrow: ${(error as Error).message}`);
    return CLIENT_EXIT.fatal;
  } finally {
    options.signal.removeEventListener("abort", onAbort);
    stopLine?.();
    await status?.close();
    await inspect?.close();
    recorder?.close();
  }
}

/**
 * Starts the inspector's API on `settings.addr`; in quick mode a busy port
 * moves it to one of the next nine, as several quick clients may run at
 * once. Logs and resolves to null when it cannot listen: the tunnels run
 * without it.
 */
async function startInspector(
  settings: InspectConfig,
  recorder: Recorder,
  log: Logger,
  quick: boolean,
  proxyProtocol: (tunnel: string) => ProxyProtocolVersion | undefined,
): Promise<InspectServer | null> {
  const addr = splitHostPort(settings.addr)!;
  const tries = quick && addr.port !== 0 ? 10 : 1;
  for (let i = 0; i < tries; i++) {
    try {
      const server = await startInspectServer(recorder, {
        hostname: addr.hostname,
        port: addr.port + i,
        auth: settings.auth,
        proxyProtocol,
      });
      log.info("inspector listening", {
        url: server.url,
        max_requests: settings.max_requests,
        max_body: settings.max_body,
        ...(settings.auth ? { auth: "basic (client.inspect.auth)" } : {}),
      });
      return server;
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse && i + 1 < tries) continue;
      log.warn("inspector not started; the tunnels run without it", {
        addr: settings.addr,
        error,
      });
      return null;
    }
  }
  return null;
}

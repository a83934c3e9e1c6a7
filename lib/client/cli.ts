/**
 * The `burrow` command line: its commands, flags, help text and exit codes,
 * built with commander. The main parses `Deno.args` with it; each command
 * runs through {@linkcode runClient} or the status readers.
 *
 * @example
 * ```ts ignore
 * import { clientProgram } from "./cli.ts";
 * await clientProgram({ exit: Deno.exit, shutdownSignal: () => new AbortController().signal })
 *   .parseAsync(["status"], { from: "user" });
 * ```
 *
 * @module
 */

import { type Command, Option } from "commander";
import { newProgram } from "../util/cli.ts";
import {
  clientConfigFromObject,
  ConfigError,
  loadClientConfig,
  parseServerAddr,
} from "../config/mod.ts";
import { runClient } from "./run.ts";
import { fetchStatus, formatStatus, readStatuses } from "./status.ts";

interface CommonFlags {
  logLevel?: "debug" | "info" | "warn" | "error";
  logFormat?: "json" | "text";
}

interface QuickFlags extends CommonFlags {
  subdomain?: string;
  domain?: string[];
  basicAuth?: string;
  hostHeader?: string;
  server?: string[];
  haConnections?: number;
  token?: string;
  tokenFile?: string;
  remotePort: string;
  localAddr: string;
  name?: string;
  fingerprint?: string;
  caFile?: string;
  insecureSkipVerify?: boolean;
  inspect?: boolean;
}

function logOverrides(flags: CommonFlags): Record<string, unknown> | undefined {
  const log: Record<string, unknown> = {};
  if (flags.logLevel) log.level = flags.logLevel;
  if (flags.logFormat) log.format = flags.logFormat;
  return Object.keys(log).length ? log : undefined;
}

/**
 * The keys of `--server` (repeated, or comma-separated): `server_addr` and
 * `server_port` for one address, `server_addrs` for several.
 */
function serverKeys(texts: string[]): Record<string, unknown> {
  const addrs = texts.flatMap((t) => t.split(",")).map((t) => t.trim()).filter(Boolean);
  const parsed = addrs.map((text) => {
    try {
      return parseServerAddr(text);
    } catch (error) {
      throw new ConfigError([`--server: ${(error as Error).message}`]);
    }
  });
  if (parsed.length === 1) return { server_addr: parsed[0]!.host, server_port: parsed[0]!.port };
  return { server_addrs: addrs };
}

/** `--ha-connections`. */
function parseCount(value: string): number {
  if (!/^[1-4]$/.test(value)) {
    throw new ConfigError([`--ha-connections: expected 1 to 4, got "${value}"`]);
  }
  return Number(value);
}

async function showStatus(flags: { url?: string; json?: boolean }): Promise<number> {
  const found = flags.url
    ? [{ url: flags.url, status: await fetchStatus(flags.url) }]
    : await readStatuses();
  if (!found.length) {
    console.error("burrow status: no running burrow client found on this machine (or pass --url)");
    return 1;
  }
  if (flags.json) console.log(JSON.stringify(found.map((f) => f.status), null, 2));
  else console.log(found.map((f) => formatStatus(f.status)).join("\n\n"));
  return 0;
}

/** What the program needs from its main. */
export interface ClientProgramOptions {
  /** Records the exit code of the command that ran. */
  exit: (code: number) => void;
  /** Starts listening for the OS's stop signals; the signal aborts on the first one. */
  shutdownSignal: () => AbortSignal;
}

/**
 * The `burrow` command line: `run` (a config file, the default), `status`,
 * and the quick modes `tcp`, `udp`, `http` and `https`.
 */
export function clientProgram({ exit, shutdownSignal }: ClientProgramOptions): Command {
  const cmd = newProgram(
    "burrow",
    "Burrow tunnel client: publishes local services through a burrowd server.",
    `
Environment:
  BURROW_TOKEN    token for the server (overrides client.auth_token / --token)

Examples:
  burrow --config client.yaml
  burrow tcp 22 --remote-port 2222 --server tunnel.example.com:7000 --token s3cret \\
      --fingerprint sha256:0123…
  burrow http 8080 --subdomain app --server tunnel.example.com:7000 \\
      --fingerprint sha256:0123…   # prints the public URL

Exit codes: 0 clean shutdown, 1 fatal error, 2 usage or configuration error
(or a server address that is not burrowd; in quick mode also the server refusing or
closing the tunnel, with the reason), 3 authentication failed.`,
  );

  cmd.command("run", { isDefault: true })
    .description("run the tunnels of a config file (the default command)")
    .requiredOption("-c, --config <file>", "client YAML config")
    .option("--log-level <level>", "debug, info, warn or error")
    .option("--log-format <format>", "json or text")
    .action(async (flags: CommonFlags & { config: string }) => {
      const log = logOverrides(flags);
      const config = await loadClientConfig(flags.config, log ? { client: { log } } : undefined);
      exit(await runClient(config, { signal: shutdownSignal() }));
    });

  cmd.command("status")
    .description("show the tunnels, traffic and RTT of the burrow clients running on this machine")
    .option("--url <url>", "read this client's status endpoint, e.g. http://127.0.0.1:41234/status")
    .option("--json", "print JSON instead of a table")
    .action(async (flags: { url?: string; json?: boolean }) => {
      try {
        exit(await showStatus(flags));
      } catch (error) {
        console.error(`burrow status: ${(error as Error).message}`);
        exit(1);
      }
    });

  for (const type of ["tcp", "udp", "http", "https"] as const) {
    const web = type === "http" || type === "https";
    const sub = cmd.command(type)
      .description(
        web
          ? `publish one local HTTP service on the server's ${type.toUpperCase()} port, ngrok style`
          : `publish one local ${type.toUpperCase()} port, ngrok style`,
      )
      .argument("<local_port>", "local port to publish")
      .option(
        "-s, --server <host:port>",
        "burrowd address (default port 7000); several nodes: repeat it, or a,b",
        (v: string, all: string[] = []) => [...all, v],
      )
      .option(
        "--ha-connections <n>",
        "hold sessions to n (1-4) of the --server nodes at once",
        parseCount,
      )
      .option("-t, --token <token>", "token; prefer BURROW_TOKEN")
      .addOption(
        new Option(
          "--token-file <file>",
          "read the token from this file (burrowd's data_dir/token)",
        )
          .conflicts("token"),
      );
    if (web) {
      sub
        .option("--subdomain <label>", "serve <label>.<server's subdomain_host>")
        .option(
          "-d, --domain <host>",
          "serve this host name (repeatable)",
          (v: string, all: string[] = []) => [...all, v],
        )
        .option("--basic-auth <user:password>", "visitors must log in")
        .option("--host-header <host>", "rewrite Host on the way to the service")
        .option(
          "--inspect <on>",
          "record requests for the inspector on 127.0.0.1:4040 (true or false)",
          parseOnOff,
          true,
        );
    } else {
      sub.option("-r, --remote-port <port>", "public port on the server, 0 = server picks", "0");
    }
    sub
      .option("--local-addr <addr>", "local address", "127.0.0.1")
      .option("--name <name>", `tunnel name (default: ${type}-<local_port>)`)
      .option("--fingerprint <sha256>", "pin the server certificate (burrowd prints it)")
      .option("--ca-file <file>", "verify the server against this CA")
      .option("--insecure-skip-verify", "accept any server certificate (not recommended)")
      .option("--log-level <level>", "debug, info, warn or error")
      .option("--log-format <format>", "json or text")
      .action(async (localPort: string, flags: QuickFlags) => {
        if (!flags.server?.length) {
          throw new ConfigError(["--server: required (HOST:PORT of burrowd)"]);
        }
        const tls: Record<string, unknown> = {};
        if (flags.caFile) tls.ca_file = flags.caFile;
        if (flags.insecureSkipVerify) tls.insecure_skip_verify = true;
        const client: Record<string, unknown> = {
          ...serverKeys(flags.server),
          ...(flags.haConnections ? { ha_connections: flags.haConnections } : {}),
          tls,
          tunnels: [{
            // Readable, and distinct for distinct local ports (names are the rows of a user).
            name: flags.name ?? `${type}-${localPort}`,
            type,
            local_addr: flags.localAddr,
            local_port: Number(localPort),
            ...(web ? webOptions(flags) : { remote_port: Number(flags.remotePort) }),
          }],
        };
        if (web && flags.inspect !== false) client.inspect = {};
        if (flags.token !== undefined) client.auth_token = flags.token;
        if (flags.tokenFile !== undefined) client.auth_token = await readTokenFile(flags.tokenFile);
        if (flags.fingerprint) client.server_fingerprint = flags.fingerprint;
        const log = logOverrides(flags);
        if (log) client.log = log;
        const config = clientConfigFromObject({ client }, "command line");
        exit(await runClient(config, { signal: shutdownSignal(), quick: true }));
      });
  }
  return cmd;
}

/** `--inspect=true|false`. */
function parseOnOff(value: string): boolean {
  if (value === "true") return true;
  if (value === "false") return false;
  throw new ConfigError([`--inspect: expected true or false, got "${value}"`]);
}

/** The token in `path` (`--token-file`), surrounding white space removed. */
async function readTokenFile(path: string): Promise<string> {
  let token: string;
  try {
    token = (await Deno.readTextFile(path)).trim();
  } catch (error) {
    throw new ConfigError([`--token-file: cannot read "${path}": ${(error as Error).message}`]);
  }
  if (!token) throw new ConfigError([`--token-file: "${path}" is empty`]);
  return token;
}

/** The HTTP keys of a quick-mode tunnel from its flags. */
function webOptions(flags: QuickFlags): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (flags.subdomain) out.subdomain = flags.subdomain;
  if (flags.domain?.length) out.custom_domains = flags.domain;
  if (flags.hostHeader) out.custom_headers = { Host: flags.hostHeader };
  if (flags.basicAuth) {
    const colon = flags.basicAuth.indexOf(":");
    if (colon <= 0) throw new ConfigError(["--basic-auth: expected USER:PASSWORD"]);
    out.basic_auth = {
      user: flags.basicAuth.slice(0, colon),
      password: flags.basicAuth.slice(colon + 1),
    };
  }
  return out;
}

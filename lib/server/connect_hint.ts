/**
 * How a client connects to this burrowd, said at every start whatever the
 * output: one log line with the client command (JSON under a service manager
 * or in a container, text on a terminal, and in `log.file`), and on a
 * terminal a banner with the same command. The token itself appears only in
 * the banner, and only at the start that generated it; it is never logged.
 *
 * @example
 * ```ts
 * import { clientCommand } from "./connect_hint.ts";
 * const hint = {
 *   server: "tunnel.example.com:7000",
 *   fingerprint: "sha256:9f2c",
 *   tokenFile: "/var/lib/burrow/token",
 * };
 * console.assert(clientCommand(hint).endsWith("--token-file /var/lib/burrow/token"));
 * ```
 *
 * @module
 */

import { resolve } from "node:path";
import type { ServerConfig } from "../config/mod.ts";
import type { Logger } from "../util/mod.ts";
import { tokenFilePath } from "./token_file.ts";

/** What a client needs to know to connect. */
export interface ConnectHint {
  /** `host:port` of the control port, as a client dials it. */
  server: string;
  /** The `sha256:` fingerprint clients pin. */
  fingerprint: string;
  /** The generated token's file (absolute), or `null` when the token is configured. */
  tokenFile: string | null;
}

/** Placeholder for the file a client keeps a configured token in. */
const TOKEN_FILE_PLACEHOLDER = "FILE";

/**
 * The host clients dial: `bind_addr` when it names one address, else
 * `subdomain_host` (the server's public name, when set), else this machine's
 * host name (what the generated certificate is issued for).
 */
export function publicHost(config: Pick<ServerConfig, "bind_addr" | "subdomain_host">): string {
  const wildcard = ["0.0.0.0", "::", "[::]", ""].includes(config.bind_addr);
  const host = !wildcard ? config.bind_addr : config.subdomain_host ?? Deno.hostname();
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** The hint for a server started from `config`, listening on `port`. */
export function connectHint(
  config: Pick<ServerConfig, "bind_addr" | "subdomain_host" | "auth" | "storage">,
  port: number,
  fingerprint: string,
): ConnectHint {
  return {
    server: `${publicHost(config)}:${port}`,
    fingerprint,
    tokenFile: config.auth.token ? null : resolve(tokenFilePath(config.storage.data_dir)),
  };
}

function shellWord(word: string): string {
  return /^[\w@%+=:,./\[\]-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The quick-mode command that publishes a local TCP port through this server. */
export function clientCommand(hint: ConnectHint): string {
  const file = hint.tokenFile ? shellWord(hint.tokenFile) : TOKEN_FILE_PLACEHOLDER;
  return `burrow tcp LOCAL_PORT --server ${shellWord(hint.server)} ` +
    `--fingerprint ${hint.fingerprint} --token-file ${file}`;
}

/** Logs the client command (never the token): the one line that says how to connect. */
export function logConnectHint(logger: Logger, hint: ConnectHint): void {
  logger.info("clients connect with", {
    command: clientCommand(hint),
    ...(hint.tokenFile ? { token_file: hint.tokenFile } : {
      token: `${TOKEN_FILE_PLACEHOLDER} holds the token set in server.auth.token or BURROW_TOKEN`,
    }),
  });
}

/** What the terminal banner says besides the hint. */
export interface BannerOptions {
  /** burrowd's version. */
  version: string;
  /** The address the control port listens on, `addr:port`. */
  listen: string;
  /** The token, only when it was generated at this start (shown this once). */
  newToken?: string | undefined;
}

/** The banner printed on a terminal at start. */
export function startBanner(hint: ConnectHint, options: BannerOptions): string {
  const lines = [
    "",
    `burrowd ${options.version} is listening on ${options.listen}`,
    "Publish a local port (LOCAL_PORT) from a client machine with:",
    `  ${clientCommand(hint)}`,
  ];
  if (!hint.tokenFile) {
    lines.push(
      `where ${TOKEN_FILE_PLACEHOLDER} holds the token set in server.auth.token or BURROW_TOKEN.`,
    );
  } else if (options.newToken) {
    lines.push(
      `The client token was generated now and is kept in ${hint.tokenFile}; copy that file to the`,
      "client machine. The token is shown here this once and is never logged:",
      `  ${options.newToken}`,
    );
  } else {
    lines.push(
      `The client token is kept in ${hint.tokenFile}; copy that file to the client machine.`,
    );
  }
  lines.push(`In client.yaml, pin this server with: server_fingerprint: "${hint.fingerprint}"`, "");
  return lines.join("\n");
}

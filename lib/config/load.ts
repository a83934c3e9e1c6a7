/**
 * Loading configuration files: YAML parsing with file, line and column in
 * errors, command-line overrides merged on top, then validation.
 *
 * @example
 * ```ts ignore
 * import { loadServerConfig } from "./load.ts";
 * const config = await loadServerConfig("server.yaml", { server: { bind_port: 0 } });
 * ```
 *
 * @module
 */

import { LineCounter, parseDocument } from "yaml";
import { clientConfigFromObject, ConfigError, serverConfigFromObject } from "./schema.ts";
import type { ClientConfig, ServerConfig } from "./types.ts";

/** Nested values laid over the file's, e.g. from command-line flags. */
export type ServerOverrides = { server?: Record<string, unknown> };
/** Nested values laid over the file's, e.g. from command-line flags. */
export type ClientOverrides = { client?: Record<string, unknown> };

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `over` laid on `base`, mappings merged key by key. */
export function mergeDeep(base: unknown, over: unknown): unknown {
  if (!isMapping(base) || !isMapping(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = mergeDeep(base[k], v);
  return out;
}

/** Reads and parses a YAML file. */
export async function readYaml(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError([`file not found`], `config file "${path}"`);
    }
    throw new ConfigError([(error as Error).message], `config file "${path}"`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const at = lines.linePos(e.pos[0]);
        return `${at ? `line ${at.line}, column ${at.col}: ` : ""}${e.message.split("\n")[0]}`;
      }),
      `YAML in "${path}"`,
    );
  }
  return doc.toJS() ?? {};
}

/** Loads `path` (or nothing: defaults only), applies overrides, validates. */
export async function loadServerConfig(
  path?: string,
  overrides: ServerOverrides = {},
): Promise<ServerConfig> {
  const doc = path ? await readYaml(path) : { server: {} };
  const merged = mergeDeep(doc, overrides);
  return serverConfigFromObject(merged, path ? `server config "${path}"` : undefined);
}

/** Loads `path`, applies overrides, validates. */
export async function loadClientConfig(
  path?: string,
  overrides: ClientOverrides = {},
): Promise<ClientConfig> {
  const doc = path ? await readYaml(path) : { client: {} };
  return clientConfigFromObject(
    mergeDeep(doc, overrides),
    path ? `client config "${path}"` : undefined,
  );
}

/**
 * The shared client token that burrowd generates on first start when the
 * configuration names none, kept in `<data_dir>/token` (mode 0600); and
 * how burrowd makes a random token.
 *
 * @module
 */

import { join } from "node:path";
import { type Logger, Secret } from "../util/mod.ts";

/** Where the generated token is kept: `<dataDir>/token`. */
export function tokenFilePath(dataDir: string): string {
  return join(dataDir, "token");
}

/** Whether `<dataDir>/token` exists (when it does not, the next start generates it). */
export async function hasTokenFile(dataDir: string): Promise<boolean> {
  try {
    await Deno.stat(tokenFilePath(dataDir));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** A new random token: 32 random bytes, base64url. */
export function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/**
 * The token in `<dataDir>/token`, generated (32 random bytes, base64url)
 * when absent. The token itself is never logged, only where it is kept.
 */
export async function loadOrCreateToken(dataDir: string, logger: Logger): Promise<Secret> {
  const path = tokenFilePath(dataDir);
  try {
    const text = (await Deno.readTextFile(path)).trim();
    if (text) return new Secret(text);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const token = randomToken();
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600 });
  logger.info("generated a client token", { file: path });
  return new Secret(token);
}

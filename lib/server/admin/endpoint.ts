/**
 * Where the `burrowd` subcommands find a running burrowd's admin API: the
 * file `<data_dir>/admin.json` (mode 0600), `{pid, url, token}`. A burrowd
 * on the embedded database writes it once its admin port listens and
 * removes it when it stops; the embedded database's lock says which process
 * holds the directory, so the subcommands trust the file only when its
 * `pid` is the lock's. The token is made for that one run and is accepted
 * by the admin API alone (never on the control port); the shared token is
 * not written anywhere by this.
 *
 * @example
 * ```ts ignore
 * import { Secret } from "../../util/mod.ts";
 * import { adminUrl, readAdminEndpoint, writeAdminEndpoint } from "./endpoint.ts";
 * await writeAdminEndpoint("./burrow-data", {
 *   pid: Deno.pid,
 *   url: adminUrl("0.0.0.0", 7500), // "http://127.0.0.1:7500"
 *   token: new Secret("…"),
 * });
 * const endpoint = await readAdminEndpoint("./burrow-data");
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { Secret, writeFileAtomic } from "../../util/mod.ts";

/** The name of the file in the data directory. */
export const ADMIN_ENDPOINT_FILE = "admin.json";

/** Where a running burrowd's admin API listens, and the token it takes from this machine. */
export interface AdminEndpoint {
  /** The burrowd process. */
  pid: number;
  /** The admin API's base URL, reachable from this machine, e.g. `http://127.0.0.1:7500`. */
  url: string;
  /** The admin token of this run (`Authorization: Bearer`). */
  token: Secret;
}

/** `<dataDir>/admin.json`. */
export function adminEndpointPath(dataDir: string): string {
  return join(dataDir, ADMIN_ENDPOINT_FILE);
}

/**
 * The URL at which this machine reaches an admin port bound to `bindAddr`:
 * a wildcard (`0.0.0.0`, `::`, empty) is reached on loopback, any other
 * address (loopback or a specific interface) as it is.
 *
 * @example
 * ```ts
 * import { adminUrl } from "./endpoint.ts";
 * console.assert(adminUrl("0.0.0.0", 7500) === "http://127.0.0.1:7500");
 * console.assert(adminUrl("::", 7500) === "http://[::1]:7500");
 * console.assert(adminUrl("10.1.2.3", 7500) === "http://10.1.2.3:7500");
 * ```
 */
export function adminUrl(bindAddr: string, port: number): string {
  const host = bindAddr === "" || bindAddr === "0.0.0.0"
    ? "127.0.0.1"
    : bindAddr === "::" || bindAddr === "[::]"
    ? "::1"
    : bindAddr.replace(/^\[(.*)\]$/, "$1");
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Writes `<dataDir>/admin.json` whole (readers never see a part), mode 0600. */
export async function writeAdminEndpoint(dataDir: string, endpoint: AdminEndpoint): Promise<void> {
  const { pid, url, token } = endpoint;
  await writeFileAtomic(
    adminEndpointPath(dataDir),
    JSON.stringify({ pid, url, token: token.reveal() }) + "\n",
    0o600,
  );
}

/**
 * What `<dataDir>/admin.json` says; `null` when there is no such file, or
 * none that reads as one (a run of burrowd rewrites it).
 */
export async function readAdminEndpoint(dataDir: string): Promise<AdminEndpoint | null> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await Deno.readTextFile(adminEndpointPath(dataDir)));
  } catch {
    return null;
  }
  const { pid, url, token } = (parsed ?? {}) as Record<string, unknown>;
  if (!Number.isInteger(pid) || typeof url !== "string" || typeof token !== "string") return null;
  return { pid: pid as number, url, token: new Secret(token) };
}

/** Removes `<dataDir>/admin.json`; nothing when it is not there. */
export async function removeAdminEndpoint(dataDir: string): Promise<void> {
  try {
    await Deno.remove(adminEndpointPath(dataDir));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

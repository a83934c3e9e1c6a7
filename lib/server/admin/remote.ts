/**
 * The admin work of a `burrowd` subcommand done by the running burrowd
 * that holds the embedded database: {@linkcode RemoteAdmin} calls its admin
 * API at the address and with the token it left in the data directory
 * (`endpoint.ts`), and answers as {@linkcode AdminService} would: the same
 * values (dates as `Date`), and the API's 400, 404 and 409 as the
 * `ValidationError`, `NotFoundError` and `ConflictError` the service threw
 * on the server, with the same message, so a command prints the same thing
 * whichever way it went.
 *
 * @example
 * ```ts ignore
 * import { readAdminEndpoint } from "./endpoint.ts";
 * import { RemoteAdmin } from "./remote.ts";
 * const endpoint = await readAdminEndpoint("./burrow-data");
 * if (endpoint) await new RemoteAdmin(endpoint, "./burrow-data").addUser("alice");
 * ```
 *
 * @module
 */

import type { IssuedToken, IssueOptions } from "../../auth/mod.ts";
import {
  ConflictError,
  type NodeListing,
  NotFoundError,
  type User,
  ValidationError,
} from "../../storage/mod.ts";
import { MAX_LIMIT } from "./route.ts";
import type { AdminEndpoint } from "./endpoint.ts";
import {
  releasable,
  type RoutedAdmin,
  type TokenListing,
  type TunnelOverview,
  type UserPolicy,
} from "./service.ts";

/** How long one request may take before the server counts as not answering. */
const REQUEST_TIMEOUT_MS = 15_000;

/** JSON dates back to `Date`: every `…_at` field of the API is a timestamp. */
function revive(key: string, value: unknown): unknown {
  return typeof value === "string" && key.endsWith("_at") ? new Date(value) : value;
}

/** A duration in milliseconds as the API reads durations. */
function ms(duration: number): string {
  return `${Math.max(0, Math.round(duration))}ms`;
}

/** The admin work of a running burrowd, through its admin API. */
export class RemoteAdmin implements RoutedAdmin {
  #endpoint: AdminEndpoint;
  #dataDir: string;

  /** Calls the burrowd described by `endpoint`, which holds the embedded database in `dataDir`. */
  constructor(endpoint: AdminEndpoint, dataDir: string) {
    this.#endpoint = endpoint;
    this.#dataDir = dataDir;
  }

  async #call(method: string, path: string, body?: Record<string, unknown>): Promise<unknown> {
    const { url, pid, token } = this.#endpoint;
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)),
      REQUEST_TIMEOUT_MS,
    );
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${url}/api/v1${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token.reveal()}`,
          ...(body ? { "content-type": "application/json" } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: deadline.signal,
      });
      text = await response.text();
    } catch (error) {
      throw new Error(
        `The burrowd holding the embedded database in ${this.#dataDir} (pid ${pid}) did not ` +
          `answer on its admin API at ${url} (${(error as Error).message}). If it hangs, stop ` +
          `it (kill ${pid}) and run the command again: with no burrowd running, the command ` +
          `opens the database itself`,
      );
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) return text ? JSON.parse(text, revive) : undefined;
    let message = text.trim() || response.statusText;
    try {
      message = (JSON.parse(text) as { error: { message: string } }).error.message ?? message;
    } catch { /* not the API's error shape: the text as it is */ }
    switch (response.status) {
      case 400:
        throw new ValidationError(message);
      case 404:
        throw new NotFoundError(message);
      case 409:
        throw new ConflictError(message);
      default:
        throw new Error(
          `The burrowd holding the embedded database in ${this.#dataDir} (pid ${pid}) ` +
            `refused the request on its admin API (${response.status}): ${message}`,
        );
    }
  }

  /** Every page of the list at `path`. */
  async #list<T>(path: string, query: Record<string, string> = {}): Promise<T[]> {
    const items: T[] = [];
    for (;;) {
      const params = new URLSearchParams({
        ...query,
        limit: String(MAX_LIMIT),
        offset: String(items.length),
      });
      const page = await this.#call("GET", `${path}?${params}`) as { items: T[]; total: number };
      items.push(...page.items);
      if (!page.items.length || items.length >= page.total) return items;
    }
  }

  /** See {@linkcode AdminService.users}. */
  users(): Promise<User[]> {
    return this.#list<User>("/users");
  }

  /** See {@linkcode AdminService.addUser}. */
  async addUser(name: string, options: { admin?: boolean } = {}): Promise<User> {
    return await this.#call("POST", "/users", { name, admin: options.admin ?? false }) as User;
  }

  /** See {@linkcode AdminService.setUserPolicy}. */
  async setUserPolicy(name: string, policy: UserPolicy): Promise<User> {
    return await this.#call("PATCH", `/users/${encodeURIComponent(name)}`, { ...policy }) as User;
  }

  /** See {@linkcode AdminService.setUserDisabled}. */
  async setUserDisabled(name: string, disabled: boolean): Promise<User> {
    return await this.#call("PATCH", `/users/${encodeURIComponent(name)}`, { disabled }) as User;
  }

  /** See {@linkcode AdminService.tokens}. */
  tokens(userName?: string): Promise<TokenListing[]> {
    return this.#list<TokenListing>("/tokens", userName === undefined ? {} : { user: userName });
  }

  /** See {@linkcode AdminService.issue}. */
  async issue(
    kind: "token" | "key",
    userName: string,
    options: IssueOptions,
  ): Promise<IssuedToken> {
    const made = await this.#call("POST", `/${kind}s`, {
      user: userName,
      // Zero included: the server refuses it as the service does.
      ...(options.ttlMs === undefined || options.ttlMs === null ? {} : { ttl: ms(options.ttlMs) }),
      ...(options.scopes ? { scopes: options.scopes } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
    }) as Record<string, unknown>;
    return {
      id: made.id as string,
      token: made[kind] as string,
      expiresAt: (made.expires_at as Date | null) ?? null,
    };
  }

  /** See {@linkcode AdminService.revoke}. */
  async revoke(id: string): Promise<void> {
    await this.#call("DELETE", `/tokens/${encodeURIComponent(id)}`);
  }

  /** See {@linkcode AdminService.tunnels}. */
  tunnels(options: { since?: Date; user?: string } = {}): Promise<TunnelOverview[]> {
    // The API takes the period as a duration back from now; no `since` means ever.
    const since = ms(Date.now() - (options.since?.getTime() ?? 0));
    return this.#list<TunnelOverview>("/tunnels", {
      since,
      ...(options.user === undefined ? {} : { user: options.user }),
    });
  }

  /** See {@linkcode AdminService.nodes}; the running server judges with its own `dead_after`. */
  async nodes(): Promise<NodeListing[]> {
    const nodes = await this.#list<NodeListing>("/nodes");
    // `last_seen` is a time the reviver does not know by its name.
    return nodes.map((n) => ({ ...n, last_seen: new Date(n.last_seen) }));
  }

  /** See {@linkcode AdminService.releaseTunnel}: the same checks, then `DELETE /tunnels/{id}`. */
  async releaseTunnel(name: string, owner?: string): Promise<TunnelOverview> {
    const t = releasable(await this.tunnels(), name, owner);
    await this.#call("DELETE", `/tunnels/${t.id}`);
    return t;
  }
}

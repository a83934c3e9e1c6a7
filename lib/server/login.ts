/**
 * Logging in, the same on the control port and the admin API: one
 * per-address limiter of failed attempts and handshakes in progress (its
 * refusals counted and logged without flooding the log), and one check of
 * a token: the server's shared token in constant time, else a user token
 * or API key with the scope the port needs.
 *
 * @module
 */

import {
  looksLikeApiKey,
  looksLikeJwt,
  TokenError,
  type TokenIdentity,
  type TokenService,
} from "../auth/mod.ts";
import type { ServerMetrics } from "../monitor/mod.ts";
import { DatabaseUnavailableError, type User } from "../storage/mod.ts";
import {
  IpPolicy,
  type Logger,
  parsePortRanges,
  type Secret,
  timingSafeEqualText,
} from "../util/mod.ts";
import {
  type LoginAttempt,
  LoginLimiter,
  type LoginLimiterOptions,
  type LoginRefusal,
} from "./login_limiter.ts";

/** Who a session logged in as. */
export interface Principal {
  /** The user's row id; `null` when the server runs without a database. */
  userId: number | null;
  /** The user's name (`admin` for the shared token). */
  userName: string;
  /** The user token's id; `null` for the shared token. */
  tokenId: string | null;
  /** An administrator (the shared token, or a user with `is_admin`): may see whose a tunnel is. */
  admin?: boolean;
  /** Port ranges the user's tunnels may take (on top of `server.allow_ports`); `null`: any. */
  allowPorts?: Array<[number, number]> | null;
  /** The user's bandwidth limit (bytes/s per direction, all its tunnels); `null`: none. */
  maxBandwidth?: number | null;
  /** Limits of the token the client logged in with; `null` parts do not limit. */
  tokenLimits?: {
    types: string[] | null;
    ports: Array<[number, number]> | null;
    domains: string[] | null;
  };
}

/** The outcome of checking a client's credentials. */
export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; code: "auth_failed" | "unavailable"; message: string }
  | { ok: false; code: "limit"; message: string; retryAfter: number };

/** Options of {@linkcode Login}. */
export interface LoginOptions {
  /** The limiter's settings (`server.auth`). */
  limits: LoginLimiterOptions;
  /** The server's shared token. */
  sharedToken: Secret;
  /**
   * A second secret the admin API (only) takes as the shared token: the one
   * a run of burrowd leaves in its data directory for the `burrowd`
   * subcommands (`admin/endpoint.ts`). Default: none.
   */
  localAdminToken?: Secret | null;
  /** User tokens and API keys; `null` without a database. */
  tokens: TokenService<User> | null;
  /** Where logins and refusals are counted. */
  metrics: ServerMetrics;
  /** Where refusals are logged. */
  logger: Logger;
  /** The row id of the built-in `admin` user the shared token logs in as; `null` without a database. */
  adminId?: number | null;
  /** Notes that a user token or API key was used now (its `last_used_at`). */
  touch?: (tokenId: string) => void;
}

/** The login checks of one server. */
export class Login {
  /** Per-address limits on logins. */
  readonly limiter: LoginLimiter;
  #shared: Secret;
  #localAdmin: Secret | null;
  #tokens: TokenService<User> | null;
  #metrics: ServerMetrics;
  #log: Logger;
  #adminId: number | null;
  #touch: (tokenId: string) => void;

  /** Nothing is tracked until the first login. */
  constructor(options: LoginOptions) {
    this.limiter = new LoginLimiter(options.limits);
    this.#adminId = options.adminId ?? null;
    this.#touch = options.touch ?? (() => {});
    this.#shared = options.sharedToken;
    this.#localAdmin = options.localAdminToken ?? null;
    this.#tokens = options.tokens;
    this.#metrics = options.metrics;
    this.#log = options.logger;
  }

  /** A slot for a handshake from `address`, or why there is none (counted and logged). */
  enterHandshake(address: string): Disposable | LoginRefusal {
    const slot = this.limiter.enter(address);
    if ("reason" in slot) this.refused(slot, address);
    return slot;
  }

  /**
   * An attempt for `address`, taken before its token is looked at (an empty
   * bucket refuses at once, right token or wrong), or why there is none.
   */
  attempt(address: string): LoginAttempt | LoginRefusal {
    const attempt = this.limiter.attempt(address);
    if ("reason" in attempt) this.refused(attempt, address);
    return attempt;
  }

  /**
   * Counts a refusal of the limiter, and logs the first since the address
   * was last quiet and every hundredth after it (a flood must not flood the
   * log too).
   */
  refused(refusal: LoginRefusal, address: string): void {
    this.#metrics.loginRefused(refusal.reason);
    if (refusal.refusedSinceQuiet === 1 || refusal.refusedSinceQuiet % 100 === 0) {
      this.#log.warn(
        refusal.reason === "rate"
          ? "too many failed logins: refusing this address for now"
          : "too many logins in progress: refusing more from this address",
        {
          remote: address,
          refused_since_quiet: refusal.refusedSinceQuiet,
          ...(refusal.reason === "rate"
            ? { retry_after_s: refusal.retryAfter, max_failures: this.limiter.maxFailures }
            : { max_handshakes: this.limiter.maxHandshakes }),
        },
      );
    }
  }

  /**
   * Whether `token` is the server's shared token (resolves `null`; for the
   * `admin` scope the local admin token counts as it too), else the
   * identity of the user token or API key, which must carry `scope`. With
   * `onlyTokenShaped`, a string shaped like neither is refused at once.
   *
   * @throws {TokenError} when it is neither (or lacks the scope);
   * `DatabaseUnavailableError` when checking it needs the database and the
   * database is down.
   */
  async verify(
    token: string,
    scope: "tunnel" | "admin",
    options: { onlyTokenShaped?: boolean } = {},
  ): Promise<TokenIdentity<User> | null> {
    if (await timingSafeEqualText(token, this.#shared.reveal())) return null;
    if (
      scope === "admin" && this.#localAdmin &&
      await timingSafeEqualText(token, this.#localAdmin.reveal())
    ) return null;
    if (!this.#tokens) throw new TokenError("invalid token");
    // Strings shaped like no token at all are refused without a lookup.
    if (options.onlyTokenShaped && !(looksLikeJwt(token) || looksLikeApiKey(token))) {
      throw new TokenError("invalid token");
    }
    return await this.#tokens.verify(token, scope);
  }

  /**
   * Logs in a client of the control port: `token` from `address` for client
   * id `clientId`, within the user's allowed client ids and addresses. An
   * address that failed too often is refused at once, before its token is
   * looked at (`code: "limit"`); outcomes are counted.
   */
  async client(token: string, address: string, clientId: string): Promise<AuthResult> {
    // Taken before the token is looked at: an empty bucket refuses at once, right or wrong.
    const attempt = this.attempt(address);
    if ("reason" in attempt) {
      return { ok: false, code: "limit", message: attempt.message, retryAfter: attempt.retryAfter };
    }
    const result = await this.#client(token, address, clientId);
    if (result.ok) {
      attempt.succeeded();
      this.#metrics.login("ok");
    } else {
      this.#metrics.login(result.code);
      this.#metrics.error(result.code);
    }
    return result;
  }

  async #client(
    token: string,
    address: string,
    clientId: string,
  ): Promise<Exclude<AuthResult, { code: "limit" }>> {
    try {
      const who = await this.verify(token, "tunnel", { onlyTokenShaped: true });
      if (who === null) {
        return {
          ok: true,
          principal: { userId: this.#adminId, userName: "admin", tokenId: null, admin: true },
        };
      }
      const user = who.user;
      const clients = user.allowed_clients ?? [];
      if (clients.length && !clients.includes(clientId)) {
        return {
          ok: false,
          code: "auth_failed",
          message: `client id "${clientId}" may not log in as user "${user.name}"`,
        };
      }
      if (!IpPolicy.parse(user.allow_ips ?? [], user.deny_ips ?? []).allows(address)) {
        return {
          ok: false,
          code: "auth_failed",
          message: `address ${address} may not log in as user "${user.name}"`,
        };
      }
      this.#touch(who.tokenId);
      return {
        ok: true,
        principal: {
          userId: user.id,
          userName: user.name,
          tokenId: who.tokenId,
          admin: user.is_admin,
          allowPorts: user.allow_ports ? parsePortRanges(user.allow_ports) : null,
          maxBandwidth: user.max_bandwidth ?? null,
          tokenLimits: {
            types: who.limits.types ?? null,
            ports: who.limits.ports ? parsePortRanges(who.limits.ports) : null,
            domains: who.limits.domains ?? null,
          },
        },
      };
    } catch (error) {
      if (error instanceof TokenError) {
        return { ok: false, code: "auth_failed", message: error.message };
      }
      if (error instanceof DatabaseUnavailableError) {
        return {
          ok: false,
          code: "unavailable",
          message: "The server cannot check this token now: its database is unreachable. " +
            "Retrying.",
        };
      }
      throw error;
    }
  }
}

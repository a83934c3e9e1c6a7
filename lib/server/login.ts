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
import type { User } from "../storage/mod.ts";
import { type Logger, type Secret, timingSafeEqualText } from "../util/mod.ts";
import {
  type LoginAttempt,
  LoginLimiter,
  type LoginLimiterOptions,
  type LoginRefusal,
} from "./login_limiter.ts";

/** Options of {@linkcode Login}. */
export interface LoginOptions {
  /** The limiter's settings (`server.auth`). */
  limits: LoginLimiterOptions;
  /** The server's shared token. */
  sharedToken: Secret;
  /** User tokens and API keys; `null` without a database. */
  tokens: TokenService<User> | null;
  /** Where logins and refusals are counted. */
  metrics: ServerMetrics;
  /** Where refusals are logged. */
  logger: Logger;
}

/** The login checks of one server. */
export class Login {
  /** Per-address limits on logins. */
  readonly limiter: LoginLimiter;
  #shared: Secret;
  #tokens: TokenService<User> | null;
  #metrics: ServerMetrics;
  #log: Logger;

  /** Nothing is tracked until the first login. */
  constructor(options: LoginOptions) {
    this.limiter = new LoginLimiter(options.limits);
    this.#shared = options.sharedToken;
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
   * Whether `token` is the server's shared token (resolves `null`), else the
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
    if (!this.#tokens) throw new TokenError("invalid token");
    // Strings shaped like no token at all are refused without a lookup.
    if (options.onlyTokenShaped && !(looksLikeJwt(token) || looksLikeApiKey(token))) {
      throw new TokenError("invalid token");
    }
    return await this.#tokens.verify(token, scope);
  }
}

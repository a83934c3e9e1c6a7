/**
 * User tokens: JWTs (EdDSA, `npm:jose`; HS256 keys of earlier versions
 * still verify) signed with a key kept in the
 * {@linkcode TokenStore} (generated on first start), and every token issued
 * kept there too, so that it can be listed and revoked. Verification is
 * served from a cache (token id → user) that config notifications
 * invalidate entry by entry and a resync re-reads, so logins keep working
 * from cache while the store cannot answer, including outages that follow a
 * reconnect.
 *
 * @module
 */

import { LruCache, timingSafeEqualText } from "../util/mod.ts";
import {
  decodeProtectedHeader,
  errors as joseErrors,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  jwtVerify,
  SignJWT,
} from "jose";
import type { Logger } from "../util/mod.ts";
import type {
  CachedKey,
  SigningKeyRecord,
  StoredToken,
  TokenChange,
  TokenLimits,
  TokenOwner,
  TokenStore,
} from "./token_store.ts";
import { TokenError } from "./errors.ts";
import { checkTokenLimits } from "./limits.ts";

/** The public half of a signing key, as published in the JWK Set. */
export interface PublicJwk {
  /** Key type (`OKP`). */
  kty: string;
  /** Curve (`Ed25519`). */
  crv?: string;
  /** Public key. */
  x?: string;
  /** Key id, as in token headers. */
  kid: string;
  /** Algorithm (`EdDSA`). */
  alg: string;
  /** `sig`. */
  use: string;
  /** Never present: private keys are not published. */
  d?: undefined;
}

/** Token scopes. `tunnel`: connect a client; `admin`: the admin API. */
export const SCOPES = ["tunnel", "admin"] as const;
/** One scope. */
export type Scope = typeof SCOPES[number];

/** Who a verified token belongs to (`U`: the token store's user). */
export interface TokenIdentity<U extends TokenOwner = TokenOwner> {
  /** The owner. */
  user: U;
  /** The token's id (`jti`, the `api_keys` row). */
  tokenId: string;
  /** What the token may do. */
  scopes: string[];
  /** What the token's client may publish (types, ports, host names); `{}`: no own limit. */
  limits: TokenLimits;
}

/** Options of {@linkcode TokenService.issue} and {@linkcode TokenService.createApiKey}. */
export interface IssueOptions {
  /** Lifetime in ms; `null` or absent: never expires. */
  ttlMs?: number | null;
  /** Scopes; default `["tunnel"]`. */
  scopes?: string[];
  /** Limits on what a client logged in with it may publish. */
  limits?: TokenLimits;
}

/** A freshly issued token. */
export interface IssuedToken {
  /** The JWT to hand to the user (shown once). */
  token: string;
  /** Its id, for `burrowd token revoke`. */
  id: string;
  /** Expiry, or `null`. */
  expiresAt: Date | null;
}

const ISSUER = "burrowd";
/** Algorithm of new signing keys: Ed25519, so the public half can be published (JWKS). */
const ALG = "EdDSA";

function b64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

function unb64url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0));
}

/** Whether `token` has the shape of a JWT (three base64url parts). */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

const API_KEY = /^bk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

/** Whether `token` has the shape of an API key (`bk_<prefix>_<secret>`). */
export function looksLikeApiKey(token: string): boolean {
  return API_KEY.test(token);
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function randomAlnum(n: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const out: string[] = [];
  while (out.length < n) {
    for (const b of crypto.getRandomValues(new Uint8Array(n * 2))) {
      if (b < 248 && out.length < n) out.push(alphabet[b % 62]!); // 248 = 4 × 62: no bias
    }
  }
  return out.join("");
}

/** A signing key ready to use. */
interface Signing {
  sign: CryptoKey | Uint8Array;
  verify: CryptoKey | Uint8Array;
  row: SigningKeyRecord;
  jwk?: JWK;
}

/**
 * Issues and verifies user tokens kept in a {@linkcode TokenStore} whose
 * users are `U`.
 *
 * @example
 * ```ts ignore
 * const tokens = await TokenService.create(tokenStore(store), logger);
 * const { token } = await tokens.issue("alice", { ttlMs: 30 * 86_400_000 });
 * const who = await tokens.verify(token);
 * ```
 */
export class TokenService<U extends TokenOwner = TokenOwner> {
  #store: TokenStore<U>;
  #log: Logger;
  #keys = new Map<string, Signing>();
  #cache = new LruCache<string, CachedKey<U>>({ max: 10_000, ttl: 5 * 60_000 });

  private constructor(store: TokenStore<U>, logger: Logger) {
    this.#store = store;
    this.#log = logger;
  }

  /** Loads the signing keys, generating the first one when there is none. */
  static async create<U extends TokenOwner>(
    store: TokenStore<U>,
    logger: Logger,
  ): Promise<TokenService<U>> {
    const service = new TokenService(store, logger);
    await service.#loadKeys();
    if (service.#keys.size === 0) {
      const kid = await service.rotate();
      logger.info("generated a token signing key", { kid, alg: ALG });
    }
    return service;
  }

  /**
   * Adds a new Ed25519 signing key; new tokens are signed with it, tokens of
   * older keys keep verifying until those keys are retired. Returns its `kid`.
   */
  async rotate(): Promise<string> {
    const { privateKey } = await generateKeyPair(ALG, { crv: "Ed25519", extractable: true });
    const jwk = await exportJWK(privateKey);
    const kid = b64url(crypto.getRandomValues(new Uint8Array(8)));
    await this.#store.addSigningKey({ kid, alg: ALG, secret: JSON.stringify(jwk) });
    await this.#loadKeys();
    return kid;
  }

  /**
   * Retires a signing key: tokens it signed stop verifying.
   *
   * @throws {TokenError} for the only remaining key (rotate first).
   */
  async retire(kid: string): Promise<void> {
    await this.#loadKeys();
    if (!this.#keys.has(kid)) throw new TokenError(`No active signing key "${kid}"`);
    if (this.#keys.size === 1) {
      throw new TokenError(`"${kid}" is the only signing key: rotate first, then retire it`);
    }
    await this.#store.retireSigningKey(kid);
    await this.#loadKeys();
  }

  /** The public keys that verify tokens, as a JWK Set (HS256 keys are secret and left out). */
  jwks(): { keys: PublicJwk[] } {
    const keys: PublicJwk[] = [];
    for (const [kid, k] of this.#keys) {
      if (!k.jwk) continue;
      const { d: _secret, ...pub } = k.jwk;
      keys.push({ ...pub, kid, alg: k.row.alg, use: "sig" } as PublicJwk);
    }
    return { keys };
  }

  /** The token-id cache (hit/miss counters are exported as metrics). */
  get cache(): LruCache<string, CachedKey<U>> {
    return this.#cache;
  }

  async #loadKeys(): Promise<void> {
    const rows = await this.#store.signingKeys();
    const keys = new Map<string, Signing>();
    for (const row of rows) {
      if (row.alg === "HS256") {
        const secret = unb64url(row.secret);
        keys.set(row.kid, { sign: secret, verify: secret, row });
      } else {
        const jwk = JSON.parse(row.secret) as JWK;
        const { d: _secret, ...pub } = jwk;
        keys.set(row.kid, {
          sign: await importJWK(jwk, row.alg) as CryptoKey,
          verify: await importJWK(pub, row.alg) as CryptoKey,
          row,
          jwk,
        });
      }
    }
    this.#keys = keys;
  }

  /**
   * Issues a token for user `userName`.
   *
   * @throws the store's error for an unknown user; {@link TokenError} for a disabled one or a bad scope.
   */
  async issue(userName: string, options: IssueOptions = {}): Promise<IssuedToken> {
    const { user, scopes, limits } = await this.#checkIssue(userName, options);
    const [kid, signing] = [...this.#keys.entries()][0]!;
    const id = crypto.randomUUID();
    const now = Math.floor(Date.now() / 1000);
    const expiresAt = options.ttlMs ? new Date((now * 1000) + options.ttlMs) : null;
    await this.#store.addToken({
      id,
      userId: user.id,
      scopes,
      expiresAt,
      secretHash: null,
      limits,
    });
    const jwt = new SignJWT({
      scope: scopes.join(" "),
      uid: user.id,
      ...(Object.keys(limits).length ? { lim: limits } : {}),
    })
      .setProtectedHeader({ alg: signing.row.alg, kid, typ: "JWT" })
      .setIssuer(ISSUER)
      .setSubject(user.name)
      .setJti(id)
      .setIssuedAt(now);
    if (expiresAt) jwt.setExpirationTime(Math.floor(expiresAt.getTime() / 1000));
    return { token: await jwt.sign(signing.sign), id, expiresAt };
  }

  /**
   * Creates an API key for `userName`: a random secret shown once and kept
   * only as its SHA-256. Same scopes, expiry and revocation as tokens.
   *
   * @throws the store's error for an unknown user; {@link TokenError} for a disabled one or a bad scope.
   */
  async createApiKey(userName: string, options: IssueOptions = {}): Promise<IssuedToken> {
    const { user, scopes, limits } = await this.#checkIssue(userName, options);
    const prefix = randomAlnum(12);
    const key = `bk_${prefix}_${b64url(crypto.getRandomValues(new Uint8Array(32)))}`;
    const id = `key_${prefix}`;
    const expiresAt = options.ttlMs ? new Date(Date.now() + options.ttlMs) : null;
    await this.#store.addToken({
      id,
      userId: user.id,
      scopes,
      expiresAt,
      secretHash: await sha256Hex(key),
      limits,
    });
    return { token: key, id, expiresAt };
  }

  async #checkIssue(
    userName: string,
    options: IssueOptions,
  ): Promise<{ user: U; scopes: string[]; limits: TokenLimits }> {
    // A zero lifetime would otherwise read as "never expires".
    if (options.ttlMs !== undefined && options.ttlMs !== null && !(options.ttlMs > 0)) {
      throw new TokenError(`A token's lifetime must be positive, not ${options.ttlMs} ms`);
    }
    const requested = options.scopes;
    const user = await this.#store.user(userName);
    if (user.disabled) throw new TokenError(`User "${userName}" is disabled`);
    const scopes = requested?.length ? [...new Set(requested)] : ["tunnel"];
    for (const s of scopes) {
      if (!(SCOPES as readonly string[]).includes(s)) {
        throw new TokenError(`Unknown scope "${s}"; scopes are ${SCOPES.join(", ")}`);
      }
    }
    if (scopes.includes("admin") && !user.is_admin) {
      throw new TokenError(
        `User "${userName}" is not an administrator: cannot issue scope "admin"`,
      );
    }
    return { user, scopes, limits: checkTokenLimits(options.limits ?? {}) };
  }

  /**
   * Checks a token (JWT or API key): signature or secret, expiry,
   * revocation, owner enabled, and (when given) a required scope.
   *
   * @throws {TokenError} with the reason; the store's error that
   * {@linkcode TokenStore.isUnavailable} recognises when the answer needs the
   * store and it cannot answer.
   */
  async verify(token: string, requiredScope?: Scope): Promise<TokenIdentity<U>> {
    if (token.startsWith("bk_")) return await this.#verifyApiKey(token, requiredScope);
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw new TokenError("token is malformed");
    }
    if (!kid) throw new TokenError("token has no key id");
    let signing = this.#keys.get(kid);
    if (!signing) {
      // Perhaps rotated on another node.
      await this.#store.lookup(() => this.#loadKeys());
      signing = this.#keys.get(kid);
      if (!signing) throw new TokenError("token was signed by an unknown or retired key");
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(token, signing.verify, {
        issuer: ISSUER,
        algorithms: [signing.row.alg],
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new TokenError("token has expired");
      throw new TokenError("token signature or claims are invalid");
    }
    const id = payload.jti;
    if (!id) throw new TokenError("token has no id");
    return await this.#check(id, requiredScope);
  }

  async #verifyApiKey(token: string, requiredScope?: Scope): Promise<TokenIdentity<U>> {
    const m = API_KEY.exec(token);
    if (!m) throw new TokenError("API key is malformed");
    const id = `key_${m[1]}`;
    const identity = await this.#check(id, requiredScope, async (key) => {
      const hash = await sha256Hex(token);
      return key.secret_hash !== null && await timingSafeEqualText(hash, key.secret_hash);
    });
    return identity;
  }

  async #check(
    id: string,
    requiredScope: Scope | undefined,
    matches?: (key: StoredToken) => Promise<boolean>,
  ): Promise<TokenIdentity<U>> {
    let entry = this.#cache.get(id);
    if (!entry) {
      try {
        const found = (await this.#store.lookup(() => this.#store.tokens([id]))).get(id);
        if (!found) throw new TokenError("token is not known to this server");
        entry = found;
        this.#cache.set(id, entry);
      } catch (error) {
        // While the database is down, a token seen before still logs in.
        const stale = this.#store.isUnavailable(error) ? this.#cache.getStale(id) : undefined;
        if (!stale) throw error;
        entry = stale;
      }
    }
    const { key, user } = entry;
    if (matches && !(await matches(key))) throw new TokenError("API key is not valid");
    if (!matches && key.kind === "key") throw new TokenError("token is not known to this server");
    if (key.revoked_at) throw new TokenError("token has been revoked");
    if (key.expires_at && key.expires_at.getTime() <= Date.now()) {
      throw new TokenError("token has expired");
    }
    if (user.disabled) throw new TokenError(`user "${user.name}" is disabled`);
    if (requiredScope && !key.scopes.includes(requiredScope) && !key.scopes.includes("admin")) {
      throw new TokenError(`token lacks the "${requiredScope}" scope`);
    }
    return { user, tokenId: id, scopes: key.scopes, limits: key.limits ?? {} };
  }

  /**
   * Drops cached entries a config change makes stale. A resync (`table: "*"`,
   * after the change feed or the database reconnected) drops nothing: the
   * cache keeps serving and {@linkcode TokenService.revalidate} re-reads it.
   */
  invalidate(change: TokenChange): void {
    if (change.table === "api_keys" && typeof change.id === "string") {
      this.#cache.delete(change.id);
    } else if (change.table === "users") {
      this.#cache.deleteWhere((_, v) => v.user.id === change.id);
    }
  }

  /**
   * Re-reads every cached token, and `ids`, in one query after a resync:
   * entries are refreshed (a token revoked or a user disabled meanwhile is
   * then refused as such), tokens deleted meanwhile are forgotten, the
   * signing keys are reloaded. Resolves with the current row of each token
   * read (`null`: deleted), or `null` when the database did not answer; the
   * cache is then left as it was.
   */
  async revalidate(
    ids: Iterable<string> = [],
  ): Promise<Map<string, CachedKey<U> | null> | null> {
    const wanted = [...new Set([...this.#cache.keys(), ...ids])];
    let found: Map<string, CachedKey<U>>;
    try {
      found = await this.#store.lookup(async () => {
        await this.#loadKeys();
        return await this.#store.tokens(wanted);
      });
    } catch (error) {
      if (!this.#store.isUnavailable(error)) {
        this.#log.warn("re-reading cached tokens failed", { error });
      }
      return null;
    }
    const out = new Map<string, CachedKey<U> | null>();
    for (const id of wanted) {
      const entry = found.get(id) ?? null;
      out.set(id, entry);
      if (!entry) this.#cache.delete(id);
      else if (this.#cache.getStale(id)) this.#cache.set(id, entry);
    }
    return out;
  }
}

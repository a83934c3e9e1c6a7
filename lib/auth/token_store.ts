/**
 * The {@linkcode TokenStore}: what the token service keeps and reads
 * (signing keys, users by name, issued tokens with their owners), declared
 * here so that auth depends on no database. The server adapts its store to
 * it.
 *
 * @module
 */

/** Limits a token carries on what its client may publish. */
export interface TokenLimits {
  /** Tunnel types allowed, e.g. `["tcp", "http"]`. */
  types?: string[];
  /** Public port ranges allowed, e.g. `"2000-3000,3306"`. */
  ports?: string;
  /** Host names allowed for HTTP(S) tunnels; `*.example.com` covers any name under it. */
  domains?: string[];
}

/** What the token service reads of a user; a store's users carry more. */
export interface TokenOwner {
  /** Its id. */
  id: number;
  /** Its login name. */
  name: string;
  /** May be issued the `admin` scope. */
  is_admin: boolean;
  /** Disabled users' tokens are refused. */
  disabled: boolean;
}

/** An issued token as kept: a JWT's id, or an API key's id and secret hash. */
export interface StoredToken {
  /** The JWT id (`jti`), or `key_<prefix>` for an API key. */
  id: string;
  /** What the token may do, e.g. `["tunnel"]`. */
  scopes: string[];
  /** Expiry; `null` never expires. */
  expires_at: Date | null;
  /** Set once revoked. */
  revoked_at: Date | null;
  /** `jwt` (signed token) or `key` (random API key, kept hashed). */
  kind: "jwt" | "key";
  /** SHA-256 (hex) of an API key; `null` for JWTs. */
  secret_hash: string | null;
  /** What the token may publish; `{}`: no limit of its own. */
  limits: TokenLimits;
}

/** A token to keep (see {@linkcode TokenStore.addToken}). */
export interface NewToken {
  /** The JWT id, or `key_<prefix>` for an API key. */
  id: string;
  /** The owner's id. */
  userId: number;
  /** What the token may do. */
  scopes: string[];
  /** Expiry; `null` never expires. */
  expiresAt: Date | null;
  /** SHA-256 (hex) of an API key; `null` for a JWT. */
  secretHash: string | null;
  /** What the token may publish. */
  limits: TokenLimits;
}

/** A key that signs user tokens. */
export interface SigningKeyRecord {
  /** JWT `kid`. */
  kid: string;
  /** JWT algorithm (`EdDSA`; `HS256` for keys of older servers). */
  alg: string;
  /** The private JWK as JSON (base64url secret for HS256). */
  secret: string;
}

/** A token with its owner: what the store reads and the token cache keeps. */
export interface CachedKey<U extends TokenOwner = TokenOwner> {
  /** The token. */
  key: StoredToken;
  /** Its owner. */
  user: U;
}

/** A change to users or tokens made elsewhere, as a change feed reports it. */
export interface TokenChange {
  /** The table changed: `api_keys`, `users`, or another (ignored). */
  table: string;
  /** The row's id: a token id for `api_keys`, a user id for `users`. */
  id?: number | string | undefined;
}

/**
 * Where tokens, their owners and the signing keys are kept, with the user
 * type `U` of the store's own.
 *
 * The token service checks logins from a cache while the store cannot
 * answer: the reads a login waits on go through {@linkcode TokenStore.lookup},
 * and {@linkcode TokenStore.isUnavailable} says which failures mean "not
 * now". Errors pass through the service unchanged, so the store's own
 * classes reach its callers.
 *
 * @example
 * ```ts ignore
 * const tokens = await TokenService.create(tokenStore(store), logger);
 * ```
 */
export interface TokenStore<U extends TokenOwner = TokenOwner> {
  /** The signing keys that still verify, newest first. */
  signingKeys(): Promise<SigningKeyRecord[]>;
  /** Keeps a new signing key. */
  addSigningKey(key: SigningKeyRecord): Promise<void>;
  /** Stops a signing key from verifying. */
  retireSigningKey(kid: string): Promise<void>;
  /**
   * The user called `name`.
   *
   * @throws an error of the store's own when there is none, saying how to add one.
   */
  user(name: string): Promise<U>;
  /** Keeps an issued token. */
  addToken(token: NewToken): Promise<void>;
  /** The tokens among `ids` that exist, each with its owner, by id. */
  tokens(ids: readonly string[]): Promise<Map<string, CachedKey<U>>>;
  /**
   * Runs reads that a login waits on: they fail at once while the store is
   * known to be down, and when the store does not answer in time, with an
   * error that {@linkcode TokenStore.isUnavailable} recognises.
   */
  lookup<T>(read: () => Promise<T>): Promise<T>;
  /** Whether `error` means the store could not answer now; the same read may succeed later. */
  isUnavailable(error: unknown): boolean;
}

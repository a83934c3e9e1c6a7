/**
 * Data access for the accounts: `users`, `signing_keys`, `api_keys`.
 *
 * @module
 */

import type { Queryable } from "./db.ts";
import { parseCidr, parsePortRanges } from "../util/mod.ts";
import type { ApiKey, SigningKey, TokenLimits, User } from "./models.ts";
import { ConflictError, NotFoundError, ValidationError } from "./errors.ts";
import { checkName, json, sqlState } from "./_sql.ts";

// ---------------------------------------------------------------- users

/** `users`. */
export class UsersDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /**
   * Adds a user.
   *
   * @throws {ConflictError} when the name is taken.
   */
  async add(name: string, options: { admin?: boolean } = {}): Promise<User> {
    checkName("User", name);
    try {
      const [row] = await this.#db.query<User>(
        "insert into users (name, is_admin) values ($1, $2) returning *",
        [name, options.admin ?? false],
      );
      return row!;
    } catch (error) {
      if (sqlState(error) === "23505") throw new ConflictError(`User "${name}" already exists`);
      throw error;
    }
  }

  /** Returns the user, creating it first when missing. */
  async ensure(name: string, options: { admin?: boolean } = {}): Promise<User> {
    checkName("User", name);
    await this.#db.query(
      "insert into users (name, is_admin) values ($1, $2) on conflict (name) do nothing",
      [name, options.admin ?? false],
    );
    return (await this.byName(name))!;
  }

  /** The user called `name`. */
  async byName(name: string): Promise<User | null> {
    const [row] = await this.#db.query<User>("select * from users where name = $1", [name]);
    return row ?? null;
  }

  /** The user with id `id`. */
  async byId(id: number): Promise<User | null> {
    const [row] = await this.#db.query<User>("select * from users where id = $1", [id]);
    return row ?? null;
  }

  /** Every user, by name. */
  list(): Promise<User[]> {
    return this.#db.query<User>("select * from users order by name");
  }

  /**
   * Sets a user's policy; fields left out keep their value.
   *
   * @throws {NotFoundError} when there is no such user; {@link ValidationError} on bad values.
   */
  async setPolicy(
    name: string,
    policy: {
      allowed_clients?: string[];
      allow_ports?: string | null;
      allow_ips?: string[];
      deny_ips?: string[];
      max_bandwidth?: number | null;
    },
  ): Promise<User> {
    if (policy.max_bandwidth !== undefined && policy.max_bandwidth !== null) {
      if (!Number.isInteger(policy.max_bandwidth) || policy.max_bandwidth <= 0) {
        throw new ValidationError("max_bandwidth must be a positive number of bytes per second");
      }
    }
    if (policy.allow_ports) {
      try {
        parsePortRanges(policy.allow_ports);
      } catch (error) {
        throw new ValidationError(`allow_ports: ${(error as Error).message}`);
      }
    }
    for (const key of ["allow_ips", "deny_ips"] as const) {
      for (const block of policy[key] ?? []) {
        try {
          parseCidr(block);
        } catch (error) {
          throw new ValidationError(`${key}: ${(error as Error).message}`);
        }
      }
    }
    const [row] = await this.#db.query<User>(
      `update users set
         allowed_clients = coalesce($2::text::jsonb, allowed_clients),
         allow_ports = case when $3::boolean then $4::text else allow_ports end,
         allow_ips = coalesce($5::text::jsonb, allow_ips),
         deny_ips = coalesce($6::text::jsonb, deny_ips),
         max_bandwidth = case when $7::boolean then $8::bigint else max_bandwidth end
       where name = $1 returning *`,
      [
        name,
        policy.allowed_clients ? json(policy.allowed_clients) : null,
        policy.allow_ports !== undefined,
        policy.allow_ports || null,
        policy.allow_ips ? json(policy.allow_ips) : null,
        policy.deny_ips ? json(policy.deny_ips) : null,
        policy.max_bandwidth !== undefined,
        policy.max_bandwidth ?? null,
      ],
    );
    if (!row) throw new NotFoundError(`No user "${name}"`);
    return row;
  }

  /**
   * Disables or re-enables a user.
   *
   * @throws {NotFoundError} when there is no such user.
   */
  async setDisabled(name: string, disabled: boolean): Promise<User> {
    const [row] = await this.#db.query<User>(
      "update users set disabled = $2 where name = $1 returning *",
      [name, disabled],
    );
    if (!row) throw new NotFoundError(`No user "${name}"`);
    return row;
  }
}

// ---------------------------------------------------------------- keys

/** `signing_keys`. */
export class SigningKeysDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Keys that still verify, newest first. */
  active(): Promise<SigningKey[]> {
    return this.#db.query<SigningKey>(
      "select * from signing_keys where retired_at is null order by created_at desc, kid",
    );
  }

  /** Stores a new key. */
  async add(kid: string, alg: string, secret: string): Promise<void> {
    await this.#db.query("insert into signing_keys (kid, alg, secret) values ($1, $2, $3)", [
      kid,
      alg,
      secret,
    ]);
  }

  /** Stops a key from verifying. */
  async retire(kid: string): Promise<void> {
    await this.#db.query("update signing_keys set retired_at = now() where kid = $1", [kid]);
  }
}

/** `api_keys`, joined with the owner where useful. */
export class ApiKeysDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Records an issued token (a JWT's id, or an API key's id and secret hash). */
  async add(
    id: string,
    userId: number,
    scopes: string[],
    expiresAt: Date | null,
    key?: { secretHash: string },
    limits: TokenLimits = {},
  ): Promise<ApiKey> {
    const [row] = await this.#db.query<ApiKey>(
      "insert into api_keys (id, user_id, scopes, expires_at, kind, secret_hash, limits) " +
        "values ($1, $2, $3::text::jsonb, $4, $5, $6, $7::text::jsonb) returning *",
      [
        id,
        userId,
        json(scopes),
        expiresAt,
        key ? "key" : "jwt",
        key?.secretHash ?? null,
        json(limits),
      ],
    );
    return row!;
  }

  /** The token `id` with its owner, or `null`. */
  async withUser(id: string): Promise<{ key: ApiKey; user: User } | null> {
    return (await this.withUsers([id])).get(id) ?? null;
  }

  /** The tokens among `ids` that exist, each with its owner, by id (one query). */
  async withUsers(ids: readonly string[]): Promise<Map<string, { key: ApiKey; user: User }>> {
    const out = new Map<string, { key: ApiKey; user: User }>();
    if (!ids.length) return out;
    const rows = await this.#db.query<{ key: ApiKey; user: User }>(
      "select to_jsonb(k) as key, to_jsonb(u) as user from api_keys k " +
        "join users u on u.id = k.user_id " +
        "where k.id in (select jsonb_array_elements_text($1::text::jsonb))",
      [json(ids)],
    );
    const dates = (o: Record<string, unknown>, keys: string[]) => {
      for (const k of keys) if (typeof o[k] === "string") o[k] = new Date(o[k] as string);
    };
    for (const row of rows) {
      dates(row.key as unknown as Record<string, unknown>, [
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
      ]);
      dates(row.user as unknown as Record<string, unknown>, ["created_at"]);
      out.set(row.key.id, row);
    }
    return out;
  }

  /** Tokens, newest first, optionally of one user. */
  list(userId?: number): Promise<Array<Omit<ApiKey, "secret_hash"> & { user_name: string }>> {
    return this.#db.query(
      "select k.id, k.user_id, k.scopes, k.created_at, k.expires_at, k.revoked_at, " +
        "k.last_used_at, k.kind, k.limits, u.name as user_name " +
        "from api_keys k join users u on u.id = k.user_id " +
        "where ($1::bigint is null or k.user_id = $1) order by k.created_at desc",
      [userId ?? null],
    );
  }

  /**
   * Revokes a token.
   *
   * @throws {NotFoundError} when there is no such token.
   */
  async revoke(id: string): Promise<ApiKey> {
    const [row] = await this.#db.query<ApiKey>(
      "update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1 returning *",
      [id],
    );
    if (!row) throw new NotFoundError(`No token with id "${id}"`);
    return row;
  }

  /** Notes a login with each token. */
  async touch(ids: string[]): Promise<void> {
    if (!ids.length) return;
    await this.#db.query(
      "update api_keys set last_used_at = now() " +
        "where id in (select jsonb_array_elements_text($1::text::jsonb))",
      [json(ids)],
    );
  }
}

/**
 * Data access for each table. Every statement is a fixed string with `$n`
 * parameters: user input never becomes SQL text. Batched writes pass their
 * rows as one JSON parameter expanded by `jsonb_to_recordset`, so a batch of
 * any size is one query.
 *
 * @module
 */

import type { Queryable } from "./db.ts";
import { parseCidr } from "../util/cidr.ts";
import { ENTITY_NAME } from "../util/names.ts";
import { parsePortRanges } from "../util/units.ts";
import type {
  AlertRow,
  ApiKey,
  LogRow,
  MetricRow,
  SessionRow,
  SigningKey,
  TokenLimits,
  TunnelInput,
  TunnelRow,
  TunnelType,
  User,
} from "./models.ts";

/** A change the database refused because it clashes with existing rows. */
export class ConflictError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConflictError";
  }
}

/** A named row does not exist. */
export class NotFoundError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

/** Invalid input for a table (bad name, port out of range, …). */
export class ValidationError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ValidationError";
  }
}

const TYPES: readonly TunnelType[] = ["tcp", "udp", "http", "https"];

function checkName(what: string, name: string): void {
  if (!ENTITY_NAME.test(name)) {
    throw new ValidationError(
      `${what} name ${JSON.stringify(name)} is invalid: use 1-64 letters, digits, "_", "." ` +
        `or "-", starting with a letter or digit`,
    );
  }
}

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function json(value: unknown): string {
  return JSON.stringify(value);
}

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

// ---------------------------------------------------------------- tunnels

/** A tunnel as a client declares it in its YAML. */
export interface DeclaredTunnel {
  /** Tunnel name. */
  name: string;
  /** Tunnel kind. */
  type: TunnelType;
  /** Local service host. */
  local_addr?: string;
  /** Local service port. */
  local_port: number;
  /** Public port asked for; 0 lets the server choose. */
  remote_port?: number;
  /** Host names for http(s). */
  custom_domains?: string[];
  /** Label under `server.subdomain_host`. */
  subdomain?: string;
  /** Load-balancing group: members share the public port. */
  group?: string;
  /** Recorded in `options` (group, load_balance, weight). */
  options?: Record<string, unknown>;
}

/** Traffic totals of a tunnel over a period. */
export interface TunnelTotals {
  /** Connections carried. */
  total_connections: number;
  /** Bytes from visitors. */
  total_bytes_in: number;
  /** Bytes to visitors. */
  total_bytes_out: number;
  /** Failed connections. */
  total_errors: number;
}

/** `tunnels`. */
export class TunnelsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Every tunnel, optionally of one user, by user and name. */
  list(userId?: number): Promise<TunnelRow[]> {
    return this.#db.query<TunnelRow>(
      "select * from tunnels where ($1::bigint is null or user_id = $1) order by user_id, name",
      [userId ?? null],
    );
  }

  /**
   * Tunnels with their owner and traffic totals since `since` (from
   * `metrics`): what `burrowd tunnel list` and `burrowd group list` show.
   */
  overview(
    since: Date = new Date(0),
  ): Promise<Array<TunnelRow & TunnelTotals & { user_name: string }>> {
    return this.#db.query(
      `select t.*, u.name as user_name,
              coalesce(sum(m.connections), 0)::int as total_connections,
              coalesce(sum(m.bytes_in), 0)::bigint as total_bytes_in,
              coalesce(sum(m.bytes_out), 0)::bigint as total_bytes_out,
              coalesce(sum(m.errors), 0)::int as total_errors
         from tunnels t join users u on u.id = t.user_id
         left join metrics m on m.tunnel_id = t.id and m.bucket >= $1
        group by t.id, u.name
        order by t.options->>'group' nulls first, u.name, t.name`,
      [since],
    );
  }

  /** The tunnel `id`. */
  async get(id: number): Promise<TunnelRow | null> {
    const [row] = await this.#db.query<TunnelRow>("select * from tunnels where id = $1", [id]);
    return row ?? null;
  }

  /** The tunnels among `ids` that still exist (one query). */
  byIds(ids: readonly number[]): Promise<TunnelRow[]> {
    if (!ids.length) return Promise.resolve([]);
    return this.#db.query<TunnelRow>(
      "select * from tunnels where id in (select jsonb_array_elements_text($1::text::jsonb)::bigint)",
      [json(ids)],
    );
  }

  /** The user's tunnel called `name`. */
  async byName(userId: number, name: string): Promise<TunnelRow | null> {
    const [row] = await this.#db.query<TunnelRow>(
      "select * from tunnels where user_id = $1 and name = $2",
      [userId, name],
    );
    return row ?? null;
  }

  /** Enabled database-managed tunnels a session of `clientId` may serve. */
  managedFor(userId: number): Promise<TunnelRow[]> {
    return this.#db.query<TunnelRow>(
      "select * from tunnels where user_id = $1 and source = 'api' and enabled order by name",
      [userId],
    );
  }

  /** Enabled database-managed tunnels of each of `userIds` (one query). */
  managedForUsers(userIds: readonly number[]): Promise<TunnelRow[]> {
    return this.#db.query<TunnelRow>(
      "select * from tunnels where source = 'api' and enabled and user_id in " +
        "(select jsonb_array_elements_text($1::text::jsonb)::bigint) order by user_id, name",
      [json(userIds)],
    );
  }

  /**
   * Checks that no other tunnel owns the public port or a domain.
   *
   * @throws {ConflictError} naming the owner.
   */
  async checkConflicts(
    userId: number,
    t: Pick<TunnelInput, "type" | "remote_port" | "custom_domains" | "subdomain"> & {
      name: string;
    },
    exceptId: number | null,
    group: string | null = null,
    locations: string[] = ["/"],
  ): Promise<void> {
    const rows = await this.#db.query<
      {
        id: number;
        name: string;
        user_id: number;
        status: string;
        updated_at: Date | string;
        what: string;
      }
    >(
      `select t.id, t.name, t.user_id, t.status, t.updated_at,
              case when $2::int > 0 and t.remote_port = $2::int
                        and (t.type = 'udp') = ($3::text = 'udp') then 'port'
                   when $5::text is not null and t.subdomain = $5::text then 'subdomain'
                   else 'domain' end as what
         from tunnels t join users u on u.id = t.user_id
        where t.enabled and t.id <> coalesce($1::bigint, -1)
          and (($2::int > 0 and t.remote_port = $2::int and (t.type = 'udp') = ($3::text = 'udp')
                and ($6::text is null or (t.options->>'group') is distinct from $6::text))
               -- A host name belongs to one user; that user's tunnels may split it by
               -- type (http/https) and path prefix, and a group's members share it.
               or ((t.custom_domains ?| array(select jsonb_array_elements_text($4::text::jsonb))
                    or ($5::text is not null and t.subdomain = $5::text))
                   and ($6::text is null or (t.options->>'group') is distinct from $6::text)
                   and (t.user_id <> $7::bigint
                        or (t.type = $3::text
                            and coalesce(t.options->'locations', '["/"]'::jsonb)
                                ?| array(select jsonb_array_elements_text($8::text::jsonb))))))
        limit 1`,
      [
        exceptId,
        t.remote_port ?? 0,
        t.type,
        json(t.custom_domains ?? []),
        t.subdomain ?? null,
        group,
        userId,
        json(locations),
      ],
    );
    const clash = rows[0];
    if (!clash) return;
    const thing = clash.what === "port"
      ? `Port ${t.remote_port}`
      : clash.what === "subdomain"
      ? `Subdomain "${t.subdomain}"`
      : `A domain of ${JSON.stringify(t.custom_domains)}`;
    if (clash.user_id !== userId) {
      // Another user's: say no more than that it exists.
      throw new ConflictError(
        `${thing} is reserved by another user's tunnel; choose another, ` +
          "or ask the server's administrator to release it",
      );
    }
    if (clash.status === "active") {
      throw new ConflictError(`${thing} is in use by your tunnel "${clash.name}", which is online`);
    }
    const since = new Date(clash.updated_at).toISOString().replace("T", " ").slice(0, 19);
    throw new ConflictError(
      `${thing} is reserved by your tunnel "${clash.name}" (${clash.status} since ${since} UTC); ` +
        `connect that tunnel again or release it with \`burrowd tunnel release ${clash.name}\` ` +
        `or DELETE /api/v1/tunnels/${clash.id}`,
    );
  }

  /**
   * Creates a database-managed tunnel.
   *
   * @throws {ValidationError} on bad input, {@link ConflictError} on a clash.
   */
  async create(userId: number, input: TunnelInput): Promise<TunnelRow> {
    validateTunnel(input);
    await this.checkConflicts(userId, input, null, null, locationsOf(input.options));
    try {
      const [row] = await this.#db.query<TunnelRow>(
        `insert into tunnels (user_id, name, type, source, client_id, local_addr, local_port,
                              remote_port, custom_domains, subdomain, options, enabled)
         values ($1, $2, $3, 'api', $4, $5, $6, $7, $8::text::jsonb, $9, $10::text::jsonb, $11)
         returning *`,
        [
          userId,
          input.name,
          input.type,
          input.client_id ?? null,
          input.local_addr ?? "127.0.0.1",
          input.local_port ?? null,
          input.remote_port ?? null,
          json(input.custom_domains ?? []),
          input.subdomain ?? null,
          json(input.options ?? {}),
          input.enabled ?? true,
        ],
      );
      return row!;
    } catch (error) {
      throw uniqueToConflict(error, input);
    }
  }

  /**
   * Changes a tunnel's definition; fields left out keep their value.
   *
   * @throws {NotFoundError}, {@link ValidationError} or {@link ConflictError}.
   */
  async update(id: number, patch: Partial<TunnelInput>): Promise<TunnelRow> {
    const current = await this.get(id);
    if (!current) throw new NotFoundError(`No tunnel with id ${id}`);
    const next: TunnelInput = {
      name: patch.name ?? current.name,
      type: patch.type ?? current.type,
      client_id: patch.client_id !== undefined ? patch.client_id : current.client_id,
      local_addr: patch.local_addr ?? current.local_addr,
      local_port: patch.local_port !== undefined ? patch.local_port : current.local_port,
      remote_port: patch.remote_port !== undefined ? patch.remote_port : current.remote_port,
      custom_domains: patch.custom_domains ?? current.custom_domains,
      subdomain: patch.subdomain !== undefined ? patch.subdomain : current.subdomain,
      options: patch.options ?? current.options,
      enabled: patch.enabled ?? current.enabled,
    };
    validateTunnel(next);
    if (next.enabled) {
      await this.checkConflicts(current.user_id, next, id, null, locationsOf(next.options));
    }
    try {
      const [row] = await this.#db.query<TunnelRow>(
        `update tunnels set name = $2, type = $3, client_id = $4, local_addr = $5, local_port = $6,
                remote_port = $7, custom_domains = $8::text::jsonb, subdomain = $9,
                options = $10::text::jsonb, enabled = $11, updated_at = now()
          where id = $1 returning *`,
        [
          id,
          next.name,
          next.type,
          next.client_id ?? null,
          next.local_addr,
          next.local_port ?? null,
          next.remote_port ?? null,
          json(next.custom_domains),
          next.subdomain ?? null,
          json(next.options),
          next.enabled,
        ],
      );
      return row!;
    } catch (error) {
      throw uniqueToConflict(error, next);
    }
  }

  /** Deletes a tunnel; false when there was none. */
  async remove(id: number): Promise<boolean> {
    const rows = await this.#db.query("delete from tunnels where id = $1 returning id", [id]);
    return rows.length > 0;
  }

  /**
   * Records a tunnel a client declared, under its user. A clash with another
   * tunnel, a name the database manages, or a tunnel disabled by an
   * administrator is refused.
   *
   * @throws {ConflictError} with the reason.
   */
  async recordDeclared(userId: number, clientId: string, t: DeclaredTunnel): Promise<TunnelRow> {
    const existing = await this.byName(userId, t.name);
    if (existing?.source === "api") {
      throw new ConflictError(
        `Tunnel name "${t.name}" is managed on the server; rename the tunnel in the client config`,
      );
    }
    if (existing && !existing.enabled) {
      throw new ConflictError(`Tunnel "${t.name}" is disabled on the server`);
    }
    const input: TunnelInput = {
      name: t.name,
      type: t.type,
      client_id: clientId,
      local_addr: t.local_addr ?? "127.0.0.1",
      local_port: t.local_port,
      remote_port: t.remote_port ?? 0,
      custom_domains: t.custom_domains ?? [],
      subdomain: t.subdomain ?? null,
    };
    validateTunnel(input);
    await this.checkConflicts(
      userId,
      input,
      existing?.id ?? null,
      t.group ?? null,
      locationsOf(t.options),
    );
    try {
      const [row] = await this.#db.query<TunnelRow>(
        `insert into tunnels (user_id, name, type, source, client_id, local_addr, local_port,
                              remote_port, custom_domains, subdomain, options)
         values ($1, $2, $3, 'client', $4, $5, $6, $7, $8::text::jsonb, $9, $10::text::jsonb)
         on conflict (user_id, name) do update set
           type = excluded.type, client_id = excluded.client_id, local_addr = excluded.local_addr,
           local_port = excluded.local_port, remote_port = excluded.remote_port,
           custom_domains = excluded.custom_domains, subdomain = excluded.subdomain,
           options = excluded.options,
           updated_at = case when (tunnels.type, tunnels.client_id, tunnels.local_addr,
                                   tunnels.local_port, tunnels.remote_port,
                                   tunnels.custom_domains, tunnels.subdomain)
                                  is not distinct from
                                  (excluded.type, excluded.client_id, excluded.local_addr,
                                   excluded.local_port, excluded.remote_port,
                                   excluded.custom_domains, excluded.subdomain)
                             then tunnels.updated_at else now() end
         where tunnels.source = 'client'
         returning *`,
        [
          userId,
          t.name,
          t.type,
          clientId,
          input.local_addr,
          t.local_port,
          input.remote_port,
          json(input.custom_domains),
          input.subdomain,
          json(t.options ?? {}),
        ],
      );
      if (!row) {
        throw new ConflictError(`Tunnel name "${t.name}" is managed on the server`);
      }
      return row;
    } catch (error) {
      throw uniqueToConflict(error, input);
    }
  }

  /** Stores what a server observed about a tunnel (notifies nobody). */
  async setStatus(
    id: number,
    status: TunnelRow["status"],
    activePort: number | null,
    error: string | null,
  ): Promise<void> {
    await this.#db.query(
      `update tunnels set status = $2, active_port = $3, last_error = $4,
              updated_at = case when status is distinct from $2 then now() else updated_at end
        where id = $1`,
      [id, status, activePort, error],
    );
  }
}

function validateTunnel(t: TunnelInput): void {
  checkName("Tunnel", t.name);
  if (!TYPES.includes(t.type)) {
    throw new ValidationError(`Tunnel type must be one of ${TYPES.join(", ")}, not "${t.type}"`);
  }
  const port = (what: string, p: number | null | undefined, min: number) => {
    if (p === null || p === undefined) return;
    if (!Number.isInteger(p) || p < min || p > 65535) {
      throw new ValidationError(`Tunnel ${what} must be an integer ${min}-65535, not ${p}`);
    }
  };
  port("local_port", t.local_port, 1);
  port("remote_port", t.remote_port, 0);
  if ((t.type === "tcp" || t.type === "udp") && !t.local_port) {
    throw new ValidationError(`A ${t.type} tunnel needs local_port`);
  }
  for (const d of t.custom_domains ?? []) {
    if (
      typeof d !== "string" ||
      !/^[a-z0-9*]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(d)
    ) {
      throw new ValidationError(`Custom domain ${JSON.stringify(d)} is not a valid host name`);
    }
  }
}

function uniqueToConflict(error: unknown, t: TunnelInput): unknown {
  if (sqlState(error) !== "23505") return error;
  const constraint = (error as { constraint_name?: string; constraint?: string }).constraint_name ??
    (error as { constraint?: string }).constraint ?? String((error as Error).message);
  if (constraint.includes("remote_port")) {
    return new ConflictError(`Port ${t.remote_port} is already taken by another tunnel`);
  }
  return new ConflictError(`A tunnel named "${t.name}" already exists for this user`);
}

// ---------------------------------------------------------------- sessions

/** A session as it opens. */
export interface SessionOpen {
  /** Session id. */
  id: string;
  /** Authenticated user. */
  user_id: number | null;
  /** The client's stable id. */
  client_id: string;
  /** `host:port`. */
  remote_addr: string;
  /** Client software. */
  client_version: string;
  /** The burrowd holding it. */
  node: string;
  /** Login time. */
  connected_at: Date;
}

/** Latest liveness of a session. */
export interface SessionBeat {
  /** Session id. */
  id: string;
  /** Last heartbeat. */
  at: Date;
  /** Round trip in ms. */
  rtt_ms: number | null;
  /** Bytes from the client so far. */
  bytes_in: number;
  /** Bytes to the client so far. */
  bytes_out: number;
}

/** `sessions`. Writes take whole batches. */
export class SessionsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Inserts opened sessions (one query). */
  async open(rows: SessionOpen[]): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `insert into sessions (id, user_id, client_id, remote_addr, client_version, node,
                             connected_at, last_heartbeat)
       select id, user_id, client_id, remote_addr, client_version, node, connected_at, connected_at
         from jsonb_to_recordset($1::text::jsonb) as x(id text, user_id bigint, client_id text,
              remote_addr text, client_version text, node text, connected_at timestamptz)
       on conflict (id) do nothing`,
      [json(rows)],
    );
  }

  /** Updates heartbeats and byte counts (one query). */
  async beat(rows: SessionBeat[]): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `update sessions s set last_heartbeat = x.at, rtt_ms = x.rtt_ms,
              bytes_in = x.bytes_in, bytes_out = x.bytes_out
         from jsonb_to_recordset($1::text::jsonb) as x(id text, at timestamptz,
              rtt_ms double precision, bytes_in bigint, bytes_out bigint)
        where s.id = x.id`,
      [json(rows)],
    );
  }

  /** Marks sessions closed (one query). */
  async close(rows: Array<{ id: string; at: Date; reason: string }>): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `update sessions s set disconnected_at = x.at, close_reason = x.reason
         from jsonb_to_recordset($1::text::jsonb) as x(id text, at timestamptz, reason text)
        where s.id = x.id and s.disconnected_at is null`,
      [json(rows)],
    );
  }

  /** Closes sessions a previous run of `node` left open; returns how many. */
  async closeLeftovers(node: string, reason: string): Promise<number> {
    const rows = await this.#db.query(
      `update sessions set disconnected_at = coalesce(last_heartbeat, connected_at),
              close_reason = $2
        where node = $1 and disconnected_at is null returning id`,
      [node, reason],
    );
    return rows.length;
  }

  /** Sessions, newest first. */
  list(options: { open?: boolean; limit?: number } = {}): Promise<SessionRow[]> {
    return this.#db.query<SessionRow>(
      `select * from sessions where (not $1::boolean or disconnected_at is null)
        order by connected_at desc limit $2`,
      [options.open ?? false, options.limit ?? 1000],
    );
  }

  /** One session. */
  async get(id: string): Promise<SessionRow | null> {
    const [row] = await this.#db.query<SessionRow>("select * from sessions where id = $1", [id]);
    return row ?? null;
  }
}

// ---------------------------------------------------------------- metrics, logs, alerts

/** `metrics`: counters added into per-tunnel buckets. */
export class MetricsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Adds counters into their buckets (one query). */
  async add(rows: MetricRow[]): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `insert into metrics (tunnel_id, bucket, bytes_in, bytes_out, connections, errors,
                            latency_ms_sum, latency_count)
       select * from jsonb_to_recordset($1::text::jsonb) as x(tunnel_id bigint, bucket timestamptz,
              bytes_in bigint, bytes_out bigint, connections integer, errors integer,
              latency_ms_sum double precision, latency_count integer)
        where exists (select 1 from tunnels t where t.id = x.tunnel_id)
       on conflict (tunnel_id, bucket) do update set
         bytes_in = metrics.bytes_in + excluded.bytes_in,
         bytes_out = metrics.bytes_out + excluded.bytes_out,
         connections = metrics.connections + excluded.connections,
         errors = metrics.errors + excluded.errors,
         latency_ms_sum = metrics.latency_ms_sum + excluded.latency_ms_sum,
         latency_count = metrics.latency_count + excluded.latency_count`,
      [json(rows)],
    );
  }

  /** A tunnel's buckets since `since`, oldest first. */
  list(tunnelId: number, since: Date = new Date(0)): Promise<MetricRow[]> {
    return this.#db.query<MetricRow>(
      "select * from metrics where tunnel_id = $1 and bucket >= $2 order by bucket",
      [tunnelId, since],
    );
  }
}

/** A log event before it is stored. */
export type LogInput = Omit<LogRow, "id">;

/** `logs`. */
export class LogsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Appends events (one query). */
  async add(rows: LogInput[]): Promise<void> {
    if (!rows.length) return;
    await this.#db.query(
      `insert into logs (at, level, kind, tunnel_id, session_id, message, fields)
       select at, level, kind,
              case when exists (select 1 from tunnels t where t.id = x.tunnel_id)
                   then x.tunnel_id end,
              session_id, message, coalesce(fields, '{}')
         from jsonb_to_recordset($1::text::jsonb) as x(at timestamptz, level text, kind text,
              tunnel_id bigint, session_id text, message text, fields jsonb)`,
      [json(rows)],
    );
  }

  /** Newest events first. */
  list(options: { kind?: LogRow["kind"]; limit?: number } = {}): Promise<LogRow[]> {
    return this.#db.query<LogRow>(
      "select * from logs where ($1::text is null or kind = $1) order by id desc limit $2",
      [options.kind ?? null, options.limit ?? 100],
    );
  }

  /** Deletes events older than `before`; returns how many. */
  async prune(before: Date): Promise<number> {
    return (await this.#db.query("delete from logs where at < $1 returning id", [before])).length;
  }
}

/** `alerts`. */
export class AlertsDao {
  #db: Queryable;
  /** Runs on `db`. */
  constructor(db: Queryable) {
    this.#db = db;
  }

  /** Records an alert whose condition started to hold (`pending`) or fires at once. */
  async fire(
    rule: string,
    severity: AlertRow["severity"],
    message: string,
    labels: Record<string, unknown> = {},
    state: "pending" | "firing" = "firing",
  ): Promise<AlertRow> {
    const [row] = await this.#db.query<AlertRow>(
      `insert into alerts (rule, severity, state, message, labels, fired_at)
       values ($1, $2, $3, $4, $5::text::jsonb, case when $3 = 'firing' then now() end)
       returning *`,
      [rule, severity, state, message, json(labels)],
    );
    return row!;
  }

  /** A pending alert's duration passed: it fires. */
  async firing(id: number, message?: string): Promise<void> {
    await this.#db.query(
      `update alerts set state = 'firing', fired_at = now(), message = coalesce($2, message)
        where id = $1 and state = 'pending'`,
      [id, message ?? null],
    );
  }

  /** Marks an alert resolved. */
  async resolve(id: number): Promise<void> {
    await this.#db.query(
      "update alerts set state = 'resolved', resolved_at = now() where id = $1 and state <> 'resolved'",
      [id],
    );
  }

  /** Deletes a pending alert whose condition stopped holding before it fired. */
  async discard(id: number): Promise<void> {
    await this.#db.query("delete from alerts where id = $1 and state = 'pending'", [id]);
  }

  /**
   * Silences an alert's notifications until `until`.
   *
   * @throws {NotFoundError} when there is no such alert.
   */
  async silence(id: number, until: Date): Promise<AlertRow> {
    const [row] = await this.#db.query<AlertRow>(
      "update alerts set silenced_until = $2 where id = $1 returning *",
      [id, until],
    );
    if (!row) throw new NotFoundError(`No alert with id ${id}`);
    return row;
  }

  /** One alert. */
  async get(id: number): Promise<AlertRow | null> {
    const [row] = await this.#db.query<AlertRow>("select * from alerts where id = $1", [id]);
    return row ?? null;
  }

  /** Alerts, newest first; only unresolved ones when asked. */
  list(options: { firing?: boolean; limit?: number; offset?: number } = {}): Promise<AlertRow[]> {
    return this.#db.query<AlertRow>(
      `select * from alerts where (not $1::boolean or state = 'firing')
        order by started_at desc, id desc limit $2 offset $3`,
      [options.firing ?? false, options.limit ?? 100, options.offset ?? 0],
    );
  }
}

/** The path prefixes an HTTP tunnel's options name (`["/"]` when none). */
function locationsOf(options: Record<string, unknown> | undefined): string[] {
  const l = options?.locations;
  return Array.isArray(l) && l.length && l.every((x) => typeof x === "string") ? l : ["/"];
}

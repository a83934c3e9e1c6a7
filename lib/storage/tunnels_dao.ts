/**
 * Data access for `tunnels`: database-managed tunnels and the record of
 * every tunnel a client declared, with validation and conflicts named.
 *
 * @module
 */

import { checkTunnel, formatProblems, type SpecProblem } from "../protocol/mod.ts";
import type { Queryable } from "./db.ts";
import type { TunnelInput, TunnelRow, TunnelType } from "./models.ts";
import { ConflictError, NotFoundError, ValidationError } from "./errors.ts";
import { json, sqlState } from "./_sql.ts";

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
   * @throws {ConflictError} naming the owning tunnel when it is `userId`'s
   * own, or anyone's with `options.admin` (an administrator asks); else
   * saying only that another user's tunnel has it.
   */
  async checkConflicts(
    userId: number,
    t: Pick<TunnelInput, "type" | "remote_port" | "custom_domains" | "subdomain"> & {
      name: string;
    },
    exceptId: number | null,
    group: string | null = null,
    locations: string[] = ["/"],
    options: { admin?: boolean } = {},
  ): Promise<void> {
    const rows = await this.#db.query<
      {
        id: number;
        name: string;
        user_id: number;
        user_name: string;
        status: string;
        updated_at: Date | string;
        what: string;
      }
    >(
      `select t.id, t.name, t.user_id, u.name as user_name, t.status, t.updated_at,
              case when $2::int > 0 and t.remote_port = $2::int
                        and (t.type = 'udp') = ($3::text = 'udp') then 'port'
                   when $5::text is not null and lower(t.subdomain) = lower($5::text)
                        then 'subdomain'
                   else 'domain' end as what
         from tunnels t join users u on u.id = t.user_id
        where t.enabled and t.id <> coalesce($1::bigint, -1)
          -- The tunnel's own row, whatever its id: written meanwhile by another node for
          -- another session of the same client (cluster mode, ha_connections).
          and not (t.user_id = $7::bigint and t.name = $9::text)
          and (($2::int > 0 and t.remote_port = $2::int and (t.type = 'udp') = ($3::text = 'udp')
                and ($6::text is null or (t.options->>'group') is distinct from $6::text))
               -- A host name belongs to one user; that user's tunnels may split it by
               -- type (http/https) and path prefix, and a group's members share it.
               -- Names compare in lower case, as the vhost router matches them (rows
               -- written before names were stored in lower case included).
               or ((lower(t.custom_domains::text)::jsonb
                      ?| array(select lower(jsonb_array_elements_text($4::text::jsonb)))
                    or ($5::text is not null and lower(t.subdomain) = lower($5::text)))
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
        t.name,
      ],
    );
    const clash = rows[0];
    if (!clash) return;
    const thing = clash.what === "port"
      ? `Port ${t.remote_port}`
      : clash.what === "subdomain"
      ? `Subdomain "${t.subdomain}"`
      : `A domain of ${JSON.stringify(t.custom_domains)}`;
    const mine = clash.user_id === userId;
    if (!mine && !options.admin) {
      // Another user's: say no more than that it exists.
      throw new ConflictError(
        `${thing} is reserved by another user's tunnel; choose another, ` +
          "or ask the server's administrator to release it",
      );
    }
    const whose = mine ? "your tunnel" : `user "${clash.user_name}"'s tunnel`;
    if (clash.status === "active") {
      throw new ConflictError(`${thing} is in use by ${whose} "${clash.name}", which is online`);
    }
    const since = new Date(clash.updated_at).toISOString().replace("T", " ").slice(0, 19);
    const release = `burrowd tunnel release ${clash.name}${
      mine ? "" : ` --user ${clash.user_name}`
    }`;
    throw new ConflictError(
      `${thing} is reserved by ${whose} "${clash.name}" (${clash.status} since ${since} UTC); ` +
        `connect that tunnel again or release it with \`${release}\` ` +
        `or DELETE /api/v1/tunnels/${clash.id}`,
    );
  }

  /**
   * Creates a database-managed tunnel.
   *
   * @throws {ValidationError} on bad input, {@link ConflictError} on a clash.
   */
  async create(userId: number, given: TunnelInput): Promise<TunnelRow> {
    const input = lowerNames(given);
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
   * Changes a tunnel's definition; fields left out keep their value. A
   * change of `enabled` or `client_id` alone is not checked against the
   * tunnel spec, so that a row written before one of its rules can always
   * be disabled or moved.
   *
   * @throws {NotFoundError}, {@link ValidationError} or {@link ConflictError}.
   */
  async update(id: number, patch: Partial<TunnelInput>): Promise<TunnelRow> {
    const current = await this.get(id);
    if (!current) throw new NotFoundError(`No tunnel with id ${id}`);
    const next: TunnelInput = lowerNames({
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
    });
    if (Object.keys(patch).some((key) => key !== "enabled" && key !== "client_id")) {
      validateTunnel(next);
    }
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
   * administrator is refused (with `options.admin`, the user is one and may
   * see whose tunnel clashes).
   *
   * @throws {ConflictError} with the reason.
   */
  async recordDeclared(
    userId: number,
    clientId: string,
    declared: DeclaredTunnel,
    options: { admin?: boolean } = {},
  ): Promise<TunnelRow> {
    const t = lowerNames(declared);
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
    // The client's group key is not recorded: a group without one is fine here.
    validateTunnel({ ...input, options: t.options ?? {} }, { withoutSecrets: true });
    await this.checkConflicts(
      userId,
      input,
      existing?.id ?? null,
      t.group ?? null,
      locationsOf(t.options),
      options,
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

/** The keys of the tunnel spec that are columns of `tunnels`; its other keys live in `options`. */
const COLUMNS = new Set([
  "name",
  "type",
  "local_addr",
  "local_port",
  "remote_port",
  "custom_domains",
  "subdomain",
]);

/**
 * Checks a tunnel's columns and options against the tunnel spec (the
 * rules the client's YAML and the server's wire check apply too).
 *
 * @throws {ValidationError} naming each field; keys inside options as `options.<key>`.
 */
function validateTunnel(t: TunnelInput, options: { withoutSecrets?: boolean } = {}): void {
  const stored = t.options ?? {};
  if (typeof stored !== "object" || stored === null || Array.isArray(stored)) {
    throw new ValidationError(
      'Invalid tunnel: options: expected a mapping of tunnel settings such as {"locations": ["/"]}',
    );
  }
  const problems: SpecProblem[] = [];
  const entries = Object.entries(stored).filter(([key]) => {
    if (!COLUMNS.has(key)) return true;
    problems.push({ field: `options.${key}`, message: `set ${key} on the tunnel, not in options` });
    return false;
  });
  const found = checkTunnel({
    // fromEntries keeps even a key called "__proto__" an own key.
    ...Object.fromEntries(entries),
    name: t.name,
    type: t.type,
    local_addr: t.local_addr ?? undefined,
    local_port: t.local_port ?? undefined,
    remote_port: t.remote_port ?? undefined,
    // An empty list is the column's "none".
    custom_domains: t.custom_domains?.length === 0 ? undefined : t.custom_domains,
    subdomain: t.subdomain ?? undefined,
  }, options);
  const optionKeys = new Set(entries.map(([key]) => key));
  for (const problem of found) {
    const column = COLUMNS.has(problem.field.split(/[.[]/, 1)[0]!) &&
      !optionKeys.has(problem.field);
    problems.push(column ? problem : { ...problem, field: `options.${problem.field}` });
  }
  if (problems.length) throw new ValidationError(`Invalid tunnel: ${formatProblems(problems)}`);
}

/**
 * `t` with its host names in lower case: names are stored and compared so,
 * as the vhost router matches them. Values that are not strings are left
 * for the validation to refuse.
 */
function lowerNames<T extends { custom_domains?: unknown; subdomain?: unknown }>(t: T): T {
  const lower = (v: unknown) => typeof v === "string" ? v.toLowerCase() : v;
  return {
    ...t,
    ...(Array.isArray(t.custom_domains) ? { custom_domains: t.custom_domains.map(lower) } : {}),
    ...(typeof t.subdomain === "string" ? { subdomain: lower(t.subdomain) } : {}),
  };
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

/** The path prefixes an HTTP tunnel's options name (`["/"]` when none). */
function locationsOf(options: Record<string, unknown> | undefined): string[] {
  const l = options?.locations;
  return Array.isArray(l) && l.length && l.every((x) => typeof x === "string") ? l : ["/"];
}

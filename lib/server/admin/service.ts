/**
 * The administration of a Burrow database, written once for both of its
 * faces: the REST API under `/api/v1` and the `burrowd` subcommands (`user
 * add`, `token issue`, `tunnel list`, …). Each method is one thing an
 * administrator does, on the storage DAOs and the token service; input is
 * already parsed (durations in ms, sizes in bytes) and failures are the
 * storage's and the tokens' own errors, which each face turns into its
 * answer (an HTTP status, an exit code).
 *
 * @module
 */

import { type IssuedToken, type IssueOptions, TokenService } from "../../auth/mod.ts";
import {
  type AlertRow,
  type ApiKey,
  type ClusterSessionRow,
  ConflictError,
  type KickNotice,
  type MetricRow,
  type NodeListing,
  NotFoundError,
  type SigningKey,
  type Store,
  type TunnelInput,
  type TunnelRow,
  type TunnelTotals,
  type User,
  type UsersDao,
} from "../../storage/mod.ts";
import { createLogger, type Logger } from "../../util/mod.ts";
import { tokenStore } from "../stores.ts";

/** The policy fields of a user (`UsersDao.setPolicy`); fields left out keep their value. */
export type UserPolicy = Parameters<UsersDao["setPolicy"]>[1];

/** A token as listed: never its secret. */
export type TokenListing = Omit<ApiKey, "secret_hash"> & { user_name: string };

/** A tunnel with its owner's name and its traffic over a period. */
export type TunnelOverview = TunnelRow & TunnelTotals & { user_name: string };

/**
 * The `dead_after` of a list of nodes made without a cluster configuration:
 * the default of `server.cluster.dead_after` (3 × the 5 s heartbeat).
 */
export const DEFAULT_DEAD_AFTER = 15_000;

/** The schema version of a database. */
export interface SchemaVersion {
  /** The newest migration applied; 0 when none. */
  version: number;
  /** Its name; `"empty"` when none. */
  name: string;
  /** The database behind the store. */
  kind: Store["kind"];
}

/** Options of {@linkcode AdminService}. */
export interface AdminServiceOptions {
  /**
   * The running server's token service. Default: one made on first use
   * (loading the signing keys, or creating the first one).
   */
  tokens?: TokenService;
  /** The logger of a token service made on first use. Default: warnings to stderr. */
  logger?: Logger;
  /**
   * Whether database work goes through `Store.run`, which notices outages
   * and bounds each query by the query timeout: what a running server
   * wants. A one-shot command has no outage to ride out and sets `false`.
   * Default `true`.
   */
  guarded?: boolean;
}

/**
 * One administrator's work on a Burrow database.
 *
 * @example
 * ```ts ignore
 * import { AdminService } from "./service.ts";
 * const admin = new AdminService(store, { guarded: false });
 * await admin.addUser("alice");
 * const { token } = await admin.issue("token", "alice", { ttlMs: 86_400_000 });
 * ```
 */
export class AdminService {
  #store: Store;
  #tokens: Promise<TokenService> | undefined;
  #logger: Logger | undefined;
  #guarded: boolean;

  /** The administration of `store`. */
  constructor(store: Store, options: AdminServiceOptions = {}) {
    this.#store = store;
    this.#tokens = options.tokens ? Promise.resolve(options.tokens) : undefined;
    this.#logger = options.logger;
    this.#guarded = options.guarded ?? true;
  }

  #run<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    return this.#guarded ? this.#store.run(fn) : fn(this.#store);
  }

  #tokenService(): Promise<TokenService> {
    return this.#tokens ??= TokenService.create(
      tokenStore(this.#store),
      this.#logger ?? createLogger({ level: "warn" }),
    );
  }

  // ---------------------------------------------------------------- users

  /** Every user, by name. */
  users(): Promise<User[]> {
    return this.#run((s) => s.users.list());
  }

  /**
   * The user called `name`.
   *
   * @throws {NotFoundError} when there is none.
   */
  async user(name: string): Promise<User> {
    const user = await this.#run((s) => s.users.byName(name));
    if (!user) throw new NotFoundError(`No user "${name}"`);
    return user;
  }

  /**
   * Adds a user; with `admin`, it may use the admin API and issue admin tokens.
   *
   * @throws {ConflictError} when the name is taken; `ValidationError` for a bad name.
   */
  addUser(name: string, options: { admin?: boolean } = {}): Promise<User> {
    return this.#run((s) => s.users.add(name, { admin: options.admin ?? false }));
  }

  /**
   * Sets a user's policy: the client ids, ports, addresses and bandwidth it may use.
   *
   * @throws {NotFoundError} when there is no such user; `ValidationError` on bad values.
   */
  setUserPolicy(name: string, policy: UserPolicy): Promise<User> {
    return this.#run((s) => s.users.setPolicy(name, policy));
  }

  /**
   * Disables a user (its sessions close, its tokens are refused) or enables it again.
   *
   * @throws {NotFoundError} when there is no such user.
   */
  setUserDisabled(name: string, disabled: boolean): Promise<User> {
    return this.#run((s) => s.users.setDisabled(name, disabled));
  }

  // ---------------------------------------------------------------- tokens and keys

  /**
   * The tokens and API keys, of one user or of all.
   *
   * @throws {NotFoundError} for an unknown user.
   */
  async tokens(userName?: string): Promise<TokenListing[]> {
    const userId = userName === undefined ? undefined : (await this.user(userName)).id;
    return await this.#run((s) => s.apiKeys.list(userId));
  }

  /**
   * Issues `userName` a token (a signed JWT) or an API key (a random
   * secret stored hashed); the secret is in the result and nowhere else.
   *
   * @throws {NotFoundError} for an unknown user; `TokenError` for a disabled one, a bad scope or limit.
   */
  issue(kind: "token" | "key", userName: string, options: IssueOptions): Promise<IssuedToken> {
    return this.#run(async () => {
      const tokens = await this.#tokenService();
      return kind === "token"
        ? await tokens.issue(userName, options)
        : await tokens.createApiKey(userName, options);
    });
  }

  /**
   * Revokes a token or API key; the sessions logged in with it close.
   *
   * @throws {NotFoundError} when there is no such token.
   */
  async revoke(id: string): Promise<void> {
    await this.#run((s) => s.apiKeys.revoke(id));
  }

  /** The keys that sign tokens, newest (the one that signs) first. */
  signingKeys(): Promise<SigningKey[]> {
    return this.#run((s) => s.signingKeys.active());
  }

  /** Adds a new signing key, which signs from now on; returns its key id. */
  rotateSigningKey(): Promise<string> {
    return this.#run(async () => await (await this.#tokenService()).rotate());
  }

  /**
   * Retires a signing key: the tokens it signed stop working.
   *
   * @throws {NotFoundError} for an unknown key; `TokenError` for the last one.
   */
  retireSigningKey(kid: string): Promise<void> {
    return this.#run(async () => await (await this.#tokenService()).retire(kid));
  }

  // ---------------------------------------------------------------- tunnels

  /**
   * Every tunnel (or one user's) with its owner, state and traffic since
   * `since` (default: ever); secrets in options (basic auth, group key) masked.
   */
  async tunnels(options: { since?: Date; user?: string } = {}): Promise<TunnelOverview[]> {
    const rows = (await this.#run((s) => s.tunnels.overview(options.since))).map(masked);
    return options.user === undefined ? rows : rows.filter((r) => r.user_name === options.user);
  }

  /**
   * The tunnel `id`, secrets masked.
   *
   * @throws {NotFoundError} when there is none.
   */
  async tunnel(id: number): Promise<TunnelRow> {
    const row = await this.#run((s) => s.tunnels.get(id));
    if (!row) throw new NotFoundError(`No tunnel with id ${id}`);
    return masked(row);
  }

  /**
   * Creates a tunnel managed on the server for `userName`; it reaches the
   * user's connected client at once.
   *
   * @throws {NotFoundError} for an unknown user; `ValidationError` or {@linkcode ConflictError} for the tunnel.
   */
  async createTunnel(userName: string, input: TunnelInput): Promise<TunnelRow> {
    const user = await this.user(userName);
    return masked(await this.#run((s) => s.tunnels.create(user.id, input)));
  }

  /**
   * Changes, disables or enables a tunnel; the client follows at once.
   *
   * @throws {NotFoundError} when there is no such tunnel; `ValidationError` for bad values.
   */
  async updateTunnel(id: number, patch: Partial<TunnelInput>): Promise<TunnelRow> {
    return masked(await this.#run((s) => s.tunnels.update(id, patch)));
  }

  /**
   * Deletes a tunnel; its public port closes.
   *
   * @throws {NotFoundError} when there is no such tunnel.
   */
  async removeTunnel(id: number): Promise<void> {
    const removed = await this.#run((s) => s.tunnels.remove(id));
    if (!removed) throw new NotFoundError(`No tunnel with id ${id}`);
  }

  /**
   * Frees the port and names an offline client tunnel keeps reserved, by
   * deleting its record (the client records it again when it connects).
   * Returns the record as it was.
   *
   * @throws {NotFoundError} when no tunnel has the name; {@linkcode ConflictError} when
   * several users have one (name the `owner`), it is managed on the server, or it is online.
   */
  async releaseTunnel(name: string, owner?: string): Promise<TunnelOverview> {
    const t = releasable(await this.#run((s) => s.tunnels.overview()), name, owner);
    await this.#run((s) => s.tunnels.remove(t.id));
    return t;
  }

  /** The per-minute traffic of tunnel `id` since `since`. */
  tunnelMetrics(id: number, since: Date): Promise<MetricRow[]> {
    return this.#run((s) => s.metrics.list(id, since));
  }

  // ---------------------------------------------------------------- alerts and schema

  /** Alerts, newest first; with `firing`, only those firing now. */
  alerts(options: { firing?: boolean; limit?: number; offset?: number } = {}): Promise<AlertRow[]> {
    return this.#run((s) => s.alerts.list(options));
  }

  /**
   * Records that alert `id` is silenced until `until`; the running alert
   * engine is told separately.
   *
   * @throws {NotFoundError} when there is no such alert.
   */
  silenceAlert(id: number, until: Date): Promise<AlertRow> {
    return this.#run((s) => s.alerts.silence(id, until));
  }

  // ---------------------------------------------------------------- cluster

  /**
   * The nodes of the cluster (cluster mode; outside it, none have
   * registered and the list is empty), with their state: a running node not
   * heard from for `deadAfterMs` counts as dead.
   */
  nodes(deadAfterMs: number = DEFAULT_DEAD_AFTER): Promise<NodeListing[]> {
    return this.#run((s) => s.nodes.list(deadAfterMs));
  }

  /**
   * The open sessions of the other alive nodes (cluster mode), with their
   * node, user name and tunnels; only session `id` when given.
   */
  sessionsElsewhere(node: string, deadAfterMs: number, id?: string): Promise<ClusterSessionRow[]> {
    return this.#run((s) => s.sessions.openElsewhere(node, deadAfterMs, id));
  }

  /** Which other alive nodes hold which tunnel rows (cluster mode). */
  tunnelHolders(
    node: string,
    deadAfterMs: number,
  ): Promise<Array<{ node_id: string; tunnel_id: number }>> {
    return this.#run((s) => s.placements.holders(node, deadAfterMs));
  }

  /** Asks the node that holds a session to close it (`NOTIFY burrow_kick`). */
  sendKick(notice: KickNotice): Promise<void> {
    return this.#run((s) => s.sessions.kick(notice));
  }

  /** The newest migration applied to the database. */
  async schemaVersion(): Promise<SchemaVersion> {
    const [row] = await this.#run((s) =>
      s.db.query<{ version: number; name: string }>(
        "select version, name from schema_migrations order by version desc limit 1",
      )
    );
    return { version: row?.version ?? 0, name: row?.name ?? "empty", kind: this.#store.kind };
  }
}

/**
 * The work of {@linkcode AdminService} that the admin API offers too: what
 * a `burrowd` subcommand can have done by a running server.
 */
export type RoutedAdmin = Pick<
  AdminService,
  | "users"
  | "addUser"
  | "setUserPolicy"
  | "setUserDisabled"
  | "tokens"
  | "issue"
  | "revoke"
  | "tunnels"
  | "releaseTunnel"
  | "nodes"
>;

/**
 * The one tunnel among `tunnels` that `releaseTunnel(name, owner)` may
 * release: the checks of {@linkcode AdminService.releaseTunnel}, for the
 * service and for a subcommand that releases through the admin API.
 *
 * @throws {NotFoundError} when no tunnel has the name; {@linkcode ConflictError} when
 * several users have one (name the `owner`), it is managed on the server, or it is online.
 */
export function releasable(
  tunnels: readonly TunnelOverview[],
  name: string,
  owner?: string,
): TunnelOverview {
  const matches = tunnels.filter((t) => t.name === name && (!owner || t.user_name === owner));
  if (matches.length === 0) {
    throw new NotFoundError(
      `No tunnel named "${name}"${owner ? ` owned by "${owner}"` : ""}; ` +
        "see `burrowd tunnel list`",
    );
  }
  if (matches.length > 1) {
    throw new ConflictError(
      `Several users have a tunnel named "${name}" (${
        matches.map((t) => t.user_name).join(", ")
      }); say whose with --user`,
    );
  }
  const t = matches[0]!;
  if (t.source === "api") {
    throw new ConflictError(
      `Tunnel "${name}" is managed on the server: disable or delete it through the admin ` +
        `API (DELETE /api/v1/tunnels/${t.id})`,
    );
  }
  if (t.status === "active") {
    throw new ConflictError(
      `Tunnel "${name}" is online (client "${t.client_id}"); stop that client first`,
    );
  }
  return t;
}

/** A tunnel row as administrators see it: secrets in its options (basic auth, group key) masked. */
export function masked<T extends { options?: Record<string, unknown> | null }>(row: T): T {
  const options = row.options;
  if (!options || (!options.basic_auth && !options.group_key)) return row;
  const copy: Record<string, unknown> = { ...options };
  if (copy.group_key) copy.group_key = "***";
  if (copy.basic_auth && typeof copy.basic_auth === "object") {
    copy.basic_auth = { ...(copy.basic_auth as Record<string, unknown>), password: "***" };
  }
  return { ...row, options: copy };
}

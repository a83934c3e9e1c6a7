/**
 * Keeping live sessions in step with the database: the change feed's
 * notifications (a token revoked, a user disabled, a tunnel disabled,
 * deleted or changed) act on the sessions they concern, database-managed
 * tunnels are handed to the right session of their user, and after the feed
 * or the database reconnected a resync re-reads what the caches hold
 * instead of dropping it.
 *
 * @module
 */

import type { TokenService } from "../auth/mod.ts";
import {
  type ConfigChange,
  DatabaseUnavailableError,
  type Store,
  type TunnelRow,
} from "../storage/mod.ts";
import { type Logger, LruCache } from "../util/mod.ts";
import type { ClientSession } from "./session.ts";

/** What {@linkcode ConfigSync} needs from the server. */
export interface ConfigSyncHost {
  /** The authenticated sessions. */
  sessions(): Iterable<ClientSession>;
  /** Whether the server is shutting down (no more resyncs). */
  stopping(): boolean;
}

/** Options of {@linkcode ConfigSync}. */
export interface ConfigSyncOptions {
  host: ConfigSyncHost;
  store: Store;
  tokens: TokenService | null;
  logger: Logger;
  /** `user id/name` → the row of a tunnel a client declared (the server's cache, kept right here). */
  declared: LruCache<string, TunnelRow>;
}

/** Acts on database changes for the server's sessions. */
export class ConfigSync {
  /** user id → its database-managed tunnels, served from here while the database is down. */
  readonly managed: LruCache<number, TunnelRow[]> = new LruCache<number, TunnelRow[]>({
    max: 10_000,
    ttl: 60_000,
  });
  #host: ConfigSyncHost;
  #store: Store;
  #tokens: TokenService | null;
  #log: Logger;
  #declared: LruCache<string, TunnelRow>;
  #resyncing: Promise<void> | null = null;
  #resyncAgain = false;

  /** Nothing happens until a change, a resync or a login calls in. */
  constructor(options: ConfigSyncOptions) {
    this.#host = options.host;
    this.#store = options.store;
    this.#tokens = options.tokens;
    this.#log = options.logger;
    this.#declared = options.declared;
  }

  /** The user's sessions that are still connected. */
  #sessionsOf(userId: number): ClientSession[] {
    return [...this.#host.sessions()].filter((s) =>
      s.principal?.userId === userId && !s.mux.isClosed
    );
  }

  /** The user's managed tunnels: cached (invalidated by notifications), else read. */
  async #managedRows(userId: number): Promise<TunnelRow[] | null> {
    const cached = this.managed.get(userId);
    if (cached) return cached;
    try {
      const rows = await this.#store.run((s) => s.tunnels.managedFor(userId));
      this.managed.set(userId, rows);
      return rows;
    } catch (error) {
      if (!(error instanceof DatabaseUnavailableError)) {
        this.#log.error("loading managed tunnels failed", { user_id: userId, error });
      }
      // Keep serving what we had.
      return this.managed.getStale(userId) ?? null;
    }
  }

  /**
   * Hands sessions of a user the managed tunnels they serve: one bound to a
   * client id goes to that client, an unbound one to the user's newest
   * session. `only` limits the work to the sessions a login or logout affects.
   */
  async syncUser(userId: number, only?: ClientSession[]): Promise<void> {
    const sessions = this.#sessionsOf(userId);
    if (!sessions.length) return;
    const rows = await this.#managedRows(userId);
    if (!rows) return;
    const newest = sessions.reduce((a, b) => (b.connectedAt >= a.connectedAt ? b : a));
    const targets = only ? sessions.filter((s) => only.includes(s)) : sessions;
    await Promise.all(
      targets.map((session) =>
        session.applyManaged(
          rows.filter((r) =>
            r.client_id === session.clientId || (r.client_id === null && session === newest)
          ),
        )
      ),
    );
  }

  /** The user's most recently connected session, other than `except`. */
  newestOf(userId: number, except?: ClientSession): ClientSession | undefined {
    return this.#sessionsOf(userId).filter((s) => s !== except).reduce<ClientSession | undefined>(
      (a, b) => (!a || b.connectedAt >= a.connectedAt ? b : a),
      undefined,
    );
  }

  /**
   * After the change feed or the database reconnected (notifications may
   * have been missed): re-reads what the caches hold instead of dropping it,
   * so tokens and tunnels keep serving, and acts on what changed meanwhile:
   * sessions of revoked tokens or disabled users close, declared tunnels
   * disabled or deleted close, managed tunnels are handed out again. Runs
   * one at a time; requests meanwhile make one more run.
   */
  resync(): Promise<void> {
    if (this.#resyncing) {
      this.#resyncAgain = true;
      return this.#resyncing;
    }
    this.#resyncing = (async () => {
      do {
        this.#resyncAgain = false;
        await this.#resyncOnce().catch((error) =>
          this.#log.error("resynchronising failed", { error })
        );
      } while (this.#resyncAgain && !this.#host.stopping());
    })().finally(() => (this.#resyncing = null));
    return this.#resyncing;
  }

  async #resyncOnce(): Promise<void> {
    const store = this.#store;
    if (this.#host.stopping()) return;
    const sessions = [...this.#host.sessions()];
    if (this.#tokens) {
      const ids = sessions.map((s) => s.principal?.tokenId).filter((id) => id != null);
      const current = await this.#tokens.revalidate(ids as string[]);
      for (const session of current ? sessions : []) {
        const id = session.principal?.tokenId;
        if (id == null || !current!.has(id)) continue;
        const entry = current!.get(id);
        const why = !entry || entry.key.revoked_at
          ? "The token of this session was revoked"
          : entry.user.disabled
          ? `User "${entry.user.name}" was disabled`
          : null;
        if (!why) continue;
        this.#log.info("closing session after resync", { client_id: session.clientId, why });
        session.close(why);
      }
    }
    // Declared tunnels: those cached and those open.
    const ids = new Set<number>();
    for (const key of this.#declared.keys()) ids.add(this.#declared.getStale(key)!.id);
    for (const session of sessions) {
      for (const t of session.tunnels.values()) if (!t.managed && t.dbId != null) ids.add(t.dbId);
    }
    const rows = ids.size
      ? await store.run((s) => s.tunnels.byIds([...ids])).catch(() => null)
      : [];
    if (rows) {
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const key of this.#declared.keys()) {
        const row = byId.get(this.#declared.getStale(key)!.id);
        if (row) this.#declared.set(key, row);
        else this.#declared.delete(key);
      }
      for (const session of sessions) {
        for (const tunnel of [...session.tunnels.values()]) {
          if (tunnel.managed || tunnel.dbId == null) continue;
          const row = byId.get(tunnel.dbId);
          if (row?.enabled) continue;
          await session.revokeTunnel(
            tunnel.name,
            row ? "disabled on the server" : "deleted on the server",
          );
        }
      }
    }
    // Managed tunnels: re-read in one query (kept as cached if it fails), then handed out.
    const users = [
      ...new Set(
        [...this.#host.sessions()].map((s) => s.principal?.userId).filter((id) => id != null),
      ),
    ] as number[];
    const managed = users.length
      ? await store.run((s) => s.tunnels.managedForUsers(users)).catch(() => null)
      : null;
    for (const id of managed ? users : []) {
      this.managed.set(id, managed!.filter((r) => r.user_id === id));
    }
    for (const id of users) await this.syncUser(id);
  }

  /** Acts on one change from the database's feed (`table: "*"`: a resync). */
  async onChange(change: ConfigChange): Promise<void> {
    if (change.table === "*") return await this.resync();
    this.#tokens?.invalidate(change);
    const userId = change.user_id;
    if (change.table === "users" && typeof change.id === "number") {
      const user = change.op === "delete"
        ? null
        : await this.#store.run((s) => s.users.byId(change.id as number)).catch(() => undefined);
      if (user === undefined) return;
      if (!user || user.disabled) {
        for (const session of this.#sessionsOf(change.id)) {
          this.#log.info("closing session of a disabled user", {
            client_id: session.clientId,
            user: session.principal?.userName,
          });
          session.close(`User "${session.principal?.userName}" was disabled`);
        }
      }
      return;
    }
    if (change.table === "api_keys" && typeof change.id === "string") {
      const key = change.op === "delete"
        ? null
        : await this.#store.run((s) => s.apiKeys.withUser(change.id as string)).catch(() =>
          undefined
        );
      if (key === undefined) return;
      if (!key || key.key.revoked_at) {
        for (const session of this.#host.sessions()) {
          if (session.principal?.tokenId !== change.id) continue;
          this.#log.info("closing session of a revoked token", { client_id: session.clientId });
          session.close("The token of this session was revoked");
        }
      }
      return;
    }
    if (change.table !== "tunnels" || userId == null) return;
    if (typeof change.id === "number") this.#declared.deleteWhere((_, r) => r.id === change.id);
    if (change.source === "client" && typeof change.id === "number") {
      // A tunnel a client declared was disabled, deleted or changed in the database.
      const row = change.op === "delete"
        ? null
        : await this.#store.run((s) => s.tunnels.get(change.id as number)).catch(() => undefined);
      if (row === undefined) return;
      if (row) this.#declared.set(`${row.user_id}/${row.name}`, row);
      if (!row || !row.enabled) {
        for (const session of this.#sessionsOf(userId)) {
          for (const tunnel of session.tunnels.values()) {
            if (tunnel.dbId !== change.id || tunnel.managed) continue;
            await session.revokeTunnel(
              tunnel.name,
              row ? "disabled on the server" : "deleted on the server",
            );
          }
        }
      }
      return;
    }
    this.managed.delete(userId);
    await this.syncUser(userId);
  }
}

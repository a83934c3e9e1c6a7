/**
 * The `tunnels` rows of the tunnels clients declare: written before a
 * tunnel is published (a conflict refuses it), published at once when the
 * cached row already owns the same port and names, and queued while the
 * database is down (the tunnel is closed if the database refuses the row
 * once it answers). Status, counters and events of a tunnel refer to its
 * row, or to its queued row until that is written.
 *
 * @module
 */

import type { TunnelRequest } from "../protocol/mod.ts";
import {
  ConflictError,
  DatabaseUnavailableError,
  type DeclaredTunnel,
  type PendingTunnel,
  type Store,
  type TunnelRecord,
  type TunnelRef,
  type TunnelRow,
  ValidationError,
} from "../storage/mod.ts";
import { type Logger, LruCache } from "../util/mod.ts";
import type { ClientSession } from "./session.ts";
import type { TunnelRefs } from "./recorder.ts";
import { type PublicTunnel, TunnelError } from "./tunnels/mod.ts";

/** The declared tunnels' rows of one server. */
export class TunnelRecords implements TunnelRefs {
  /**
   * `user id/name` → the row of a tunnel a client declared, kept right by the
   * change feed and resyncs: a declaration that owns the same port and names
   * is published without waiting on the database.
   */
  readonly declared: LruCache<string, TunnelRow> = new LruCache<string, TunnelRow>({
    max: 10_000,
    ttl: Infinity,
  });
  /** `session id/name` → the queued row of a tunnel declared while the database was down. */
  #unrecorded = new Map<string, PendingTunnel>();
  #store: Store;
  #log: Logger;

  /** Rows go to `store`; what happens to them is logged to `logger`. */
  constructor(store: Store, logger: Logger) {
    this.#store = store;
    this.#log = logger;
  }

  /**
   * Records the row of a tunnel `session` declares; resolves to its id, or
   * `null` when it is queued. A declaration owning the same port and names as the cached row of this
   * user's tunnel is published at once and recorded in the background;
   * otherwise the row is written first (conflicts refuse the tunnel). While
   * the database is unreachable the row is queued and the tunnel published:
   * its counters and events wait with it, and if the database refuses the
   * row once it answers, the tunnel is closed with the reason.
   */
  async record(
    session: ClientSession,
    name: string,
    request: TunnelRequest,
  ): Promise<number | null> {
    const userId = session.principal?.userId;
    if (userId == null) return null;
    const store = this.#store;
    // An administrator's refusal names whose tunnel is in the way.
    const admin = session.principal?.admin ?? false;
    const record: TunnelRecord = {
      userId,
      clientId: session.clientId,
      tunnel: declaredTunnel(name, request),
      admin,
    };
    const cached = this.declared.get(`${userId}/${name}`);
    if (cached && ownsSame(cached, record.tunnel)) {
      this.#recordLater(session, record, cached.id);
      return cached.id;
    }
    if (!store.available || store.queuedTunnel(userId, name)) {
      return this.#queueTunnel(session, record);
    }
    try {
      const row = await store.run((s) =>
        s.tunnels.recordDeclared(userId, session.clientId, record.tunnel, { admin })
      );
      this.declared.set(`${userId}/${name}`, row);
      return row.id;
    } catch (error) {
      if (error instanceof ConflictError || error instanceof ValidationError) {
        throw new TunnelError(error.message);
      }
      if (error instanceof DatabaseUnavailableError) return this.#queueTunnel(session, record);
      throw error;
    }
  }

  /** Queues the row of a tunnel about to be published without one. */
  #queueTunnel(session: ClientSession, record: TunnelRecord): null {
    const name = record.tunnel.name;
    const pending = this.#store.queueTunnel(record, {
      onRecorded: (row) => this.#recorded(session, row),
      onRefused: (error) => this.#refusedLater(session, name, error),
    });
    this.#unrecorded.set(`${session.sessionId}/${name}`, pending);
    this.#log.warn("tunnel row queued: database unavailable", {
      tunnel: name,
      client_id: session.clientId,
      pending_writes: this.#store.pendingWrites,
    });
    return null;
  }

  /** Records (or queues) the row of a tunnel published under its cached row id `id`. */
  #recordLater(session: ClientSession, record: TunnelRecord, id: number): void {
    const store = this.#store;
    const { userId, clientId, tunnel, admin = false } = record;
    const options = {
      onRecorded: (row: TunnelRow) => {
        this.declared.set(`${row.user_id}/${row.name}`, row);
        // Re-created meanwhile (deleted, then declared again): the live tunnel follows its row.
        const live = session.tunnels.get(row.name);
        if (live && !live.managed && live.dbId === id) live.dbId = row.id;
      },
      onRefused: (error: Error) => this.#refusedLater(session, tunnel.name, error),
    };
    if (!store.available || store.queuedTunnel(userId, tunnel.name)) {
      store.queueTunnel(record, options);
      return;
    }
    store.run((s) => s.tunnels.recordDeclared(userId, clientId, tunnel, { admin })).then(
      options.onRecorded,
      (error) => {
        if (error instanceof DatabaseUnavailableError) store.queueTunnel(record, options);
        else if (error instanceof ConflictError || error instanceof ValidationError) {
          options.onRefused(error);
        } else this.#log.error("recording a tunnel failed", { tunnel: tunnel.name, error });
      },
    );
  }

  /** The queued row of a tunnel published during an outage was written. */
  #recorded(session: ClientSession, row: TunnelRow): void {
    this.declared.set(`${row.user_id}/${row.name}`, row);
    this.#unrecorded.delete(`${session.sessionId}/${row.name}`);
    const tunnel = session.tunnels.get(row.name);
    if (tunnel && !tunnel.managed && tunnel.dbId === null) tunnel.dbId = row.id;
    this.#log.info("queued tunnel row written", {
      tunnel: row.name,
      tunnel_id: row.id,
      client_id: session.clientId,
    });
  }

  /** The database refused the row of a tunnel published without it: the tunnel closes. */
  #refusedLater(session: ClientSession, name: string, error: Error): void {
    this.#unrecorded.delete(`${session.sessionId}/${name}`);
    const reason = `Tunnel "${name}" was published while the database could not check it, ` +
      `and the database refuses it: ${error.message}`;
    this.#log.warn("tunnel refused by the database after publishing", {
      tunnel: name,
      client_id: session.clientId,
      reason: error.message,
    });
    session.revokeTunnel(name, reason).catch(() => {});
  }

  /** What a session's tunnel's status, counters and events refer to, if anything. */
  ref(
    session: Pick<ClientSession, "sessionId">,
    tunnel: Pick<PublicTunnel, "dbId" | "name">,
  ): TunnelRef | null {
    return tunnel.dbId ?? this.#unrecorded.get(`${session.sessionId}/${tunnel.name}`) ?? null;
  }

  /** A tunnel of session `sessionId` is gone: its queued row is no longer followed. */
  forget(sessionId: string, name: string): void {
    this.#unrecorded.delete(`${sessionId}/${name}`);
  }

  /** A session ended: the queued rows of its tunnels are no longer followed. */
  forgetSession(sessionId: string): void {
    for (const key of this.#unrecorded.keys()) {
      if (key.startsWith(`${sessionId}/`)) this.#unrecorded.delete(key);
    }
  }
}

/**
 * The `tunnels` row fields of a tunnel a client declared (a request the
 * tunnel spec passed), host names in lower case as the row stores them.
 */
function declaredTunnel(name: string, request: TunnelRequest): DeclaredTunnel {
  const domains = [...request.custom_domains ?? [], ...(request.domain ? [request.domain] : [])];
  return {
    name,
    type: request.protocol,
    local_port: request.local_port,
    remote_port: request.remote_port ?? 0,
    ...(request.custom_domains || request.domain
      ? { custom_domains: domains.map((d) => d.toLowerCase()) }
      : {}),
    ...(request.subdomain ? { subdomain: request.subdomain.toLowerCase() } : {}),
    ...(typeof request.group === "string" || Array.isArray(request.locations)
      ? {
        ...(typeof request.group === "string" ? { group: request.group } : {}),
        options: {
          ...(typeof request.group === "string"
            ? {
              group: request.group,
              load_balance: request.load_balance ?? "round_robin",
              weight: request.weight ?? 1,
            }
            : {}),
          ...(Array.isArray(request.locations) ? { locations: request.locations } : {}),
        },
      }
      : {}),
  };
}

/**
 * Whether the recorded `row` already owns what `declared` claims (port, host
 * names, group), so publishing it needs no check by the database.
 */
function ownsSame(row: TunnelRow, declared: DeclaredTunnel): boolean {
  return row.enabled && row.source === "client" && row.type === declared.type &&
    (row.remote_port ?? 0) === (declared.remote_port ?? 0) &&
    canonical(row.custom_domains ?? []) === canonical(declared.custom_domains ?? []) &&
    (row.subdomain ?? null) === (declared.subdomain ?? null) &&
    canonical(row.options ?? {}) === canonical(declared.options ?? {});
}

/** JSON with object keys sorted (jsonb does not keep their order). */
function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}

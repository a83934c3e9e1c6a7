/**
 * Database-managed tunnels of one session: the rows the server keeps for a
 * client (`source = 'server'`) made real. Each reconcile opens new rows,
 * re-opens those whose public side changed, closes the rest, and returns
 * the list the client is told about (`config_push`).
 *
 * @module
 */

import type { PushedTunnel } from "../protocol/mod.ts";
import type { TunnelRow } from "../storage/mod.ts";
import type { IpPolicy, Logger } from "../util/mod.ts";
import {
  isTunnelType,
  listenSignature,
  managedRequest,
  openTunnel,
  type PublicTunnel,
  type TunnelContext,
  visitorPolicy,
} from "./tunnels/mod.ts";
import type { RecordedSession, SessionRecorder } from "./recorder.ts";

/** The session whose managed tunnels are reconciled. */
export interface ManagedSession extends RecordedSession {
  /** Its open tunnels by name, declared and managed. */
  readonly tunnels: Map<string, PublicTunnel>;
}

/** What reconciling needs besides the session. */
export interface ReconcileOptions {
  /** Where opened, closed and refused tunnels are logged. */
  logger: Logger;
  /** Where their state is recorded. */
  recorder: Pick<SessionRecorder, "tunnelStatus">;
  /** The session as a tunnel opened now sees it. */
  context: () => TunnelContext;
}

/**
 * Serves exactly `rows` in `session`: opens new ones, re-opens those whose
 * public side changed, closes the rest; resolves to every row's state as
 * the client is told it.
 */
export async function reconcileManaged(
  session: ManagedSession,
  rows: TunnelRow[],
  { logger, recorder, context }: ReconcileOptions,
): Promise<PushedTunnel[]> {
  const wanted = new Map(rows.map((r) => [r.id, r]));
  for (const [name, tunnel] of [...session.tunnels]) {
    if (!tunnel.managed) continue;
    const row = wanted.get(tunnel.dbId!);
    if (row && listenSignature(row) === listenSignature(tunnel.managed)) {
      tunnel.managed = row;
      continue;
    }
    session.tunnels.delete(name);
    await tunnel.close();
    recorder.tunnelStatus(session, tunnel, "offline", null, true);
    logger.info("tunnel closed", {
      tunnel: name,
      client_id: session.clientId,
      reason: row ? "changed on the server" : "removed or disabled on the server",
    });
  }
  const pushed: PushedTunnel[] = [];
  for (const row of rows) {
    const proxy = row.options.proxy_protocol;
    const base = {
      name: row.name,
      type: row.type,
      local_addr: row.local_addr,
      local_port: row.local_port ?? 0,
      ...(proxy === "v1" || proxy === "v2" ? { proxy_protocol: proxy as "v1" | "v2" } : {}),
    };
    const current = [...session.tunnels.values()].find((t) => t.managed && t.dbId === row.id);
    if (current) {
      pushed.push({
        ...base,
        status: "active",
        remote_port: current.port,
        ...(current.urls ? { urls: [...current.urls] } : {}),
      });
      continue;
    }
    let error: string | null = null;
    if (!isTunnelType(row.type)) {
      error = `Unknown tunnel type "${row.type}"`;
    } else if (!row.local_port) error = "Tunnel has no local_port";
    else if (session.tunnels.has(row.name)) {
      error = `Tunnel "${row.name}" already exists in this session`;
    }
    let policy: IpPolicy | undefined;
    try {
      policy = visitorPolicy(row.options.allow_ips, row.options.deny_ips);
    } catch (e) {
      error ??= (e as Error).message;
    }
    const opened = error ??
      await openTunnel(
        { name: row.name, request: managedRequest(row), policy },
        context(),
      );
    if (typeof opened === "string") {
      logger.warn("tunnel refused", {
        tunnel: row.name,
        client_id: session.clientId,
        reason: opened,
      });
      recorder.tunnelStatus(
        session,
        { dbId: row.id, name: row.name, port: 0, type: row.type },
        "failed",
        opened,
        true,
      );
      pushed.push({ ...base, status: "failed", error: opened });
      continue;
    }
    opened.dbId = row.id;
    opened.managed = row;
    session.tunnels.set(row.name, opened);
    recorder.tunnelStatus(session, opened, "active", null);
    logger.info("tunnel opened", {
      tunnel: row.name,
      type: row.type,
      client_id: session.clientId,
      remote_port: opened.port,
      managed: true,
    });
    pushed.push({
      ...base,
      status: "active",
      remote_port: opened.port,
      ...(opened.urls ? { urls: [...opened.urls] } : {}),
    });
  }
  return pushed;
}

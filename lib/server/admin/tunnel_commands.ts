/**
 * `burrowd tunnel list|release` and `group list`: the tunnels recorded in
 * the database and the load-balancing groups they form, through the admin
 * service.
 *
 * @module
 */

import type { Command } from "commander";
import { type CommandKit, type DatabaseFlags, durationFlag, table } from "./command.ts";
import type { TunnelOverview } from "./service.ts";

/** `--since`, the period traffic is summed over. */
function sinceOption(command: Command): Command {
  return command.option("--since <duration>", "traffic over this period, e.g. 1h, 7d", "24h");
}

/** The start of the period `--since` asks for. */
function since(flags: { since: string }): Date {
  return new Date(Date.now() - durationFlag(flags.since, "--since"));
}

/** A tunnel's state as listed: a disabled one says so whatever its last status. */
function state(t: TunnelOverview): string {
  return t.enabled ? t.status : "disabled";
}

/** The rows of `group list`: each member of a group with its share of the group's connections. */
function groupRows(tunnels: TunnelOverview[]): Array<Record<string, unknown>> {
  const members = tunnels.filter((t) => t.options.group);
  const totals = new Map<string, number>();
  for (const m of members) {
    const g = String(m.options.group);
    totals.set(g, (totals.get(g) ?? 0) + m.total_connections);
  }
  return members.map((m) => {
    const g = String(m.options.group);
    const total = totals.get(g) ?? 0;
    return {
      group: g,
      member: m.name,
      user: m.user_name,
      client: m.client_id,
      strategy: (m.options.load_balance as string | undefined) ?? "round_robin",
      weight: (m.options.weight as number | undefined) ?? 1,
      status: state(m),
      conns: m.total_connections,
      share: total ? `${(100 * m.total_connections / total).toFixed(1)}%` : "-",
    };
  });
}

/** Adds `tunnel` and `group` and their subcommands to `program`. */
export function addTunnelCommands(program: Command, { db, withAdmin }: CommandKit): void {
  const tunnel = program.command("tunnel").description(
    "show tunnels recorded in the database, release an offline one",
  );
  sinceOption(
    db(tunnel.command("list").description("every tunnel with its owner, state and traffic")),
  )
    .action((flags: DatabaseFlags & { since: string }) =>
      withAdmin(flags, async (admin) => {
        console.log(table(
          (await admin.tunnels({ since: since(flags) })).map((t) => ({
            id: t.id,
            user: t.user_name,
            name: t.name,
            type: t.type,
            source: t.source,
            group: (t.options.group as string | undefined) ?? null,
            local: t.local_port ? `${t.local_addr}:${t.local_port}` : null,
            port: t.active_port ?? (t.remote_port || null),
            status: state(t),
            conns: t.total_connections,
            bytes_in: t.total_bytes_in,
            bytes_out: t.total_bytes_out,
          })),
        ));
      })
    );
  db(
    tunnel.command("release <name>").description(
      "free the port and names an offline client tunnel keeps reserved, by deleting its record " +
        "(the client records it again when it connects)",
    ),
  )
    .option("--user <user>", "the tunnel's owner, when several users have a tunnel of that name")
    .action((name: string, flags: DatabaseFlags & { user?: string }) =>
      withAdmin(flags, async (admin) => {
        const t = await admin.releaseTunnel(name, flags.user);
        const held = [
          t.remote_port ? `port ${t.remote_port}` : "",
          ...t.custom_domains,
          t.subdomain ? `subdomain ${t.subdomain}` : "",
        ].filter(Boolean);
        console.log(
          `released tunnel "${name}" of user "${t.user_name}"` +
            (held.length ? `: ${held.join(", ")} free again` : ""),
        );
      })
    );

  const group = program.command("group").description("show load-balancing groups");
  sinceOption(
    db(group.command("list").description("groups, their members and each member's share")),
  )
    .action((flags: DatabaseFlags & { since: string }) =>
      withAdmin(flags, async (admin) => {
        console.log(table(groupRows(await admin.tunnels({ since: since(flags) }))));
      })
    );
}

/**
 * `burrowd user add|list|set|disable|enable`: the users, through the admin service.
 *
 * @module
 */

import type { Command } from "commander";
import { ValidationError } from "../../storage/mod.ts";
import { parseSize } from "../../util/mod.ts";
import { type CommandKit, type DatabaseFlags, list, table } from "./command.ts";
import type { UserPolicy } from "./service.ts";

interface PolicyFlags {
  clients?: string;
  ports?: string;
  allowIps?: string;
  denyIps?: string;
  bandwidth?: string;
}

/** The policy `user set` asks for; fields whose flag is absent keep their value. */
function policyOf(flags: PolicyFlags): UserPolicy {
  const policy: UserPolicy = {};
  if (flags.clients !== undefined) policy.allowed_clients = list(flags.clients);
  if (flags.ports !== undefined) policy.allow_ports = flags.ports || null;
  if (flags.allowIps !== undefined) policy.allow_ips = list(flags.allowIps);
  if (flags.denyIps !== undefined) policy.deny_ips = list(flags.denyIps);
  if (flags.bandwidth !== undefined) {
    try {
      policy.max_bandwidth = flags.bandwidth ? parseSize(flags.bandwidth) : null;
    } catch (error) {
      throw new ValidationError(`--bandwidth: ${(error as Error).message}`);
    }
  }
  return policy;
}

/** Adds `user` and its subcommands to `program`. */
export function addUserCommands(program: Command, { db, withAdmin }: CommandKit): void {
  const user = program.command("user").description("manage users (they own tunnels and tokens)");
  db(user.command("add <name>").description("add a user"))
    .option("--admin", "the user may use the admin API and issue admin tokens")
    .action((name: string, flags: DatabaseFlags & { admin?: boolean }) =>
      withAdmin(flags, async (admin) => {
        const u = await admin.addUser(name, { admin: flags.admin ?? false });
        console.log(`added user ${u.name} (id ${u.id}${u.is_admin ? ", admin" : ""})`);
      })
    );
  db(user.command("list").description("list users"))
    .action((flags: DatabaseFlags) =>
      withAdmin(flags, async (admin) => {
        console.log(table(
          (await admin.users()).map((u) => ({
            id: u.id,
            name: u.name,
            admin: u.is_admin,
            disabled: u.disabled,
            created: u.created_at,
          })),
        ));
      })
    );
  db(
    user.command("set <name>").description(
      "set a user's policy: client ids, port ranges and addresses it may use",
    ),
  )
    .option(
      "--clients <ids>",
      "comma-separated client ids allowed to log in as the user ('' = any)",
    )
    .option(
      "--ports <ranges>",
      "port ranges its tunnels may take, e.g. 2000-2100 ('' = the server's)",
    )
    .option("--allow-ips <cidrs>", "comma-separated addresses its clients may connect from")
    .option("--deny-ips <cidrs>", "comma-separated addresses its clients may not connect from")
    .option(
      "--bandwidth <size>",
      "bytes per second per direction across its tunnels, e.g. 10MB ('' = none)",
    )
    .action((name: string, flags: DatabaseFlags & PolicyFlags) =>
      withAdmin(flags, async (admin) => {
        const u = await admin.setUserPolicy(name, policyOf(flags));
        console.log(
          `user ${u.name}: clients ${u.allowed_clients.join(",") || "any"}, ports ${
            u.allow_ports ?? "server's"
          }, allow ${u.allow_ips.join(",") || "any"}, deny ${u.deny_ips.join(",") || "none"}, ` +
            `bandwidth ${u.max_bandwidth ? `${u.max_bandwidth} B/s` : "unlimited"}`,
        );
      })
    );
  for (const [verb, disabled] of [["disable", true], ["enable", false]] as const) {
    db(
      user.command(`${verb} <name>`).description(
        disabled
          ? "disable a user: its sessions are closed, its tokens refused"
          : "re-enable a user",
      ),
    ).action((name: string, flags: DatabaseFlags) =>
      withAdmin(flags, async (admin) => {
        await admin.setUserDisabled(name, disabled);
        console.log(`${verb}d user ${name}`);
      })
    );
  }
}

/**
 * `burrowd token issue|revoke|list`, `key create` and `signing-key
 * list|rotate|retire`: the credentials, through the admin service.
 *
 * @module
 */

import type { Command } from "commander";
import { type CommandKit, type DatabaseFlags, durationFlag, list, table } from "./command.ts";
import type { RoutedAdmin } from "./service.ts";

interface CredentialFlags extends DatabaseFlags {
  ttl?: string;
  scope: string;
  types?: string;
  ports?: string;
  domains?: string;
}

/** `token issue` and `key create`: the credential goes to stdout (once), the rest to stderr. */
async function issueCredential(
  kind: "token" | "key",
  admin: RoutedAdmin,
  name: string,
  flags: CredentialFlags,
): Promise<void> {
  const issued = await admin.issue(kind, name, {
    ttlMs: flags.ttl === undefined ? null : durationFlag(flags.ttl, "--ttl"),
    scopes: list(flags.scope),
    limits: {
      ...(flags.types ? { types: list(flags.types) } : {}),
      ...(flags.ports ? { ports: flags.ports } : {}),
      ...(flags.domains ? { domains: list(flags.domains) } : {}),
    },
  });
  const expiry = issued.expiresAt ? `expires ${issued.expiresAt.toISOString()}` : "never expires";
  console.error(
    kind === "token"
      ? `issued token ${issued.id} for ${name}, ${expiry}`
      : `created API key ${issued.id} for ${name}, ${expiry} (revoke with: burrowd token revoke ${issued.id})`,
  );
  console.log(issued.token);
}

/** What `token issue` and `key create` say of themselves. */
const CREDENTIALS = {
  token: { description: "issue a token; it is printed once", ttlExample: "30d, 12h" },
  key: { description: "create an API key; it is printed once", ttlExample: "90d" },
};

/**
 * Makes `command` (`token issue` or `key create`) issue a credential of
 * `kind`, with flags for its lifetime, scopes and limits.
 */
function credentialCommand(
  { db, withAdmin }: CommandKit,
  kind: "token" | "key",
  command: Command,
): void {
  const { description, ttlExample } = CREDENTIALS[kind];
  db(command.description(description))
    .option("--ttl <duration>", `lifetime, e.g. ${ttlExample}; default: never expires`)
    .option("--scope <scopes>", "comma-separated: tunnel (default), admin", "tunnel")
    .option("--types <types>", "tunnel types it may publish, e.g. tcp,http (default: any)")
    .option("--ports <ranges>", 'public ports it may take, e.g. "2000-3000" (default: any)')
    .option("--domains <hosts>", 'host names it may serve, e.g. "*.example.com" (default: any)')
    .action((name: string, flags: CredentialFlags) =>
      withAdmin(flags, (admin) => issueCredential(kind, admin, name, flags))
    );
}

/** Adds `token`, `signing-key` and `key` and their subcommands to `program`. */
export function addTokenCommands(program: Command, kit: CommandKit): void {
  const { db, withAdmin, withDatabase } = kit;
  const token = program.command("token").description("manage client tokens (JWT)");
  credentialCommand(kit, "token", token.command("issue <user>"));
  db(
    token.command("revoke <id>").description("revoke a token or API key; sessions using it close"),
  )
    .action((id: string, flags: DatabaseFlags) =>
      withAdmin(flags, async (admin) => {
        await admin.revoke(id);
        console.log(`revoked token ${id}`);
      })
    );
  db(token.command("list [user]").description("list tokens (never their secret)"))
    .action((name: string | undefined, flags: DatabaseFlags) =>
      withAdmin(flags, async (admin) => {
        console.log(table(
          (await admin.tokens(name)).map((k) => ({
            id: k.id,
            kind: k.kind,
            user: k.user_name,
            scopes: k.scopes.join(","),
            limits: [
              k.limits?.types ? `types ${k.limits.types.join(",")}` : "",
              k.limits?.ports ? `ports ${k.limits.ports}` : "",
              k.limits?.domains ? `domains ${k.limits.domains.join(",")}` : "",
            ].filter(Boolean).join("; ") || "-",
            created: k.created_at,
            expires: k.expires_at,
            revoked: k.revoked_at,
            last_used: k.last_used_at,
          })),
        ));
      })
    );

  const signing = program.command("signing-key").description(
    "manage the keys that sign user tokens (Ed25519; public halves at /.well-known/jwks.json)",
  );
  db(signing.command("list").description("active signing keys, newest (signing) first"))
    .action((flags: DatabaseFlags) =>
      withDatabase(flags, "signing-key list", async (admin) => {
        console.log(table(
          (await admin.signingKeys()).map((k, i) => ({
            kid: k.kid,
            alg: k.alg,
            created: k.created_at,
            role: i === 0 ? "signs and verifies" : "verifies",
          })),
        ));
      })
    );
  db(signing.command("rotate").description("add a new signing key; older tokens keep working"))
    .action((flags: DatabaseFlags) =>
      withDatabase(flags, "signing-key rotate", async (admin) => {
        console.log(`new signing key ${await admin.rotateSigningKey()}`);
      })
    );
  db(signing.command("retire <kid>").description("retire a key: tokens it signed stop working"))
    .action((kid: string, flags: DatabaseFlags) =>
      withDatabase(flags, "signing-key retire", async (admin) => {
        await admin.retireSigningKey(kid);
        console.log(`retired signing key ${kid}`);
      })
    );

  const key = program.command("key").description("manage API keys (random secrets stored hashed)");
  credentialCommand(kit, "key", key.command("create <user>"));
}

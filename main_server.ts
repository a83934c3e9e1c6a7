/**
 * `burrowd`: the Burrow server. Parses arguments, loads the configuration,
 * runs the server until SIGINT/SIGTERM, then shuts down gracefully.
 *
 * Exit codes: 0 after a clean shutdown, 1 on a fatal error, 2 on a usage or
 * configuration error.
 *
 * @module
 */

import { Command, Option } from "commander";
import { TokenError, TokenService } from "./lib/auth/mod.ts";
import {
  ConfigError,
  loadServerConfig,
  type ServerConfig,
  type ServerOverrides,
} from "./lib/config/mod.ts";
import { runServer } from "./lib/server/mod.ts";
import { ConflictError, NotFoundError, Store, ValidationError } from "./lib/storage/mod.ts";
import { parseDuration, parseSize } from "./lib/util/units.ts";
import { loadServerCertificate } from "./lib/transport/mod.ts";
import { createLogger } from "./lib/util/logger.ts";
import { onShutdownSignals, runProgram } from "./lib/util/cli.ts";
import { VERSION } from "./lib/util/version.ts";

interface RunFlags {
  config?: string;
  adminAddr?: string;
  adminPort?: string;
  bindAddr?: string;
  bindPort?: string;
  token?: string;
  dataDir?: string;
  logLevel?: "debug" | "info" | "warn" | "error";
  logFormat?: "json" | "text";
}

function overridesFrom(flags: RunFlags): ServerOverrides {
  const server: Record<string, unknown> = {};
  if (flags.bindAddr !== undefined) server.bind_addr = flags.bindAddr;
  if (flags.bindPort !== undefined) server.bind_port = Number(flags.bindPort);
  if (flags.token !== undefined) server.auth = { method: "token", token: flags.token };
  if (flags.dataDir !== undefined) server.storage = { data_dir: flags.dataDir };
  if (flags.adminAddr !== undefined || flags.adminPort !== undefined) {
    const admin: Record<string, unknown> = {};
    if (flags.adminAddr !== undefined) admin.bind_addr = flags.adminAddr;
    if (flags.adminPort !== undefined) admin.bind_port = Number(flags.adminPort);
    server.admin = admin;
  }
  const log: Record<string, unknown> = {};
  if (flags.logLevel) log.level = flags.logLevel;
  if (flags.logFormat) log.format = flags.logFormat;
  if (Object.keys(log).length) server.log = log;
  return { server } as ServerOverrides;
}

async function run(flags: RunFlags): Promise<number> {
  const config = await loadServerConfig(flags.config, overridesFrom(flags));
  return await runServer(config, { signal: shutdownSignal(), onReload });
}

/** Aborts on the first SIGINT/SIGTERM (a second one exits at once), with the signal's name as reason. */
function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  onShutdownSignals((signal) => controller.abort(signal));
  return controller.signal;
}

/** Calls `reload` on each SIGHUP (none on Windows); returns the unsubscribe. */
function onReload(reload: () => void): () => void {
  if (Deno.build.os === "windows") return () => {};
  Deno.addSignalListener("SIGHUP", reload);
  return () => Deno.removeSignalListener("SIGHUP", reload);
}

interface AdminFlags {
  config?: string;
  dataDir?: string;
}

/** Opens the configured database for one administrative command, quietly. */
async function withStore(
  flags: AdminFlags,
  fn: (store: Store, config: ServerConfig) => Promise<number>,
): Promise<number> {
  const config = await loadServerConfig(flags.config, overridesFrom({ ...flags, token: "unused" }));
  const logger = createLogger({ level: "warn", format: "text" });
  const store = await Store.open(config.storage, { logger: logger.child("storage") });
  try {
    return await fn(store, config);
  } catch (error) {
    if (
      error instanceof NotFoundError || error instanceof ConflictError ||
      error instanceof ValidationError || error instanceof TokenError
    ) {
      console.error(`burrowd: ${error.message}`);
      return 2;
    }
    throw error;
  } finally {
    await store.close();
  }
}

function table(rows: Array<Record<string, unknown>>): string {
  if (!rows.length) return "(none)";
  const keys = Object.keys(rows[0]!);
  const text = (v: unknown) =>
    v === null || v === undefined ? "-" : v instanceof Date ? v.toISOString() : String(v);
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => text(r[k]).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(keys), ...rows.map((r) => line(keys.map((k) => text(r[k]))))].join("\n");
}

async function printFingerprint(flags: { config?: string; dataDir?: string }): Promise<number> {
  const config = await loadServerConfig(
    flags.config,
    overridesFrom({ ...flags, token: "unused" }),
  );
  const cert = await loadServerCertificate({
    certFile: config.tls.cert_file,
    keyFile: config.tls.key_file,
    dataDir: config.storage.data_dir,
    names: [Deno.hostname()],
  });
  console.log(cert.fingerprint);
  return 0;
}

function program(exit: (code: number) => void): Command {
  const cmd = new Command("burrowd")
    .description(
      "Burrow tunnel server: accepts burrow clients on the control port and publishes their " +
        "local services on public ports.",
    )
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .addHelpText(
      "after",
      `
Environment:
  BURROW_TOKEN    shared client token (overrides server.auth.token)
  DATABASE_URL    PostgreSQL URL (overrides server.storage.url)

Examples:
  burrowd --token s3cret                  run with defaults, certificate in ./burrow-data
  burrowd --config server.yaml            run from a config file
  burrowd fingerprint                     print the certificate fingerprint for clients
  burrowd user add alice                  add a user
  burrowd token issue alice --ttl 30d     issue alice a client token (printed once)
  burrowd token revoke <id>               revoke a token; its sessions are closed
  burrowd migrate                         apply database migrations and exit
  burrowd tunnel list                     tunnels, owners, state and traffic (last 24h)
  burrowd group list                      load-balancing groups and each member's share

Exit codes: 0 clean shutdown, 1 fatal error, 2 usage or configuration error.`,
    );

  cmd.command("run", { isDefault: true })
    .description("run the server (the default command)")
    .option("-c, --config <file>", "server YAML config")
    .option("--bind-addr <addr>", "control channel and tunnel listen address (server.bind_addr)")
    .option("--bind-port <port>", "control channel port, 0 = any free port (server.bind_port)")
    .option("--token <token>", "shared client token (server.auth.token); prefer BURROW_TOKEN")
    .option("--data-dir <dir>", "data directory (server.storage.data_dir)")
    .option("--admin-addr <addr>", "admin listen address (server.admin.bind_addr)")
    .option("--admin-port <port>", "admin port, 0 = any free port (server.admin.bind_port)")
    .addOption(
      new Option("--log-level <level>", "log level").choices(["debug", "info", "warn", "error"]),
    )
    .addOption(new Option("--log-format <format>", "log format").choices(["json", "text"]))
    .action(async (flags: RunFlags) => exit(await run(flags)));

  cmd.command("fingerprint")
    .description("print the SHA-256 fingerprint clients pin (creates the certificate if needed)")
    .option("-c, --config <file>", "server YAML config")
    .option("--data-dir <dir>", "data directory (server.storage.data_dir)")
    .action(async (flags: { config?: string; dataDir?: string }) =>
      exit(await printFingerprint(flags))
    );
  cmd.command("healthcheck")
    .description("exit 0 when the running burrowd answers on its admin port (/healthz), else 1")
    .option("-c, --config <file>", "server YAML config (for server.admin)")
    .option("--url <url>", "check this URL instead, e.g. http://127.0.0.1:7500/readyz")
    .action(async (flags: { config?: string; url?: string }) => {
      let url = flags.url;
      if (!url) {
        const config = await loadServerConfig(flags.config, overridesFrom({ token: "unused" }));
        const host = ["0.0.0.0", "::", ""].includes(config.admin.bind_addr)
          ? "127.0.0.1"
          : config.admin.bind_addr;
        url = `http://${host.includes(":") ? `[${host}]` : host}:${config.admin.bind_port}/healthz`;
      }
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
        const body = await response.text();
        console.log(`${response.status} ${body.trim()}`);
        exit(response.ok ? 0 : 1);
      } catch (error) {
        console.error(`burrowd healthcheck: ${url}: ${(error as Error).message}`);
        exit(1);
      }
    });

  const dbOptions = (c: Command) =>
    c.option("-c, --config <file>", "server YAML config")
      .option(
        "--data-dir <dir>",
        "data directory of the embedded database (server.storage.data_dir)",
      );

  dbOptions(
    cmd.command("migrate").description(
      "apply pending database migrations and exit (burrowd also does this at start)",
    ),
  ).action(async (flags: AdminFlags) =>
    exit(
      await withStore(flags, async (store) => {
        const [row] = await store.db.query<{ version: number; name: string }>(
          "select version, name from schema_migrations order by version desc limit 1",
        );
        console.log(
          `schema at version ${row?.version ?? 0} (${row?.name ?? "empty"}) on ${store.kind}`,
        );
        return 0;
      }),
    )
  );

  const user = cmd.command("user").description("manage users (they own tunnels and tokens)");
  dbOptions(user.command("add <name>").description("add a user"))
    .option("--admin", "the user may use the admin API and issue admin tokens")
    .action(async (name: string, flags: AdminFlags & { admin?: boolean }) =>
      exit(
        await withStore(flags, async (store) => {
          const u = await store.users.add(name, { admin: flags.admin ?? false });
          console.log(`added user ${u.name} (id ${u.id}${u.is_admin ? ", admin" : ""})`);
          return 0;
        }),
      )
    );
  dbOptions(user.command("list").description("list users"))
    .action(async (flags: AdminFlags) =>
      exit(
        await withStore(flags, async (store) => {
          console.log(table(
            (await store.users.list()).map((u) => ({
              id: u.id,
              name: u.name,
              admin: u.is_admin,
              disabled: u.disabled,
              created: u.created_at,
            })),
          ));
          return 0;
        }),
      )
    );
  dbOptions(
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
    .action(async (
      name: string,
      flags: AdminFlags & {
        clients?: string;
        ports?: string;
        allowIps?: string;
        denyIps?: string;
        bandwidth?: string;
      },
    ) =>
      exit(
        await withStore(flags, async (store) => {
          const list = (v: string) => v.split(",").map((x) => x.trim()).filter(Boolean);
          const policy: Parameters<Store["users"]["setPolicy"]>[1] = {};
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
          const u = await store.users.setPolicy(name, policy);
          console.log(
            `user ${u.name}: clients ${u.allowed_clients.join(",") || "any"}, ports ${
              u.allow_ports ?? "server's"
            }, allow ${u.allow_ips.join(",") || "any"}, deny ${u.deny_ips.join(",") || "none"}, ` +
              `bandwidth ${u.max_bandwidth ? `${u.max_bandwidth} B/s` : "unlimited"}`,
          );
          return 0;
        }),
      )
    );
  for (const [verb, disabled] of [["disable", true], ["enable", false]] as const) {
    dbOptions(
      user.command(`${verb} <name>`).description(
        disabled
          ? "disable a user: its sessions are closed, its tokens refused"
          : "re-enable a user",
      ),
    ).action(async (name: string, flags: AdminFlags) =>
      exit(
        await withStore(flags, async (store) => {
          await store.users.setDisabled(name, disabled);
          console.log(`${verb}d user ${name}`);
          return 0;
        }),
      )
    );
  }

  const token = cmd.command("token").description("manage client tokens (JWT)");
  credentialOptions(
    dbOptions(token.command("issue <user>").description("issue a token; it is printed once")),
    "30d, 12h",
  )
    .action(async (name: string, flags: CredentialFlags) =>
      exit(await withStore(flags, (store) => issueCredential("token", store, name, flags)))
    );
  const signing = cmd.command("signing-key").description(
    "manage the keys that sign user tokens (Ed25519; public halves at /.well-known/jwks.json)",
  );
  dbOptions(signing.command("list").description("active signing keys, newest (signing) first"))
    .action(async (flags: AdminFlags) =>
      exit(
        await withStore(flags, async (store) => {
          console.log(table(
            (await store.signingKeys.active()).map((k, i) => ({
              kid: k.kid,
              alg: k.alg,
              created: k.created_at,
              role: i === 0 ? "signs and verifies" : "verifies",
            })),
          ));
          return 0;
        }),
      )
    );
  dbOptions(
    signing.command("rotate").description("add a new signing key; older tokens keep working"),
  )
    .action(async (flags: AdminFlags) =>
      exit(
        await withStore(flags, async (store) => {
          const tokens = await TokenService.create(store, createLogger({ level: "warn" }));
          console.log(`new signing key ${await tokens.rotate()}`);
          return 0;
        }),
      )
    );
  dbOptions(
    signing.command("retire <kid>").description("retire a key: tokens it signed stop working"),
  )
    .action(async (kid: string, flags: AdminFlags) =>
      exit(
        await withStore(flags, async (store) => {
          const tokens = await TokenService.create(store, createLogger({ level: "warn" }));
          await tokens.retire(kid);
          console.log(`retired signing key ${kid}`);
          return 0;
        }),
      )
    );

  const key = cmd.command("key").description("manage API keys (random secrets stored hashed)");
  credentialOptions(
    dbOptions(key.command("create <user>").description("create an API key; it is printed once")),
    "90d",
  )
    .action(async (name: string, flags: CredentialFlags) =>
      exit(await withStore(flags, (store) => issueCredential("key", store, name, flags)))
    );

  dbOptions(
    token.command("revoke <id>").description("revoke a token or API key; sessions using it close"),
  )
    .action(async (id: string, flags: AdminFlags) =>
      exit(
        await withStore(flags, async (store) => {
          await store.apiKeys.revoke(id);
          console.log(`revoked token ${id}`);
          return 0;
        }),
      )
    );
  dbOptions(token.command("list [user]").description("list tokens (never their secret)"))
    .action(async (name: string | undefined, flags: AdminFlags) =>
      exit(
        await withStore(flags, async (store) => {
          let userId: number | undefined;
          if (name !== undefined) {
            const u = await store.users.byName(name);
            if (!u) throw new NotFoundError(`No user "${name}"`);
            userId = u.id;
          }
          console.log(table(
            (await store.apiKeys.list(userId)).map((k) => ({
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
          return 0;
        }),
      )
    );
  const tunnel = cmd.command("tunnel").description(
    "show tunnels recorded in the database, release an offline one",
  );
  dbOptions(tunnel.command("list").description("every tunnel with its owner, state and traffic"))
    .option("--since <duration>", "traffic over this period, e.g. 1h, 7d", "24h")
    .action(async (flags: AdminFlags & { since: string }) =>
      exit(
        await withStore(flags, async (store) => {
          const since = new Date(Date.now() - durationFlag(flags.since, "--since"));
          console.log(table(
            (await store.tunnels.overview(since)).map((t) => ({
              id: t.id,
              user: t.user_name,
              name: t.name,
              type: t.type,
              source: t.source,
              group: (t.options.group as string | undefined) ?? null,
              local: t.local_port ? `${t.local_addr}:${t.local_port}` : null,
              port: t.active_port ?? (t.remote_port || null),
              status: t.enabled ? t.status : "disabled",
              conns: t.total_connections,
              bytes_in: t.total_bytes_in,
              bytes_out: t.total_bytes_out,
            })),
          ));
          return 0;
        }),
      )
    );
  dbOptions(
    tunnel.command("release <name>").description(
      "free the port and names an offline client tunnel keeps reserved, by deleting its record " +
        "(the client records it again when it connects)",
    ),
  )
    .option("--user <user>", "the tunnel's owner, when several users have a tunnel of that name")
    .action(async (name: string, flags: AdminFlags & { user?: string }) =>
      exit(
        await withStore(flags, async (store) => {
          const matches = (await store.tunnels.overview()).filter((t) =>
            t.name === name && (!flags.user || t.user_name === flags.user)
          );
          if (matches.length === 0) {
            throw new NotFoundError(
              `No tunnel named "${name}"${flags.user ? ` owned by "${flags.user}"` : ""}; ` +
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
          await store.tunnels.remove(t.id);
          const held = [
            t.remote_port ? `port ${t.remote_port}` : "",
            ...t.custom_domains,
            t.subdomain ? `subdomain ${t.subdomain}` : "",
          ].filter(Boolean);
          console.log(
            `released tunnel "${name}" of user "${t.user_name}"` +
              (held.length ? `: ${held.join(", ")} free again` : ""),
          );
          return 0;
        }),
      )
    );
  const group = cmd.command("group").description("show load-balancing groups");
  dbOptions(group.command("list").description("groups, their members and each member's share"))
    .option("--since <duration>", "traffic over this period, e.g. 1h, 7d", "24h")
    .action(async (flags: AdminFlags & { since: string }) =>
      exit(
        await withStore(flags, async (store) => {
          const since = new Date(Date.now() - durationFlag(flags.since, "--since"));
          const members = (await store.tunnels.overview(since)).filter((t) => t.options.group);
          const totals = new Map<string, number>();
          for (const m of members) {
            const g = String(m.options.group);
            totals.set(g, (totals.get(g) ?? 0) + m.total_connections);
          }
          console.log(table(members.map((m) => {
            const g = String(m.options.group);
            const total = totals.get(g) ?? 0;
            return {
              group: g,
              member: m.name,
              user: m.user_name,
              client: m.client_id,
              strategy: (m.options.load_balance as string | undefined) ?? "round_robin",
              weight: (m.options.weight as number | undefined) ?? 1,
              status: m.enabled ? m.status : "disabled",
              conns: m.total_connections,
              share: total ? `${(100 * m.total_connections / total).toFixed(1)}%` : "-",
            };
          })));
          return 0;
        }),
      )
    );
  return cmd;
}

/** A duration flag, or a usage error naming the flag. */
function durationFlag(text: string, flag: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    throw new ValidationError(`${flag}: ${(error as Error).message}`);
  }
}

interface CredentialFlags extends AdminFlags {
  ttl?: string;
  scope: string;
  types?: string;
  ports?: string;
  domains?: string;
}

/** `token issue` and `key create`: the credential goes to stdout (once), the rest to stderr. */
/** The options of `token issue` and `key create`: lifetime, scopes and limits. */
function credentialOptions(command: Command, ttlExample: string): Command {
  return command
    .option("--ttl <duration>", `lifetime, e.g. ${ttlExample}; default: never expires`)
    .option("--scope <scopes>", "comma-separated: tunnel (default), admin", "tunnel")
    .option("--types <types>", "tunnel types it may publish, e.g. tcp,http (default: any)")
    .option("--ports <ranges>", 'public ports it may take, e.g. "2000-3000" (default: any)')
    .option("--domains <hosts>", 'host names it may serve, e.g. "*.example.com" (default: any)');
}

function list(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

async function issueCredential(
  kind: "token" | "key",
  store: Store,
  name: string,
  flags: CredentialFlags,
): Promise<number> {
  const tokens = await TokenService.create(store, createLogger({ level: "warn" }));
  const options = {
    ttlMs: flags.ttl === undefined ? null : durationFlag(flags.ttl, "--ttl"),
    scopes: flags.scope.split(",").map((s) => s.trim()).filter(Boolean),
    limits: {
      ...(flags.types ? { types: list(flags.types) } : {}),
      ...(flags.ports ? { ports: flags.ports } : {}),
      ...(flags.domains ? { domains: list(flags.domains) } : {}),
    },
  };
  const issued = kind === "token"
    ? await tokens.issue(name, options)
    : await tokens.createApiKey(name, options);
  const expiry = issued.expiresAt ? `expires ${issued.expiresAt.toISOString()}` : "never expires";
  console.error(
    kind === "token"
      ? `issued token ${issued.id} for ${name}, ${expiry}`
      : `created API key ${issued.id} for ${name}, ${expiry} (revoke with: burrowd token revoke ${issued.id})`,
  );
  console.log(issued.token);
  return 0;
}

if (import.meta.main) await runProgram("burrowd", program, ConfigError);

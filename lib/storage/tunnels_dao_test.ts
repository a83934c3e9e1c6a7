// The tunnel DAO checks what it writes against the tunnel spec (protocol/tunnel_spec.ts):
// the columns and the options, named as the admin API's caller wrote them.

import {
  assert,
  assertEquals,
  assertRejects,
  testNeedingPostgres,
  throwawayDatabase,
} from "../testing/mod.ts";
import { nullLogger, Secret } from "../util/mod.ts";
import { ConflictError, ValidationError } from "./errors.ts";
import type { TunnelInput } from "./models.ts";
import { Store } from "./store.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { postgres: await testNeedingPostgres() };

test.postgres("tunnel DAO: rows follow the tunnel spec, columns and options alike", async (t) => {
  await using database = await throwawayDatabase();
  await using store = await Store.open(
    { data_dir: "unused", url: new Secret(database.url) },
    { logger: nullLogger, flushInterval: 60_000 },
  );
  const user = await store.users.add("dana");
  const refused = (input: Partial<TunnelInput>, message: string) =>
    assertRejects(
      () => store.tunnels.create(user.id, { name: "t", type: "tcp", local_port: 1, ...input }),
      ValidationError,
      message,
    );

  await t.step("valid rows are written", async () => {
    const web = await store.tunnels.create(user.id, {
      name: "web",
      type: "http",
      local_port: 8080,
      custom_domains: ["app.dana.test", "*.dana.test"],
      subdomain: "dana",
      options: {
        locations: ["/", "/api"],
        custom_headers: { "X-From": "api" },
        request_headers: { set: { "X-A": "1" }, remove: ["Cookie"] },
        basic_auth: { user: "bob", password: "pw" },
        allow_ips: ["10.0.0.0/8"],
        group: "pool",
        group_key: "k",
        weight: 2,
      },
    });
    assertEquals(web.options.weight, 2);
    await store.tunnels.create(user.id, {
      name: "dns",
      type: "udp",
      local_port: 53,
      options: { session_timeout: 5000 },
    });
    // The seed's example: an HTTP tunnel without a domain serves every host.
    await store.tunnels.create(user.id, { name: "any", type: "http", local_port: 80 });
  });

  await t.step("each field's own rule, named as the caller wrote it", async () => {
    await refused({ local_port: 70000 }, "Invalid tunnel: local_port: expected an integer 1-65535");
    await refused({ local_port: null }, "local_port: required");
    await refused({ name: "-t" }, "name: expected 1-64 letters");
    await refused({ name: "x".repeat(100_000) }, "(100000 characters)");
    await refused(
      { type: "ftp" as "tcp" },
      'type: expected one of tcp, udp, http, https, got "ftp"',
    );
    await refused({ local_addr: "local host" }, "local_addr: expected a host name or IP address");
    await refused(
      { type: "http", custom_domains: ["*foo.test"] },
      'custom_domains[0]: expected a host name such as "app.example.com"',
    );
    await refused({ type: "http", subdomain: "a.b" }, "subdomain: expected a DNS label");
    await refused(
      { type: "http", options: { locations: ["api"] } },
      'options.locations[0]: expected a path starting with "/"',
    );
    await refused(
      { type: "http", options: { custom_headers: { "X-A": "1\r\nX-B: 2" } } },
      "options.custom_headers.X-A: header values cannot contain line breaks",
    );
    await refused(
      { type: "udp", options: { session_timeout: "30s" } },
      "options.session_timeout: expected an integer 100-86400000 milliseconds",
    );
    await refused({ options: { allow_ips: ["nope"] } }, "options.allow_ips[0]: expected an IP");
    await refused(
      { options: { locatoins: ["/"] } },
      'options.locatoins: unknown key (did you mean "locations"?)',
    );
    await refused(
      { options: { local_port: 5 } },
      "options.local_port: set local_port on the tunnel",
    );
    await refused({ options: { "name.x": 1 } }, "options.name.x: unknown key");
    await refused(
      { options: ["/"] as unknown as Record<string, unknown> },
      "options: expected a mapping",
    );
  });

  await t.step("the rules between fields", async () => {
    await refused(
      { custom_domains: ["a.test"] },
      "custom_domains: only meaningful for http and https",
    );
    await refused(
      { options: { compression: "gzip" }, type: "udp" },
      "compression: gzip applies to tcp",
    );
    await refused({ options: { group: "g" } }, "options.group_key: required with group");
    await refused({ options: { weight: 2 } }, "options.weight: only meaningful with group");
    await refused(
      {
        type: "https",
        options: { tls_passthrough: true, basic_auth: { user: "u", password: "hunter2" } },
      },
      "options.basic_auth: a tls_passthrough tunnel relays TLS untouched",
    );
    const error = await assertRejects(
      () =>
        store.tunnels.create(user.id, {
          name: "t",
          type: "http",
          local_port: 1,
          options: { basic_auth: { user: "u", password: "hunter2\n" } },
        }),
      ValidationError,
    );
    assertEquals(error.message.includes("hunter2"), false, error.message);
  });

  await t.step(
    "changes are checked; enabling, disabling or moving a row alone is not",
    async () => {
      const row = await store.tunnels.create(user.id, { name: "ssh", type: "tcp", local_port: 22 });
      await assertRejects(
        () => store.tunnels.update(row.id, { options: { locations: ["/"] } }),
        ValidationError,
        "options.locations: only meaningful for http and https tunnels",
      );
      // A row written before a rule existed (here: straight into the table) can still be disabled.
      await store.db.query(`update tunnels set options = '{"health_check": {}}' where id = $1`, [
        row.id,
      ]);
      assertEquals((await store.tunnels.update(row.id, { enabled: false })).enabled, false);
      assertEquals((await store.tunnels.update(row.id, { client_id: "x" })).client_id, "x");
      await assertRejects(
        () => store.tunnels.update(row.id, { local_port: 23 }),
        ValidationError,
        "options.health_check: unknown key",
      );
    },
  );

  await t.step("host names are stored and compared in lower case", async () => {
    const other = await store.users.add("eve");
    const row = await store.tunnels.create(user.id, {
      name: "shop",
      type: "http",
      local_port: 1,
      custom_domains: ["Shop.Dana.TEST"],
      subdomain: "Shop",
    });
    assertEquals([row.custom_domains, row.subdomain], [["shop.dana.test"], "shop"]);
    const clash = (input: Partial<TunnelInput>) =>
      assertRejects(
        () => store.tunnels.create(other.id, { name: "s", type: "http", local_port: 1, ...input }),
        ConflictError,
        "reserved by another user's tunnel",
      );
    await clash({ custom_domains: ["SHOP.dana.test"] });
    await clash({ subdomain: "sHoP" });
    // A row written in mixed case before names were lowered still reserves its name.
    await store.db.query(
      `update tunnels set custom_domains = '["Old.Dana.Test"]', subdomain = 'OldSub' where id = $1`,
      [row.id],
    );
    await clash({ custom_domains: ["old.dana.test"] });
    await clash({ subdomain: "oldsub" });
  });

  await t.step("a clash names the owner to that user and to an administrator only", async () => {
    const owner = await store.users.add("olga");
    const root = await store.users.add("root", { admin: true });
    await store.tunnels.recordDeclared(owner.id, "olgas-laptop", {
      name: "olgas",
      type: "tcp",
      local_port: 22,
      remote_port: 4422,
    });
    const declare = (userId: number, admin: boolean) =>
      store.tunnels.recordDeclared(userId, "other", {
        name: "wants",
        type: "tcp",
        local_port: 22,
        remote_port: 4422,
      }, { admin });
    await assertRejects(
      () => declare(user.id, false),
      ConflictError,
      "Port 4422 is reserved by another user's tunnel; choose another, or ask the server's " +
        "administrator to release it",
    );
    const { message } = await assertRejects(() => declare(root.id, true), ConflictError);
    assert(
      message.includes(`Port 4422 is reserved by user "olga"'s tunnel "olgas" (offline since `),
      message,
    );
    assert(message.includes("`burrowd tunnel release olgas --user olga`"), message);
    await assertRejects(
      () =>
        store.tunnels.recordDeclared(owner.id, "olgas-desktop", {
          name: "again",
          type: "tcp",
          local_port: 22,
          remote_port: 4422,
        }),
      ConflictError,
      `Port 4422 is reserved by your tunnel "olgas" (offline since `,
    );
  });

  await t.step("a client's declared tunnel is recorded without its group key", async () => {
    const declared = await store.tunnels.recordDeclared(user.id, "laptop", {
      name: "member",
      type: "tcp",
      local_port: 80,
      group: "pool2",
      options: { group: "pool2", load_balance: "round_robin", weight: 1 },
    });
    assertEquals(declared.options.group, "pool2");
    await assertRejects(
      () =>
        store.tunnels.recordDeclared(user.id, "laptop", {
          name: "bad",
          type: "tcp",
          local_port: 80,
          options: { locations: ["/"] },
        }),
      ValidationError,
      "options.locations: only meaningful for http and https tunnels",
    );
  });
});

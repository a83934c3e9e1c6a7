// The stores the server gives the folders below it, on a real (embedded) database.

import { TokenError, TokenService } from "../auth/mod.ts";
import {
  type ConfigChange,
  DatabaseUnavailableError,
  NotFoundError,
  Store,
} from "../storage/mod.ts";
import { assert, assertEquals, assertRejects, eventually } from "../testing/mod.ts";
import { nullLogger } from "../util/mod.ts";
import { tokenStore } from "./stores.ts";

Deno.test("token store: tokens on the database, with the errors the login and the admin API classify", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-token-store-" });
  const store = await Store.open({ data_dir: dir }, { logger: nullLogger, flushInterval: 60_000 });
  try {
    const alice = await store.users.add("alice");
    await store.users.setPolicy("alice", { allow_ports: "2000-3000" });
    const tokens = await TokenService.create(tokenStore(store), nullLogger);
    await TokenService.create(tokenStore(store), nullLogger);
    assertEquals((await store.signingKeys.active()).length, 1, "a key is generated once");

    await t.step("a verified token names the user's whole row", async () => {
      const issued = await tokens.issue("alice", { limits: { types: ["tcp"] } });
      const who = await tokens.verify(issued.token, "tunnel");
      assertEquals([who.user.id, who.user.allow_ports, who.limits], [alice.id, "2000-3000", {
        types: ["tcp"],
      }]);
      const [row] = await store.db.query<{ kind: string; user_id: number }>(
        "select kind, user_id from api_keys where id = $1",
        [issued.id],
      );
      assertEquals([row?.kind, row?.user_id], ["jwt", alice.id]);
    });

    await t.step("an API key is kept as its hash only", async () => {
      const created = await tokens.createApiKey("alice");
      const [row] = await store.db.query<{ secret_hash: string; kind: string }>(
        "select secret_hash, kind from api_keys where id = $1",
        [created.id],
      );
      assertEquals([row?.kind, row?.secret_hash.length], ["key", 64]);
      const dump = JSON.stringify(await store.db.query("select * from api_keys"));
      assert(!dump.includes(created.token.slice(16)), "the secret is not stored");
      assertEquals((await tokens.verify(created.token)).user.name, "alice");
    });

    await t.step(
      "an unknown user is the storage's NotFoundError, saying how to add one",
      async () => {
        await assertRejects(() => tokens.issue("nobody"), NotFoundError, "burrowd user add nobody");
      },
    );

    await t.step("a revocation in the database takes effect through the notification", async () => {
      const issued = await tokens.issue("alice");
      await tokens.verify(issued.token);
      await store.apiKeys.revoke(issued.id);
      const change: ConfigChange = { table: "api_keys", op: "update", id: issued.id };
      tokens.invalidate(change);
      await assertRejects(() => tokens.verify(issued.token), TokenError, "revoked");
    });

    await t.step(
      "while the database is down, known tokens log in; unknown ones fail with DatabaseUnavailableError",
      async () => {
        const known = await tokens.issue("alice");
        await tokens.verify(known.token);
        const unknown = await tokens.issue("alice");
        const realQuery = store.db.query;
        store.db.query = () =>
          Promise.reject(Object.assign(new Error("gone"), { code: "ECONNREFUSED" }));
        try {
          tokens.cache.set(known.id, tokens.cache.getStale(known.id)!, -1);
          assertEquals((await tokens.verify(known.token)).user.name, "alice");
          await assertRejects(() => tokens.verify(unknown.token), DatabaseUnavailableError);
          assert(!store.available, "the failed lookup marked the database down");
          // Down now: the lookup fails at once, the same way.
          await assertRejects(
            () => tokens.verify(unknown.token),
            DatabaseUnavailableError,
            "reconnecting",
          );
          assertEquals(await tokens.revalidate(), null, "a failed re-read keeps the cache");
        } finally {
          store.db.query = realQuery;
        }
        await eventually("the probe to reconnect", () => store.available || undefined);
        assertEquals((await tokens.verify(unknown.token)).user.name, "alice");
      },
    );
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

import { assert, assertEquals, assertRejects } from "../testing/mod.ts";
import { nullLogger } from "../util/mod.ts";
import type {
  CachedKey,
  NewToken,
  SigningKeyRecord,
  StoredToken,
  TokenOwner,
  TokenStore,
} from "./token_store.ts";
import { looksLikeJwt, TokenService } from "./tokens.ts";
import { TokenError } from "./errors.ts";

/** The memory store's "no such user". */
class NoSuchUser extends Error {}

/** The memory store's "cannot answer now". */
class Unreachable extends Error {}

/**
 * Keys, users and tokens in memory, read back as copies (as from a
 * database); `down` makes the lookups fail as during an outage.
 */
class MemoryTokenStore implements TokenStore {
  down = false;
  readonly rows = new Map<string, StoredToken & { user_id: number }>();
  #users = new Map<string, TokenOwner>();
  #keys: Array<SigningKeyRecord & { retired: boolean }> = [];

  addUser(name: string, admin = false): void {
    this.#users.set(name, { id: this.#users.size + 1, name, is_admin: admin, disabled: false });
  }
  setDisabled(name: string, disabled: boolean): TokenOwner {
    const user = this.#users.get(name)!;
    user.disabled = disabled;
    return user;
  }
  revoke(id: string): void {
    this.rows.get(id)!.revoked_at = new Date();
  }

  signingKeys(): Promise<SigningKeyRecord[]> {
    const active = this.#keys.filter((k) => !k.retired).reverse();
    return Promise.resolve(active.map(({ kid, alg, secret }) => ({ kid, alg, secret })));
  }
  addSigningKey(key: SigningKeyRecord): Promise<void> {
    this.#keys.push({ ...key, retired: false });
    return Promise.resolve();
  }
  retireSigningKey(kid: string): Promise<void> {
    for (const k of this.#keys) if (k.kid === kid) k.retired = true;
    return Promise.resolve();
  }
  user(name: string): Promise<TokenOwner> {
    const user = this.#users.get(name);
    return user ? Promise.resolve(structuredClone(user)) : Promise.reject(new NoSuchUser(name));
  }
  addToken(t: NewToken): Promise<void> {
    this.rows.set(t.id, {
      id: t.id,
      user_id: t.userId,
      scopes: t.scopes,
      expires_at: t.expiresAt,
      revoked_at: null,
      kind: t.secretHash === null ? "jwt" : "key",
      secret_hash: t.secretHash,
      limits: t.limits,
    });
    return Promise.resolve();
  }
  tokens(ids: readonly string[]): Promise<Map<string, CachedKey>> {
    const out = new Map<string, CachedKey>();
    for (const id of ids) {
      const row = this.rows.get(id);
      const user = [...this.#users.values()].find((u) => u.id === row?.user_id);
      if (row && user) out.set(id, structuredClone({ key: row, user }));
    }
    return Promise.resolve(out);
  }
  lookup<T>(read: () => Promise<T>): Promise<T> {
    return this.down ? Promise.reject(new Unreachable("down")) : read();
  }
  isUnavailable(error: unknown): boolean {
    return error instanceof Unreachable;
  }
}

Deno.test("user tokens: issue, verify, scopes, expiry, revocation, disabled users, outages", async (t) => {
  const store = new MemoryTokenStore();
  store.addUser("alice");
  store.addUser("root", true);
  const tokens = await TokenService.create(store, nullLogger);
  assertEquals((await store.signingKeys()).length, 1, "a key is generated once");
  await TokenService.create(store, nullLogger);
  assertEquals((await store.signingKeys()).length, 1);

  await t.step("a fresh token verifies and names its user", async () => {
    const issued = await tokens.issue("alice", { ttlMs: 60_000 });
    assert(looksLikeJwt(issued.token));
    const who = await tokens.verify(issued.token, "tunnel");
    assertEquals([who.user.name, who.tokenId, who.scopes], ["alice", issued.id, ["tunnel"]]);
  });

  await t.step("limits are kept with the token and come back on verify", async () => {
    const limits = { types: ["tcp", "http"], ports: "2000-3000", domains: ["*.A.test"] };
    const jwt = await tokens.issue("alice", { limits });
    const who = await tokens.verify(jwt.token, "tunnel");
    assertEquals(who.limits, { ...limits, domains: ["*.a.test"] });
    const key = await tokens.createApiKey("alice", { limits: { types: ["udp"] } });
    assertEquals((await tokens.verify(key.token, "tunnel")).limits, { types: ["udp"] });
    const plain = await tokens.issue("alice");
    assertEquals((await tokens.verify(plain.token)).limits, {});
    await assertRejects(
      () => tokens.issue("alice", { limits: { ports: "70000" } }),
      TokenError,
      "limits.ports",
    );
    await assertRejects(
      () => tokens.issue("alice", { limits: { domains: ["not a host"] } }),
      TokenError,
      "is not a host name",
    );
  });

  await t.step("refusals say why", async () => {
    await assertRejects(() => tokens.issue("nobody"), NoSuchUser, "nobody");
    await assertRejects(
      () => tokens.issue("alice", { ttlMs: 0 }),
      TokenError,
      "must be positive",
    );
    await assertRejects(
      () => tokens.issue("alice", { scopes: ["admin"] }),
      TokenError,
      "not an administrator",
    );
    await assertRejects(
      () => tokens.issue("alice", { scopes: ["root"] }),
      TokenError,
      "Unknown scope",
    );
    const plain = await tokens.issue("alice");
    await assertRejects(
      () => tokens.verify(plain.token, "admin"),
      TokenError,
      `lacks the "admin" scope`,
    );
    const admin = await tokens.issue("root", { scopes: ["admin"] });
    assertEquals(
      (await tokens.verify(admin.token, "tunnel")).user.name,
      "root",
      "admin implies tunnel",
    );
    await assertRejects(() => tokens.verify("x.y.z"), TokenError, "malformed");
    const [h, p, s] = plain.token.split(".");
    // Flip one character in the middle of the signature (the last ones may be padding bits).
    const flipped = s!.slice(0, 10) + (s![10] === "A" ? "B" : "A") + s!.slice(11);
    const forged = `${h}.${p}.${flipped}`;
    await assertRejects(() => tokens.verify(forged), TokenError, "signature");
    const expired = await tokens.issue("alice", { ttlMs: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    await assertRejects(() => tokens.verify(expired.token), TokenError, "expired");
  });

  await t.step(
    "signing keys: Ed25519, rotation keeps old tokens, retirement ends them, JWKS",
    async () => {
      const before = await tokens.issue("alice");
      const kid1 = decodeKid(before.token);
      const kid2 = await tokens.rotate();
      const after = await tokens.issue("alice");
      assertEquals(decodeKid(after.token), kid2, "new tokens use the newest key");
      const header = after.token.split(".")[0]!.replace(/-/g, "+").replace(/_/g, "/");
      assertEquals(
        JSON.parse(atob(header + "=".repeat((4 - header.length % 4) % 4))).alg,
        "EdDSA",
      );
      assertEquals(
        (await tokens.verify(before.token)).user.name,
        "alice",
        "old tokens still verify",
      );
      const jwks = tokens.jwks();
      assertEquals(jwks.keys.map((k) => k.kid).sort(), [kid1, kid2].sort());
      for (const k of jwks.keys) assertEquals([k.kty, k.crv, k.d], ["OKP", "Ed25519", undefined]);
      await tokens.retire(kid1);
      await assertRejects(
        () => tokens.verify(before.token),
        TokenError,
        "unknown or retired key",
      );
      assertEquals((await tokens.verify(after.token)).user.name, "alice");
      await assertRejects(() => tokens.retire(kid2), TokenError, "only signing key");
    },
  );

  await t.step("revocation and disabling take effect through the notifications", async () => {
    const issued = await tokens.issue("alice");
    await tokens.verify(issued.token); // cached now
    store.revoke(issued.id);
    assertEquals((await tokens.verify(issued.token)).user.name, "alice", "served from cache");
    tokens.invalidate({ table: "api_keys", id: issued.id });
    await assertRejects(() => tokens.verify(issued.token), TokenError, "revoked");
    const other = await tokens.issue("alice");
    await tokens.verify(other.token);
    const alice = store.setDisabled("alice", true);
    tokens.invalidate({ table: "users", id: alice.id });
    await assertRejects(() => tokens.verify(other.token), TokenError, "disabled");
    store.setDisabled("alice", false);
    tokens.invalidate({ table: "users", id: alice.id });
  });

  await t.step("API keys: shown once, stored hashed, verified, revoked", async () => {
    const created = await tokens.createApiKey("root", { scopes: ["admin"], ttlMs: 3_600_000 });
    assert(created.token.startsWith("bk_") && created.id.startsWith("key_"), created.token);
    const who = await tokens.verify(created.token, "admin");
    assertEquals([who.user.name, who.tokenId, who.scopes], ["root", created.id, ["admin"]]);
    const row = store.rows.get(created.id)!;
    assertEquals(row.kind, "key");
    assertEquals(row.secret_hash?.length, 64);
    const dump = JSON.stringify([...store.rows.values()]);
    assert(!dump.includes(created.token.slice(16)), "the secret is not stored");
    // Same prefix, another secret.
    const forged = created.token.slice(0, -4) +
      (created.token.endsWith("AAAA") ? "BBBB" : "AAAA");
    await assertRejects(() => tokens.verify(forged), TokenError, "not valid");
    await assertRejects(() => tokens.verify("bk_short_x"), TokenError, "malformed");
    const plain = await tokens.createApiKey("alice");
    await assertRejects(() => tokens.verify(plain.token, "admin"), TokenError, "scope");
    store.revoke(plain.id);
    tokens.invalidate({ table: "api_keys", id: plain.id });
    await assertRejects(() => tokens.verify(plain.token), TokenError, "revoked");
  });

  await t.step("a resync keeps cached tokens and re-reads them", async () => {
    const kept = await tokens.issue("alice");
    const revoked = await tokens.issue("alice");
    await tokens.verify(kept.token);
    await tokens.verify(revoked.token);
    // Revoked while notifications were lost: the resync finds it.
    store.revoke(revoked.id);
    tokens.invalidate({ table: "*" });
    assert(tokens.cache.getStale(kept.id), "a resync drops nothing");
    const current = await tokens.revalidate([kept.id]);
    assertEquals(current?.get(kept.id)?.key.revoked_at, null);
    assert(current?.get(revoked.id)?.key.revoked_at instanceof Date);
    await assertRejects(() => tokens.verify(revoked.token), TokenError, "revoked");
    // The next outage: the token used before the reconnect still logs in.
    store.down = true;
    try {
      tokens.cache.set(kept.id, tokens.cache.getStale(kept.id)!, -1);
      assertEquals((await tokens.verify(kept.token)).user.name, "alice");
      assertEquals(await tokens.revalidate(), null, "a failed re-read keeps the cache");
      assert(tokens.cache.getStale(kept.id));
    } finally {
      store.down = false;
    }
  });

  await t.step(
    "while the store is down, known tokens log in and unknown ones wait",
    async () => {
      const known = await tokens.issue("alice");
      await tokens.verify(known.token);
      const unknown = await tokens.issue("alice");
      store.down = true;
      try {
        // Expire the cache entry: a stale one still serves during the outage.
        tokens.cache.set(known.id, tokens.cache.getStale(known.id)!, -1);
        assertEquals((await tokens.verify(known.token)).user.name, "alice");
        // The store's own error, unchanged: its callers tell an outage from a refusal.
        await assertRejects(() => tokens.verify(unknown.token), Unreachable);
      } finally {
        store.down = false;
      }
    },
  );
});

function decodeKid(jwt: string): string {
  const header = jwt.split(".")[0]!.replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(header + "=".repeat((4 - header.length % 4) % 4))).kid;
}

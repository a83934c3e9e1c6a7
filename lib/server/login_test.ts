// Logging in: the local admin token of a run is the shared token on the admin API only.

import { TokenError } from "../auth/mod.ts";
import { ServerMetrics } from "../monitor/mod.ts";
import { assertEquals, assertRejects } from "../testing/mod.ts";
import { nullLogger, Secret } from "../util/mod.ts";
import { Login } from "./login.ts";

function login(localAdminToken?: Secret): Login {
  return new Login({
    limits: { maxFailures: 10, failureInterval: 6_000, maxHandshakes: 8 },
    sharedToken: new Secret("shared-token"),
    tokens: null,
    metrics: new ServerMetrics(),
    logger: nullLogger,
    ...(localAdminToken ? { localAdminToken } : {}),
  });
}

Deno.test("login: the local admin token opens the admin API and nothing else", async () => {
  const local = new Secret("local-admin-token-of-this-run");
  const checks = login(local);
  assertEquals(await checks.verify("local-admin-token-of-this-run", "admin"), null);
  assertEquals(await checks.verify("shared-token", "admin"), null);
  assertEquals(await checks.verify("shared-token", "tunnel"), null);
  await assertRejects(() => checks.verify("local-admin-token-of-this-run", "tunnel"), TokenError);
  const result = await checks.client("local-admin-token-of-this-run", "127.0.0.1", "laptop");
  assertEquals(result.ok, false);
});

Deno.test("login: without a local admin token, only the shared token is the shared token", async () => {
  const checks = login();
  assertEquals(await checks.verify("shared-token", "admin"), null);
  await assertRejects(() => checks.verify("local-admin-token-of-this-run", "admin"), TokenError);
});

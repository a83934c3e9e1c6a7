/**
 * CertManager against a real ACME CA: Debian's pebble on loopback, with the
 * HTTP-01 challenges really fetched from a challenge server of this test.
 */

import { assert, assertEquals, assertRejects, lacks, within } from "../lib/testing/mod.ts";
import nodeAssert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { CertManager } from "../lib/server/mod.ts";
import { createLogger, type Logger } from "../lib/util/mod.ts";
import { startPebble } from "./_pebble.ts";

const assertMatch = (actual: string, pattern: RegExp) => nodeAssert.match(actual, pattern);
const assertNotEquals = <T>(actual: T, other: T) => nodeAssert.notDeepStrictEqual(actual, other);

const noPebble = lacks("pebble", "pebble-challtestsrv", "openssl");

/** A JSON logger whose events can be inspected and awaited. */
function recordingLogger(): {
  logger: Logger;
  events: Array<Record<string, unknown>>;
  next(msg: string, timeoutMs: number): Promise<Record<string, unknown>>;
} {
  const events: Array<Record<string, unknown>> = [];
  const waiters = new Set<(e: Record<string, unknown>) => void>();
  const logger = createLogger({
    level: "debug",
    format: "json",
    sink: (line) => {
      const event = JSON.parse(line);
      events.push(event);
      for (const waiter of waiters) waiter(event);
    },
  });
  return {
    logger,
    events,
    next(msg, timeoutMs) {
      return within(
        new Promise((resolve) => {
          const waiter = (e: Record<string, unknown>) => {
            if (e.msg !== msg) return;
            waiters.delete(waiter);
            resolve(e);
          };
          waiters.add(waiter);
        }),
        timeoutMs,
        `log "${msg}"`,
      );
    },
  };
}

async function openssl(args: string[]): Promise<string> {
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`openssl ${args[0]} failed: ${text}`);
  return text;
}

Deno.test({
  name: "acme: CertManager obtains, reloads and renews certificates from pebble",
  ignore: noPebble,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "burrow-acme-" });
    const managers = new Set<CertManager>();
    /** Hosts of the challenge fetches by pebble's validation authority. */
    const fetched: string[] = [];
    const challenges = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => {
        const url = new URL(request.url);
        const host = (request.headers.get("host") ?? "").replace(/:\d+$/, "");
        fetched.push(host);
        const prefix = "/.well-known/acme-challenge/";
        if (!url.pathname.startsWith(prefix)) return new Response("Not found", { status: 404 });
        if (host.startsWith("bad.")) return new Response("not-the-key-authorization");
        const token = url.pathname.slice(prefix.length);
        for (const manager of managers) {
          const answer = manager.challengeResponse(token);
          if (answer !== undefined) return new Response(answer);
        }
        return new Response("Unknown token", { status: 404 });
      },
    );
    try {
      await using pebble = await startPebble({ httpPort: challenges.addr.port });
      const root = await pebble.issuerRoot();
      await Deno.writeTextFile(`${dir}/root.pem`, root);
      const base = {
        dataDir: `${dir}/data`,
        directoryUrl: pebble.directoryUrl,
        caBundle: pebble.caBundle,
        email: "ops@burrow.test",
      };
      const domain = "app.burrow.test";
      /** Orders pebble has accepted so far (authorizations may be reused, orders never). */
      const orders = () => pebble.output().match(/Added order /g)?.length ?? 0;
      let first!: { cert: string; key: string; notAfter: Date };

      await t.step("issues a certificate over a real HTTP-01 challenge", async () => {
        const log = recordingLogger();
        await using manager = new CertManager({ ...base, logger: log.logger });
        managers.add(manager);
        // Two concurrent callers share one order.
        const [a, b] = await within(
          Promise.all([manager.certificate(domain), manager.certificate(domain)]),
          30_000,
          "first order",
        );
        first = a;
        assertEquals(a.cert, b.cert);
        assertEquals(log.events.filter((e) => e.msg === "certificate issued").length, 1);
        assert(fetched.includes(domain), `no challenge fetch for ${domain}: ${fetched}`);
        assertEquals(orders(), 1);
        assertEquals(manager.challengeResponse("anything"), undefined);

        const leaf = new X509Certificate(a.cert);
        assertMatch(leaf.subjectAltName ?? "", /DNS:app\.burrow\.test/);
        assertEquals(a.notAfter.getTime(), new Date(leaf.validTo).getTime());
        const issued = log.events.find((e) => e.msg === "certificate issued")!;
        assertEquals(issued.domain, domain);
        assertEquals(issued.not_after, a.notAfter.toISOString());

        // The stored chain verifies against pebble's root.
        const crt = `${base.dataDir}/certs/${domain}.crt`;
        assertEquals(await Deno.readTextFile(crt), a.cert);
        const verified = await openssl([
          "verify",
          "-CAfile",
          `${dir}/root.pem`,
          "-untrusted",
          crt,
          crt,
        ]);
        assertMatch(verified, /: OK/);
        assertEquals((await Deno.stat(`${base.dataDir}/certs/${domain}.key`)).mode! & 0o777, 0o600);
        assertEquals((await Deno.stat(`${base.dataDir}/certs/account.key`)).mode! & 0o777, 0o600);

        // Deno's TLS stack accepts the pair as it is stored.
        const listener = Deno.listenTls({
          hostname: "127.0.0.1",
          port: 0,
          cert: a.cert,
          key: a.key,
        });
        listener.close();
        managers.delete(manager);
      });

      await t.step("a restart loads the stored certificate without a new order", async () => {
        const log = recordingLogger();
        const fetchesBefore = fetched.length;
        const ordersBefore = orders();
        await using manager = new CertManager({ ...base, logger: log.logger });
        const again = await within(manager.certificate(domain), 10_000, "reload");
        assertEquals(orders(), ordersBefore);
        assertEquals(again.cert, first.cert);
        assertEquals(again.key, first.key);
        assertEquals(fetched.length, fetchesBefore);
        assertEquals(log.events.map((e) => e.msg), ["certificate loaded"]);
        assertEquals(log.events[0]!.not_after, first.notAfter.toISOString());
      });

      await t.step("the renewal timer renews a certificate near expiry", async () => {
        const log = recordingLogger();
        let clock = Date.now();
        const manager = new CertManager({ ...base, logger: log.logger, now: () => clock });
        managers.add(manager);
        try {
          await manager.certificate(domain);
          const ordersBefore = orders();
          const renewed = log.next("certificate renewed", 30_000);
          clock = first.notAfter.getTime() - 86_400_000;
          manager.startRenewal(50);
          const event = await renewed;
          clock = Date.now();
          assertEquals(event.domain, domain);
          assertEquals(event.previous_not_after, first.notAfter.toISOString());
          // A new order; its challenge may be skipped, as pebble reuses a
          // valid authorization now and then even with PEBBLE_AUTHZREUSE=0.
          assertEquals(orders(), ordersBefore + 1);
          const current = await manager.certificate(domain);
          assertNotEquals(current.cert, first.cert);
          assertNotEquals(current.key, first.key);
          assertEquals(current.notAfter.toISOString(), event.not_after);
          assertEquals(
            await Deno.readTextFile(`${base.dataDir}/certs/${domain}.crt`),
            current.cert,
          );
          assertEquals(log.events.filter((e) => e.msg === "certificate issued").length, 0);
        } finally {
          await manager.close();
          await manager.close();
          managers.delete(manager);
        }
      });

      await t.step(
        "a wrong challenge answer fails with the domain and the CA's reason",
        async () => {
          const log = recordingLogger();
          await using manager = new CertManager({ ...base, logger: log.logger });
          managers.add(manager);
          const bad = "bad.burrow.test";
          const error = await within(
            assertRejects(() => manager.certificate(bad), Error),
            30_000,
            "failing order",
          );
          assertMatch(error.message, /^Failed to obtain a certificate for "bad\.burrow\.test": /);
          assertMatch(error.message, /not-the-key-authorization|key authorization|did not match/i);
          assert(fetched.includes(bad));
          const failed = log.events.find((e) => e.msg === "certificate order failed")!;
          assertEquals(failed.domain, bad);
          assertEquals(failed.level, "error");
          await assertRejects(
            () => Deno.stat(`${base.dataDir}/certs/${bad}.crt`),
            Deno.errors.NotFound,
          );

          // Held back: the next call fails at once, without a new order.
          const fetchesBefore = fetched.length;
          const ordersBefore = orders();
          const held = await assertRejects(() => manager.certificate(bad), Error);
          assertMatch(held.message, /"bad\.burrow\.test".*next attempt after/);
          assertEquals(fetched.length, fetchesBefore);
          assertEquals(orders(), ordersBefore);

          managers.delete(manager);
        },
      );
    } finally {
      await challenges.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("acme: an unreachable CA fails with the domain and the cause", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-acme-" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const log = recordingLogger();
  try {
    await using manager = new CertManager({
      dataDir: dir,
      directoryUrl: `https://127.0.0.1:${port}/dir`,
      logger: log.logger,
    });
    const error = await within(
      assertRejects(() => manager.certificate("App.Burrow.Test."), Error),
      20_000,
      "unreachable CA",
    );
    assertMatch(
      error.message,
      new RegExp(
        `^Failed to obtain a certificate for "app\\.burrow\\.test": ` +
          `ACME request GET https://127\\.0\\.0\\.1:${port}/dir failed: `,
      ),
    );
    assertEquals(log.events.at(-1)?.msg, "certificate order failed");
    for (const bad of ["../etc/passwd", "localhost", "a..b", "10.0.0.1", "-x.example.com"]) {
      await assertRejects(() => manager.certificate(bad), TypeError, "Invalid domain");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acme: close() ends an order waiting on a silent CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-acme-" });
  // Accepts connections and never answers, not even the TLS handshake.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn);
  })().catch(() => {});
  try {
    const manager = new CertManager({
      dataDir: dir,
      directoryUrl: `https://127.0.0.1:${listener.addr.port}/dir`,
      logger: recordingLogger().logger,
    });
    const order = manager.certificate("app.burrow.test");
    order.catch(() => {});
    while (conns.length === 0) await new Promise((r) => setTimeout(r, 10));
    const started = performance.now();
    await within(manager.close(), 5_000, "close()");
    await manager.close();
    assert(performance.now() - started < 2_000, "close() took too long");
    await assertRejects(() => order, Error, "Certificate manager is closed");
    await assertRejects(() => manager.certificate("app.burrow.test"), Error, "closed");
    assertEquals(manager.challengeResponse("x"), undefined);
  } finally {
    listener.close();
    await accepting;
    for (const conn of conns) conn.close();
    await Deno.remove(dir, { recursive: true });
  }
});

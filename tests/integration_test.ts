/**
 * Integration tests: server and client in this process on 127.0.0.1 with
 * port 0, driven over real sockets.
 */

import assert from "node:assert/strict";
import { clientConfigFromObject, serverConfigFromObject } from "../lib/config/mod.ts";
import {
  AuthenticationError,
  BurrowClient,
  FatalClientError,
  type TunnelState,
} from "../lib/client/mod.ts";
import { BurrowServer } from "../lib/server/mod.ts";
import { dialTls } from "../lib/transport/mod.ts";
import { Mux } from "../lib/mux/mod.ts";
import { decodeControl, encodeControl, type Message } from "../lib/protocol/mod.ts";
import { createLogger, type Logger } from "../lib/util/mod.ts";
import { until } from "../lib/testing/mod.ts";

const TOKEN = "integration-token";

/** Collects log events so tests can assert on them. */
function capture(): { logger: Logger; events: Array<Record<string, unknown>> } {
  const events: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: "debug",
    format: "json",
    sink: (line) => events.push(JSON.parse(line)),
  });
  return { logger, events };
}

/** A local echo service. */
function echoServer(): Deno.TcpListener & { done: Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.TcpConn>();
  const done = (async () => {
    const tasks: Promise<void>[] = [];
    try {
      for await (const conn of listener) {
        conns.add(conn);
        tasks.push((async () => {
          const buf = new Uint8Array(16 * 1024);
          try {
            for (let n; (n = await conn.read(buf)) !== null;) {
              let off = 0;
              while (off < n) off += await conn.write(buf.subarray(off, n));
            }
            await conn.closeWrite();
          } catch { /* peer reset */ }
          conn.close();
          conns.delete(conn);
        })());
      }
    } catch { /* closed */ }
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await Promise.allSettled(tasks);
  })();
  return Object.assign(listener, { done });
}

interface Harness extends AsyncDisposable {
  server: BurrowServer;
  dir: string;
  events: Array<Record<string, unknown>>;
  logger: Logger;
}

async function startServer(extra: Record<string, unknown> = {}): Promise<Harness> {
  const dir = await Deno.makeTempDir({ prefix: "burrow-it-" });
  const { logger, events } = capture();
  const config = serverConfigFromObject({
    server: {
      bind_addr: "127.0.0.1",
      bind_port: 0,
      auth: { method: "token", token: TOKEN },
      storage: { data_dir: dir },
      ...extra,
    },
  });
  const server = await BurrowServer.start(config, { logger });
  return {
    server,
    dir,
    events,
    logger,
    async [Symbol.asyncDispose]() {
      await server.shutdown(0);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

interface RunningClient extends AsyncDisposable {
  client: BurrowClient;
  states: Map<string, TunnelState>;
  events: Array<Record<string, unknown>>;
  done: Promise<unknown>;
}

function startClient(
  h: Harness,
  tunnels: Array<Record<string, unknown>>,
  extra: Record<string, unknown> = {},
): RunningClient {
  const { logger, events } = capture();
  const config = clientConfigFromObject({
    client: {
      server_addr: "127.0.0.1",
      server_port: h.server.port,
      auth_token: TOKEN,
      server_fingerprint: h.server.fingerprint,
      reconnect: {
        max_retries: 0,
        initial_delay: "50ms",
        max_delay: "200ms",
        backoff_factor: 2,
        enable_jitter: false,
      },
      tunnels,
      ...extra,
    },
  });
  const states = new Map<string, TunnelState>();
  const client = new BurrowClient(config, {
    logger,
    onTunnel: (s) => states.set(s.name, { ...s }),
  });
  const controller = new AbortController();
  const done = client.run(controller.signal).catch((e) => e);
  return {
    client,
    states,
    events,
    done,
    async [Symbol.asyncDispose]() {
      controller.abort();
      await done;
    },
  };
}

async function activePort(c: RunningClient, name: string): Promise<number> {
  await until(`tunnel ${name} active`, () => c.states.get(name)?.status === "active");
  return c.states.get(name)!.remotePort!;
}

async function roundTrip(port: number, payload: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const reading = (async () => {
      const out = new Uint8Array(payload.length);
      let got = 0;
      while (got < payload.length) {
        const n = await conn.read(out.subarray(got));
        if (n === null) break;
        got += n;
      }
      return out.subarray(0, got);
    })();
    let off = 0;
    while (off < payload.length) off += await conn.write(payload.subarray(off));
    return await reading;
  } finally {
    conn.close();
  }
}

Deno.test("tcp tunnel carries data both ways; remote_port 0 gets a port", async () => {
  await using h = await startServer();
  const echo = echoServer();
  try {
    await using c = startClient(h, [{
      name: "echo",
      type: "tcp",
      local_port: (echo.addr as Deno.NetAddr).port,
    }]);
    const port = await activePort(c, "echo");
    assert.ok(port > 0);
    const data = crypto.getRandomValues(new Uint8Array(60_000));
    assert.deepEqual(await roundTrip(port, data), data);
    assert.ok(h.events.some((e) => e.msg === "tunnel opened" && e.remote_port === port));
  } finally {
    echo.close();
    await echo.done;
  }
});

Deno.test("many tunnels per client and many clients per server", async () => {
  await using h = await startServer();
  const echo = echoServer();
  const local = (echo.addr as Deno.NetAddr).port;
  try {
    await using a = startClient(h, [
      { name: "a1", type: "tcp", local_port: local },
      { name: "a2", type: "tcp", local_port: local },
    ]);
    await using b = startClient(h, [{ name: "b1", type: "tcp", local_port: local }]);
    const ports = [
      await activePort(a, "a1"),
      await activePort(a, "a2"),
      await activePort(b, "b1"),
    ];
    assert.equal(new Set(ports).size, 3);
    await Promise.all(ports.map(async (port, i) => {
      const data = new TextEncoder().encode(`tunnel ${i} `.repeat(100));
      assert.deepEqual(await roundTrip(port, data), data);
    }));
    assert.equal(h.server.sessions.size, 2);
  } finally {
    echo.close();
    await echo.done;
  }
});

Deno.test("wrong token: AuthenticationError, and the token is never logged", async () => {
  await using h = await startServer();
  const c = startClient(h, [{ name: "x", type: "tcp", local_port: 1 }], {
    auth_token: "wrong-token-value",
  });
  const error = await c.done;
  assert.ok(error instanceof AuthenticationError, String(error));
  await until("server log", () => h.events.some((e) => e.msg === "authentication failed"));
  const all = JSON.stringify(h.events) + JSON.stringify(c.events);
  assert.ok(!all.includes("wrong-token-value"));
  assert.ok(!all.includes(TOKEN));
});

Deno.test("with retry_auth_failures the client keeps retrying a refused token", async () => {
  await using h = await startServer();
  await using c = startClient(h, [{ name: "x", type: "tcp", local_port: 1 }], {
    auth_token: "rotated-away",
    reconnect: {
      max_retries: 0,
      initial_delay: "20ms",
      max_delay: "50ms",
      backoff_factor: 2,
      enable_jitter: false,
      retry_auth_failures: true,
    },
  });
  await until(
    "three refusals",
    () => h.events.filter((e) => e.msg === "authentication failed").length >= 3,
  );
  assert.ok(c.events.some((e) => e.msg === "reconnecting"));
});

Deno.test("pinned fingerprint mismatch is refused before any credential is sent", async () => {
  await using h = await startServer();
  const c = startClient(h, [{ name: "x", type: "tcp", local_port: 1 }], {
    server_fingerprint: "sha256:" + "00".repeat(32),
  });
  const error = await c.done;
  assert.ok(error instanceof FatalClientError, String(error));
  assert.match((error as Error).message, /does not match the pinned/);
  assert.equal(h.server.sessions.size, 0);
});

Deno.test("without a CA, a pin or insecure_skip_verify the self-signed server is refused", async () => {
  await using h = await startServer();
  await assert.rejects(
    () => dialTls({ hostname: "127.0.0.1", port: h.server.port }),
    /certificate/i,
  );
});

Deno.test("taken and disallowed ports fail their tunnel only", async () => {
  await using h = await startServer({ allow_ports: "1024-65535" });
  const echo = echoServer();
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busyPort = (busy.addr as Deno.NetAddr).port;
  try {
    await using c = startClient(h, [
      { name: "busy", type: "tcp", local_port: 1, remote_port: busyPort },
      { name: "low", type: "tcp", local_port: 1, remote_port: 80 },
      { name: "ok", type: "tcp", local_port: (echo.addr as Deno.NetAddr).port },
    ]);
    const port = await activePort(c, "ok");
    await until(
      "failures",
      () => c.states.get("busy")?.status === "failed" && c.states.get("low")?.status === "failed",
    );
    assert.match(
      c.states.get("busy")!.error!,
      new RegExp(`Port ${busyPort} is in use on the server by another program`),
    );
    assert.match(c.states.get("low")!.error!, /Port 80 is not allowed.*1024-65535/);
    assert.ok(h.events.some((e) => e.msg === "tunnel refused" && e.tunnel === "low"));
    const data = new TextEncoder().encode("still works");
    assert.deepEqual(await roundTrip(port, data), data);
  } finally {
    busy.close();
    echo.close();
    await echo.done;
  }
});

Deno.test("max_tunnels_per_client is enforced per tunnel", async () => {
  await using h = await startServer({ limits: { max_tunnels_per_client: 1 } });
  await using c = startClient(h, [
    { name: "one", type: "tcp", local_port: 1 },
    { name: "two", type: "tcp", local_port: 1 },
  ]);
  await until("both answered", () => c.states.get("two")?.status === "failed");
  assert.equal(c.states.get("one")?.status, "active");
  assert.match(c.states.get("two")!.error!, /max_tunnels_per_client/);
});

Deno.test("local service down: public connection closed at once, logged once", async () => {
  await using h = await startServer();
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (probe.addr as Deno.NetAddr).port;
  probe.close();
  await using c = startClient(h, [{ name: "dead", type: "tcp", local_port: deadPort }]);
  const port = await activePort(c, "dead");
  for (let i = 0; i < 3; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const started = performance.now();
    const n = await conn.read(new Uint8Array(8)).catch(() => null);
    conn.close();
    assert.equal(n, null);
    assert.ok(performance.now() - started < 2000);
  }
  const logged = c.events.filter((e) => e.msg === "local service unavailable");
  assert.equal(logged.length, 1);
});

/** Opens a raw session: TLS, mux, and the given messages, returning the replies. */
async function rawSession(h: Harness, messages: Message[], replies: number): Promise<Message[]> {
  const conn = await dialTls({
    hostname: "127.0.0.1",
    port: h.server.port,
    fingerprint: h.server.fingerprint,
  });
  const mux = new Mux(conn, { role: "client", pingInterval: 0 });
  try {
    for (const m of messages) mux.sendControl(encodeControl(m));
    const out: Message[] = [];
    for (let i = 0; i < replies; i++) {
      const bytes = await mux.recvControl();
      if (!bytes) break;
      out.push(decodeControl(bytes));
    }
    return out;
  } finally {
    mux.close();
  }
}

Deno.test("a client speaking a newer protocol is told which side to upgrade", async () => {
  await using h = await startServer();
  const [reply] = await rawSession(h, [{
    type: "hello",
    version: 99,
    min_version: 99,
    software: "burrow/99.0.0",
  }], 1);
  assert.equal(reply?.type, "error");
  assert.match((reply as { message: string }).message, /upgrade burrowd/);
});

Deno.test("create_tunnel requests the tunnel spec refuses fail their tunnel only, naming the field", async () => {
  await using h = await startServer({ vhost_http_port: 0, vhost_https_port: 0 });
  const create = (tunnel_id: string, config: Record<string, unknown>): Message => ({
    type: "control",
    action: "create_tunnel",
    tunnel_id,
    config: { local_port: 1, ...config } as never,
  });
  const refused: Array<[Message, string]> = [
    [create("-x", { protocol: "tcp" }), 'name: expected 1-64 letters, digits, "_", "." or "-"'],
    [create("n".repeat(100_000), { protocol: "tcp" }), "(100000 characters)"],
    [create("zero", { protocol: "tcp", local_port: 0 }), "local_port: expected an integer 1-65535"],
    [create("gz", { protocol: "udp", compression: "gzip" }), "compression: gzip applies to tcp"],
    [create("st", { protocol: "tcp", session_timeout: 5000 }), "session_timeout: only meaningful"],
    [create("dom", { protocol: "tcp", custom_domains: ["a.test"] }), "custom_domains: only"],
    [
      create("crlf", { protocol: "http", custom_headers: { "X-A": "1\r\nX-Evil: 1" } }),
      "custom_headers.X-A: header values cannot contain line breaks",
    ],
    [
      create("pass", {
        protocol: "https",
        tls_passthrough: true,
        basic_auth: { user: "u", password: "secret-pw" },
      }),
      "basic_auth: a tls_passthrough tunnel relays TLS untouched",
    ],
    [create("lb", { protocol: "tcp", weight: 5 }), "weight: only meaningful with group"],
    [create("key", { protocol: "tcp", group: "g" }), "group_key: required with group"],
  ];
  const replies = await rawSession(h, [
    { type: "hello", version: 2, min_version: 1, software: "test/0" },
    { type: "auth", method: "token", token: TOKEN },
    ...refused.map(([m]) => m),
    create("fine", { protocol: "tcp", future_setting: { any: "thing" } }),
  ], 3 + refused.length);
  const statuses = replies.filter((m) => m.type === "tunnel_status");
  assert.equal(statuses.length, refused.length + 1, JSON.stringify(replies).slice(0, 500));
  for (const [i, [, wanted]] of refused.entries()) {
    const status = statuses[i]!;
    assert.equal(status.status, "failed");
    assert.ok(status.error?.includes(wanted), `${wanted} in ${status.error}`);
    assert.ok(!status.error?.includes("secret-pw"));
  }
  assert.equal(statuses.at(-1)?.status, "active", "the session goes on; unknown keys are ignored");
});

Deno.test("a silent session is closed after heartbeat_timeout and its port released", async () => {
  await using h = await startServer({ heartbeat_interval: "100ms", heartbeat_timeout: "300ms" });
  const conn = await dialTls({
    hostname: "127.0.0.1",
    port: h.server.port,
    fingerprint: h.server.fingerprint,
  });
  const mux = new Mux(conn, { role: "client", pingInterval: 0 });
  try {
    const send = (m: Message) => mux.sendControl(encodeControl(m));
    send({ type: "hello", version: 1, min_version: 1, software: "test/0" });
    send({ type: "auth", method: "token", token: TOKEN });
    send({
      type: "control",
      action: "create_tunnel",
      tunnel_id: "t",
      config: { protocol: "tcp", local_port: 1, remote_port: 0 },
    });
    let port = 0;
    for (let bytes; (bytes = await mux.recvControl()) !== null;) {
      const m = decodeControl(bytes);
      if (m.type === "tunnel_status") {
        port = m.remote_port!;
        break;
      }
    }
    assert.ok(port > 0);
    // Send nothing more: the server must give up on us.
    await until("session closed", () => h.events.some((e) => e.msg === "session closed"), 3000);
    const again = Deno.listen({ hostname: "127.0.0.1", port });
    again.close();
  } finally {
    mux.close();
  }
});

Deno.test("graceful shutdown lets the client reconnect to a new server on the same port", async () => {
  const h1 = await startServer();
  const port = h1.server.port;
  const echo = echoServer();
  try {
    await using c = startClient(h1, [{
      name: "echo",
      type: "tcp",
      local_port: (echo.addr as Deno.NetAddr).port,
    }]);
    await activePort(c, "echo");
    await h1.server.shutdown(0);
    await until("client noticed", () => c.states.get("echo")?.status !== "active");
    await using h2 = await startServer({ bind_port: port, storage: { data_dir: h1.dir } });
    const remote = await activePort(c, "echo");
    const data = new TextEncoder().encode("after restart");
    assert.deepEqual(await roundTrip(remote, data), data);
    assert.ok(c.events.some((e) => e.msg === "reconnecting"));
    assert.equal(h2.server.sessions.size, 1);
  } finally {
    echo.close();
    await echo.done;
    await Deno.remove(h1.dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("with no token configured, burrowd generates one, keeps it, and never logs it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-it-" });
  const { logger, events } = capture();
  const saved = Deno.env.get("BURROW_TOKEN");
  Deno.env.delete("BURROW_TOKEN");
  try {
    const config = serverConfigFromObject({
      server: { bind_addr: "127.0.0.1", bind_port: 0, storage: { data_dir: dir } },
    });
    const first = await BurrowServer.start(config, { logger });
    const token = first.token.reveal();
    await first.shutdown(0);
    assert.ok(token.length >= 40);
    assert.equal((await Deno.stat(`${dir}/token`)).mode! & 0o777, 0o600);
    const again = await BurrowServer.start(config, { logger });
    assert.equal(again.token.reveal(), token);
    await again.shutdown(0);
    assert.ok(!JSON.stringify(events).includes(token));
    assert.ok(events.some((e) => e.msg === "generated a client token"));
  } finally {
    if (saved !== undefined) Deno.env.set("BURROW_TOKEN", saved);
    await Deno.remove(dir, { recursive: true });
  }
});

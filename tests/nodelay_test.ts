/**
 * TCP_NODELAY read back from the kernel (`getsockopt` through FFI) on every
 * socket Burrow owns: both ends of the control connection, the server's
 * public sockets of visitor connections (a TCP tunnel port, the HTTP and
 * HTTPS vhost ports) and the client's sockets to local services.
 *
 * Server, client, services and visitors all run in this process on
 * 127.0.0.1 with port 0, so each socket is found among this process's
 * descriptors by its local and peer port (`sockopt.findSocketFds`). Every
 * socket is read while a request through it is held open by the local
 * service, so none can have closed before it is looked at.
 */

import { assert, assertEquals, within } from "../lib/testing/mod.ts";
import { createCa } from "./_pki.ts";
import { BurrowClient, FatalClientError, type TunnelState } from "../lib/client/mod.ts";
import { clientConfigFromObject, serverConfigFromObject } from "../lib/config/mod.ts";
import { BurrowServer } from "../lib/server/mod.ts";
import { dialTls } from "../lib/transport/mod.ts";
import {
  IPPROTO_TCP,
  nullLogger,
  type SocketQuery,
  sockopt,
  TCP_NODELAY,
} from "../lib/util/mod.ts";

const TOKEN = "nodelay-token";
/** Bound of each step that waits on the network. */
const STEP_MS = 10_000;

/** `promise`, or a failure naming `what` after `STEP_MS`. */
const step = <T>(what: string, promise: Promise<T>) => within(promise, STEP_MS, what);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Why TCP_NODELAY cannot be read here (not Linux, no FFI); `null` when it can. */
const unavailable = sockopt.unavailableReason;
/** In CI that is a failure; elsewhere the tests are ignored, and say why. */
const ignore = unavailable !== null && Deno.env.get("CI") !== "true";
if (ignore) {
  console.warn(
    `ignored (reported as such by deno test): TCP_NODELAY cannot be read back here: ${unavailable}`,
  );
}

/** A promise with its resolver. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A local service that answers each request only once released: `received`
 * resolves with the peer port (the client's local socket) when the first
 * request is in, and `release()` lets the answers go.
 */
interface HeldService extends AsyncDisposable {
  port: number;
  received: Promise<number>;
  release(): void;
}

/** `answer` turns the bytes read (a whole request) into the reply; `complete` says when they are. */
function heldService(
  complete: (text: string) => boolean,
  answer: (text: string) => string,
): HeldService {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.TcpConn>();
  const tasks: Promise<void>[] = [];
  const released = signal();
  let received!: (port: number) => void;
  const first = new Promise<number>((r) => (received = r));
  const serve = async (conn: Deno.TcpConn) => {
    const buf = new Uint8Array(4096);
    let text = "";
    try {
      for (let n; (n = await conn.read(buf)) !== null;) {
        text += decoder.decode(buf.subarray(0, n));
        if (!complete(text)) continue;
        received((conn.remoteAddr as Deno.NetAddr).port);
        await released.promise;
        await conn.write(encoder.encode(answer(text)));
        text = "";
      }
    } catch { /* closed at teardown */ }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        tasks.push(serve(conn).finally(() => conns.delete(conn)));
      }
    } catch { /* closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    received: first,
    release: released.resolve,
    async [Symbol.asyncDispose]() {
      released.resolve();
      listener.close();
      await accepting;
      for (const conn of conns) conn.close();
      await Promise.allSettled(tasks);
    },
  };
}

/** Reads from `conn` until `text` holds `done`. */
async function readUntil(conn: Deno.Conn, done: (text: string) => boolean): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  while (!done(text)) {
    const n = await conn.read(buf);
    if (n === null) throw new Error(`Connection closed after ${JSON.stringify(text)}`);
    text += decoder.decode(buf.subarray(0, n));
  }
  return text;
}

/** A socket to look at, named for the failure message. */
interface Expected {
  name: string;
  query: SocketQuery;
}

/**
 * One line per socket that is missing or lacks TCP_NODELAY, naming it;
 * empty when all have it.
 */
function withoutNoDelay(expected: readonly Expected[]): string[] {
  const fds = sockopt.findSocketFds(expected.map((e) => e.query));
  return expected.flatMap(({ name, query }, i) => {
    const where = `127.0.0.1:${query.localPort} -> 127.0.0.1:${query.remotePort}`;
    const fd = fds[i];
    if (fd === null || fd === undefined) return [`${name} (${where}): no such socket`];
    const value = sockopt.getIntOption(fd, IPPROTO_TCP, TCP_NODELAY);
    return value === 1 ? [] : [`${name} (${where}, fd ${fd}): TCP_NODELAY is ${value}`];
  });
}

/** The TCP socket with local port `local` connected to port `remote`, both on 127.0.0.1. */
function tcpSocket(local: number, remote: number): SocketQuery {
  return { transport: "tcp", localPort: local, remotePort: remote, remoteAddr: "127.0.0.1" };
}

/** How the control connection is made: server and client configuration added. */
interface ControlVariant {
  server?: Record<string, unknown>;
  client?: Record<string, unknown>;
}

/**
 * Starts a server with HTTP and HTTPS vhost ports and a client with a TCP and
 * an HTTP tunnel, holds one visitor request in each tunnel and one TLS
 * visitor connection on the HTTPS port, and returns the sockets without
 * TCP_NODELAY.
 */
async function socketsWithoutNoDelay(variant: ControlVariant): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "burrow-nodelay-" });
  try {
    await using tcpService = heldService((t) => t.length >= 4, (t) => t);
    await using httpService = heldService(
      (t) => t.includes("\r\n\r\n"),
      () => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    const server = await BurrowServer.start(
      serverConfigFromObject({
        server: {
          bind_addr: "127.0.0.1",
          bind_port: 0,
          vhost_http_port: 0,
          vhost_https_port: 0,
          auth: { method: "token", token: TOKEN },
          storage: { data_dir: dir },
          ...variant.server,
        },
      }),
      { logger: nullLogger },
    );
    await using _server = { [Symbol.asyncDispose]: () => server.shutdown(0) };
    const states = new Map<string, TunnelState>();
    const active = new Map<string, () => void>();
    const client = new BurrowClient(
      clientConfigFromObject({
        client: {
          server_addr: "127.0.0.1",
          server_port: server.port,
          auth_token: TOKEN,
          server_fingerprint: server.fingerprint,
          reconnect: { max_retries: 1, initial_delay: "50ms", enable_jitter: false },
          tunnels: [
            { name: "tcp", type: "tcp", local_port: tcpService.port },
            {
              name: "web",
              type: "http",
              local_port: httpService.port,
              custom_domains: ["web.test"],
            },
          ],
          ...variant.client,
        },
      }),
      {
        logger: nullLogger,
        onTunnel: (s) => {
          states.set(s.name, { ...s });
          if (s.status === "active") active.get(s.name)?.();
        },
      },
    );
    const stop = new AbortController();
    const running = client.run(stop.signal).catch((e) => e);
    await using _client = {
      async [Symbol.asyncDispose]() {
        stop.abort();
        await running;
      },
    };
    const tunnelActive = (name: string) => {
      if (states.get(name)?.status === "active") return Promise.resolve();
      const ready = signal();
      active.set(name, ready.resolve);
      return step(
        `tunnel "${name}" to be active`,
        Promise.race([
          ready.promise,
          running.then((e) => {
            throw e instanceof FatalClientError ? e : new Error(`Client stopped: ${e}`);
          }),
        ]),
      );
    };
    await tunnelActive("tcp");
    await tunnelActive("web");
    const tcpPort = states.get("tcp")!.remotePort!;
    const httpPort = server.vhosts.http!.port;
    const httpsPort = server.vhosts.https!.port;

    // A visitor request held by each service: every socket on its way is open.
    using tcpVisitor = await Deno.connect({ hostname: "127.0.0.1", port: tcpPort });
    await tcpVisitor.write(encoder.encode("ping"));
    const tcpLocal = await step("the TCP request at the service", tcpService.received);
    using httpVisitor = await Deno.connect({ hostname: "127.0.0.1", port: httpPort });
    await httpVisitor.write(encoder.encode("GET / HTTP/1.1\r\nHost: web.test\r\n\r\n"));
    const httpLocal = await step("the HTTP request at the service", httpService.received);
    // TLS is up only once the server has accepted (and set up) the socket.
    using httpsVisitor = await step(
      "a TLS connection to the HTTPS vhost port",
      dialTls({
        hostname: "127.0.0.1",
        port: httpsPort,
        fingerprint: server.fingerprint,
        timeout: STEP_MS,
      }),
    );

    const sessions = [...server.sessions];
    assertEquals(sessions.length, 1, "one client session");
    const controlLocal = Number(
      sessions[0]!.remote.slice(sessions[0]!.remote.lastIndexOf(":") + 1),
    );
    const visitorPort = (visitor: Deno.Conn) => (visitor.localAddr as Deno.NetAddr).port;
    const failures = withoutNoDelay([
      { name: "server control socket", query: tcpSocket(server.port, controlLocal) },
      { name: "client control socket", query: tcpSocket(controlLocal, server.port) },
      {
        name: "server public socket of the TCP tunnel visitor",
        query: tcpSocket(tcpPort, visitorPort(tcpVisitor)),
      },
      {
        name: "server public socket of the HTTP vhost visitor",
        query: tcpSocket(httpPort, visitorPort(httpVisitor)),
      },
      {
        name: "server public socket of the HTTPS vhost visitor",
        query: tcpSocket(httpsPort, visitorPort(httpsVisitor)),
      },
      {
        name: "client local socket to the TCP service",
        query: tcpSocket(tcpLocal, tcpService.port),
      },
      {
        name: "client local socket to the HTTP service",
        query: tcpSocket(httpLocal, httpService.port),
      },
    ]);

    // The held requests complete: the sockets looked at were the working ones.
    tcpService.release();
    httpService.release();
    assertEquals(await step("the TCP echo", readUntil(tcpVisitor, (t) => t.length >= 4)), "ping");
    const response = await step(
      "the HTTP response",
      readUntil(httpVisitor, (t) => t.endsWith("ok")),
    );
    assert(response.startsWith("HTTP/1.1 200"), response);
    return failures;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "TCP_NODELAY is on for every socket: control port over node:tls (TLS 1.3, the default)",
  ignore,
  async fn() {
    assert(unavailable === null, `TCP_NODELAY cannot be read back here: ${unavailable}`);
    assertEquals(await socketsWithoutNoDelay({}), []);
  },
});

Deno.test({
  name: "TCP_NODELAY is on for every socket: control port over Deno's TLS (min_version 1.2)",
  ignore,
  async fn() {
    assert(unavailable === null, `TCP_NODELAY cannot be read back here: ${unavailable}`);
    assertEquals(await socketsWithoutNoDelay({ server: { tls: { min_version: "1.2" } } }), []);
  },
});

Deno.test({
  name: "TCP_NODELAY is on for every socket: control port with mutual TLS",
  ignore,
  async fn() {
    assert(unavailable === null, `TCP_NODELAY cannot be read back here: ${unavailable}`);
    const dir = await Deno.makeTempDir({ prefix: "burrow-nodelay-ca-" });
    try {
      const ca = await createCa("Burrow nodelay CA");
      const leaf = await ca.issueClient("nodelay");
      await Deno.writeTextFile(`${dir}/ca.pem`, ca.cert);
      await Deno.writeTextFile(`${dir}/client.crt`, leaf.cert);
      await Deno.writeTextFile(`${dir}/client.key`, leaf.key);
      assertEquals(
        await socketsWithoutNoDelay({
          server: { tls: { client_ca_file: `${dir}/ca.pem` } },
          client: { tls: { cert_file: `${dir}/client.crt`, key_file: `${dir}/client.key` } },
        }),
        [],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

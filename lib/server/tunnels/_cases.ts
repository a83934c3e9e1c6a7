/**
 * The conformance suite every tunnel type passes: {@linkcode runTunnelCases}
 * registers one test per type whose steps open a tunnel through the
 * registry with a session context of its own (a mux pair in memory, the
 * client side echoing), then drive it with real visitors on 127.0.0.1.
 *
 * A visitor's payload starting with `hold` is answered only once the step
 * releases it: that visitor stays in flight (limit and graceful close).
 *
 * @module
 */

import assert from "node:assert/strict";
import { serverConfigFromObject } from "../../config/mod.ts";
import { DatagramWriter, Mux, type MuxStream, readDatagrams } from "../../mux/mod.ts";
import type { TunnelRequest } from "../../protocol/mod.ts";
import { generateSelfSigned, memoryPipe } from "../../transport/mod.ts";
import { IpPolicy, nullLogger } from "../../util/mod.ts";
import { HttpFront } from "../http_front.ts";
import type { TunnelContext } from "./context.ts";
import { GroupRegistry } from "./group.ts";
import type { ConnectionEvent, PublicTunnel } from "./public_tunnel.ts";
import { openTunnel } from "./registry.ts";

/** How long a visitor waits for an answer it expects. */
const ANSWER_MS = 5_000;
/** How long a visitor waits before it takes silence for a refusal (UDP). */
const SILENCE_MS = 400;
/** The host name HTTP(S) tunnels serve. */
const HOST = "conf.test";

/** How the visitors of one tunnel type reach it. */
export type VisitorKind = "tcp" | "udp" | "http" | "https";

/** One tunnel type (or group variant) under test. */
export interface TunnelCase {
  /** Name in the test title, e.g. `tcp group`. */
  label: string;
  /** What the client asks for (the name is the suite's). */
  request: TunnelRequest;
  /** How visitors reach it. */
  visitors: VisitorKind;
  /** Whether visitors in flight finish after `close(false)` (UDP sessions end with the socket). */
  graceful: boolean;
}

/** One visitor: sends a payload and reads the answer back. */
interface Visitor {
  /** Sends `payload`; resolves with the answer, or `null` when refused or not answered. */
  exchange(payload: string): Promise<string | null>;
  /** Leaves. */
  close(): void;
}

/** The session side of one step: a tunnel's context with counters, and the client's side. */
interface Rig {
  context: TunnelContext;
  /** Streams the client was asked to open (visitors that reached it). */
  streams: number;
  denied: number;
  limited: number;
  events: ConnectionEvent[];
  /** Answers the visitors holding (payload `hold…`). */
  release(): void;
  close(): Promise<void>;
}

/** Resolves `promise`, or `fallback` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<T>((resolve) => timer = setTimeout(() => resolve(fallback), ms));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `done()` holds, at most `ms`. */
async function until(done: () => boolean, what: string, ms = ANSWER_MS): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads from `read` until `complete` says the bytes so far hold `wanted` bytes, or the end. */
async function readUntil(
  read: (buf: Uint8Array) => Promise<number | null>,
  complete: (bytes: Uint8Array) => boolean,
): Promise<Uint8Array> {
  let bytes = new Uint8Array(0);
  const buf = new Uint8Array(16 * 1024);
  while (!complete(bytes)) {
    const n = await read(buf);
    if (n === null) break;
    const next = new Uint8Array(bytes.length + n);
    next.set(bytes);
    next.set(buf.subarray(0, n), bytes.length);
    bytes = next;
  }
  return bytes;
}

/** An HTTP/1.1 message's head and body, once `bytes` hold all of it (by Content-Length). */
function httpMessage(bytes: Uint8Array): { head: string; body: string } | null {
  const text = decoder.decode(bytes);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const head = text.slice(0, end);
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
  const body = text.slice(end + 4);
  return body.length >= length ? { head, body: body.slice(0, length) } : null;
}

/** A stream visitor (TCP, HTTP, HTTPS) over `conn`. */
function streamVisitor(conn: Deno.Conn, http: boolean): Visitor {
  return {
    async exchange(payload) {
      const request = http
        ? `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${payload.length}\r\n\r\n${payload}`
        : payload;
      try {
        await conn.write(encoder.encode(request));
        const read = (buf: Uint8Array) => conn.read(buf);
        const answer = within(
          readUntil(read, (b) => http ? httpMessage(b) !== null : b.length >= payload.length),
          ANSWER_MS,
          new Uint8Array(0),
        );
        const bytes = await answer;
        if (!http) return bytes.length ? decoder.decode(bytes) : null;
        const message = httpMessage(bytes);
        return message?.head.startsWith("HTTP/1.1 200 ") ? message.body : null;
      } catch {
        return null;
      }
    },
    close() {
      try {
        conn.close();
      } catch { /* closed */ }
    },
  };
}

/** A new visitor of `tunnel` (HTTP: of the vhost port it is routed on). */
async function visit(kind: VisitorKind, port: number, cert: string | null): Promise<Visitor> {
  if (kind === "udp") {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    return {
      async exchange(payload) {
        try {
          await socket.send(encoder.encode(payload), {
            transport: "udp",
            hostname: "127.0.0.1",
            port,
          });
          const ms = payload.startsWith("hold") ? ANSWER_MS : SILENCE_MS;
          const got = await within(socket.receive().catch(() => null), ms, null);
          return got ? decoder.decode(got[0]) : null;
        } catch {
          return null;
        }
      },
      close() {
        try {
          socket.close();
        } catch { /* closed */ }
      },
    };
  }
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return { exchange: () => Promise.resolve(null), close() {} };
  }
  if (kind === "https") {
    conn = await Deno.startTls(conn as Deno.TcpConn, {
      hostname: HOST,
      caCerts: [cert!],
      alpnProtocols: ["http/1.1"],
    });
  }
  return streamVisitor(conn, kind !== "tcp");
}

/** The client's side of one data stream: echoes, or answers HTTP requests with their body. */
async function answer(stream: MuxStream, visitors: VisitorKind, held: Promise<void>) {
  try {
    if (visitors === "udp") {
      const writer = new DatagramWriter(stream);
      for await (const datagram of readDatagrams(stream)) {
        const text = decoder.decode(datagram);
        if (text.startsWith("hold")) await held;
        writer.send(encoder.encode(text));
      }
      writer.close();
      return;
    }
    let pending = new Uint8Array(0);
    for (;;) {
      const chunk = await stream.read();
      if (chunk === null) break;
      const next = new Uint8Array(pending.length + chunk.length);
      next.set(pending);
      next.set(chunk, pending.length);
      pending = next;
      if (visitors === "tcp") {
        if (decoder.decode(pending).startsWith("hold")) await held;
        await stream.write(pending);
        pending = new Uint8Array(0);
        continue;
      }
      const message = httpMessage(pending);
      if (!message) continue;
      pending = new Uint8Array(0);
      if (message.body.startsWith("hold")) await held;
      await stream.write(encoder.encode(
        `HTTP/1.1 200 OK\r\nContent-Length: ${message.body.length}\r\n\r\n${message.body}`,
      ));
    }
    stream.closeWrite();
  } catch {
    stream.reset("test client failed");
  }
}

/** A session context for one step, with the client's side of its mux answering. */
async function rig(
  test: TunnelCase,
  options: { maxConnections?: number; certificate: { cert: string; key: string } | null },
): Promise<Rig> {
  const [a, b] = memoryPipe();
  const held = Promise.withResolvers<void>();
  const answering = new Set<Promise<void>>();
  const serverMux = new Mux(a, { role: "server", pingInterval: 0 });
  const clientMux = new Mux(b, {
    role: "client",
    pingInterval: 0,
    onStream: (stream) => {
      state.streams++;
      const done = answer(stream, test.visitors, held.promise);
      answering.add(done);
      done.finally(() => answering.delete(done));
    },
  });
  const config = serverConfigFromObject({
    server: { bind_addr: "127.0.0.1", bind_port: 0, auth: { method: "token", token: "t" } },
  });
  const http = test.visitors === "http"
    ? await HttpFront.listen({
      hostname: "127.0.0.1",
      port: 0,
      scheme: "http",
      logger: nullLogger,
      headerTimeout: ANSWER_MS,
    })
    : null;
  const https = test.visitors === "https"
    ? await HttpFront.listen({
      hostname: "127.0.0.1",
      port: 0,
      scheme: "https",
      logger: nullLogger,
      fallbackCertificate: options.certificate!,
      headerTimeout: ANSWER_MS,
    })
    : null;
  const state: Rig = {
    streams: 0,
    denied: 0,
    limited: 0,
    events: [],
    context: {
      config,
      logger: nullLogger,
      mux: serverMux,
      clientId: "conformance",
      groups: new GroupRegistry(nullLogger),
      vhosts: { http, https },
      allowedDomains: null,
      ports: (requested) => [requested],
      portTaken: (port) => `Port ${port} is taken`,
      guards: (_name, policy) => ({
        logger: nullLogger,
        policy,
        onDenied: () => state.denied++,
        maxConnections: options.maxConnections ?? 0,
        onConnectionLimit: () => state.limited++,
      }),
      onConnection: (_tunnel, event) => state.events.push(event),
      onFirstByte: () => {},
      onUdpDrops: () => {},
    },
    release: () => held.resolve(),
    async close() {
      held.resolve();
      clientMux.close();
      serverMux.close();
      await Promise.all([clientMux.closed, serverMux.closed, ...answering]);
      await http?.close();
      await https?.close();
    },
  };
  return state;
}

/** Options of {@linkcode runTunnelCases}. */
export interface TunnelCaseOptions {
  /** Runs the test only when true (e.g. a platform check). Default true. */
  enabled?: boolean;
}

/**
 * Registers the conformance test of one tunnel type: open and close,
 * refusal by IP policy, the connection limit, graceful close, and stats.
 */
export function runTunnelCases(test: TunnelCase, options: TunnelCaseOptions = {}): void {
  Deno.test({
    name: `tunnel conformance: ${test.label}`,
    ignore: options.enabled === false,
    async fn(t) {
      const certificate = test.visitors === "https" ? await generateSelfSigned([HOST]) : null;
      const cert = certificate?.cert ?? null;
      /** Runs `body` with a freshly opened tunnel, closing everything after. */
      const withTunnel = async (
        setup: { policy?: IpPolicy; maxConnections?: number },
        body: (tunnel: PublicTunnel, rig: Rig, port: number) => Promise<void>,
      ) => {
        const r = await rig(test, { certificate, maxConnections: setup.maxConnections ?? 0 });
        try {
          const opened = await openTunnel(
            { name: "conf", request: test.request, policy: setup.policy },
            r.context,
          );
          assert.notEqual(typeof opened, "string", `opened: ${opened}`);
          const tunnel = opened as PublicTunnel;
          try {
            const port = test.visitors === "http"
              ? r.context.vhosts.http!.port
              : test.visitors === "https"
              ? r.context.vhosts.https!.port
              : tunnel.port;
            await body(tunnel, r, port);
          } finally {
            await tunnel.close();
          }
        } finally {
          await r.close();
        }
      };

      await t.step(
        "opens, carries a visitor both ways, closes (twice) and refuses after",
        () =>
          withTunnel({}, async (tunnel, r, port) => {
            assert.equal(tunnel.type, test.request.protocol);
            assert.equal(tunnel.name, "conf");
            assert.ok(tunnel.port > 0, `port ${tunnel.port}`);
            const visitor = await visit(test.visitors, port, cert);
            assert.equal(await visitor.exchange("ping"), "ping");
            visitor.close();
            await tunnel.close();
            await tunnel.close();
            const late = await visit(test.visitors, port, cert);
            assert.equal(await late.exchange("late"), null);
            late.close();
            assert.equal(r.streams, 1);
          }),
      );

      await t.step(
        "refuses a visitor the IP policy denies before it reaches the client",
        () =>
          withTunnel({ policy: IpPolicy.parse([], ["127.0.0.1/32"]) }, async (_tunnel, r, port) => {
            const visitor = await visit(test.visitors, port, cert);
            assert.equal(await visitor.exchange("denied"), null);
            visitor.close();
            assert.equal(r.denied, 1);
            assert.equal(r.streams, 0);
          }),
      );

      await t.step(
        "refuses a visitor over the connection limit, serves the one within",
        () =>
          withTunnel({ maxConnections: 1 }, async (tunnel, r, port) => {
            const first = await visit(test.visitors, port, cert);
            const answered = first.exchange("hold 1");
            await until(() => tunnel.activeConnections === 1, "the first visitor in flight");
            const second = await visit(test.visitors, port, cert);
            assert.equal(await second.exchange("over"), null);
            second.close();
            assert.equal(r.limited, 1);
            r.release();
            assert.equal(await answered, "hold 1");
            first.close();
          }),
      );

      await t.step(
        test.graceful
          ? "graceful close: visitors in flight finish, new ones are refused"
          : "graceful close: new visitors are refused, the tunnel's sessions end with it",
        () =>
          withTunnel({}, async (tunnel, r, port) => {
            const first = await visit(test.visitors, port, cert);
            const answered = first.exchange("hold 2");
            await until(() => tunnel.activeConnections === 1, "the visitor in flight");
            await tunnel.close(false);
            const late = await visit(test.visitors, port, cert);
            assert.equal(await late.exchange("late"), null);
            late.close();
            r.release();
            if (test.graceful) {
              assert.equal(await answered, "hold 2");
            } else {
              // Its session ended with the socket: the answer cannot come (silence, then leave).
              const settled = await within(answered.then(() => true), SILENCE_MS, false);
              if (settled) assert.equal(await answered, null);
            }
            first.close();
            await answered;
          }),
      );

      await t.step(
        "stats: totals count every visitor and its bytes; nothing live after",
        () =>
          withTunnel({}, async (tunnel, r, port) => {
            const payload = "x".repeat(1000);
            for (let i = 0; i < 3; i++) {
              const visitor = await visit(test.visitors, port, cert);
              assert.equal(await visitor.exchange(payload), payload);
              visitor.close();
            }
            // UDP sessions end with the tunnel; TCP connections once the visitor's close is seen.
            if (test.visitors === "udp") await tunnel.close();
            await until(() => r.events.length === 3, "three finished visitors");
            const stats = tunnel.stats;
            assert.equal(stats.connections, 3);
            assert.ok(stats.bytesIn >= 3 * payload.length, `bytes in ${stats.bytesIn}`);
            assert.ok(stats.bytesOut >= 3 * payload.length, `bytes out ${stats.bytesOut}`);
            assert.equal(tunnel.activeConnections, 0);
            assert.equal([...tunnel.liveTransfers].length, 0);
          }),
      );
    },
  });
}

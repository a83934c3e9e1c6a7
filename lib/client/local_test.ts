import { assert, assertEquals, within } from "../testing/mod.ts";
import type { TunnelConfig } from "../config/mod.ts";
import { Mux, type MuxStream } from "../mux/mod.ts";
import { decodeProxyHeaderV2 } from "../protocol/mod.ts";
import { memoryPipe } from "../transport/mod.ts";
import { createLogger } from "../util/mod.ts";
import { Recorder } from "./inspect/mod.ts";
import { LocalSide } from "./local.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const REQUEST = "GET /who HTTP/1.1\r\nHost: app.test\r\n\r\n";
const ANSWER = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

/**
 * An HTTP service on 127.0.0.1 that keeps every connection's bytes up to the
 * end of a request head (a PROXY header included), then answers and closes.
 */
function recordingService() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: Uint8Array[] = [];
  const serve = async (conn: Deno.Conn) => {
    const parts: number[] = [];
    const buf = new Uint8Array(4096);
    try {
      while (!dec.decode(new Uint8Array(parts)).includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) break;
        parts.push(...buf.subarray(0, n));
      }
      received.push(new Uint8Array(parts));
      await conn.write(enc.encode(ANSWER));
    } finally {
      conn.close();
    }
  };
  const accepting = (async () => {
    const served: Promise<void>[] = [];
    try {
      for await (const conn of listener) served.push(serve(conn));
    } finally {
      await Promise.allSettled(served);
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    received,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
    },
  };
}

/**
 * A client's local side behind an in-memory connection: `visit` opens a
 * stream with `meta` as the server would, sends a request, reads the answer.
 */
function harness(tunnel: TunnelConfig, recorder?: Recorder) {
  const logged: Array<Record<string, unknown>> = [];
  const logger = createLogger({ format: "json", sink: (l) => logged.push(JSON.parse(l)) });
  const local = new LocalSide({ logger, udpSocketBuffer: 0, recorder });
  const served: Promise<void>[] = [];
  const [a, b] = memoryPipe();
  const client = new Mux(a, {
    role: "client",
    pingInterval: 0,
    onStream: (stream) => served.push(local.serve(stream, tunnel)),
  });
  const server = new Mux(b, { role: "server", pingInterval: 0 });
  const visit = async (meta: Record<string, unknown>): Promise<string> => {
    const stream: MuxStream = server.open({ tunnel: tunnel.name, ...meta });
    await stream.write(enc.encode(REQUEST));
    // The visitor is done sending: the relay ends once the service has answered.
    stream.closeWrite();
    const parts: string[] = [];
    for (let c; (c = await stream.read()) !== null;) parts.push(dec.decode(c));
    return parts.join("");
  };
  return {
    logged,
    visit,
    async [Symbol.asyncDispose]() {
      await within(Promise.all(served), 5_000, "the relays' end");
      server.close();
      client.close();
    },
  };
}

const httpTunnel = (port: number, proxy_protocol: "v1" | "v2"): TunnelConfig => ({
  name: "web",
  type: "http",
  local_addr: "127.0.0.1",
  local_port: port,
  proxy_protocol,
});

const warnings = (logged: Array<Record<string, unknown>>) =>
  logged.filter((e) => e.msg === "proxy protocol header without addresses");

Deno.test("LocalSide: an http tunnel's header names the visitor and the public address from the open frame", async () => {
  await using service = recordingService();
  const recorder = new Recorder({ maxRequests: 10, maxBody: 1024 });
  try {
    await using side = harness(httpTunnel(service.port, "v1"), recorder);
    const answer = await within(
      side.visit({ remote: "203.0.113.7:51234", local: "198.51.100.1:80" }),
      5_000,
      "the answer",
    );
    assert(answer.endsWith("\r\n\r\nok"), answer);
    assertEquals(
      dec.decode(service.received[0]),
      "PROXY TCP4 203.0.113.7 198.51.100.1 51234 80\r\n" + REQUEST,
    );
    assertEquals(warnings(side.logged), []);
    // The inspector saw HTTP only: the header went out before its recording began.
    recorder.drain();
    const [recorded] = recorder.ring.list();
    assert(recorded, "one exchange recorded");
    assertEquals(recorded.request.path, "/who");
    assert(recorded.request.head.startsWith("GET /who HTTP/1.1"), recorded.request.head);
    assertEquals(recorded.remote, "203.0.113.7");
  } finally {
    recorder.close();
  }
});

Deno.test("LocalSide: an older server's open frame (no public address) gets PROXY UNKNOWN, logged once per tunnel", async () => {
  await using service = recordingService();
  await using side = harness(httpTunnel(service.port, "v1"));
  // An older burrowd sends an HTTP visitor's address without port, and no `local`.
  for (let i = 0; i < 2; i++) {
    await within(side.visit({ remote: "203.0.113.7" }), 5_000, "the answer");
  }
  assertEquals(service.received.map((r) => dec.decode(r)), [
    "PROXY UNKNOWN\r\n" + REQUEST,
    "PROXY UNKNOWN\r\n" + REQUEST,
  ]);
  const said = warnings(side.logged);
  assertEquals(said.length, 1);
  assertEquals(said[0]!.tunnel, "web");
  assertEquals(said[0]!.sent, "PROXY UNKNOWN");
  assert(String(said[0]!.reason).includes("older"), String(said[0]!.reason));
});

Deno.test("LocalSide: v2 without addresses sends the LOCAL command, then the request", async () => {
  await using service = recordingService();
  await using side = harness(httpTunnel(service.port, "v2"));
  await within(side.visit({}), 5_000, "the answer");
  await within(side.visit({ remote: "203.0.113.7" }), 5_000, "the answer");
  for (const bytes of service.received) {
    const header = decodeProxyHeaderV2(bytes);
    assertEquals(header?.command, "local");
    assertEquals(header?.endpoints, null);
    assertEquals(dec.decode(bytes.subarray(header!.length)), REQUEST);
  }
  assertEquals(service.received.length, 2);
  assertEquals(warnings(side.logged).map((e) => e.sent), ["the v2 LOCAL command"]);
});

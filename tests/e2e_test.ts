/**
 * End to end: the real `burrowd` and `burrow` processes, driven by tools
 * nobody here wrote (iperf3, psql) and by raw sockets.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import tls from "node:tls";
import {
  echo,
  localService,
  Proc,
  startClient,
  startServer,
  tunnelPort,
  writeAll,
} from "./_procs.ts";
import { encodeFrame, FrameType, HEADER_SIZE } from "../lib/protocol/mod.ts";
import { testNeeding } from "../lib/testing/mod.ts";

/** Ignored (outside CI) when what they need is missing: see lib/testing/tools.ts. */
const test = { iperf3: testNeeding("iperf3"), psql: testNeeding("psql") };

const TOKEN = "e2e-secret-token";

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "burrow-e2e-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function roundTrip(port: number, data: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const reading = new Response(conn.readable).bytes();
    await writeAll(conn, data);
    await conn.closeWrite();
    return await reading;
  } catch (error) {
    try {
      conn.close();
    } catch { /* closed */ }
    throw error;
  }
}

test.iperf3("iperf3 through a TCP tunnel", async () => {
  await using dir = await tempDir();
  const local = (() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    return p;
  })();
  const iperfServer = new Deno.Command("iperf3", {
    args: ["-s", "-1", "-p", String(local), "-B", "127.0.0.1"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const s = await startServer(dir.path, TOKEN);
    await using _server = s.proc;
    await using client = await startClient(dir.path, {
      port: s.port,
      token: TOKEN,
      fingerprint: s.fingerprint,
      tunnels: [{ name: "iperf", local_port: local }],
    });
    const remote = await tunnelPort(client, "iperf");
    const result = await run("iperf3", ["-c", "127.0.0.1", "-p", String(remote), "-t", "2", "-J"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const report = JSON.parse(result.stdout);
    const bps = report.end.sum_received.bits_per_second as number;
    assert.ok(bps > 10e6, `throughput ${bps} bit/s`);
  } finally {
    try {
      iperfServer.kill("SIGKILL");
    } catch { /* exited */ }
    await iperfServer.status;
  }
});

Deno.test("100 MB each way arrive with matching SHA-256; 200 concurrent connections intact", async () => {
  await using dir = await tempDir();
  // 100 blocks of ~1 MB random bytes; an odd block length keeps block
  // boundaries off every buffer and frame boundary, so a reordering shows.
  const chunk = new Uint8Array(1_048_583);
  const SIZE = chunk.length * 100;
  for (let off = 0; off < chunk.length; off += 65536) {
    crypto.getRandomValues(chunk.subarray(off, off + 65536));
  }
  // Upload target: hashes what it receives and answers with the digest.
  let sinkDigest = "";
  await using sink = localService(async (conn) => {
    const hash = createHash("sha256");
    for await (const part of conn.readable) hash.update(part);
    sinkDigest = hash.digest("hex");
  });
  // Download source: sends SIZE bytes of the chunk pattern.
  await using source = localService(async (conn) => {
    for (let sent = 0; sent < SIZE; sent += chunk.length) await writeAll(conn, chunk);
    await conn.closeWrite();
  });
  await using echoes = localService(echo);
  const s = await startServer(dir.path, TOKEN);
  await using _server = s.proc;
  await using client = await startClient(dir.path, {
    port: s.port,
    token: TOKEN,
    fingerprint: s.fingerprint,
    tunnels: [
      { name: "sink", local_port: sink.port },
      { name: "source", local_port: source.port },
      { name: "echo", local_port: echoes.port },
    ],
  });
  const sinkPort = await tunnelPort(client, "sink");
  const sourcePort = await tunnelPort(client, "source");
  const echoPort = await tunnelPort(client, "echo");

  const expected = createHash("sha256");
  for (let i = 0; i < SIZE / chunk.length; i++) expected.update(chunk);
  const digest = expected.digest("hex");

  const up = await Deno.connect({ hostname: "127.0.0.1", port: sinkPort });
  for (let sent = 0; sent < SIZE; sent += chunk.length) await writeAll(up, chunk);
  await up.closeWrite();
  await new Response(up.readable).bytes(); // the sink closes after hashing
  assert.equal(sinkDigest, digest);

  const down = await Deno.connect({ hostname: "127.0.0.1", port: sourcePort });
  const hash = createHash("sha256");
  let received = 0;
  for await (const part of down.readable) {
    hash.update(part);
    received += part.length;
  }
  assert.equal(received, SIZE);
  assert.equal(hash.digest("hex"), digest);

  const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
    const data = new Uint8Array(64 * 1024).fill(i % 251);
    data.set(new TextEncoder().encode(`connection ${i}`));
    const back = await roundTrip(echoPort, data);
    return back.length === data.length && back.every((b, j) => b === data[j]);
  }));
  assert.equal(results.filter(Boolean).length, 200);
});

test.psql("psql through a TCP tunnel to the local PostgreSQL", async () => {
  await using dir = await tempDir();
  const s = await startServer(dir.path, TOKEN);
  await using _server = s.proc;
  await using client = await startClient(dir.path, {
    port: s.port,
    token: TOKEN,
    fingerprint: s.fingerprint,
    tunnels: [{ name: "pg", local_port: 5432 }],
  });
  const remote = await tunnelPort(client, "pg");
  const result = await run("psql", [
    "-h",
    "127.0.0.1",
    "-p",
    String(remote),
    "-U",
    "postgres",
    "-d",
    "postgres",
    "-tAc",
    "select 1",
  ], { PGCONNECT_TIMEOUT: "10" });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trim(), "1");
});

Deno.test("server killed mid-transfer and restarted: the client reconnects by itself", async () => {
  await using dir = await tempDir();
  await using echoes = localService(echo);
  const first = await startServer(dir.path, TOKEN);
  const client = await startClient(dir.path, {
    port: first.port,
    token: TOKEN,
    fingerprint: first.fingerprint,
    tunnels: [{ name: "echo", local_port: echoes.port }],
  });
  await using _client = client;
  const remote = await tunnelPort(client, "echo");
  // A transfer in flight when the server dies.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: remote });
  const inflight = (async () => {
    try {
      const data = new Uint8Array(1024 * 1024);
      for (let i = 0; i < 200; i++) await writeAll(conn, data);
    } catch { /* cut by the kill */ }
  })();
  const draining = new Response(conn.readable).bytes().catch(() => null);
  await new Promise((r) => setTimeout(r, 200));
  const mark = client.events.length;
  await first.proc.stop("SIGKILL");
  await inflight;
  await draining;
  try {
    conn.close();
  } catch { /* closed */ }
  await client.waitFor((e) => e.msg === "reconnecting", 10_000, mark);
  const second = await startServer(dir.path, TOKEN, first.port);
  await using _second = second.proc;
  assert.equal(second.fingerprint, first.fingerprint, "certificate kept in the data directory");
  const again = await tunnelPort(client, "echo", mark);
  const data = new TextEncoder().encode("served again");
  assert.deepEqual(await roundTrip(again, data), data);
});

Deno.test("a client started before its server connects once the server appears", async () => {
  await using dir = await tempDir();
  await using echoes = localService(echo);
  // Learn a port and fingerprint, then stop the server before the client starts.
  const probe = await startServer(dir.path, TOKEN);
  await probe.proc.stop();
  await using client = await startClient(dir.path, {
    port: probe.port,
    token: TOKEN,
    fingerprint: probe.fingerprint,
    tunnels: [{ name: "echo", local_port: echoes.port }],
  });
  await client.waitFor((e) => e.msg === "reconnecting");
  const s = await startServer(dir.path, TOKEN, probe.port);
  await using _server = s.proc;
  const remote = await tunnelPort(client, "echo");
  const data = new TextEncoder().encode("late server");
  assert.deepEqual(await roundTrip(remote, data), data);
});

Deno.test("wrong token: client exits 3 saying so; the server logs it without the token", async () => {
  await using dir = await tempDir();
  const s = await startServer(dir.path, TOKEN);
  await using server = s.proc;
  const client = await startClient(dir.path, {
    port: s.port,
    token: "not-the-right-token",
    fingerprint: s.fingerprint,
    tunnels: [{ name: "x", local_port: 1 }],
  });
  const code = (await client.status).code;
  await client.stop();
  assert.equal(code, 3);
  assert.ok(client.lines.some((l) => l.includes("authentication failed")));
  await server.waitFor((e) => e.msg === "authentication failed");
  assert.ok(!server.lines.join("\n").includes("not-the-right-token"));
  assert.ok(!server.lines.join("\n").includes(TOKEN));
});

function rawTls(port: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, rejectUnauthorized: false },
      () => resolve(socket),
    );
    socket.once("error", reject);
  });
}

function closedByPeer(socket: tls.TLSSocket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.once("close", () => resolve());
    socket.on("error", () => {});
    socket.resume();
  });
}

Deno.test("garbage on the control port closes only that connection", async () => {
  await using dir = await tempDir();
  await using echoes = localService(echo);
  const s = await startServer(dir.path, TOKEN);
  await using server = s.proc;
  await using client = await startClient(dir.path, {
    port: s.port,
    token: TOKEN,
    fingerprint: s.fingerprint,
    tunnels: [{ name: "echo", local_port: echoes.port }],
  });
  const remote = await tunnelPort(client, "echo");

  // Plain bytes that are not TLS at all.
  const plain = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
  await writeAll(plain, new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await new Response(plain.readable).bytes().catch(() => null);

  const oversize = new Uint8Array(HEADER_SIZE);
  oversize.set(encodeFrame(FrameType.Data, 1).subarray(0, HEADER_SIZE));
  new DataView(oversize.buffer).setUint32(5, 0xffffffff);
  const cases: Array<[string, Uint8Array, boolean]> = [
    ["bad magic", new TextEncoder().encode("HELLO WORLD, NOT A FRAME"), false],
    ["oversize length", oversize, false],
    ["unknown type", Uint8Array.from([0x42, 0x55, 0x52, 0x57, 99, 0, 0, 0, 0, 0, 0, 0, 0]), false],
    [
      "truncated frame",
      encodeFrame(FrameType.Control, 0, new Uint8Array(100)).subarray(0, 40),
      true,
    ],
  ];
  for (const [name, bytes, endAfter] of cases) {
    const mark = server.events.length;
    const socket = await rawTls(s.port);
    const closed = closedByPeer(socket);
    socket.write(bytes);
    if (endAfter) socket.end();
    await closed;
    await server.waitFor(
      (e) => e.msg === "protocol error" || e.msg === "connection failed before login",
      5000,
      mark,
    ).catch((error) => {
      throw new Error(`${name}: ${error.message}`);
    });
  }
  // The existing tunnel still works.
  const data = new TextEncoder().encode("still here");
  assert.deepEqual(await roundTrip(remote, data), data);
  assert.equal(client.events.filter((e) => e.msg === "disconnected").length, 0);
});

Deno.test("SIGTERM: server and client shut down gracefully with exit code 0", async () => {
  await using dir = await tempDir();
  const s = await startServer(dir.path, TOKEN);
  const client = await startClient(dir.path, {
    port: s.port,
    token: TOKEN,
    fingerprint: s.fingerprint,
    tunnels: [{ name: "x", local_port: 1 }],
  });
  await tunnelPort(client, "x");
  assert.equal(await s.proc.stop("SIGTERM"), 0);
  assert.ok(s.proc.events.some((e) => e.msg === "stopped"));
  await client.waitFor((e) => e.msg === "server going away" || e.msg === "disconnected");
  assert.equal(await client.stop("SIGTERM"), 0);
});

Deno.test("quick mode: burrow tcp PORT prints the public address and forwards", async () => {
  await using dir = await tempDir();
  await using echoes = localService(echo);
  const s = await startServer(dir.path, TOKEN);
  await using _server = s.proc;
  await using quick = new Proc("client", [
    "tcp",
    String(echoes.port),
    "--server",
    `127.0.0.1:${s.port}`,
    "--fingerprint",
    s.fingerprint,
    "--log-format",
    "json",
  ], { BURROW_TOKEN: TOKEN });
  const remote = await tunnelPort(quick, `tcp-${echoes.port}`);
  const data = new TextEncoder().encode("quick");
  assert.deepEqual(await roundTrip(remote, data), data);
  await quick.stop("SIGTERM");
  assert.match(await quick.stdout, new RegExp(`Forwarding\\s+tcp://127\\.0\\.0\\.1:${remote}`));
});

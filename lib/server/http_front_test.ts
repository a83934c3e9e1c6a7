import assert from "node:assert/strict";
import tls from "node:tls";
import { generateSelfSigned, type NodeSocketConn, nodeSocketConn } from "../transport/mod.ts";
import { nullLogger } from "../util/mod.ts";
import { HttpFront } from "./http_front.ts";

/** TLS to the front on 127.0.0.1 as `front.test`, offering HTTP/1.1 only. */
function tlsVisitor(port: number): Promise<NodeSocketConn> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      servername: "front.test",
      // The front's fallback certificate is a throwaway self-signed one.
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    }, () => resolve(nodeSocketConn(socket)));
    socket.once("error", reject);
  });
}

Deno.test("http front: a visitor that stops sending mid-way is closed after the idle timeout", async () => {
  const front = await HttpFront.listen({
    hostname: "127.0.0.1",
    port: 0,
    scheme: "http",
    logger: nullLogger,
    headerTimeout: 10_000,
    idleTimeout: 400,
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: front.port });
    const started = performance.now();
    // Half a request head, then silence: the idle sweep ends it long before the head deadline.
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a.te"));
    const n = await conn.read(new Uint8Array(64)).catch(() => null);
    const ms = performance.now() - started;
    conn.close();
    assert.equal(n, null, "closed without an answer");
    assert.ok(ms >= 300 && ms < 5_000, `closed after ${Math.round(ms)} ms`);

    // A visitor that keeps its requests coming is not closed.
    const busy = await Deno.connect({ hostname: "127.0.0.1", port: front.port });
    const buf = new Uint8Array(4096);
    for (let i = 0; i < 6; i++) {
      await busy.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n"));
      const got = await busy.read(buf);
      assert.ok(got && new TextDecoder().decode(buf.subarray(0, got)).startsWith("HTTP/1.1 404"));
      await new Promise((r) => setTimeout(r, 150));
    }
    busy.close();
  } finally {
    await front.close();
  }
});

Deno.test("http front: a request head not complete within headerTimeout is closed by the sweep", async () => {
  const front = await HttpFront.listen({
    hostname: "127.0.0.1",
    port: 0,
    scheme: "http",
    logger: nullLogger,
    headerTimeout: 300,
  });
  try {
    // A byte every 100 ms keeps the connection from being idle, never completing the head.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: front.port });
    const started = performance.now();
    let closedAfter = -1;
    const reading = conn.read(new Uint8Array(64)).catch(() => null).then((n) => {
      closedAfter = performance.now() - started;
      return n;
    });
    const head = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: slow.test\r\nX-Slow: ");
    for (let i = 0; i < 30 && closedAfter < 0; i++) {
      await conn.write(head.subarray(i, i + 1)).catch(() => 0);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await reading, null, "closed without an answer");
    conn.close();
    assert.ok(
      closedAfter >= 280 && closedAfter < 1_500,
      `closed after ${Math.round(closedAfter)} ms`,
    );

    // Requests that each arrive in time on one kept-alive connection are all answered.
    const busy = await Deno.connect({ hostname: "127.0.0.1", port: front.port });
    const buf = new Uint8Array(4096);
    for (let i = 0; i < 5; i++) {
      await busy.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n"));
      const got = await busy.read(buf);
      assert.ok(got && new TextDecoder().decode(buf.subarray(0, got)).startsWith("HTTP/1.1 404"));
      await new Promise((r) => setTimeout(r, 100));
    }
    busy.close();
  } finally {
    await front.close();
  }
});

Deno.test("https front: after TLS, HTTP/1.1 is spliced under the same head deadline as on the HTTP port", async () => {
  const certificate = await generateSelfSigned(["front.test"]);
  const front = await HttpFront.listen({
    hostname: "127.0.0.1",
    port: 0,
    scheme: "https",
    logger: nullLogger,
    fallbackCertificate: certificate,
    headerTimeout: 600,
    // Later than the head deadline, so that deadline is what closes the connections below.
    idleTimeout: 5_000,
  });
  const buf = new Uint8Array(4096);
  try {
    // A request is answered by the splice engine (its 404 names the host); then the
    // kept-alive connection waits for the next head, which never comes: the sweep closes it.
    const quiet = await tlsVisitor(front.port);
    await quiet.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n"));
    const n = await quiet.read(buf);
    const answer = new TextDecoder().decode(buf.subarray(0, n ?? 0));
    assert.ok(answer.startsWith("HTTP/1.1 404"), answer);
    assert.ok(answer.includes(`No tunnel serves host "nobody.test"`), answer);
    let started = performance.now();
    assert.equal(await quiet.read(buf).catch(() => null), null, "closed without an answer");
    let ms = performance.now() - started;
    quiet.close();
    assert.ok(ms >= 500 && ms < 1_500, `closed ${Math.round(ms)} ms after the answer`);

    // A byte every 100 ms keeps the connection from being idle, never completing the head.
    const slow = await tlsVisitor(front.port);
    started = performance.now();
    let closedAfter = -1;
    const reading = slow.read(buf).catch(() => null).then((n) => {
      closedAfter = performance.now() - started;
      return n;
    });
    const head = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: slow.test\r\nX-Slow: ");
    for (let i = 0; i < 40 && closedAfter < 0; i++) {
      await slow.write(head.subarray(i, i + 1)).catch(() => 0);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await reading, null, "closed without an answer");
    slow.close();
    ms = closedAfter;
    assert.ok(ms >= 500 && ms < 1_500, `closed after ${Math.round(ms)} ms (deadline 600 ms)`);
  } finally {
    await front.close();
  }
});

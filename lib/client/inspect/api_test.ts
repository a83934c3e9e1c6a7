import { assertEquals, assertRejects, within } from "../../testing/mod.ts";
import { Secret } from "../../util/mod.ts";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { decode, startInspectServer } from "./api.ts";
import { Recorder } from "./recorder.ts";

const enc = new TextEncoder();
const local = { hostname: "127.0.0.1", port: 9 };

Deno.test("inspect API: an address other than loopback without auth is refused, naming the setting", async () => {
  await assertRejects(
    () => startInspectServer(new Recorder(), { hostname: "0.0.0.0", port: 0 }),
    TypeError,
    "client.inspect.auth is required",
  );
});

Deno.test("inspect API: basic auth when set; a body cut at max_body is not replayed as is", async () => {
  const recorder = new Recorder({ maxBody: 4 });
  const conn = recorder.connection({
    tunnel: "web",
    remote: "10.0.0.1",
    local: { hostname: "127.0.0.1", port: 9 },
  });
  conn.request(enc.encode("POST /big HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"));
  conn.response(enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  recorder.drain();
  await using api = await startInspectServer(recorder, {
    hostname: "127.0.0.1",
    port: 0,
    auth: { user: "ann", password: new Secret("pw") },
  });
  const anonymous = await fetch(`${api.url}/api/requests`);
  assertEquals(anonymous.status, 401);
  await anonymous.body?.cancel();
  const authorization = `Basic ${btoa("ann:pw")}`;
  const list = await fetch(`${api.url}/api/requests`, { headers: { authorization } });
  const body = await list.json();
  assertEquals(body.requests.map((x: { path: string }) => x.path), ["/big"]);
  const detail = await (await fetch(`${api.url}/api/requests/1`, { headers: { authorization } }))
    .json();
  assertEquals(detail.request.body, { encoding: "text", data: "0123" });
  assertEquals([detail.request.body_size, detail.request.body_truncated], [10, true]);
  const replay = await fetch(`${api.url}/api/requests/1/replay`, {
    method: "POST",
    headers: { authorization },
  });
  assertEquals(replay.status, 409);
  await replay.body?.cancel();
  recorder.close();
});

Deno.test("inspect API: new entries and clearings as Server-Sent Events; shutdown ends the stream", async () => {
  const recorder = new Recorder();
  const api = await startInspectServer(recorder, { hostname: "127.0.0.1", port: 0 });
  const res = await fetch(`${api.url}/api/events`);
  assertEquals(res.headers.get("content-type"), "text/event-stream");
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const readUntil = async (what: string) => {
    while (!text.includes(what)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`Stream ended before "${what}": ${text}`);
      text += value;
    }
  };
  await readUntil(": burrow inspector");
  const conn = recorder.connection({ tunnel: "web", remote: "r", local });
  conn.request(enc.encode("GET /live HTTP/1.1\r\n\r\n"));
  conn.response(enc.encode("HTTP/1.1 204 No Content\r\n\r\n"));
  recorder.drain();
  await readUntil('"path":"/live"');
  assertEquals(text.includes("event: request\ndata: {"), true);
  recorder.ring.clear();
  await readUntil("event: clear");
  await api.close();
  assertEquals((await reader.read()).done, true);
  recorder.close();
});

Deno.test("inspect API: gzip, deflate and br bodies are decoded for display", async () => {
  const recorder = new Recorder();
  const json = enc.encode('{"a":[1,2,3]}');
  const bodies = { gzip: gzipSync(json), deflate: deflateSync(json), br: brotliCompressSync(json) };
  const conn = recorder.connection({ tunnel: "web", remote: "r", local });
  for (const [coding, body] of Object.entries(bodies)) {
    conn.request(enc.encode(`GET /${coding} HTTP/1.1\r\n\r\n`));
    conn.response(
      enc.encode(
        `HTTP/1.1 200 OK\r\nContent-Encoding: ${coding}\r\nContent-Length: ${body.length}\r\n\r\n`,
      ),
    );
    conn.response(new Uint8Array(body));
  }
  recorder.drain();
  await using api = await startInspectServer(recorder, { hostname: "127.0.0.1", port: 0 });
  for (const id of [1, 2, 3]) {
    const detail = await (await fetch(`${api.url}/api/requests/${id}`)).json();
    assertEquals(detail.response.body.encoding, "base64");
    assertEquals(detail.response.body_decoded, { encoding: "text", data: '{"a":[1,2,3]}' });
  }
  assertEquals(decode("gzip", enc.encode("not gzip")), null);
  recorder.close();
});

Deno.test("inspect API: an event stream whose reader falls behind is closed, not buffered", async () => {
  const recorder = new Recorder({ maxRequests: 10 });
  await using api = await startInspectServer(recorder, { hostname: "127.0.0.1", port: 0 });
  const res = await fetch(`${api.url}/api/events`);
  const reader = res.body!.getReader();
  await reader.read();
  const request = {
    method: "GET",
    path: "/x".repeat(100),
    head: "",
    body: new Uint8Array(),
    bodySize: 0,
  };
  const added = 50_000;
  for (let i = 0; i < added; i++) {
    recorder.ring.add({
      request,
      response: null,
      start: 0,
      end: 0,
      upgraded: false,
      tunnel: "web",
      remote: "r",
      local,
      time: 0,
    });
    // Let the server write what the socket takes.
    if (i % 1000 === 0) await new Promise((r) => setTimeout(r, 0));
  }
  let events = 0;
  const drained = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      events += new TextDecoder().decode(value).split("event: request").length - 1;
    }
  })();
  await within(drained, 20_000, "the lagging event stream to be closed");
  assertEquals(events < added, true, `${events} events`);
  assertEquals(recorder.ring.listeners, 0);
  recorder.close();
});

Deno.test("inspect API: an exchange cut by a full queue is listed as incomplete", async () => {
  const recorder = new Recorder({ queueBytes: 1024 });
  const whole = recorder.connection({ tunnel: "web", remote: "10.0.0.1", local });
  whole.request(enc.encode("GET /whole HTTP/1.1\r\n\r\n"));
  whole.response(enc.encode("HTTP/1.1 204 No Content\r\n\r\n"));
  recorder.drain();
  const cut = recorder.connection({ tunnel: "web", remote: "10.0.0.2", local });
  cut.request(enc.encode("POST /cut HTTP/1.1\r\nContent-Length: 4000\r\n\r\n"));
  cut.request(new Uint8Array(4000));
  recorder.drain();
  await using api = await startInspectServer(recorder, { hostname: "127.0.0.1", port: 0 });
  const list = await (await fetch(`${api.url}/api/requests`)).json();
  assertEquals(
    list.requests.map((x: { path: string; incomplete: string | null }) => [x.path, x.incomplete]),
    [["/cut", "queue_full"], ["/whole", null]],
  );
  assertEquals(list.dropped, 1);
  const detail = await (await fetch(`${api.url}/api/requests/2`)).json();
  assertEquals([detail.incomplete, detail.response], ["queue_full", null]);
  // Its body may be cut anywhere: replayed only with a body given.
  const replay = await fetch(`${api.url}/api/requests/2/replay`, { method: "POST" });
  assertEquals(replay.status, 409);
  assertEquals((await replay.json()).error.includes("incomplete (queue_full)"), true);
  recorder.close();
});

Deno.test("inspect API: a replay to a PROXY protocol service starts with a header naming no addresses", async () => {
  // The service keeps what each connection sent up to the end of the request head, then answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: string[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      let text = "";
      const buf = new Uint8Array(4096);
      for (let n; !text.includes("\r\n\r\n") && (n = await conn.read(buf)) !== null;) {
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      received.push(text);
      await conn.write(enc.encode("HTTP/1.1 204 No Content\r\n\r\n"));
      conn.close();
    }
  })();
  const recorder = new Recorder();
  try {
    const service = { hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port };
    for (const tunnel of ["pp1", "pp2", "plain"]) {
      const conn = recorder.connection({ tunnel, remote: "10.0.0.1", local: service });
      conn.request(enc.encode(`GET /${tunnel} HTTP/1.1\r\nHost: app.test\r\n\r\n`));
      conn.response(enc.encode("HTTP/1.1 204 No Content\r\n\r\n"));
      conn.end();
    }
    recorder.drain();
    const versions: Record<string, "v1" | "v2"> = { pp1: "v1", pp2: "v2" };
    await using api = await startInspectServer(recorder, {
      hostname: "127.0.0.1",
      port: 0,
      proxyProtocol: (tunnel) => versions[tunnel],
    });
    for (const id of [1, 2, 3]) {
      const replay = await fetch(`${api.url}/api/requests/${id}/replay`, { method: "POST" });
      assertEquals(replay.status, 201, await replay.text());
    }
    const request = (path: string) =>
      `GET /${path} HTTP/1.1\r\nHost: app.test\r\nConnection: close`;
    assertEquals(received[0], `PROXY UNKNOWN\r\n${request("pp1")}\r\n\r\n`);
    // v2 LOCAL: signature, version 2 command LOCAL, family unspecified, no address bytes.
    const local = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
    assertEquals(received[1], `${local}${request("pp2")}\r\n\r\n`);
    assertEquals(received[2], `${request("plain")}\r\n\r\n`);
    // The recorded replays hold the request only: the header is not HTTP.
    const replays = recorder.ring.list().filter((x) => x.replayOf !== undefined);
    assertEquals(replays.map((x) => x.request.head.split("\r\n")[0]).sort(), [
      "GET /plain HTTP/1.1",
      "GET /pp1 HTTP/1.1",
      "GET /pp2 HTTP/1.1",
    ]);
  } finally {
    recorder.close();
    listener.close();
    await serving.catch(() => {});
  }
});

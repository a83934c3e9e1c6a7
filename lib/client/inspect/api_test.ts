import { assertEquals, assertRejects } from "../../testing/mod.ts";
import { Secret } from "../../util/mod.ts";
import { startInspectServer } from "./api.ts";
import { Recorder } from "./recorder.ts";

const enc = new TextEncoder();

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

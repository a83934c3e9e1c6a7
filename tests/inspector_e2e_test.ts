/**
 * The request inspector end to end: real burrowd and burrow processes, an
 * origin in this process, visitors through the vhost port with fetch, and
 * the inspector's JSON API (list, detail, replay, clear).
 */

import { assert, assertEquals, eventually } from "../lib/testing/mod.ts";
import { clientConfigFromObject, ConfigError } from "../lib/config/mod.ts";
import { Proc, startClient, startServer } from "./_procs.ts";

const TOKEN = "inspector-e2e-token";
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Summary {
  id: number;
  tunnel: string;
  method: string;
  path: string;
  status: number | null;
  remote: string;
  duration_ms: number;
  replay_of: number | null;
}

interface Body {
  encoding: "text" | "base64";
  data: string;
}

Deno.test("inspector: records GET JSON, POST form and a 500, and replays the POST", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-inspect-" });
  const forms: string[] = [];
  const origin = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/data") return Response.json({ hello: "world", n: 1 });
    if (url.pathname === "/form" && req.method === "POST") {
      const form = await req.formData();
      forms.push(String(form.get("a")));
      return new Response(`got a=${form.get("a")}`, { status: 201 });
    }
    if (url.pathname === "/boom") return new Response("it broke", { status: 500 });
    if (url.pathname === "/ws") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(`echo ${e.data}`);
      return response;
    }
    return new Response("?", { status: 404 });
  });
  try {
    const server = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n`);
    await using _server = server.proc;
    const vhost = await server.proc.waitFor((e) => e.msg === "http vhost listening");
    const client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [{
        name: "web",
        type: "http",
        local_port: origin.addr.port,
        yaml: "custom_domains: [insp.test]",
      }],
      extra: `  inspect: {addr: "127.0.0.1:0", max_body: 1KiB}\n`,
    });
    await using _client = client;
    const listening = await client.waitFor((e) => e.msg === "inspector listening");
    const api = String(listening.url);
    await client.waitFor((e) => e.msg === "tunnel ready");
    // fetch does not let a request set Host: the vhost port serves as its HTTP proxy instead.
    using via = Deno.createHttpClient({ proxy: { url: `http://127.0.0.1:${vhost.port}` } });
    const at = (path: string, init: RequestInit = {}) =>
      fetch(`http://insp.test${path}`, { ...init, client: via });

    const got = await at("/data");
    assertEquals(await got.json(), { hello: "world", n: 1 });
    const posted = await at("/form", {
      method: "POST",
      body: "a=1&b=two",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    assertEquals(await posted.text(), "got a=1");
    const boom = await at("/boom");
    assertEquals([boom.status, await boom.text()], [500, "it broke"]);

    const list = async () =>
      ((await (await fetch(`${api}/api/requests`)).json()) as { requests: Summary[] }).requests;
    const three = await eventually("three recorded requests", async () => {
      const l = await list();
      return l.length >= 3 ? l : undefined;
    });
    assertEquals(three.map((x) => [x.method, x.path, x.status]), [
      ["GET", "/boom", 500],
      ["POST", "/form", 201],
      ["GET", "/data", 200],
    ]);
    assert(
      three.every((x) => x.tunnel === "web" && x.remote === "127.0.0.1"),
      JSON.stringify(three),
    );
    assert(three.every((x) => x.replay_of === null && x.duration_ms >= 0));

    const detail = async (id: number) => {
      const res = await fetch(`${api}/api/requests/${id}`);
      assertEquals(res.status, 200);
      return await res.json() as {
        request: { body: Body; headers: Array<[string, string]> };
        response: { body: Body; body_size: number };
      };
    };
    const json = await detail(three[2]!.id);
    assertEquals(JSON.parse(json.response.body.data), { hello: "world", n: 1 });
    const form = await detail(three[1]!.id);
    assertEquals(form.request.body, { encoding: "text", data: "a=1&b=two" });
    assertEquals(form.response.body.data, "got a=1");
    assert(form.request.headers.some(([n, v]) => n.toLowerCase() === "host" && v === "insp.test"));
    const failed = await detail(three[0]!.id);
    assertEquals(failed.response.body.data, "it broke");

    // Filters.
    const only500 = await (await fetch(`${api}/api/requests?status=5xx`)).json();
    assertEquals(only500.requests.map((x: Summary) => x.path), ["/boom"]);
    const byPath = await (await fetch(`${api}/api/requests?path=/form&tunnel=web`)).json();
    assertEquals(byPath.requests.length, 1);

    // Replay as recorded, then with an edited body: each reaches the origin and is a new entry.
    const replayed = await fetch(`${api}/api/requests/${three[1]!.id}/replay`, { method: "POST" });
    assertEquals(replayed.status, 201);
    const again = await replayed.json() as Summary;
    assertEquals([again.replay_of, again.status, again.method], [three[1]!.id, 201, "POST"]);
    const edited = await fetch(`${api}/api/requests/${three[1]!.id}/replay`, {
      method: "POST",
      body: JSON.stringify({ body: "a=edited" }),
    });
    assertEquals(edited.status, 201);
    await edited.body?.cancel();
    assertEquals(forms, ["1", "1", "edited"]);
    const after = await list();
    assertEquals(after.length, 5);
    assertEquals(after[0]!.replay_of, three[1]!.id);
    assertEquals((await detail(after[0]!.id)).response.body.data, "got a=edited");

    // A WebSocket through the tunnel: its 101 is recorded, its frames are not, and they still flow.
    const ws = await Deno.connect({ hostname: "127.0.0.1", port: vhost.port as number });
    await ws.write(enc.encode(
      "GET /ws HTTP/1.1\r\nHost: insp.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    let head = "";
    const buf = new Uint8Array(4096);
    while (!head.includes("\r\n\r\n")) {
      head += dec.decode(buf.subarray(0, (await ws.read(buf)) ?? 0));
    }
    assert(head.startsWith("HTTP/1.1 101"), head);
    // A masked text frame "hi" (mask 0): the echo comes back unmasked.
    await ws.write(new Uint8Array([0x81, 0x82, 0, 0, 0, 0, 104, 105]));
    let frame = new Uint8Array(0);
    while (frame.length < 9) {
      const n = await ws.read(buf);
      if (n === null) break;
      frame = new Uint8Array([...frame, ...buf.subarray(0, n)]);
    }
    assertEquals(dec.decode(frame.subarray(2, 9)), "echo hi");
    ws.close();
    const upgraded = await eventually("the upgrade recorded", async () => {
      const found = (await list()).find((x) => x.path === "/ws");
      return found;
    });
    assertEquals(upgraded.status, 101);

    const missing = await fetch(`${api}/api/requests/9999`);
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
    const cleared = await fetch(`${api}/api/requests`, { method: "DELETE" });
    assertEquals(cleared.status, 204);
    assertEquals(await list(), []);
  } finally {
    await origin.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inspector: on in quick http mode with its banner line, off with --inspect=false", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-inspect-quick-" });
  try {
    const server = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n`);
    await using _server = server.proc;
    const quick = (domain: string, ...more: string[]) =>
      new Proc("client", [
        "http",
        "3000",
        "--domain",
        domain,
        "--server",
        `127.0.0.1:${server.port}`,
        "--fingerprint",
        server.fingerprint,
        ...more,
      ], { BURROW_TOKEN: TOKEN, BURROW_NO_STATUS_LINE: "1" });

    const on = quick("on.test");
    const listening = await on.waitFor((e) => e.msg === "inspector listening");
    await on.waitFor((e) => e.msg === "tunnel ready");
    const api = await fetch(`${listening.url}/api/requests`);
    assertEquals((await api.json()).requests, []);
    on.child.kill("SIGINT");
    const stdout = await on.stdout;
    // 4040, or one of the next nine when another client holds it.
    assert(/^Inspect {2}http:\/\/127\.0\.0\.1:40[45]\d$/m.test(stdout), stdout);
    await on.stop();

    const off = quick("off.test", "--inspect=false", "--name", "off");
    await off.waitFor((e) => e.msg === "tunnel ready");
    off.child.kill("SIGINT");
    const quiet = await off.stdout;
    assert(!quiet.includes("Inspect"), quiet);
    assert(!off.events.some((e) => e.msg === "inspector listening"));
    await off.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inspector: an address other than loopback needs client.inspect.auth", () => {
  const base = { server_addr: "x", auth_token: "t" };
  let error: unknown;
  try {
    clientConfigFromObject({ client: { ...base, inspect: { addr: "0.0.0.0:4040" } } });
  } catch (e) {
    error = e;
  }
  assert(error instanceof ConfigError);
  assert(String(error.message).includes("client.inspect.auth: required"), error.message);
  const ok = clientConfigFromObject({
    client: { ...base, inspect: { addr: "0.0.0.0:4040", auth: { user: "u", password: "p" } } },
  });
  assertEquals(ok.inspect?.max_requests, 200);
  assertEquals(ok.inspect?.max_body, 64 * 1024);
});

Deno.test("inspector: on 0.0.0.0 it says so and asks every request to log in", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-inspect-auth-" });
  try {
    const server = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n`);
    await using _server = server.proc;
    await using client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [],
      extra: `  inspect: {addr: "0.0.0.0:0", auth: {user: ann, password: "s3cret pass"}}\n`,
    });
    const listening = await client.waitFor((e) => e.msg === "inspector listening");
    // The start names the address open to others and that basic auth guards it.
    const url = new URL(String(listening.url));
    assertEquals([url.hostname, listening.auth], ["0.0.0.0", "basic (client.inspect.auth)"]);
    assert(!client.lines.some((l) => l.includes("s3cret")), "the password is not logged");
    const api = `http://127.0.0.1:${url.port}/api/requests`;

    const anonymous = await fetch(api);
    assertEquals(anonymous.status, 401);
    assertEquals(anonymous.headers.get("www-authenticate"), 'Basic realm="burrow inspect"');
    await anonymous.body?.cancel();
    const wrong = await fetch(api, { headers: { authorization: `Basic ${btoa("ann:nope")}` } });
    assertEquals(wrong.status, 401);
    await wrong.body?.cancel();
    const page = await fetch(`http://127.0.0.1:${url.port}/`);
    assertEquals(page.status, 401);
    await page.body?.cancel();
    const authorization = `Basic ${btoa("ann:s3cret pass")}`;
    const ok = await fetch(api, { headers: { authorization } });
    assertEquals(ok.status, 200);
    assertEquals((await ok.json()).requests, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inspector: on 0.0.0.0 without auth the client does not start, naming client.inspect.auth", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-inspect-noauth-" });
  try {
    // The config is refused before any connection: no server is needed.
    await using client = await startClient(dir, {
      port: 9,
      token: TOKEN,
      fingerprint: `sha256:${"0".repeat(64)}`,
      tunnels: [],
      extra: `  inspect: {addr: "0.0.0.0:0"}\n`,
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      client.status,
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 30_000)),
    ]);
    clearTimeout(timer);
    assert(exited, "the client is still running");
    assert(exited.code !== 0, `exit code ${exited.code}`);
    // Its output is read to the end.
    await client.stop();
    const output = client.lines.join("\n") + (await client.stdout);
    assert(output.includes("client.inspect.auth: required"), output);
    assert(!client.events.some((e) => e.msg === "inspector listening"), output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

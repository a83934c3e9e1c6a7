import { assert, CHROMIUM_HEADLESS, testNeeding, until } from "../../testing/mod.ts";
import { startInspectServer } from "./api.ts";
import { Recorder } from "./recorder.ts";

/** Ignored (outside CI) when chromium is missing: see lib/testing/tools.ts. */
const test = { chromium: testNeeding("chromium") };

const enc = new TextEncoder();
const local = { hostname: "127.0.0.1", port: 9 };

/**
 * The page's DOM as headless chromium prints it, once the page has shown
 * what it loads and opened its event stream (which `--dump-dom` would wait
 * on forever: the server is closed to end it).
 */
async function dumpDom(recorder: Recorder, path: string): Promise<string> {
  const api = await startInspectServer(recorder, { hostname: "127.0.0.1", port: 0 });
  const url = api.url + path;
  const profile = await Deno.makeTempDir({ prefix: "burrow-inspect-chromium-" });
  try {
    const child = new Deno.Command("timeout", {
      args: [
        "60",
        "chromium",
        ...CHROMIUM_HEADLESS,
        `--user-data-dir=${profile}`,
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const stdout = new Response(child.stdout).text();
    await until("the page's event stream", () => recorder.ring.listeners > 0, 30_000);
    await api.close();
    await child.status;
    return await stdout;
  } finally {
    await api.close();
    await Deno.remove(profile, { recursive: true });
  }
}

test.chromium("inspector page: lists the requests, shows one as pretty JSON and form fields, marks a cut one", async () => {
  // A small queue: the third exchange is cut when it fills.
  const recorder = new Recorder({ queueBytes: 4096 });
  const conn = recorder.connection({ tunnel: "web", remote: "10.1.2.3", local });
  conn.request(enc.encode("GET /data HTTP/1.1\r\nHost: a\r\n\r\n"));
  conn.response(
    enc.encode(
      'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"a":[1,2,3]}',
    ),
  );
  const form = "user=ann&note=%3Cb%3Ehi%3C%2Fb%3E";
  conn.request(
    enc.encode(
      "POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
        `Content-Length: ${form.length}\r\n\r\n${form}`,
    ),
  );
  conn.response(enc.encode("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"));
  recorder.drain();
  const cut = recorder.connection({ tunnel: "web", remote: "10.1.2.4", local });
  cut.request(enc.encode("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 9000\r\n\r\n"));
  cut.request(new Uint8Array(9000));
  recorder.drain();
  const list = await dumpDom(recorder, "/#1");
  assert(list.includes("3 recorded"), list);
  assert(list.includes("/upload  (incomplete)"), list);
  assert(list.includes("/form") && list.includes('class="s5">500'), list);
  // Request 1 is linked: its response shows as pretty JSON first.
  assert(list.includes("GET /data  200"), list);
  assert(list.includes('{\n  "a": [\n    1,'), list);

  const post = await dumpDom(recorder, "/#2");
  // The form's first view is pretty JSON when it parses, else its fields; markup stays text.
  assert(post.includes("Edit and replay"), post);
  assert(post.includes("&lt;b&gt;hi&lt;/b&gt;"), post);
  assert(!post.includes("<b>hi</b>"), post);

  const partial = await dumpDom(recorder, "/#3");
  assert(partial.includes("Incomplete: the recorder fell behind"), partial);
  recorder.close();
});

/**
 * The request inspector's page in headless Chromium over CDP: real burrowd
 * and burrow processes, visitors with curl through the vhost port, and the
 * page, opened before them, showing their requests live, in detail, and
 * replaying one; what it shows is what the JSON API answers.
 *
 * With `BURROW_SCREENSHOT=1` it also writes the README's screenshot,
 * `docs/inspector.png` (1280×800).
 */

import {
  assert,
  assertEquals,
  Chromium,
  eventually,
  type Page,
  testNeeding,
} from "../lib/testing/mod.ts";
import { startClient, startServer } from "./_procs.ts";

/** Ignored (outside CI) when chromium or curl is missing: see lib/testing/tools.ts. */
const test = { browser: testNeeding("chromium", "curl") };

const TOKEN = "inspector-browser-e2e-token";
const HOST = "shop.test";
const USER = { id: 7, name: "Ann Lee", roles: ["admin", "dev"], active: true };
const FORM = "name=Ann+Lee&email=ann%40example.com&plan=pro";
const SCREENSHOT = new URL("../docs/inspector.png", import.meta.url);

interface Summary {
  id: number;
  method: string;
  path: string;
  status: number | null;
  replay_of: number | null;
}

/** A row of the page's list as shown: the cells' text. */
interface Row {
  id: number;
  method: string;
  path: string;
  status: string;
}

/** The list's rows, newest first as on the page. */
const ROWS = `Array.from(document.querySelectorAll("#rows tr"), (tr) => ({
  id: Number(tr.dataset.id),
  method: tr.cells[2].textContent,
  path: tr.cells[3].textContent,
  status: tr.cells[4].textContent,
}))`;

/** The detail's section titled `title`: its body views (tabs), the one shown, and its text. */
function section(title: string): string {
  return `(() => {
    const s = Array.from(document.querySelectorAll("#detail section"))
      .find((x) => x.querySelector("h3")?.textContent === ${JSON.stringify(title)});
    if (!s) return null;
    return {
      tabs: Array.from(s.querySelectorAll(".tabs button"), (b) => b.textContent),
      shown: s.querySelector(".tabs button.on")?.textContent ?? null,
      body: s.querySelectorAll("pre")[1]?.textContent ?? null,
    };
  })()`;
}

/** Clicks the list's row of request `id` and waits for its detail. */
async function open(page: Page, id: number, title: string): Promise<void> {
  await page.evaluate(`document.querySelector('#rows tr[data-id="${id}"]').click()`);
  await page.until(
    `the detail of #${id}`,
    `document.querySelector("#detail h2")?.textContent.startsWith(${JSON.stringify(title)}) &&
      document.querySelectorAll("#detail section").length > 0`,
  );
}

/** Sends one request with curl to the vhost port as `HOST`; its status code. */
async function curl(port: number, path: string, ...args: string[]): Promise<number> {
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--max-time",
      "10",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-H",
      `Host: ${HOST}`,
      ...args,
      `http://127.0.0.1:${port}${path}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert(out.success, `curl ${path}: ${stderr}`);
  return Number(new TextDecoder().decode(out.stdout));
}

test.browser("inspector page in Chromium: live list, JSON and form views, replay, same as the API", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-inspect-browser-" });
  let posts = 0;
  const origin = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/api/user") return Response.json(USER);
    if (url.pathname === "/signup" && req.method === "POST") {
      posts++;
      const form = await req.formData();
      return Response.json({ welcome: form.get("name"), plan: form.get("plan") }, { status: 201 });
    }
    if (url.pathname === "/report") return new Response("database unavailable\n", { status: 500 });
    return new Response("not found\n", { status: 404 });
  });
  try {
    const server = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n`);
    await using _server = server.proc;
    const vhost = (await server.proc.waitFor((e) => e.msg === "http vhost listening"))
      .port as number;
    await using client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [{
        name: "shop",
        type: "http",
        local_port: origin.addr.port,
        yaml: `custom_domains: [${HOST}]`,
      }],
      extra: `  inspect: {addr: "127.0.0.1:0"}\n`,
    });
    const api = String((await client.waitFor((e) => e.msg === "inspector listening")).url);
    await client.waitFor((e) => e.msg === "tunnel ready");

    // The page first, empty, with its event stream open; a marker on window tells a reload.
    await using browser = await Chromium.launch();
    const page = await browser.newPage({ width: 1280, height: 800 });
    await page.navigate(`${api}/`);
    await page.until(
      "the event stream open",
      `document.getElementById("live").classList.contains("on")`,
    );
    assertEquals(await page.evaluate(ROWS), []);
    await page.evaluate(`window.burrowMarker = "before the requests"`);

    assertEquals(await curl(vhost, "/api/user"), 200);
    assertEquals(
      await curl(
        vhost,
        "/signup",
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "--data-raw",
        FORM,
      ),
      201,
    );
    assertEquals(await curl(vhost, "/report"), 500);

    const three = await page.until<Row[]>(
      "three rows",
      `(() => { const r = ${ROWS}; return r.length >= 3 ? r : null; })()`,
    );
    assertEquals(three.map((r) => [r.method, r.path, r.status]), [
      ["GET", "/report", "500"],
      ["POST", "/signup", "201"],
      ["GET", "/api/user", "200"],
    ]);
    assertEquals(await page.evaluate("window.burrowMarker"), "before the requests", "no reload");
    const [boom, post, get] = three as [Row, Row, Row];

    // The JSON response, pretty-printed and shown first.
    await open(page, get.id, "GET /api/user  200");
    const json = await page.evaluate<{ tabs: string[]; shown: string; body: string }>(
      section("Response"),
    );
    assertEquals(json.shown, "json");
    assertEquals(json.body, JSON.stringify(USER, null, 2));

    // The form, decoded into its fields (the view shown first, since it is not JSON).
    await open(page, post.id, "POST /signup  201");
    const form = await page.evaluate<{ tabs: string[]; shown: string; body: string }>(
      section("Request"),
    );
    assertEquals([form.tabs.includes("form"), form.shown], [true, "form"]);
    assertEquals(form.body, "name = Ann Lee\nemail = ann@example.com\nplan = pro");

    // Replay: the origin sees the POST again, and the page lists it as a new entry.
    await page.evaluate(
      `Array.from(document.querySelectorAll("#detail button")).find((b) => b.textContent === "Replay").click()`,
    );
    await eventually("the origin's second POST", () => (posts === 2 ? true : undefined));
    const replayed = await page.until<Row>(
      "the replay's row",
      `${ROWS}.find((r) => r.path === "/signup  (replay of #${post.id})")`,
    );
    assertEquals([replayed.method, replayed.status], ["POST", "201"]);
    assert(replayed.id > boom.id, JSON.stringify(replayed));
    const said = await page.until<string>(
      "the replay's status line",
      `document.getElementById("replay-status").textContent.trim()`,
    );
    assertEquals(said, `replayed as #${replayed.id}: 201`);
    assertEquals(await page.evaluate("window.burrowMarker"), "before the requests", "no reload");

    // The page shows what the API answers.
    const listed = await (await fetch(`${api}/api/requests`)).json() as { requests: Summary[] };
    const shown = await page.evaluate<Row[]>(ROWS);
    assertEquals(
      shown,
      listed.requests.map((x) => ({
        id: x.id,
        method: x.method,
        path: x.path + (x.replay_of ? `  (replay of #${x.replay_of})` : ""),
        status: x.status === null ? "-" : String(x.status),
      })),
    );
    assertEquals(shown.length, 4);

    if (Deno.env.get("BURROW_SCREENSHOT") === "1") {
      await open(page, get.id, "GET /api/user  200");
      await Deno.mkdir(new URL(".", SCREENSHOT), { recursive: true });
      await Deno.writeFile(SCREENSHOT, await page.screenshot());
    }
  } finally {
    await origin.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

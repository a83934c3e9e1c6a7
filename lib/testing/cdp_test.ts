import { assert, assertEquals, assertRejects } from "./assert.ts";
import { CdpError, Chromium } from "./cdp.ts";
import { testNeeding } from "./tools.ts";

/** Ignored (outside CI) when chromium is missing: see tools.ts. */
const test = { chromium: testNeeding("chromium") };

test.chromium("cdp: evaluates, navigates, screenshots at the set size, and cleans up", async () => {
  let profile: string;
  {
    await using browser = await Chromium.launch();
    profile = browser.profile;
    const page = await browser.newPage({ width: 640, height: 480 });
    await page.navigate("data:text/html,<title>cdp</title><p id=p>hello</p>");
    assertEquals(await page.evaluate("document.title"), "cdp");
    assertEquals(await page.evaluate("Promise.resolve({ w: innerWidth, h: innerHeight })"), {
      w: 640,
      h: 480,
    });
    assertEquals(
      await page.until("the text", "document.getElementById('p')?.textContent"),
      "hello",
    );
    const thrown = await assertRejects(() => page.evaluate("null.x"), CdpError);
    assertEquals(thrown.method, "Runtime.evaluate");
    assert(thrown.message.includes("TypeError"), thrown.message);
    // A PNG whose header (IHDR) says 640×480.
    const png = await page.screenshot();
    const view = new DataView(png.buffer, png.byteOffset);
    assertEquals([png[1], png[2], png[3]], [0x50, 0x4e, 0x47]);
    assertEquals([view.getUint32(16), view.getUint32(20)], [640, 480]);
  }
  assertEquals(await Deno.stat(profile).catch(() => null), null, "the profile is removed");
});

test.chromium("cdp: a command that gets no answer times out naming the command", async () => {
  await using browser = await Chromium.launch();
  const page = await browser.newPage();
  const never = () => page.evaluate("new Promise(() => {})", { timeoutMs: 500 });
  const error = await assertRejects(never, CdpError);
  assertEquals(error.method, "Runtime.evaluate");
  assert(error.message.includes("500 ms"), error.message);
});

// Where the subcommands find a running burrowd: the file it leaves, and the URL of its admin port.

import { assertEquals } from "../../testing/mod.ts";
import { Secret } from "../../util/mod.ts";
import {
  adminEndpointPath,
  adminUrl,
  readAdminEndpoint,
  removeAdminEndpoint,
  writeAdminEndpoint,
} from "./endpoint.ts";

Deno.test("admin endpoint: the URL this machine reaches an admin bind address at", () => {
  assertEquals(adminUrl("127.0.0.1", 7500), "http://127.0.0.1:7500");
  assertEquals(adminUrl("0.0.0.0", 7500), "http://127.0.0.1:7500");
  assertEquals(adminUrl("", 7500), "http://127.0.0.1:7500");
  assertEquals(adminUrl("::", 7501), "http://[::1]:7501");
  assertEquals(adminUrl("::1", 7501), "http://[::1]:7501");
  assertEquals(adminUrl("[fd00::5]", 80), "http://[fd00::5]:80");
  assertEquals(adminUrl("192.0.2.10", 7500), "http://192.0.2.10:7500");
  assertEquals(adminUrl("localhost", 7500), "http://localhost:7500");
});

Deno.test("admin endpoint: written whole and private, read back, removed; a bad file reads as none", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-endpoint-" });
  try {
    assertEquals(await readAdminEndpoint(dir), null);
    await writeAdminEndpoint(dir, {
      pid: 4242,
      url: "http://127.0.0.1:7500",
      token: new Secret("t0ken"),
    });
    const read = await readAdminEndpoint(dir);
    assertEquals([read?.pid, read?.url, read?.token.reveal()], [
      4242,
      "http://127.0.0.1:7500",
      "t0ken",
    ]);
    assertEquals((await Deno.stat(adminEndpointPath(dir))).mode! & 0o777, 0o600);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["admin.json"]);
    await removeAdminEndpoint(dir);
    await removeAdminEndpoint(dir);
    assertEquals(await readAdminEndpoint(dir), null);
    for (const text of ["", "{", "null", `{"pid":"1","url":"x","token":"y"}`, `{"pid":1}`]) {
      await Deno.writeTextFile(adminEndpointPath(dir), text);
      assertEquals(await readAdminEndpoint(dir), null, text);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

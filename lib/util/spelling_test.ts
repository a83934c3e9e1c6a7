import { assertEquals } from "../testing/mod.ts";
import { closestWord } from "./spelling.ts";

Deno.test("closestWord: the nearest known word within two edits, else nothing", () => {
  const keys = ["limits", "local_port", "remote_port", "locations"];
  assertEquals(closestWord("limts", keys), "limits");
  assertEquals(closestWord("remote-port", keys), "remote_port");
  assertEquals(closestWord("colour", keys), undefined);
  assertEquals(closestWord("", keys), undefined);
  assertEquals(closestWord("x".repeat(100_000), keys), undefined);
  assertEquals(closestWord("locatoins", keys, 1), undefined);
});

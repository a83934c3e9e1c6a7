import assert from "node:assert/strict";
import { AddressBook, type Resolver } from "./addresses.ts";

const A = { host: "127.0.0.2", port: 7000 };
const B = { host: "127.0.0.3", port: 7000 };
const C = { host: "127.0.0.4", port: 7001 };

Deno.test("AddressBook: random start, then round robin over the ring", async () => {
  const book = new AddressBook([A, B, C], { random: () => 0.5 });
  const keys = [];
  for (let i = 0; i < 5; i++) keys.push((await book.next(new Set()))!.key);
  assert.deepEqual(keys, [
    "127.0.0.3:7000",
    "127.0.0.4:7001",
    "127.0.0.2:7000",
    "127.0.0.3:7000",
    "127.0.0.4:7001",
  ]);
});

Deno.test("AddressBook: skips addresses other sessions hold; null when all are held", async () => {
  const book = new AddressBook([A, B], { random: () => 0 });
  const first = await book.next(new Set());
  assert.equal(first?.key, "127.0.0.2:7000");
  assert.equal((await book.next(new Set([first!.key])))?.key, "127.0.0.3:7000");
  assert.equal((await book.next(new Set([first!.key])))?.key, "127.0.0.3:7000");
  assert.equal(await book.next(new Set(["127.0.0.2:7000", "127.0.0.3:7000"])), null);
});

Deno.test("AddressBook: a name counts as each of its addresses, resolved again each round", async () => {
  const lookups: string[] = [];
  let v4 = ["10.0.0.1", "10.0.0.2"];
  const resolve: Resolver = (name, type) => {
    lookups.push(`${name}/${type}`);
    if (type === "AAAA") return Promise.resolve(name === "nodes" ? ["fd00::1"] : []);
    return name === "nodes" ? Promise.resolve(v4) : Promise.reject(new Error("NXDOMAIN"));
  };
  const book = new AddressBook(
    [{ host: "nodes", port: 7000 }, { host: "10.0.0.1", port: 7000 }, { host: "gone", port: 1 }],
    { resolve, random: () => 0 },
  );
  const round = async () => {
    const out = [];
    for (let i = 0; i < book.size || i === 0; i++) out.push(await book.next(new Set()));
    return out;
  };
  const first = await round();
  assert.deepEqual(first.map((a) => a!.label), [
    "nodes:7000 (10.0.0.1)",
    "nodes:7000 (10.0.0.2)",
    "nodes:7000 (fd00::1)",
    "gone:1",
  ]);
  assert.equal(first[0]!.hostname, "10.0.0.1");
  assert.equal(first[0]!.serverName, "nodes", "TLS checks the name, not the IP");
  assert.equal(first[3]!.hostname, "gone", "a name DNS does not know is dialed as written");
  assert.equal(lookups.length, 4);
  v4 = ["10.0.0.9"];
  await book.next(new Set());
  assert.equal(lookups.length, 8, "the next round resolves again");
  assert.equal(book.size, 4);
});

Deno.test("AddressBook: expand false dials names as written", async () => {
  const book = new AddressBook([{ host: "example.com", port: 7000 }], {
    expand: false,
    resolve: () => Promise.reject(new Error("not called")),
  });
  const a = await book.next(new Set());
  assert.deepEqual(a, {
    hostname: "example.com",
    port: 7000,
    serverName: "example.com",
    key: "example.com:7000",
    label: "example.com:7000",
  });
});

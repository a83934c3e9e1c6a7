import { assert, assertEquals } from "../testing/mod.ts";
import { type Message, ProtocolError } from "../protocol/mod.ts";
import { nullLogger } from "../util/mod.ts";
import type { AuthResult } from "./login.ts";
import { acceptHandshake, type Greeted, type HandshakeHost } from "./handshake.ts";

const hello: Message = {
  type: "hello",
  version: 2,
  min_version: 1,
  software: "burrow/9.9.9",
  client_id: "laptop",
};
const auth: Message = { type: "auth", method: "token", token: "secret" };
const alice = { userId: 1, userName: "alice", tokenId: "t1" };

/** A channel that hands out `incoming` in turn (then waits forever) and keeps what happens. */
function channel(incoming: Message[]) {
  const sent: Message[] = [];
  const refused: Array<[string, string, number | undefined]> = [];
  const closed: string[] = [];
  return {
    sent,
    refused,
    closed,
    receive: () => {
      const next = incoming.shift();
      return next ? Promise.resolve(next) : new Promise<never>(() => {});
    },
    send: (m: Message) => void sent.push(m),
    refuse: (code: string, message: string, retryAfter?: number) => {
      refused.push([code, message, retryAfter]);
      return Promise.resolve();
    },
    close: (reason: string) => void closed.push(reason),
  };
}

function host(result: AuthResult = { ok: true, principal: alice }, room = true) {
  const slots = { open: 0 };
  const h: HandshakeHost & { slots: typeof slots; asked: string[] } = {
    slots,
    asked: [],
    config: { max_clients: 3, heartbeat_interval: 15_000 },
    enterHandshake: () => {
      slots.open++;
      return { [Symbol.dispose]: () => void slots.open-- };
    },
    authenticate(token, address, clientId) {
      this.asked.push(`${token} ${address} ${clientId}`);
      return Promise.resolve(result);
    },
    hasRoom: () => room,
  };
  return h;
}

function peer(): Greeted {
  return {
    remote: "192.0.2.7:5000",
    remoteHost: "192.0.2.7",
    sessionId: "s-1",
    clientId: "",
    software: "",
    protocolVersion: 1,
  };
}

const options = { timeoutMs: 5000, logger: nullLogger };

Deno.test("handshake: hello, auth, ack; the session learns who the client is", async () => {
  const c = channel([hello, auth]);
  const h = host();
  const p = peer();
  const principal = await acceptHandshake(c, h, p, options);
  assertEquals(principal, alice);
  assertEquals([p.clientId, p.software, p.protocolVersion], ["laptop", "burrow/9.9.9", 2]);
  assertEquals(h.asked, ["secret 192.0.2.7 laptop"]);
  assertEquals(c.sent.map((m) => m.type), ["hello", "ack"]);
  assertEquals(c.sent[1], { type: "ack", session_id: "s-1", heartbeat_interval: 15_000 });
  assertEquals(h.slots.open, 0, "the handshake slot is given back");
});

Deno.test("handshake: a client without an id is known by its session id", async () => {
  const { client_id: _, ...anonymous } = hello as Message & { client_id?: string };
  const p = peer();
  await acceptHandshake(channel([anonymous as Message, auth]), host(), p, options);
  assertEquals(p.clientId, "s-1");
});

Deno.test("handshake: each refusal is an error that names the problem", async () => {
  const cases: Array<[string, Message[], ReturnType<typeof host>, string, RegExp]> = [
    [
      "old client",
      [{ ...hello, version: 0 } as Message, auth],
      host(),
      "version_mismatch",
      /too old.*upgrade burrow/,
    ],
    [
      "bad token",
      [hello, auth],
      host({ ok: false, code: "auth_failed", message: "invalid token" }),
      "auth_failed",
      /^invalid token$/,
    ],
    [
      "limited",
      [hello, auth],
      host({ ok: false, code: "limit", message: "Too many failed logins", retryAfter: 6 }),
      "limit",
      /Too many failed logins/,
    ],
    [
      "database down",
      [hello, auth],
      host({ ok: false, code: "unavailable", message: "database is unreachable" }),
      "unavailable",
      /unreachable/,
    ],
    ["server full", [hello, auth], host(undefined, false), "server_busy", /max_clients 3/],
  ];
  for (const [what, incoming, h, code, message] of cases) {
    const c = channel(incoming);
    assertEquals(await acceptHandshake(c, h, peer(), options), null, what);
    assertEquals(c.refused.length, 1, what);
    assertEquals(c.refused[0]![0], code, what);
    assert(message.test(c.refused[0]![1]), `${what}: ${c.refused[0]![1]}`);
    assert(!c.sent.some((m) => m.type === "ack"), `${what}: no ack`);
    assertEquals(h.slots.open, 0, `${what}: slot given back`);
  }
});

Deno.test("handshake: a limited address is refused before anything is read", async () => {
  const c = channel([hello, auth]);
  const h = host();
  h.enterHandshake = () => ({ message: "Too many logins in progress" });
  assertEquals(await acceptHandshake(c, h, peer(), options), null);
  assertEquals(c.refused, [["limit", "Too many logins in progress", undefined]]);
  assertEquals(h.asked, [], "the token is never looked at");
});

Deno.test("handshake: a client that says nothing is closed at the deadline", async () => {
  const c = channel([hello]);
  const h = host();
  const started = performance.now();
  assertEquals(await acceptHandshake(c, h, peer(), { ...options, timeoutMs: 50 }), null);
  assert(performance.now() - started >= 45);
  assertEquals(c.closed, ["Handshake not completed within 0.05s"]);
  assertEquals(h.slots.open, 0);
});

Deno.test("handshake: anything but hello, then auth, is a protocol error", async () => {
  for (const incoming of [[auth], [hello, hello]]) {
    const c = channel(incoming);
    let error: unknown;
    try {
      await acceptHandshake(c, host(), peer(), options);
    } catch (e) {
      error = e;
    }
    assert(error instanceof ProtocolError, String(error));
    assert(/Expected "(hello|auth)/.test(error.message), error.message);
  }
});

Deno.test("handshake: a connection that ends early ends the handshake quietly", async () => {
  const c = channel([]);
  c.receive = () => Promise.resolve(null as unknown as Message);
  assertEquals(await acceptHandshake(c, host(), peer(), options), null);
  assertEquals(c.refused, []);
});

import { assert, assertEquals, assertRejects } from "../testing/mod.ts";
import { memoryPipe } from "../transport/mod.ts";
import { Mux, type MuxStream, spliceStreams } from "../mux/mod.ts";
import { type Logger, nullLogger, Secret } from "../util/mod.ts";
import { acceptLinkHandshake, dialLinkHandshake, LinkRefusedError } from "./link_handshake.ts";
import { NodeLinks, type PeerNode } from "./link.ts";
import { RelayedOpener } from "./relayed_opener.ts";

const SECRET = new Secret("one cluster's secret, long enough");
const OTHER = new Secret("another cluster's secret, as long");
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A logger that keeps what it is told. */
function keeping(): Logger & { seen: Array<{ msg: string; fields: Record<string, unknown> }> } {
  const seen: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const log = (msg: string, fields: Record<string, unknown> = {}) => seen.push({ msg, fields });
  return Object.assign(Object.create(nullLogger), {
    seen,
    info: log,
    warn: log,
    error: log,
    debug: () => {},
    child: () => nullLogger,
  });
}

Deno.test("link handshake: both sides prove the secret and learn who is who", async () => {
  const [a, b] = memoryPipe();
  const [peer] = await Promise.all([
    acceptLinkHandshake(b, { node: "n2", secret: SECRET }),
    dialLinkHandshake(a, { node: "n1", to: "n2", secret: SECRET }),
  ]);
  assertEquals(peer, "n1");
  // Nothing was read past the handshake: the next bytes are the link's own.
  await a.write(enc.encode("next"));
  const buf = new Uint8Array(8);
  assertEquals(dec.decode(buf.subarray(0, (await b.read(buf))!)), "next");
  a.close();
  b.close();
});

Deno.test("link handshake: another secret is refused on both sides, naming the setting", async () => {
  const [a, b] = memoryPipe();
  const [accepted, dialled] = await Promise.allSettled([
    acceptLinkHandshake(b, { node: "n2", secret: SECRET }),
    dialLinkHandshake(a, { node: "n1", to: "n2", secret: OTHER }),
  ]);
  assert(accepted.status === "rejected" && dialled.status === "rejected");
  assert(accepted.reason instanceof LinkRefusedError);
  assert(/Node n1 does not know this cluster's secret/.test(accepted.reason.message));
  assert(/server\.cluster\.secret/.test(accepted.reason.message));
  assert(/Node n2 does not know this cluster's secret/.test(dialled.reason.message));
});

Deno.test("link handshake: a dialer that expects another node is told the row is stale", async () => {
  const [a, b] = memoryPipe();
  const [accepted, dialled] = await Promise.allSettled([
    acceptLinkHandshake(b, { node: "n3", secret: SECRET }),
    dialLinkHandshake(a, { node: "n1", to: "n2", secret: SECRET }),
  ]);
  assert(accepted.status === "rejected" && dialled.status === "rejected");
  assert(/dialled node n2 at this node's address/.test(accepted.reason.message));
  assert(/refused the link: this is node n3, not n2/.test(dialled.reason.message));
});

Deno.test("link handshake: bytes that are not a node's are refused, and silence times out", async () => {
  const [a, b] = memoryPipe();
  const accepting = acceptLinkHandshake(b, { node: "n2", secret: SECRET });
  await a.write(enc.encode("GET / HTTP/1.1\r\n\r\n"));
  const error = await assertRejects(() => accepting, LinkRefusedError);
  assert(/Not a Burrow node link/.test(error.message), error.message);
  a.close();

  const [c, d] = memoryPipe();
  const silent = acceptLinkHandshake(d, { node: "n2", secret: SECRET, timeout: 50 });
  const late = await assertRejects(() => silent, LinkRefusedError);
  assert(/longer than 50 ms/.test(late.message));
  c.close();
});

Deno.test("link handshake: without a secret (mutual TLS) only ids are exchanged", async () => {
  const [a, b] = memoryPipe();
  const [peer] = await Promise.all([
    acceptLinkHandshake(b, { node: "n2", secret: null }),
    dialLinkHandshake(a, { node: "n1", to: "n2", secret: null }),
  ]);
  assertEquals(peer, "n1");
  a.close();
  b.close();
});

/** Nodes whose relay ports are memory pipes: `dial` hands the far end to the peer's `accept`. */
function cluster(ids: string[], secrets: Record<string, Secret> = {}) {
  const links = new Map<string, NodeLinks>();
  const streams: Array<{ node: string; peer: string; stream: MuxStream }> = [];
  const logs = new Map<string, ReturnType<typeof keeping>>();
  for (const id of ids) {
    const logger = keeping();
    logs.set(id, logger);
    links.set(
      id,
      new NodeLinks({
        node: id,
        secret: secrets[id] ?? SECRET,
        logger,
        pingInterval: 0,
        dial: (peer) => {
          const [near, far] = memoryPipe();
          links.get(peer.id)!.accept(far, `memory:${id}`);
          return Promise.resolve(near);
        },
        onStream: (stream, peer) => streams.push({ node: id, peer, stream }),
      }),
    );
  }
  const peer = (id: string): PeerNode => ({ id, host: "memory", port: 1, fingerprint: "" });
  return { links, streams, logs, peer, close: () => links.forEach((l) => l.close()) };
}

Deno.test("NodeLinks: one link per pair, shared by callers, usable both ways", async () => {
  const c = cluster(["n1", "n2"]);
  try {
    const [m1, m2] = await Promise.all([
      c.links.get("n1")!.to(c.peer("n2")),
      c.links.get("n1")!.to(c.peer("n2")),
    ]);
    assert(m1 === m2, "two callers at once share one dial");
    assert(m1 === await c.links.get("n1")!.to(c.peer("n2")), "the link is kept");
    const out = m1.open({ hello: "from n1" });
    await out.write(enc.encode("ping"));
    out.closeWrite();
    await waitFor(() => c.streams.length === 1);
    const got = c.streams[0]!;
    assertEquals([got.node, got.peer, got.stream.meta.hello], ["n2", "n1", "from n1"]);
    assertEquals(dec.decode((await got.stream.read())!), "ping");
    assertEquals(c.links.get("n2")!.list().map((l) => [l.peer, l.dialer]), [["n1", "n1"]]);
    assert(c.logs.get("n2")!.seen.some((e) => e.msg === "node link up" && e.fields.peer === "n1"));
  } finally {
    c.close();
  }
});

Deno.test("NodeLinks: a node with another secret is refused, and both logs say why", async () => {
  const c = cluster(["n1", "n2"], { n2: OTHER });
  try {
    await assertRejects(() => c.links.get("n1")!.to(c.peer("n2")), LinkRefusedError);
    await waitFor(() => c.logs.get("n2")!.seen.some((e) => e.msg === "node link refused"));
    const refused = c.logs.get("n2")!.seen.find((e) => e.msg === "node link refused")!;
    assert(/Node n1 does not know this cluster's secret/.test(String(refused.fields.error)));
    assertEquals(c.links.get("n1")!.list(), []);
    assertEquals(c.links.get("n2")!.list(), []);
  } finally {
    c.close();
  }
});

Deno.test("NodeLinks: when both nodes dial at once, both keep the link the smaller id dialled", async () => {
  const c = cluster(["n1", "n2"]);
  try {
    await Promise.all([c.links.get("n1")!.to(c.peer("n2")), c.links.get("n2")!.to(c.peer("n1"))]);
    await waitFor(() =>
      c.links.get("n1")!.list().length === 1 && c.links.get("n2")!.list().length === 1 &&
      c.links.get("n1")!.list()[0]!.dialer === "n1" && c.links.get("n2")!.list()[0]!.dialer === "n1"
    );
    const mux = await c.links.get("n2")!.to(c.peer("n1"));
    mux.open({ via: "kept" }).closeWrite();
    await waitFor(() => c.streams.some((s) => s.node === "n1" && s.stream.meta.via === "kept"));
  } finally {
    c.close();
  }
});

Deno.test("spliceStreams: a visitor relayed by one node reaches the client another node holds", async () => {
  // n2 holds the client; n1 has the visitor. n2 splices n1's stream onto a stream to the client.
  const c = cluster(["n1", "n2"]);
  const [clientEnd, serverEnd] = memoryPipe();
  const served: string[] = [];
  const client = new Mux(clientEnd, {
    role: "client",
    pingInterval: 0,
    onStream: async (stream) => {
      // The client's local service: answers each request in upper case.
      for (let chunk = await stream.read(); chunk; chunk = await stream.read()) {
        served.push(dec.decode(chunk));
        await stream.write(enc.encode(dec.decode(chunk).toUpperCase()));
      }
      stream.closeWrite();
    },
  });
  const toClient = new Mux(serverEnd, { role: "server", pingInterval: 0 });
  const splices: Promise<unknown>[] = [];
  try {
    const link = await c.links.get("n1")!.to(c.peer("n2"));
    const visitor = link.open({ tunnel: "web" });
    await waitFor(() => c.streams.length === 1);
    const relayed = c.streams[0]!.stream;
    splices.push(spliceStreams(relayed, toClient.open(relayed.meta)));
    await visitor.write(enc.encode("hello"));
    assertEquals(dec.decode((await visitor.read())!), "HELLO");
    visitor.closeWrite();
    assertEquals(await visitor.read(), null);
    const [result] = await Promise.all(splices) as Array<{ forward: number; back: number }>;
    assertEquals([result!.forward, result!.back], [5, 5]);
    assertEquals(served, ["hello"]);
  } finally {
    client.close();
    toClient.close();
    c.close();
  }
});

Deno.test("spliceStreams: a reset on one side resets the other with its reason", async () => {
  const c = cluster(["n1", "n2"]);
  const [clientEnd, serverEnd] = memoryPipe();
  const client = new Mux(clientEnd, {
    role: "client",
    pingInterval: 0,
    onStream: (stream) => stream.reset("local service 127.0.0.1:9 unavailable"),
  });
  const toClient = new Mux(serverEnd, { role: "server", pingInterval: 0 });
  try {
    const link = await c.links.get("n1")!.to(c.peer("n2"));
    const visitor = link.open({ tunnel: "web" });
    await waitFor(() => c.streams.length === 1);
    const result = await spliceStreams(c.streams[0]!.stream, toClient.open({}));
    assert(/unavailable/.test(result.error ?? ""), result.error);
    const error = await assertRejects(() => visitor.read(), Error);
    assert(/local service 127\.0\.0\.1:9 unavailable/.test((error as Error).message));
  } finally {
    client.close();
    toClient.close();
    c.close();
  }
});

Deno.test("NodeLinks: a link whose peer stops answering pings is closed", async () => {
  // n2's side of the pipe is never read once the link is up: it answers nothing.
  const logger = keeping();
  const [near, far] = memoryPipe();
  const links = new NodeLinks({
    node: "n1",
    secret: SECRET,
    logger,
    pingInterval: 50,
    dial: () => Promise.resolve(near),
    onStream: () => {},
  });
  const accepting = acceptLinkHandshake(far, { node: "n2", secret: SECRET });
  const [mux] = await Promise.all([
    links.to({ id: "n2", host: "m", port: 1, fingerprint: "" }),
    accepting,
  ]);
  const error = await mux.closed;
  assert(/did not answer a ping within 50 ms/.test(String(error?.message)), String(error));
  assert(logger.seen.some((e) => e.msg === "node link closed: no answer to a ping"));
  assertEquals(links.list(), []);
  links.close();
  far.close();
});

Deno.test("spliceStreams: each direction is paced by its throttle", async () => {
  const c = cluster(["n1", "n2"]);
  const [clientEnd, serverEnd] = memoryPipe();
  const client = new Mux(clientEnd, {
    role: "client",
    pingInterval: 0,
    onStream: async (stream) => {
      for (let chunk = await stream.read(); chunk; chunk = await stream.read()) {
        await stream.write(chunk);
        await stream.write(chunk);
      }
      stream.closeWrite();
    },
  });
  const toClient = new Mux(serverEnd, { role: "server", pingInterval: 0 });
  const taken = { forward: 0, back: 0 };
  const throttle = (way: "forward" | "back") => ({
    take(n: number) {
      taken[way] += n;
      return new Promise<void>((r) => setTimeout(r, 1));
    },
    tryTake: () => true,
    throttled: 0,
  });
  try {
    const link = await c.links.get("n1")!.to(c.peer("n2"));
    const visitor = link.open({ tunnel: "web" });
    await waitFor(() => c.streams.length === 1);
    const splicing = spliceStreams(c.streams[0]!.stream, toClient.open({}), {
      forward: throttle("forward"),
      back: throttle("back"),
    });
    await visitor.write(new Uint8Array(3000));
    visitor.closeWrite();
    let back = 0;
    for (let chunk = await visitor.read(); chunk; chunk = await visitor.read()) {
      back += chunk.length;
    }
    const result = await splicing;
    assertEquals([result.forward, result.back, back], [3000, 6000, 6000]);
    assertEquals(taken, { forward: 3000, back: 6000 });
  } finally {
    client.close();
    toClient.close();
    c.close();
  }
});

Deno.test("RelayedOpener: a visitor who arrives while the link is dialled waits for it", async () => {
  const c = cluster(["n1", "n2"]);
  try {
    const opener = new RelayedOpener(c.links.get("n1")!, [
      { node: c.peer("n2"), session: "s1", tunnel: "web" },
    ]);
    assert(await opener.ready(2_000), "the link came up");
    assert(!opener.peerGoingAway);
    const stream = opener.open({ tunnel: "web" });
    stream.closeWrite();
    await waitFor(() => c.streams.length === 1);
    assertEquals(c.streams[0]!.stream.meta, { tunnel: "web", relay: { session: "s1" } });
  } finally {
    c.close();
  }
});

Deno.test("RelayedOpener: a holder that cannot be dialled is not ready, and says which node", async () => {
  const links = new NodeLinks({
    node: "n1",
    secret: SECRET,
    logger: keeping(),
    pingInterval: 0,
    dial: () => Promise.reject(new Error("connection refused")),
    onStream: () => {},
  });
  const opener = new RelayedOpener(links, [
    { node: { id: "n9", host: "x", port: 1, fingerprint: "" }, session: "s", tunnel: "web" },
  ]);
  const started = performance.now();
  assertEquals(await opener.ready(100), false);
  assert(performance.now() - started >= 90);
  const error = await assertRejects(() => Promise.resolve().then(() => opener.open({})), Error);
  assert(/No link to node n9/.test(error.message), error.message);
  links.close();
});

async function waitFor(check: () => boolean, ms = 2_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("Timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

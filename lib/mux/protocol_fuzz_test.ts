// Fuzzing the parsers that face the network: the frame decoder, the control
// message parser and the multiplexer. Random and mutated inputs from a seeded
// generator (set BURROW_FUZZ_SEED to replay, BURROW_FUZZ_CASES to scale):
// every input either parses or fails with ProtocolError; nothing else is
// thrown, nothing hangs, and a bad peer only closes its own mux.

import { assert } from "../testing/mod.ts";
import { Mux, PeerClosedError } from "./mod.ts";
import { memoryPipe } from "../transport/mod.ts";
import { encodeFrame, FrameDecoder, FrameType, ProtocolError } from "../protocol/mod.ts";
import { decodeControl, encodeControl, type Message } from "../protocol/mod.ts";
import { xorshift32 as rng } from "../util/mod.ts";

const SEED = Number(Deno.env.get("BURROW_FUZZ_SEED") ?? 0xb0220e);
const CASES = Number(Deno.env.get("BURROW_FUZZ_CASES") ?? 100_000);

const encoder = new TextEncoder();

const VALID: Message[] = [
  { type: "hello", version: 1, min_version: 1, software: "burrow/0.1.0", client_id: "c" },
  { type: "auth", method: "token", token: "t" },
  { type: "ack", session_id: "s", heartbeat_interval: 10000 },
  { type: "error", code: "auth_failed", message: "no" },
  {
    type: "control",
    action: "create_tunnel",
    tunnel_id: "w",
    config: { protocol: "tcp", local_port: 80 },
  },
  { type: "tunnel_status", tunnel_id: "w", status: "active", remote_port: 1 },
  { type: "heartbeat", timestamp: 1, status: "online" },
  {
    type: "config_push",
    tunnels: [{ name: "a", type: "tcp", local_addr: "127.0.0.1", local_port: 1, status: "active" }],
  },
  { type: "tunnel_health", tunnel_id: "w", healthy: false },
];

function mutate(bytes: Uint8Array, next: () => number): Uint8Array {
  const out = bytes.slice();
  const edits = 1 + Math.floor(next() * 4);
  for (let i = 0; i < edits && out.length; i++) {
    const at = Math.floor(next() * out.length);
    const kind = next();
    if (kind < 0.5) out[at] = Math.floor(next() * 256);
    else if (kind < 0.7) out[at] = [0, 0xff, 0x7f, 0x80, 0x22, 0x7b, 0x7d][Math.floor(next() * 7)]!;
    else if (kind < 0.85) return out.subarray(0, at); // truncated
    else {
      const grown = new Uint8Array(out.length + 1);
      grown.set(out.subarray(0, at));
      grown[at] = Math.floor(next() * 256);
      grown.set(out.subarray(at), at + 1);
      return grown;
    }
  }
  return out;
}

function validFrames(next: () => number): Uint8Array {
  const parts: Uint8Array[] = [];
  const n = 1 + Math.floor(next() * 3);
  for (let i = 0; i < n; i++) {
    const type = 1 + Math.floor(next() * 9) as FrameType;
    const len = Math.floor(next() * 64);
    parts.push(
      encodeFrame(type, Math.floor(next() * 8), crypto.getRandomValues(new Uint8Array(len))),
    );
  }
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

Deno.test(`fuzz: frame decoder, ${CASES} cases (seed ${SEED})`, () => {
  const next = rng(SEED);
  let parsed = 0, rejected = 0;
  for (let i = 0; i < CASES; i++) {
    const input = next() < 0.3
      ? crypto.getRandomValues(new Uint8Array(Math.floor(next() * 64)))
      : mutate(validFrames(next), next);
    const decoder = new FrameDecoder({ maxPayload: 1024 });
    try {
      // Fed in random pieces, as a socket would.
      let off = 0;
      while (off < input.length) {
        const n = 1 + Math.floor(next() * (input.length - off));
        for (const _ of decoder.push(input.subarray(off, off + n))) parsed++;
        off += n;
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) {
        throw new Error(`case ${i} (seed ${SEED}) threw ${error}: ${[...input].join(",")}`);
      }
      rejected++;
    }
  }
  assert(parsed > 0 && rejected > 0, `parsed ${parsed}, rejected ${rejected}`);
});

Deno.test(`fuzz: control messages, ${CASES} cases (seed ${SEED})`, () => {
  const next = rng(SEED ^ 0x5a5a5a5a);
  let ok = 0, rejected = 0;
  for (let i = 0; i < CASES; i++) {
    const base = encodeControl(VALID[Math.floor(next() * VALID.length)]!);
    const input = next() < 0.2
      ? encoder.encode(
        JSON.stringify({
          type: ["hello", "auth", "config_push", 5, null][Math.floor(next() * 5)],
          x: next(),
        }),
      )
      : mutate(base, next);
    try {
      decodeControl(input);
      ok++;
    } catch (error) {
      if (!(error instanceof ProtocolError)) {
        throw new Error(
          `case ${i} (seed ${SEED}) threw ${error}: ${new TextDecoder().decode(input)}`,
        );
      }
      rejected++;
    }
  }
  assert(ok > 0 && rejected > 0, `ok ${ok}, rejected ${rejected}`);
});

Deno.test("fuzz: a mux fed garbage closes itself with a ProtocolError and nothing else", async () => {
  const next = rng(SEED ^ 0x1234567);
  const rounds = Math.max(50, Math.floor(CASES / 500));
  for (let i = 0; i < rounds; i++) {
    const [a, b] = memoryPipe();
    const mux = new Mux(a, { role: "server", pingInterval: 0, onStream: (s) => s.reset("no") });
    const garbage = next() < 0.5
      ? crypto.getRandomValues(new Uint8Array(1 + Math.floor(next() * 256)))
      : mutate(validFrames(next), next);
    await b.write(garbage);
    b.close();
    const cause = await Promise.race([
      mux.closed,
      new Promise<"hang">((r) => setTimeout(() => r("hang"), 2000)),
    ]);
    assert(cause !== "hang", `round ${i}: mux did not close`);
    assert(
      cause instanceof ProtocolError || cause instanceof PeerClosedError || cause === null,
      `round ${i}: closed with ${cause}`,
    );
    mux.close();
  }
});

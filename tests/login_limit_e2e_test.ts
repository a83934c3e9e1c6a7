// The login limiter from outside, with a real burrowd: parallel guessing is
// refused beyond the limits (at once, in words, counted in /metrics), and the
// owner's client still logs in during a flood from another address and, when
// the flood is small, from its own address. The attacker speaks the control
// protocol itself over node:tls, which can pick its source address
// (127.0.0.2 is a second loopback address on Linux).

import http from "node:http";
import net from "node:net";
import tls from "node:tls";
import { assert, assertEquals } from "../lib/testing/mod.ts";
import { Proc, startClient } from "./_procs.ts";
import {
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameDecoder,
  FrameType,
  type Message,
} from "../lib/protocol/mod.ts";

const TOKEN = "login-limit-e2e-token";

/** burrowd with `auth` settings; resolves once it listens on both ports. */
async function startServer(dir: string, auth: string, extra = ""): Promise<{
  proc: Proc;
  port: number;
  fingerprint: string;
  adminPort: number;
  metrics: () => Promise<string>;
}> {
  const path = `${dir}/server.yaml`;
  await Deno.writeTextFile(
    path,
    `server:
  bind_addr: 127.0.0.1
  bind_port: 0
  auth: {method: token, token: "${TOKEN}"${auth ? `, ${auth}` : ""}}
  storage: {data_dir: "${dir}/data"}
  admin: {bind_addr: 127.0.0.1, bind_port: 0}
  log: {level: info, format: json}
${extra}`,
  );
  const proc = new Proc("server", ["--config", path]);
  try {
    const ready = await proc.waitFor((e) => e.msg === "control channel listening", 60_000);
    const admin = await proc.waitFor((e) => e.msg === "admin listening", 10_000);
    return {
      proc,
      port: ready.port as number,
      fingerprint: ready.fingerprint as string,
      adminPort: admin.port as number,
      metrics: async () => await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text(),
    };
  } catch (error) {
    await proc[Symbol.asyncDispose]();
    throw error;
  }
}

/** What one raw login attempt got. */
interface Guess {
  /** The server's final answer (`error` or `ack`); `null`: closed without one, or no answer. */
  answer: Message | null;
  /** From the end of the TLS handshake to the answer, in ms. */
  ms: number;
}

/**
 * Logs in with `token` from `from`, speaking the protocol by hand: hello and
 * auth at once, then waits (at most `timeoutMs`) for the error or ack.
 * With `silent`, sends nothing and holds the connection until `release`
 * resolves.
 */
function guess(
  port: number,
  from: string,
  token: string,
  options: { timeoutMs?: number; silent?: Promise<void>; onConnect?: () => void } = {},
): Promise<Guess> {
  return new Promise((resolve) => {
    const decoder = new FrameDecoder();
    let started = performance.now();
    let done = false;
    const socket = tls.connect({
      socket: net.connect({ host: "127.0.0.1", port, localAddress: from }),
      rejectUnauthorized: false,
    });
    const finish = (answer: Message | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish(null), options.timeoutMs ?? 15_000);
    socket.on("secureConnect", () => {
      started = performance.now();
      options.onConnect?.();
      if (options.silent) {
        options.silent.then(() => finish(null));
        return;
      }
      const control = (m: Message) => encodeFrame(FrameType.Control, 0, encodeControl(m));
      socket.write(control({ type: "hello", version: 1, min_version: 1, software: "guess/0" }));
      socket.write(control({ type: "auth", method: "token", token }));
    });
    socket.on("data", (chunk: Uint8Array) => {
      try {
        for (const frame of decoder.push(chunk)) {
          if (frame.type !== FrameType.Control) continue;
          const message = decodeControl(frame.payload);
          if (message.type === "error" || message.type === "ack") return finish(message);
        }
      } catch {
        finish(null);
      }
    });
    socket.on("close", () => finish(null));
    socket.on("error", () => finish(null));
  });
}

/** The status of `GET /api/v1/users` with `token`, sent from `from`. */
function apiStatusFrom(from: string, port: number, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get({
      host: "127.0.0.1",
      port,
      path: "/api/v1/users",
      localAddress: from,
      headers: { authorization: `Bearer ${token}` },
    }, (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode ?? 0));
    });
    request.setTimeout(5000, () => request.destroy(new Error("No answer within 5 s")));
    request.on("error", reject);
  });
}

/** The value of one sample in a Prometheus text exposition (0 when absent). */
function sample(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

const RATE = /^Too many failed logins from 127\.0\.0\.1; retry in ([1-9]\d*) s$/;
const CONCURRENT = /^Too many logins in progress from 127\.0\.0\.1 \(at most 8 at once\)$/;

Deno.test("parallel guessing on Deno's TLS (the default): at most max_failures tokens checked, every guess answered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-limit-" });
  try {
    const server = await startServer(dir, "");
    await using _s = server.proc;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => guess(server.port, "127.0.0.1", `guess-${i}`)),
    );
    const failed = results.filter((r) =>
      r.answer?.type === "error" && r.answer.code === "auth_failed"
    );
    const refused = results.filter((r) => r.answer?.type === "error" && r.answer.code === "limit");
    assertEquals(failed.length + refused.length, 200, "every guess answered");
    assert(failed.length <= 10, `${failed.length} tokens checked: more than max_failures`);
    for (const r of refused) {
      const m = (r.answer as { message: string }).message;
      assert(RATE.test(m) || CONCURRENT.test(m), m);
    }
    const metrics = await server.metrics();
    assertEquals(sample(metrics, 'burrow_logins_total{result="auth_failed"}'), failed.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parallel guessing: beyond the limits refused at once, in words, counted in /metrics", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-limit-" });
  try {
    // Defaults: 10 failures, 1 per 6 s, 8 at once. On node:tls a connection is accepted once its
    // TLS handshake is done, so slots free quickly and the 200 guesses below also drain the
    // bucket; Deno's TLS (next test) holds a slot through the TLS handshake too.
    const server = await startServer(dir, "", `  tls: {min_version: "1.3"}\n`);
    await using _s = server.proc;

    // Eight silent handshakes hold every slot of the address: a ninth is refused at once.
    const release = Promise.withResolvers<void>();
    const connected = Array.from({ length: 8 }, () => Promise.withResolvers<void>());
    const held = connected.map((c) =>
      guess(server.port, "127.0.0.1", "x", { silent: release.promise, onConnect: c.resolve })
    );
    await Promise.all(connected.map((c) => c.promise));
    let ninth: Guess | null = null;
    let early = 0; // admitted before the eight were all counted (then failed: a wrong token)
    for (let i = 0; i < 20; i++) {
      ninth = await guess(server.port, "127.0.0.1", "guess-9");
      if (ninth.answer?.type === "error" && ninth.answer.code === "limit") break;
      early++;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert(ninth?.answer?.type === "error", JSON.stringify(ninth));
    assertEquals(ninth.answer.code, "limit");
    assert(CONCURRENT.test(ninth.answer.message), ninth.answer.message);
    assert(ninth.ms < 2000, `refused after ${ninth.ms} ms`);
    release.resolve();
    await Promise.all(held);

    // 200 wrong tokens at once.
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => guess(server.port, "127.0.0.1", `guess-${i}`)),
    );
    const elapsed = performance.now() - started;
    const failed = results.filter((r) =>
      r.answer?.type === "error" && r.answer.code === "auth_failed"
    );
    const rate = results.filter((r) => r.answer?.type === "error" && RATE.test(r.answer.message));
    const concurrent = results.filter((r) =>
      r.answer?.type === "error" && CONCURRENT.test(r.answer.message)
    );
    const slowest = Math.max(...results.map((r) => r.ms));
    console.log(
      `200 parallel guesses: ${failed.length} checked and failed, ${rate.length} refused (rate), ` +
        `${concurrent.length} refused (concurrent) in ${Math.round(elapsed)} ms; slowest answer ` +
        `${Math.round(slowest)} ms after its TLS handshake`,
    );
    assertEquals(failed.length + rate.length + concurrent.length, 200, "every guess answered");
    assert(
      failed.length + early <= 10,
      `${failed.length + early} tokens checked: more than max_failures`,
    );
    assert(rate.length > 0, "the bucket ran dry");
    for (const r of rate) {
      const m = r.answer as { retry_after?: number; message: string };
      assert(m.retry_after! >= 1 && m.retry_after! <= 6, JSON.stringify(m));
      assertEquals(m.message, `Too many failed logins from 127.0.0.1; retry in ${m.retry_after} s`);
    }
    // No sleeping anywhere: each answer comes right after the TLS handshake.
    assert(slowest < 5000, `an answer took ${slowest} ms`);

    const metrics = await server.metrics();
    assertEquals(sample(metrics, 'burrow_login_refused_total{reason="rate"}'), rate.length);
    assertEquals(
      sample(metrics, 'burrow_login_refused_total{reason="concurrent"}'),
      concurrent.length + 1,
    );
    assertEquals(
      sample(metrics, 'burrow_logins_total{result="auth_failed"}'),
      failed.length + early,
    );
    await server.proc.waitFor((e) =>
      e.msg === "too many failed logins: refusing this address for now" &&
      e.remote === "127.0.0.1"
    );
    await server.proc.waitFor((e) =>
      e.msg === "too many logins in progress: refusing more from this address"
    );

    // The admin API checks the same secrets, so it shares the bucket: 429 before any token check.
    const api = await fetch(`http://127.0.0.1:${server.adminPort}/api/v1/users`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const body = await api.json();
    assertEquals(api.status, 429);
    assert(RATE.test(body.error.message), JSON.stringify(body));
    assertEquals(api.headers.get("retry-after"), RATE.exec(body.error.message)![1]);
    assertEquals(
      sample(await server.metrics(), 'burrow_login_refused_total{reason="rate"}'),
      rate.length + 1,
    );
    // Another address is not affected.
    assertEquals(await apiStatusFrom("127.0.0.2", server.adminPort, "wrong"), 401);
    assertEquals(await apiStatusFrom("127.0.0.2", server.adminPort, TOKEN), 200);

    // The log is not flooded: one line for the first refusal of a row, then one per hundred.
    const refusedLines = server.proc.events.filter((e) => String(e.msg).startsWith("too many"));
    assert(refusedLines.length <= 6, `${refusedLines.length} refusal lines`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Wrong guesses from `from` by `workers` loops until `stop()`; `seen` fills with the answers. */
function flood(
  port: number,
  from: string,
  options: { workers: number; pauseMs?: number },
): { seen: Guess[]; stop: () => Promise<void> } {
  let stopping = false;
  const seen: Guess[] = [];
  const loops = Array.from({ length: options.workers }, async (_, w) => {
    for (let i = 0; !stopping && i < 100_000; i++) {
      seen.push(await guess(port, from, `flood-${w}-${i}`, { timeoutMs: 5000 }));
      if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  });
  return {
    seen,
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

/** Starts the owner's client (right token, from 127.0.0.1); ms from spawn to "connected". */
async function ownerLogsIn(
  dir: string,
  server: { port: number; fingerprint: string },
  timeoutMs = 15_000,
): Promise<{ client: Proc; ms: number }> {
  const started = performance.now();
  const client = await startClient(dir, {
    port: server.port,
    token: TOKEN,
    fingerprint: server.fingerprint,
    tunnels: [],
  });
  try {
    await client.waitFor((e) => e.msg === "connected", timeoutMs);
  } catch (error) {
    await client.stop("SIGKILL");
    throw error;
  }
  return { client, ms: performance.now() - started };
}

Deno.test("the owner logs in at once during a flood of guesses from another address", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-limit-" });
  try {
    const server = await startServer(dir, ""); // defaults
    await using _s = server.proc;
    const quiet = await ownerLogsIn(dir, server);
    await quiet.client.stop();

    // 16 guessers on 127.0.0.2, back to back: ~8 open at any time, the bucket long empty.
    const attack = flood(server.port, "127.0.0.2", { workers: 16 });
    await server.proc.waitFor((e) =>
      e.msg === "too many failed logins: refusing this address for now" && e.remote === "127.0.0.2"
    );
    for (let i = 0; i < 200 && attack.seen.length < 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    let during;
    try {
      during = await ownerLogsIn(dir, server);
      await during.client.stop();
    } finally {
      await attack.stop();
    }
    const seen = attack.seen;
    const refusals = seen.filter((g) => g.answer?.type === "error" && g.answer.code === "limit");
    const checked = seen.filter((g) =>
      g.answer?.type === "error" && g.answer.code === "auth_failed"
    );
    console.log(
      `owner login (spawn to connected): ${Math.round(quiet.ms)} ms quiet, ` +
        `${Math.round(during.ms)} ms during a flood of ${seen.length} guesses from 127.0.0.2 ` +
        `(${refusals.length} refused, ${checked.length} checked)`,
    );
    assert(seen.length >= 200, `only ${seen.length} guesses: not much of a flood`);
    assert(checked.length <= 10 + 1, `${checked.length} guesses checked`);
    assertEquals(during.client.events.some((e) => e.msg === "login refused for now"), false);
    // Bounded, and not slowed by the flood more than the machine is (a loose factor: 2 shared cores).
    assert(during.ms < Math.max(10_000, quiet.ms * 4), `${during.ms} ms vs ${quiet.ms} ms quiet`);
    await server.proc.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the owner logs in during a small flood from the same address", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-limit-" });
  try {
    // Two failed logins a second regained; after a burst of two, the flood makes about one a second
    // (room to spare: on a loaded machine handshakes arrive in clumps).
    const server = await startServer(dir, "max_failures: 5, failure_interval: 500ms");
    await using _s = server.proc;
    for (let i = 0; i < 2; i++) {
      const g = await guess(server.port, "127.0.0.1", `burst-${i}`);
      assertEquals(g.answer?.type === "error" && g.answer.code, "auth_failed");
    }
    const attack = flood(server.port, "127.0.0.1", { workers: 1, pauseMs: 900 });
    for (let i = 0; i < 100 && attack.seen.length < 4; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    let owner;
    try {
      owner = await ownerLogsIn(dir, server);
      await owner.client.stop();
    } finally {
      await attack.stop();
    }
    const seen = attack.seen;
    console.log(
      `owner login from the flooding address: ${Math.round(owner.ms)} ms (the flood: ` +
        `${seen.length} guesses at ~1/s, all checked)`,
    );
    assert(seen.length >= 4);
    assert(
      seen.every((g) => g.answer?.type === "error" && g.answer.code === "auth_failed"),
      "a flood under the refill rate is checked (and fails), never refused",
    );
    assertEquals(owner.client.events.some((e) => e.msg === "login refused for now"), false);
    await server.proc.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a refused client logs when to retry and waits that long instead of hammering", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-limit-" });
  try {
    const server = await startServer(dir, "max_failures: 3, failure_interval: 6s");
    await using _s = server.proc;
    // Three wrong tokens empty the address's bucket for 6 s (ample for a client to start).
    for (let i = 0; i < 3; i++) {
      const g = await guess(server.port, "127.0.0.1", `burst-${i}`);
      assertEquals(g.answer?.type === "error" && g.answer.code, "auth_failed");
    }
    const spawned = Date.now();
    await using client = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [],
    });
    const refused = await client.waitFor((e) => e.msg === "login refused for now", 20_000);
    const retry = refused.retry_after_s as number;
    assert(retry >= 1 && retry <= 6, JSON.stringify(refused));
    assert(RATE.test(String(refused.reason)), String(refused.reason));
    const wait = await client.waitFor((e) => e.msg === "reconnecting");
    assert((wait.delay_ms as number) >= retry * 1000, JSON.stringify(wait));
    const connected = await client.waitFor((e) => e.msg === "connected", 15_000);
    // By the client's own clock: from the refusal to the login.
    const waited = Date.parse(String(connected.ts)) - Date.parse(String(refused.ts));
    console.log(
      `refused ("${refused.reason}") ${Date.parse(String(refused.ts)) - spawned} ms after ` +
        `spawn, connected ${waited} ms after the refusal`,
    );
    assert(waited >= retry * 1000, `connected ${waited} ms after the refusal, told ${retry} s`);
    assertEquals(
      client.events.filter((e) => e.msg === "login refused for now").length,
      1,
      "one refusal, then one attempt that succeeds",
    );
    await client.stop();
    await server.proc.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

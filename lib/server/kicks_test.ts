import type { KickNotice } from "../storage/mod.ts";
import { assert, assertEquals } from "../testing/mod.ts";
import { createLogger } from "../util/mod.ts";
import { KICK_REASON, type KickableSession, kickLocal, listenKicks } from "./kicks.ts";

/** A logger whose JSON lines land in `lines`. */
function recording(lines: Array<Record<string, unknown>>) {
  return createLogger({
    level: "debug",
    format: "json",
    sink: (line) => lines.push(JSON.parse(line)),
  }).child("admin");
}

/** A session that records what it told its client, in order. */
function session(sessionId: string, clientId: string): KickableSession & { told: string[] } {
  const told: string[] = [];
  return {
    sessionId,
    clientId,
    told,
    mux: { flush: () => Promise.resolve(void told.push("flushed")) },
    goAway: (reason) => told.push(`go away: ${reason}`),
    close: (reason) => told.push(`closed: ${reason}`),
  };
}

/** Lets the flush that a kick waits for resolve. */
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("kickLocal: tells the session it names why, then closes it; others are untouched", async () => {
  const lines: Array<Record<string, unknown>> = [];
  const a = session("s-a", "laptop");
  const b = session("s-b", "desktop");
  assert(kickLocal([a, b], "s-b", { log: recording(lines) }));
  await settled();
  assertEquals([a.told, b.told], [[], [
    `go away: ${KICK_REASON}`,
    "flushed",
    `closed: ${KICK_REASON}`,
  ]]);
  assertEquals(lines.map((l) => [l.msg, l.session_id, l.client_id]), [
    ["session kicked through the admin API", "s-b", "desktop"],
  ]);
  assertEquals(kickLocal([a], "s-b", { log: recording(lines) }), false);
  assertEquals(lines.length, 1);
});

Deno.test("listenKicks: this node's kicks close its sessions, with who sent them", async () => {
  const lines: Array<Record<string, unknown>> = [];
  let deliver: (kick: KickNotice) => void = () => {};
  let unsubscribed = false;
  const store = {
    listenKicks: (fn: (kick: KickNotice) => void) => {
      deliver = fn;
      return Promise.resolve(() => Promise.resolve(void (unsubscribed = true)));
    },
  };
  const here = session("s-1", "laptop");
  const unlisten = await listenKicks(store, {
    node: "n1",
    sessions: () => [here],
    log: recording(lines),
  });
  // Another node's kick, and one of a session this node no longer holds: nothing closes.
  deliver({ node: "n2", session: "s-1", reason: "Go", by: "n3" });
  deliver({ node: "n1", session: "s-gone", reason: "Go", by: "n3" });
  assertEquals(here.told, []);
  deliver({ node: "n1", session: "s-1", reason: "Disconnected by ops", by: "n3" });
  await settled();
  assertEquals(here.told, [
    "go away: Disconnected by ops",
    "flushed",
    "closed: Disconnected by ops",
  ]);
  assertEquals(
    lines.map((l) => [l.level, l.msg, l.session_id, l.via]),
    [
      ["debug", "kicked session already gone", "s-gone", "n3"],
      ["info", "session kicked through the admin API", "s-1", "n3"],
    ],
  );
  await unlisten();
  assert(unsubscribed);
});

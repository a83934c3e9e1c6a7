import { assertEquals } from "../testing/mod.ts";
import { createLogger } from "../util/mod.ts";
import { RetryLog } from "./retry_log.ts";

/** A RetryLog whose lines land in `lines` and whose clock is `clock.now`. */
function recorded(summaryInterval?: number) {
  const lines: Array<Record<string, unknown>> = [];
  const clock = { now: 0 };
  const log = createLogger({
    level: "debug",
    format: "json",
    sink: (line) => lines.push(JSON.parse(line)),
  });
  const retries = new RetryLog(log, "127.0.0.1:7999", {
    now: () => clock.now,
    ...(summaryInterval ? { summaryInterval } : {}),
  });
  const seen = () => lines.map((l) => `${l.level} ${l.msg}`);
  return { retries, lines, clock, seen };
}

Deno.test("RetryLog: a new failure at its level, repeats at debug, a summary each minute", () => {
  const { retries, clock, seen, lines } = recorded();
  for (let attempt = 1; attempt <= 12; attempt++) {
    clock.now = attempt * 6_000; // 6 s apart: the 11th attempt is a minute after the first
    retries.failed("connection refused", "warn", { attempt, delay_ms: 6_000 });
  }
  assertEquals(seen(), [
    "warn reconnecting",
    ...Array(9).fill("debug reconnecting"),
    "debug reconnecting",
    "warn still trying 127.0.0.1:7999: connection refused (11 attempts)",
    "debug reconnecting",
  ]);
  assertEquals(lines[0], {
    ...lines[0],
    server: "127.0.0.1:7999",
    attempt: 1,
    delay_ms: 6_000,
    error: "connection refused",
  });
});

Deno.test("RetryLog: another reason, another level or a connection starts over", () => {
  const { retries, seen } = recorded(10_000);
  retries.failed("connection refused", "warn", { attempt: 1 });
  retries.failed("connection refused", "warn", { attempt: 2 });
  retries.failed("Connection closed by peer", "info", { attempt: 3 });
  retries.failed("connection refused", "warn", { attempt: 4 });
  retries.reset();
  retries.failed("connection refused", "warn", { attempt: 1 });
  assertEquals(seen(), [
    "warn reconnecting",
    "debug reconnecting",
    "info reconnecting",
    "warn reconnecting",
    "warn reconnecting",
  ]);
});

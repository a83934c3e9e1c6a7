/**
 * What recording one HTTP exchange costs in the inspector's recorder, with
 * nothing else running: `N` keep-alive GET exchanges with a 1 KiB answer
 * (heads as burrowd and nginx send them, one chunk each way, as the relay
 * hands them over) queued and drained through `Recorder`, spread over 50
 * connections like `wrk -c50`. Prints µs per exchange, best of `ROUNDS`.
 *
 *   deno run -A scripts/bench/prototypes/recorder_micro.ts [exchanges] [rounds]
 *
 * @module
 */

import { Recorder } from "../../../lib/client/mod.ts";

const N = Number(Deno.args[0] ?? 200_000);
const ROUNDS = Number(Deno.args[1] ?? 5);
const CONNS = 50;
const enc = new TextEncoder();

const request = enc.encode(
  "GET /1KiB.bin HTTP/1.1\r\nHost: bench.burrow.test\r\nX-Forwarded-For: 127.0.0.1\r\n" +
    "X-Forwarded-Proto: http\r\nX-Forwarded-Host: bench.burrow.test\r\nX-Real-IP: 127.0.0.1\r\n\r\n",
);
const head = enc.encode(
  "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 18:00:00 GMT\r\n" +
    "Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n" +
    "Last-Modified: Tue, 01 Dec 2026 17:59:00 GMT\r\nConnection: keep-alive\r\n" +
    'ETag: "674a0000-400"\r\nAccept-Ranges: bytes\r\n\r\n',
);
const response = new Uint8Array(head.length + 1024);
response.set(head);
crypto.getRandomValues(response.subarray(head.length));

let best = Infinity;
for (let round = 0; round < ROUNDS; round++) {
  const recorder = new Recorder();
  const conns = Array.from(
    { length: CONNS },
    (_, i) =>
      recorder.connection({
        tunnel: "web",
        remote: `127.0.0.${i}`,
        local: { hostname: "127.0.0.1", port: 8080 },
      }),
  );
  // The relay's buffers are reused: hand over the same arrays each time.
  const t0 = performance.now();
  for (let i = 0; i < N; i += CONNS) {
    for (const c of conns) c.request(request);
    for (const c of conns) c.response(response);
    recorder.drain();
  }
  const us = ((performance.now() - t0) * 1000) / N;
  recorder.close();
  if (recorder.ring.list().length === 0) throw new Error("nothing recorded");
  best = Math.min(best, us);
  console.log(`round ${round + 1}: ${us.toFixed(2)} µs per exchange`);
}
console.log(`best: ${best.toFixed(2)} µs per exchange (${N} exchanges, ${CONNS} connections)`);

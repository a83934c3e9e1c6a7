/**
 * The request inspector's memory bound end to end: real burrowd and burrow
 * processes with the inspector at its defaults (200 requests, 64 KiB
 * bodies), an origin in a process of its own, and 10,000 requests with
 * 1 MiB bodies (half uploads, half downloads) through the vhost port from
 * keep-alive workers. What is measured is the burrow client's resident
 * memory, from `/proc/<pid>/status`.
 */

import { assert, assertEquals, eventually } from "../lib/testing/mod.ts";
import { type Proc, startClient, startServer } from "./_procs.ts";

const TOKEN = "inspector-memory-e2e-token";
const MiB = 1024 * 1024;
const KiB = 1024;
const REQUESTS = 10_000;
const WORKERS = 8;
/** Inspector defaults (`client.inspect`). */
const MAX_REQUESTS = 200;
const MAX_BODY = 64 * KiB;
/**
 * README: the ring stays under max_requests × 2 × (max_body + 32 KiB), and
 * the queue of bytes waiting to be parsed is 4 MiB.
 */
const RING_BOUND = MAX_REQUESTS * 2 * (MAX_BODY + 32 * KiB);
const QUEUE = 4 * MiB;
/**
 * What carrying the traffic adds over the idle figure, inspector or not:
 * relay buffers, mux windows, TLS records, and garbage V8 has not collected
 * yet (it lets tens of MiB of dead buffers gather before a collection). The
 * same run with the inspector off grew the client's RSS by 18 to 34 MiB on
 * the 2-core VM; this is about twice that. A ring that kept whole bodies
 * (a view pinning each 1 MiB chunk) would be 200 MiB over.
 */
const TRAFFIC_MARGIN = 64 * MiB;

/** `VmRSS` and `VmHWM` (peak) of process `pid`, in bytes. */
async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rss: kib("VmRSS") * KiB, peak: kib("VmHWM") * KiB };
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

/** Starts `_bytes_origin.ts` and resolves to its port with a way to stop it. */
async function startOrigin(): Promise<{ port: number } & AsyncDisposable> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", new URL("./_bytes_origin.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
  };
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`The origin exited before it listened: ${text}`);
      text += value;
    }
    const port = JSON.parse(text.slice(0, text.indexOf("\n"))).port as number;
    return {
      port,
      async [Symbol.asyncDispose]() {
        await stop();
        await reader.cancel();
      },
    };
  } catch (error) {
    await stop();
    await reader.cancel();
    throw error;
  }
}

interface Summary {
  id: number;
  method: string;
  path: string;
  status: number | null;
  request_size: number;
  response_size: number | null;
  incomplete: string | null;
}

Deno.test("inspector memory: 10,000 requests of 1 MiB keep burrow's RSS under its bound", async () => {
  const dir = await Deno.makeTempDir({ prefix: "burrow-inspect-mem-" });
  try {
    await using origin = await startOrigin();
    const server = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n`);
    await using _server = server.proc;
    const vhost = await server.proc.waitFor((e) => e.msg === "http vhost listening");
    const client: Proc = await startClient(dir, {
      port: server.port,
      token: TOKEN,
      fingerprint: server.fingerprint,
      tunnels: [{
        name: "web",
        type: "http",
        local_port: origin.port,
        yaml: "custom_domains: [mem.test]",
      }],
      extra: `  inspect: {addr: "127.0.0.1:0"}\n`,
    });
    await using _client = client;
    const listening = await client.waitFor((e) => e.msg === "inspector listening");
    assertEquals([listening.max_requests, listening.max_body], [MAX_REQUESTS, MAX_BODY]);
    const api = String(listening.url);
    await client.waitFor((e) => e.msg === "tunnel ready");
    const pid = client.child.pid;
    const baseline = (await memoryOf(pid)).rss;

    // The curve, for the report; the peak asserted is the kernel's high-water mark.
    const curve: Array<[number, number]> = [];
    const began = performance.now();
    let sampling = Promise.resolve();
    const sampler = setInterval(() => {
      sampling = sampling.then(async () => {
        curve.push([performance.now() - began, (await memoryOf(pid)).rss]);
      }).catch(() => {});
    }, 200);

    // fetch does not let a request set Host: the vhost port serves as its HTTP proxy instead.
    using via = Deno.createHttpClient({ proxy: { url: `http://127.0.0.1:${vhost.port}` } });
    const body = Uint8Array.from({ length: MiB }, (_, i) => 97 + (i % 26));
    let next = 0;
    let downloaded = 0;
    let uploadsAcked = 0;
    const worker = async () => {
      for (let i; (i = next++) < REQUESTS;) {
        if (i % 2 === 0) {
          const res = await fetch(`http://mem.test/up?i=${i}`, {
            method: "POST",
            body,
            client: via,
          });
          assertEquals([res.status, await res.text()], [200, String(MiB)]);
          uploadsAcked += MiB;
        } else {
          const res = await fetch(`http://mem.test/down?size=${MiB}&i=${i}`, { client: via });
          assertEquals(res.status, 200);
          for await (const chunk of res.body!) downloaded += chunk.length;
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: WORKERS }, worker));
    } finally {
      clearInterval(sampler);
      await sampling;
    }
    const seconds = (performance.now() - began) / 1000;
    const { rss: end, peak } = await memoryOf(pid);

    // Every byte went through the tunnel, both ways.
    const counts = await (await fetch(`http://127.0.0.1:${origin.port}/count`)).json();
    assertEquals(counts, { received: (REQUESTS / 2) * MiB, sent: (REQUESTS / 2) * MiB });
    assertEquals([uploadsAcked, downloaded], [(REQUESTS / 2) * MiB, (REQUESTS / 2) * MiB]);

    // The ring holds the last max_requests, bodies cut at max_body with the rest counted.
    const list = await eventually("the ring full", async () => {
      const got = await (await fetch(`${api}/api/requests`)).json() as {
        requests: Summary[];
        dropped: number;
      };
      return got.requests.length === MAX_REQUESTS ? got : undefined;
    });
    // A connection the recorder fell behind on ends its recording with a marked exchange.
    const cut = list.requests.filter((x) => x.incomplete !== null);
    assert(cut.every((x) => x.incomplete === "queue_full"), JSON.stringify(cut));
    const whole = list.requests.filter((x) => x.incomplete === null);
    const up = whole.find((x) => x.method === "POST")!;
    const down = whole.find((x) => x.method === "GET")!;
    assertEquals([up.request_size, up.status, up.response_size], [MiB, 200, String(MiB).length]);
    assertEquals([down.request_size, down.status, down.response_size], [0, 200, MiB]);
    const upDetail = await (await fetch(`${api}/api/requests/${up.id}`)).json();
    assertEquals(upDetail.request.body.data, new TextDecoder().decode(body.subarray(0, MAX_BODY)));
    assertEquals([upDetail.request.body_size, upDetail.request.body_truncated], [MiB, true]);
    const downDetail = await (await fetch(`${api}/api/requests/${down.id}`)).json();
    assertEquals(downDetail.response.body.data.length, MAX_BODY);
    assertEquals([downDetail.response.body_size, downDetail.response.body_truncated], [MiB, true]);

    const bound = baseline + RING_BOUND + QUEUE + TRAFFIC_MARGIN;
    const step = Math.max(1, Math.floor(curve.length / 12));
    console.log(
      `inspector memory: ${REQUESTS} × 1 MiB in ${seconds.toFixed(1)} s (${WORKERS} workers), ` +
        `${list.dropped} chunks dropped (${cut.length} of the last ${MAX_REQUESTS} incomplete); RSS baseline ${
          mib(baseline)
        }, peak ${mib(peak)}, ` +
        `end ${mib(end)}, bound ${mib(bound)}\n  curve: ` +
        curve.filter((_, i) => i % step === 0)
          .map(([t, rss]) => `${(t / 1000).toFixed(0)}s ${mib(rss)}`).join(", "),
    );
    assert(peak <= bound, `peak RSS ${mib(peak)} over the bound ${mib(bound)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

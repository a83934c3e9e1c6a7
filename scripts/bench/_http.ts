/**
 * HTTP rows of the benchmark: keep-alive requests per second and latency
 * with wrk against static 1 KiB and 100 KiB files of a private nginx origin,
 * reached directly and through five relays measured in the same run:
 *
 * - nginx as a reverse proxy (`proxy_pass` to an upstream with `keepalive`);
 * - `ssh -N -T -R` (no pty: OpenSSH leaves Nagle on);
 * - `ssh -tt -R` running `sleep` (a pty: OpenSSH marks the session
 *   interactive and sets TCP_NODELAY);
 * - pipenet, a localtunnel-style tunnel on Node.js (server and client from
 *   npm, installed into a cache directory on first use), routed by `Host`;
 * - Burrow's HTTP tunnel behind `vhost_http_port`, routed by `Host`;
 * - the floor of a Deno tunnel (`_floor.ts`): two processes that relay bytes
 *   over one TLS connection and do nothing else, to read Burrow against what
 *   the runtime allows here; 1 KiB only, as it has no flow control and
 *   buffers whole large responses.
 *
 * @module
 */

import { join } from "node:path";
import { startBurrow } from "./_burrow.ts";
import { startFloor } from "./_floor.ts";
import { median } from "./_latency.ts";
import { startNginx } from "./_nginx.ts";
import { delay, freePort, type Proc, run, spawn } from "./_procs.ts";
import { num, ratio, type Row, verdict } from "./_report.ts";
import { attempt, type Section } from "./_section.ts";
import { startSshd, startSshTunnel } from "./_ssh.ts";
import { runWrk, type WrkResult, wrkScript } from "./_wrk.ts";

/** The pipenet release measured. */
export const PIPENET_VERSION = "1.4.3";

const BURROW_HOST = "bench.burrow.test";
/** Host of the HTTPS tunnel (the server's own certificate; wrk and curl do not verify it). */
const BURROW_TLS_HOST = "secure.burrow.test";
const PIPENET_DOMAIN = "pipenet.test";
const PIPENET_SUBDOMAIN = "benchpipe";
const READY_MS = 20_000;
/** wrk `-c`. */
const CONNECTIONS = 50;

/** Settings of {@linkcode httpBench}. */
export interface HttpSettings {
  quick: boolean;
  /** wrk runs per route and size; the median is reported. */
  runs: number;
  /** wrk `-d`. */
  httpSeconds: number;
}

/** The routes, in table order. */
export const HTTP_ROUTES = [
  "direct",
  "nginx",
  "ssh",
  "sshPty",
  "pipenet",
  "burrow",
  // Right after the same tunnel with it off: each pass measures the two back to back.
  "burrowInspect",
  "burrowTls",
  "floor",
] as const;
/** One way to reach the origin. */
export type HttpRouteKey = typeof HTTP_ROUTES[number];

/** Labels of the routes. */
export const HTTP_LABELS: Record<HttpRouteKey, string> = {
  direct: "direct",
  nginx: "nginx proxy_pass",
  ssh: "ssh -R (no pty)",
  sshPty: "ssh -tt -R (pty)",
  pipenet: `pipenet ${PIPENET_VERSION}`,
  burrow: "Burrow",
  burrowTls: "Burrow HTTPS",
  burrowInspect: "Burrow, inspector on",
  floor: "Deno relay floor",
};

/** The response sizes. */
export const HTTP_SIZES = [
  { key: "1KiB", label: "1 KiB", bytes: 1024 },
  { key: "100KiB", label: "100 KiB", bytes: 100 * 1024 },
] as const;
type SizeKey = typeof HTTP_SIZES[number]["key"];

/** The median of a route's wrk runs at one size, and the runs. */
export interface HttpMeasurement {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  runs: WrkResult[];
}

/** What the HTTP part measured; part of `--json`. */
export interface HttpResults {
  method: string;
  /** Size → route → median of the runs. */
  sizes: Record<SizeKey, Partial<Record<HttpRouteKey, HttpMeasurement>>>;
  /** Why the Burrow route did not come up or failed, when it did. */
  burrowError?: string;
}

interface Route {
  key: HttpRouteKey;
  port: number;
  /** `Host` header for host-routed relays. */
  host?: string;
  /** Spoken over TLS (`https://`). */
  tls?: boolean;
}

/** A GET over TLS with curl (the certificate not verified); "" for a 200 with `bytes` of body. */
async function probeTls(port: number, host: string, path: string, bytes: number): Promise<string> {
  try {
    const out = await new Deno.Command("curl", {
      args: [
        "-sk",
        "--max-time",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        "-H",
        `Host: ${host}`,
        `https://127.0.0.1:${port}${path}`,
      ],
      stdout: "piped",
      stderr: "null",
    }).output();
    const [code, size] = new TextDecoder().decode(out.stdout).split(" ");
    if (code !== "200") return `answered ${code || "nothing"}`;
    return Number(size) === bytes ? "" : `${size} body bytes, expected ${bytes}`;
  } catch (error) {
    return `curl: ${(error as Error).message}`;
  }
}

/**
 * One HTTP/1.1 GET with `Connection: close`, given up after 5 s; resolves to
 * "" when the answer is a 200 with `bytes` of body, else to what was wrong.
 */
async function probe(port: number, host: string, path: string, bytes: number): Promise<string> {
  let conn: Deno.TcpConn | undefined;
  const timer = setTimeout(() => {
    try {
      conn?.close();
    } catch { /* closed */ }
  }, 5000);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const request = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    for (let n; (n = await conn.read(buf)) !== null;) chunks.push(buf.slice(0, n));
    const all = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    const text = new TextDecoder("latin1").decode(all);
    const end = text.indexOf("\r\n\r\n");
    const status = text.slice(0, text.indexOf("\r\n"));
    if (!/^HTTP\/1\.[01] 200 /.test(status)) return `answered "${status || "nothing"}"`;
    const body = end < 0 ? 0 : all.length - end - 4;
    return body === bytes ? "" : `${body} body bytes, expected ${bytes}`;
  } catch (error) {
    return (error as Error).message;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

/** Probes until a full 200 answer arrives; throws with the last problem at the deadline. */
async function waitForHttp(
  route: Route,
  path: string,
  bytes: number,
  procs: Proc[],
  timeoutMs = READY_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const host = route.host ?? `127.0.0.1:${route.port}`;
  for (;;) {
    const problem = route.tls
      ? await probeTls(route.port, host, path, bytes)
      : await probe(route.port, host, path, bytes);
    if (problem === "") return;
    const dead = procs.find((p) => p.exited);
    if (dead) throw new Error(`${dead.name} exited; last output:\n${dead.tail()}`);
    if (Date.now() > deadline) {
      throw new Error(
        `No good answer from 127.0.0.1:${route.port} (Host: ${host}) ${path} within ` +
          `${timeoutMs} ms: ${problem}`,
      );
    }
    await delay(50);
  }
}

/** pipenet's CLI, installed with npm into a cache directory unless already there. */
async function pipenetCli(progress: (m: string) => void): Promise<string> {
  const cache = Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/tmp", ".cache");
  const dir = join(cache, "burrow-bench", `pipenet-${PIPENET_VERSION}`);
  const packageJson = join(dir, "node_modules", "pipenet", "package.json");
  try {
    await Deno.stat(packageJson);
  } catch {
    progress(`installing pipenet@${PIPENET_VERSION} with npm into ${dir}`);
    await Deno.mkdir(dir, { recursive: true });
    await run("npm", [
      "install",
      "--prefix",
      dir,
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      `pipenet@${PIPENET_VERSION}`,
    ], 300_000);
  }
  const pkg = JSON.parse(await Deno.readTextFile(packageJson)) as {
    bin?: string | Record<string, string>;
  };
  const bin = typeof pkg.bin === "string" ? pkg.bin : pkg.bin?.pipenet;
  if (!bin) throw new Error(`No "pipenet" bin in ${packageJson}`);
  return join(dir, "node_modules", "pipenet", bin);
}

async function writeFiles(www: string): Promise<void> {
  await Deno.mkdir(www, { recursive: true });
  for (const size of HTTP_SIZES) {
    const data = new Uint8Array(size.bytes);
    for (let off = 0; off < data.length; off += 65536) {
      crypto.getRandomValues(data.subarray(off, Math.min(off + 65536, data.length)));
    }
    await Deno.writeFile(join(www, `${size.key}.bin`), data);
  }
}

/** Starts the origin and every relay that will come up; failures are recorded and skipped. */
async function setUp(section: Section, stack: AsyncDisposableStack, results: HttpResults) {
  const { dir } = section;
  const www = join(dir, "www");
  await writeFiles(www);
  const probePath = `/${HTTP_SIZES[0].key}.bin`;
  const probeBytes = HTTP_SIZES[0].bytes;

  const originPort = freePort();
  stack.use(
    await startNginx("nginx (origin)", join(dir, "origin"), {
      readyPort: originPort,
      http: `
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:${originPort};
    root ${www};
  }`,
    }),
  );
  const routes: Route[] = [{ key: "direct", port: originPort }];

  const up = async (
    key: HttpRouteKey,
    start: () => Promise<{ route: Route; procs: Proc[] }>,
  ): Promise<void> => {
    section.progress(`starting ${HTTP_LABELS[key]}`);
    const started = await attempt(section, `start ${HTTP_LABELS[key]} (HTTP)`, async () => {
      try {
        const { route, procs } = await start();
        await waitForHttp(route, probePath, probeBytes, procs);
        return route;
      } catch (error) {
        if (key === "burrow") results.burrowError = (error as Error).message;
        throw error;
      }
    });
    if (started) routes.push(started);
  };

  const nginx = up("nginx", async () => {
    const port = freePort();
    const proc = stack.use(
      await startNginx("nginx (proxy)", join(dir, "proxy"), {
        readyPort: port,
        http: `
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  upstream origin {
    server 127.0.0.1:${originPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Room for a 100 KiB answer in memory (no temp file).
      proxy_buffers 16 16k;
      proxy_busy_buffers_size 32k;
    }
  }`,
      }),
    );
    return { route: { key: "nginx", port }, procs: [proc] };
  });

  const ssh = (async () => {
    const sshd = await attempt(section, "start sshd (HTTP)", async () => {
      await Deno.mkdir(join(dir, "ssh"));
      const sshd = await startSshd(join(dir, "ssh"));
      stack.use(sshd.proc);
      return sshd;
    });
    if (!sshd) return;
    for (const key of ["ssh", "sshPty"] as const) {
      await up(key, async () => {
        const t = await startSshTunnel(HTTP_LABELS[key], sshd, [originPort], {
          pty: key === "sshPty",
        });
        stack.use(t.proc);
        return { route: { key, port: t.remotePorts.get(originPort)! }, procs: [t.proc, sshd.proc] };
      });
    }
  })();

  const pipenet = up("pipenet", async () => {
    const cli = await pipenetCli(section.progress);
    const port = freePort();
    // Every option is given on the command line: the CLI also reads same-named
    // environment variables (yargs .env()), which must not leak in.
    const server = stack.use(spawn("pipenet server", "node", {
      args: [
        cli,
        "server",
        "--port",
        String(port),
        "--address",
        "127.0.0.1",
        "--domain",
        PIPENET_DOMAIN,
      ],
    }));
    await server.waitForLine(
      (l) => l.startsWith("pipenet server listening on port"),
      READY_MS,
      "pipenet server listening",
    );
    const client = stack.use(spawn("pipenet client", "node", {
      args: [
        cli,
        "client",
        "--port",
        String(originPort),
        "--local-host",
        "127.0.0.1",
        "--host",
        `http://127.0.0.1:${port}`,
        "--subdomain",
        PIPENET_SUBDOMAIN,
      ],
    }));
    await client.waitForLine((l) => l.startsWith("your url is:"), READY_MS, "pipenet client url");
    return {
      route: { key: "pipenet", port, host: `${PIPENET_SUBDOMAIN}.${PIPENET_DOMAIN}` },
      procs: [server, client],
    };
  });

  // One Burrow pair serves both: plain HTTP and HTTPS (TLS ended by burrowd) vhost ports.
  const vhostPort = freePort();
  const vhostTlsPort = freePort();
  const burrowDir = join(dir, "burrow");
  const pair = (async () => {
    await Deno.mkdir(burrowDir);
    return stack.use(
      await startBurrow(burrowDir, [
        { name: "web", type: "http", localPort: originPort, customDomains: [BURROW_HOST] },
        { name: "secure", type: "https", localPort: originPort, customDomains: [BURROW_TLS_HOST] },
      ], { server: { vhost_http_port: vhostPort, vhost_https_port: vhostTlsPort } }),
    );
  })();
  const burrow = up("burrow", async () => {
    const b = await pair;
    return {
      route: { key: "burrow", port: vhostPort, host: BURROW_HOST },
      procs: [b.server, b.client],
    };
  });
  const burrowTls = up("burrowTls", async () => {
    const b = await pair;
    return {
      route: { key: "burrowTls", port: vhostTlsPort, host: BURROW_TLS_HOST, tls: true },
      procs: [b.server, b.client],
    };
  });

  // A second pair whose client records every exchange (client.inspect): what the inspector costs.
  const inspectPort = freePort();
  const burrowInspect = up("burrowInspect", async () => {
    const inspectDir = join(dir, "burrow-inspect");
    await Deno.mkdir(inspectDir);
    const b = stack.use(
      await startBurrow(inspectDir, [
        { name: "web", type: "http", localPort: originPort, customDomains: [BURROW_HOST] },
      ], {
        server: { vhost_http_port: inspectPort },
        client: { inspect: { addr: `127.0.0.1:${freePort()}` } },
      }),
    );
    return {
      route: { key: "burrowInspect", port: inspectPort, host: BURROW_HOST },
      procs: [b.server, b.client],
    };
  });

  const floor = up("floor", async () => {
    const { port, procs } = await startFloor(join(dir, "floor"), originPort, stack);
    return { route: { key: "floor", port }, procs };
  });

  // The relays start side by side; each one's failure is its own.
  await Promise.all([nginx, ssh, pipenet, burrow, burrowTls, burrowInspect, floor]);
  return routes.sort((a, b) => HTTP_ROUTES.indexOf(a.key) - HTTP_ROUTES.indexOf(b.key));
}

/** Runs the HTTP part; failures land in `section.errors` and leave their routes out. */
export async function httpBench(section: Section, s: HttpSettings): Promise<HttpResults> {
  const results: HttpResults = {
    method:
      `wrk --latency -t2 -c${CONNECTIONS} -d${s.httpSeconds}s (keep-alive), median of ${s.runs} ` +
      "interleaved run(s); nginx origin and proxy with one process each",
    sizes: { "1KiB": {}, "100KiB": {} },
  };
  await using stack = section.owner.use(new AsyncDisposableStack());
  try {
    await Deno.mkdir(section.dir, { recursive: true });
    const routes = await setUp(section, stack, results);
    section.progress(`HTTP routes up: ${routes.map((r) => HTTP_LABELS[r.key]).join(", ")}`);
    const script = await wrkScript(section.dir);
    const wrk = (route: Route, size: typeof HTTP_SIZES[number], seconds: number) =>
      runWrk(`${route.tls ? "https" : "http"}://127.0.0.1:${route.port}/${size.key}.bin`, script, {
        seconds,
        threads: 2,
        connections: CONNECTIONS,
        ...(route.host ? { host: route.host } : {}),
        minBodyBytes: size.bytes,
      });

    if (!s.quick) {
      // Untimed: lets the JITs and the relays' buffers settle before measuring.
      for (const route of routes.filter((r) => r.key !== "direct")) {
        section.progress(`warm-up wrk -d1s ${HTTP_LABELS[route.key]}`);
        await wrk(route, HTTP_SIZES[0], 1).catch(() => {});
      }
    }
    const runs = new Map<string, WrkResult[]>();
    const failed = new Set<string>();
    for (let i = 0; i < s.runs; i++) {
      for (const size of HTTP_SIZES) {
        for (const route of routes) {
          const id = `${size.key} ${route.key}`;
          if (failed.has(id) || (route.key === "floor" && size.key !== "1KiB")) continue;
          section.progress(
            `wrk ${size.label} ${HTTP_LABELS[route.key]} (run ${i + 1}/${s.runs})`,
          );
          const r = await attempt(
            section,
            `wrk ${size.label} through ${HTTP_LABELS[route.key]}`,
            () => wrk(route, size, s.httpSeconds),
          );
          if (!r) {
            failed.add(id);
            runs.delete(id);
            if (route.key === "burrow") {
              results.burrowError ??= section.errors.at(-1) ?? "wrk failed";
            }
            continue;
          }
          if (r.inFlight < CONNECTIONS / 2) {
            section.progress(
              `  only ~${r.inFlight.toFixed(1)} of ${CONNECTIONS} connections were being ` +
                "answered: the others waited past the run (latencies count answered requests)",
            );
          }
          runs.set(id, [...runs.get(id) ?? [], r]);
        }
      }
    }
    for (const size of HTTP_SIZES) {
      for (const key of HTTP_ROUTES) {
        const list = runs.get(`${size.key} ${key}`);
        if (!list) continue;
        results.sizes[size.key][key] = {
          requestsPerSecond: median(list.map((r) => r.requestsPerSecond)),
          p50Ms: median(list.map((r) => r.p50Ms)),
          p99Ms: median(list.map((r) => r.p99Ms)),
          runs: list,
        };
      }
    }
  } catch (error) {
    const message = `HTTP: ${(error as Error).message}`;
    section.errors.push(message);
    section.progress(`FAILED ${message.split("\n")[0]}`);
  }
  return results;
}

/**
 * The median of `a[i] / b[i]` over the passes (req/s), when both routes
 * have every pass; undefined otherwise.
 */
function pairedRatio(a: WrkResult[], b: WrkResult[] | undefined): number | undefined {
  if (!b || a.length !== b.length || a.length === 0) return undefined;
  if (b.some((r) => r.requestsPerSecond <= 0)) return undefined;
  return median(a.map((r, i) => r.requestsPerSecond / b[i]!.requestsPerSecond));
}

/** A target on Burrow against one other route. */
interface Target {
  text: string;
  ok: (burrow: number, other: number) => boolean;
}

const TARGETS: Partial<Record<string, Target>> = {
  "1KiB rps sshPty": { text: "≥ 0.9× other", ok: (b, o) => b / o >= 0.9 },
  "1KiB p99 sshPty": { text: "≤ 1.2× other", ok: (b, o) => b / o <= 1.2 },
  "100KiB rps sshPty": { text: "≥ 1.0× other", ok: (b, o) => b / o >= 1.0 },
};

/** One-line, bounded form of an error for a table cell, without wrk's URL prefix. */
function short(error: string): string {
  const line = error.split("\n")[0]!.replace(/^.*?wrk http:\/\/\S+: /, "");
  return line.length > 110 ? `${line.slice(0, 109)}…` : line;
}

/**
 * Table rows: for each size, requests per second and p99 latency of Burrow
 * against each other relay (the "other" column), with the targets.
 */
export function httpRows(r: HttpResults): Row[] {
  const out: Row[] = [];
  const burrowMeasured = HTTP_SIZES.some((size) => r.sizes[size.key].burrow);
  if (r.burrowError || !burrowMeasured) {
    out.push({
      metric: "Burrow HTTP tunnel (vhost_http_port)",
      direct: "—",
      ssh: "—",
      burrow: "FAIL",
      vsSsh: "—",
      vsDirect: "—",
      target: "works",
      met: `NO (${short(r.burrowError ?? "not measured")})`,
    });
  }
  for (const size of HTTP_SIZES) {
    const m = r.sizes[size.key];
    for (const metric of ["rps", "p99"] as const) {
      const value = (k: HttpRouteKey) => metric === "rps" ? m[k]?.requestsPerSecond : m[k]?.p99Ms;
      const digits = metric === "rps" ? 0 : 2;
      for (const other of ["nginx", "ssh", "sshPty", "pipenet", "floor"] as const) {
        if (other === "floor" && size.key !== "1KiB") continue;
        const b = value("burrow");
        const o = value(other);
        const target = TARGETS[`${size.key} ${metric} ${other}`];
        const met = target && b !== undefined && o !== undefined ? verdict(target.ok(b, o)) : "—";
        out.push({
          metric: `${size.label} ${metric === "rps" ? "req/s" : "p99 ms"}, other: ${
            HTTP_LABELS[other]
          }`,
          direct: num(value("direct"), digits),
          ssh: num(o, digits),
          burrow: num(b, digits),
          vsSsh: ratio(b, o),
          vsDirect: ratio(b, value("direct")),
          target: target?.text ?? "report",
          met,
        });
      }
    }
  }
  // The floor against ssh -tt: how near the runtime itself comes to the targets here.
  for (const size of HTTP_SIZES) {
    const m = r.sizes[size.key];
    if (!m.floor) continue;
    for (const metric of ["rps", "p99"] as const) {
      const value = (k: HttpRouteKey) => metric === "rps" ? m[k]?.requestsPerSecond : m[k]?.p99Ms;
      const digits = metric === "rps" ? 0 : 2;
      const f = value("floor");
      const o = value("sshPty");
      out.push({
        metric: `${size.label} ${metric === "rps" ? "req/s" : "p99 ms"} of the Deno relay ` +
          `floor (in the Burrow column), other: ${HTTP_LABELS.sshPty}`,
        direct: num(value("direct"), digits),
        ssh: num(o, digits),
        burrow: num(f, digits),
        vsSsh: ratio(f, o),
        vsDirect: ratio(f, value("direct")),
        target: "report",
        met: "—",
      });
    }
  }
  // The inspector on (every exchange recorded) against the same tunnel with it off, same run.
  // Judged on the median of each pass's ratio (the two are measured back to back in a pass), so
  // that a pass the machine slowed down counts once rather than pairing a quiet median with a
  // busy one; the ratio of the medians is in the row's label.
  for (const size of HTTP_SIZES) {
    const m = r.sizes[size.key];
    if (!m.burrowInspect) continue;
    for (const metric of ["rps", "p99"] as const) {
      const value = (k: HttpRouteKey) => metric === "rps" ? m[k]?.requestsPerSecond : m[k]?.p99Ms;
      const digits = metric === "rps" ? 0 : 2;
      const b = value("burrowInspect");
      const o = value("burrow");
      const judged = size.key === HTTP_SIZES[0].key && metric === "rps";
      const paired = judged ? pairedRatio(m.burrowInspect.runs, m.burrow?.runs) : undefined;
      const vs = paired ?? (b !== undefined && o !== undefined && o > 0 ? b / o : undefined);
      out.push({
        metric: `${size.label} ${metric === "rps" ? "req/s" : "p99 ms"} with the inspector on, ` +
          "other: Burrow with it off" +
          (paired !== undefined ? ` (ratio of the medians ${ratio(b, o)})` : ""),
        direct: num(value("direct"), digits),
        ssh: num(o, digits),
        burrow: num(b, digits),
        vsSsh: paired !== undefined ? ratio(paired, 1) : ratio(b, o),
        vsDirect: ratio(b, value("direct")),
        target: judged ? "≥ 0.8× other (median of the passes' ratios)" : "report",
        met: judged ? (vs === undefined ? "—" : vs >= 0.8 ? "yes" : "NO") : "—",
      });
    }
  }
  // HTTPS, TLS ended by burrowd, against the same tunnel over plain HTTP: what TLS costs.
  for (const size of HTTP_SIZES) {
    const m = r.sizes[size.key];
    if (!m.burrowTls) continue;
    for (const metric of ["rps", "p99"] as const) {
      const value = (k: HttpRouteKey) => metric === "rps" ? m[k]?.requestsPerSecond : m[k]?.p99Ms;
      const digits = metric === "rps" ? 0 : 2;
      const b = value("burrowTls");
      const o = value("burrow");
      out.push({
        metric: `${size.label} ${metric === "rps" ? "req/s" : "p99 ms"} over HTTPS, other: ` +
          "Burrow over HTTP",
        direct: num(value("direct"), digits),
        ssh: num(o, digits),
        burrow: num(b, digits),
        vsSsh: ratio(b, o),
        vsDirect: ratio(b, value("direct")),
        target: "report",
        met: "—",
      });
    }
  }
  return out;
}

/**
 * Private nginx instances for the benchmark: the HTTP origin, the reverse
 * proxy and the UDP/TCP stream relay, each its own foreground process
 * (`daemon off`, `master_process off`: one process, one PID to stop) with a
 * generated configuration, temp directories and pid file in a directory of
 * ours. The system's nginx service is never touched.
 *
 * @module
 */

import { join } from "node:path";
import { delay, type Proc, spawn } from "./_procs.ts";

const NGINX = "/usr/sbin/nginx";
const READY_MS = 10_000;

/** What `nginx -V` says about the build, read once. */
interface Build {
  modulesPath: string;
  /** `static`, `dynamic` or `absent`. */
  stream: "static" | "dynamic" | "absent";
  /** HTTP modules with a temp path directive that this build lacks. */
  without: Set<string>;
}

let build: Promise<Build> | undefined;

function readBuild(): Promise<Build> {
  build ??= (async () => {
    // `nginx -V` prints on stderr.
    const out = await new Deno.Command(NGINX, { args: ["-V"], stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    const without = new Set<string>();
    for (const m of ["fastcgi", "uwsgi", "scgi", "proxy"]) {
      if (text.includes(`--without-http_${m}_module`)) without.add(m);
    }
    return {
      modulesPath: /--modules-path=(\S+)/.exec(text)?.[1] ?? "/usr/lib/nginx/modules",
      stream: /--with-stream=dynamic/.test(text)
        ? "dynamic"
        : /--with-stream(\s|$)/.test(text)
        ? "static"
        : "absent",
      without,
    };
  })();
  return build;
}

/** Options of {@linkcode startNginx}. */
export interface NginxOptions {
  /** Contents of the `http { … }` block. */
  http?: string;
  /** Contents of the `stream { … }` block (loads the stream module when it is dynamic). */
  stream?: string;
  /** A TCP port the configuration listens on, connected to until nginx is up. */
  readyPort: number;
}

/**
 * Starts nginx with its files in `dir` (created) and the given blocks, and
 * waits until `readyPort` accepts connections.
 */
export async function startNginx(name: string, dir: string, options: NginxOptions): Promise<Proc> {
  const b = await readBuild();
  await Deno.mkdir(dir, { recursive: true });
  const lines: string[] = [];
  if (options.stream !== undefined) {
    if (b.stream === "absent") throw new Error("This nginx was built without the stream module");
    if (b.stream === "dynamic") {
      const module = join(b.modulesPath, "ngx_stream_module.so");
      try {
        await Deno.stat(module);
      } catch {
        throw new Error(
          `nginx's stream module is not installed (no ${module}): apt-get install libnginx-mod-stream`,
        );
      }
      lines.push(`load_module ${module};`);
    }
  }
  // As root, nginx would otherwise switch to "nobody", who cannot read our 0700 temp dir.
  if (Deno.uid() === 0) lines.push("user root;");
  lines.push(
    "daemon off;",
    "master_process off;",
    `pid ${join(dir, "nginx.pid")};`,
    "error_log stderr warn;",
    "events { worker_connections 4096; }",
  );
  if (options.http !== undefined) {
    const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
      .filter((m) => !b.without.has(m))
      .map((m) => `${m}_temp_path ${join(dir, `${m}_temp`)};`);
    lines.push(
      "http {",
      "  access_log off;",
      "  default_type application/octet-stream;",
      ...temp.map((t) => `  ${t}`),
      options.http,
      "}",
    );
  }
  if (options.stream !== undefined) lines.push("stream {", options.stream, "}");
  const config = join(dir, "nginx.conf");
  await Deno.writeTextFile(config, lines.join("\n") + "\n");
  const proc = spawn(name, NGINX, { args: ["-p", dir, "-e", "stderr", "-c", config] });
  try {
    await waitForTcp(options.readyPort, proc, READY_MS);
  } catch (error) {
    await proc.stop();
    throw error;
  }
  return proc;
}

/** Connects to 127.0.0.1:`port` until it accepts, failing early when `proc` exits. */
export async function waitForTcp(port: number, proc: Proc, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exited) {
      throw new Error(
        `${proc.name} exited before listening on ${port}; last output:\n${proc.tail()}`,
      );
    }
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      if (Date.now() > deadline) {
        throw new Error(
          `Timed out after ${timeoutMs} ms: ${proc.name} listening on ${port}; last output:\n` +
            proc.tail(),
        );
      }
      await delay(20);
    }
  }
}

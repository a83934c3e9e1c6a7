/**
 * Raw HTTP/1.1 on both ends of a tunnel, for the tests that send what a
 * browser never would: an origin on raw TCP that records every byte it
 * receives, a visitor that writes bytes as given and reads what comes back,
 * and burrowd with its client serving a set of HTTP(S) tunnels.
 */

import { type Proc, startClient, startServer } from "./_procs.ts";

const TOKEN = "raw-http-e2e-token";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * An origin on raw TCP: records everything it receives; answers 101 to a
 * WebSocket upgrade of `/ws` (then echoes), and 200 "ok" to anything else.
 */
export function rawOrigin(
  name?: string,
): { port: number; received: () => string } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let log = "";
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(65536);
        let pending = "";
        let echo = false;
        try {
          while (true) {
            const n = await conn.read(buf);
            if (n === null) break;
            const text = decoder.decode(buf.subarray(0, n));
            log += text;
            if (echo) {
              await conn.write(buf.slice(0, n));
              continue;
            }
            pending += text;
            let end: number;
            while ((end = pending.indexOf("\r\n\r\n")) >= 0) {
              const head = pending.slice(0, end);
              pending = pending.slice(end + 4);
              if (/^GET \/ws /.test(head) && /upgrade: websocket/i.test(head)) {
                await conn.write(encoder.encode(
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                ));
                echo = true;
                if (pending) await conn.write(encoder.encode(pending));
                break;
              }
              // Named origins answer with their name and the path they were asked for.
              const body = name ? `${name}:${head.split(" ")[1]}` : "ok";
              await conn.write(encoder.encode(
                `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-Origin: raw\r\n\r\n${body}`,
              ));
            }
          }
        } catch { /* visitor side gone */ }
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    received: () => log,
    [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      return Promise.resolve();
    },
  };
}

/**
 * Connects to `to` (a port on 127.0.0.1, or a function that opens the
 * connection, such as a TLS one), sends `first`, reads the answer until
 * `until` appears in it, then sends `second` (when given) and reads until
 * the server closes or 3 s pass.
 */
export async function visit(
  to: number | (() => Promise<Deno.Conn>),
  first: string,
  until: RegExp,
  second?: string,
): Promise<{ answer: string; closed: boolean }> {
  const conn = typeof to === "number"
    ? await Deno.connect({ hostname: "127.0.0.1", port: to })
    : await to();
  const buf = new Uint8Array(65536);
  let answer = "";
  let closed = false;
  const deadline = Date.now() + 10_000;
  const readSome = async (ms: number): Promise<boolean> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms)),
    ]);
    clearTimeout(timer);
    if (n === "timeout") return true;
    if (n === null) {
      closed = true;
      return false;
    }
    answer += decoder.decode(buf.subarray(0, n));
    return true;
  };
  try {
    await conn.write(encoder.encode(first));
    while (!until.test(answer) && Date.now() < deadline && await readSome(deadline - Date.now()));
    if (second !== undefined && !closed) {
      await conn.write(encoder.encode(second)).catch(() => 0);
    }
    const stop = Date.now() + 3_000;
    while (!closed && Date.now() < stop && await readSome(stop - Date.now()));
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
  return { answer, closed };
}

/** A tunnel of {@linkcode vhostWith}. */
export type TunnelSpec = { name: string; type: "http" | "https"; local_port: number; yaml: string };

/**
 * burrowd with a vhost HTTP port (and the HTTPS port when `extra` sets
 * `vhost_https_port`) and a client serving `tunnels`, each one ready.
 */
export async function vhostWith(
  dir: string,
  tunnels: TunnelSpec[],
  extra = "",
): Promise<{ server: Proc; http: number; https: number | undefined } & AsyncDisposable> {
  const started = await startServer(dir, TOKEN, 0, `  vhost_http_port: 0\n${extra}`);
  const server = started.proc;
  try {
    const http = (await server.waitFor((e) => e.msg === "http vhost listening")).port as number;
    const https = extra.includes("vhost_https_port")
      ? (await server.waitFor((e) => e.msg === "https vhost listening")).port as number
      : undefined;
    const client = await startClient(dir, {
      port: started.port,
      token: TOKEN,
      fingerprint: started.fingerprint,
      tunnels,
    });
    const stop = async () => {
      await client[Symbol.asyncDispose]();
      await server[Symbol.asyncDispose]();
    };
    try {
      for (const { name } of tunnels) {
        await client.waitFor((e) => e.msg === "tunnel ready" && e.tunnel === name);
      }
    } catch (error) {
      await stop();
      throw error;
    }
    return { server, http, https, [Symbol.asyncDispose]: stop };
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
}

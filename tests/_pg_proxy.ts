/**
 * A TCP proxy on 127.0.0.1 in front of PostgreSQL that a test switches
 * between the outage shapes: forwarding, refusing connections (the listener
 * is closed and open connections are cut, as when PostgreSQL is down), and
 * hanging (nothing is forwarded either way and new connections are held
 * open, as when a network path or the server stops answering).
 */

import { freePort, writeAll } from "./_procs.ts";

/** How the proxy treats connections. */
export type ProxyMode = "forward" | "refuse" | "hang";

/** A running proxy; `close()` (or disposal) ends it and every connection. */
export interface PgProxy extends AsyncDisposable {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /** The current mode. */
  readonly mode: ProxyMode;
  /** Forwards again: held connections are connected and buffered bytes flow. */
  forward(): void;
  /** Closes the listener and cuts every connection. */
  refuse(): void;
  /** Stops forwarding: connections stay open, nothing passes, new ones are held. */
  hang(): void;
  /** Ends the proxy. */
  close(): Promise<void>;
}

/** Starts a proxy to `127.0.0.1:target`, forwarding. */
export function pgProxy(target: number): PgProxy {
  const port = freePort();
  let mode: ProxyMode = "forward";
  let listener: Deno.TcpListener | null = null;
  let accepting: Promise<void> = Promise.resolve();
  let resume = Promise.withResolvers<void>();
  let closed = false;
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const track = (task: Promise<void>) => {
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  };
  /** Resolves when bytes may pass. */
  const gate = () => (mode === "hang" && !closed ? resume.promise : Promise.resolve());
  const cut = (c: Deno.Conn) => {
    conns.delete(c);
    try {
      c.close();
    } catch { /* closed */ }
  };
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        await gate();
        const n = await from.read(buf);
        if (n === null) break;
        // Bytes read just as the proxy started hanging are held too.
        await gate();
        await writeAll(to, buf.subarray(0, n));
      }
    } catch { /* cut */ }
    cut(from);
    cut(to);
  };
  const serve = async (client: Deno.Conn) => {
    await gate();
    if (closed || !conns.has(client)) return;
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port: target }).catch(() => null);
    if (!upstream || closed || !conns.has(client)) {
      upstream?.close();
      cut(client);
      return;
    }
    conns.add(upstream);
    await Promise.all([pump(client, upstream), pump(upstream, client)]);
  };
  const listen = () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port });
    listener = l;
    accepting = (async () => {
      try {
        for await (const c of l) {
          conns.add(c);
          track(serve(c));
        }
      } catch { /* closed */ }
    })();
  };
  const stopListening = () => {
    try {
      listener?.close();
    } catch { /* closed */ }
    listener = null;
  };
  listen();
  return {
    port,
    get mode() {
      return mode;
    },
    forward() {
      if (!listener) listen();
      mode = "forward";
      resume.resolve();
    },
    refuse() {
      mode = "refuse";
      stopListening();
      for (const c of [...conns]) cut(c);
      resume.resolve();
    },
    hang() {
      if (!listener) listen();
      if (mode !== "hang") resume = Promise.withResolvers<void>();
      mode = "hang";
    },
    async close() {
      closed = true;
      stopListening();
      for (const c of [...conns]) cut(c);
      resume.resolve();
      await accepting;
      await Promise.allSettled([...tasks]);
    },
    async [Symbol.asyncDispose]() {
      await this.close();
    },
  };
}

/**
 * The floor of a tunnel in this runtime: the least a Deno reverse tunnel can
 * do, measured next to Burrow so that its figures can be read against what
 * the runtime allows on the same machine in the same run.
 *
 * Two processes, as with `ssh -R` and Burrow: a front that accepts visitors
 * and one TLS connection from a back, and a back that opens a connection to
 * the origin per visitor. Bytes cross as frames `[kind u8][id u32][length
 * u32]` on that TLS connection (TCP_NODELAY on both ends, frames of one turn
 * in one write). Nothing else: no HTTP parsing, routing, flow control,
 * limits, metrics, logs or database. Burrow does all of those, so the floor
 * is a bound on it for small requests, not a rival. Without flow control it
 * buffers whole large responses: it is no floor for large bodies.
 *
 * ```sh
 * deno run -A scripts/bench/_floor.ts front CERT KEY TLS_PORT PUBLIC_PORT
 * deno run -A scripts/bench/_floor.ts back CA TLS_PORT ORIGIN_PORT
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { generateSelfSigned } from "../../lib/transport/mod.ts";
import { IPPROTO_TCP, sockopt, TCP_NODELAY } from "../../lib/util/mod.ts";
import { freePort, type Proc, spawn } from "./_procs.ts";

const OPEN = 1;
const DATA = 2;
const CLOSE = 3;
const HEADER = 9;
const READY_MS = 20_000;

/**
 * Writes chunks to a connection whole and in order (`write` may take part
 * of a chunk). The chunks are the sink's: callers never reuse them.
 */
class Sink {
  #conn: Deno.Conn;
  #queue: Uint8Array[] = [];
  #busy = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  write(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    if (!this.#busy) this.#drain();
  }

  async #drain(): Promise<void> {
    this.#busy = true;
    try {
      for (let chunk; (chunk = this.#queue.shift()) !== undefined;) {
        while (chunk.length) chunk = chunk.subarray(await this.#conn.write(chunk));
      }
    } catch {
      this.#queue = [];
    } finally {
      this.#busy = false;
    }
  }
}

/** Frames written in one event-loop turn, joined into one TLS write. */
class FrameWriter {
  #sink: Sink;
  #pending: Uint8Array[] = [];
  #bytes = 0;
  #scheduled = false;

  constructor(conn: Deno.Conn) {
    this.#sink = new Sink(conn);
  }

  frame(kind: number, id: number, payload?: Uint8Array): void {
    const length = payload?.length ?? 0;
    const frame = new Uint8Array(HEADER + length);
    const view = new DataView(frame.buffer);
    frame[0] = kind;
    view.setUint32(1, id);
    view.setUint32(5, length);
    if (payload) frame.set(payload, HEADER);
    this.#pending.push(frame);
    this.#bytes += frame.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    const all = new Uint8Array(this.#bytes);
    let at = 0;
    for (const frame of this.#pending) {
      all.set(frame, at);
      at += frame.length;
    }
    this.#pending = [];
    this.#bytes = 0;
    this.#sink.write(all);
  }
}

/** Calls `onFrame` for each whole frame read from `conn` until it ends. */
async function readFrames(
  conn: Deno.Conn,
  onFrame: (kind: number, id: number, payload: Uint8Array) => void,
): Promise<void> {
  const buf = new Uint8Array(256 * 1024);
  let rest = new Uint8Array(0);
  for (let n; (n = await conn.read(buf)) !== null;) {
    let data = buf.subarray(0, n);
    if (rest.length) {
      data = new Uint8Array(rest.length + n);
      data.set(rest);
      data.set(buf.subarray(0, n), rest.length);
    }
    let at = 0;
    while (data.length - at >= HEADER) {
      const view = new DataView(data.buffer, data.byteOffset + at);
      const length = view.getUint32(5);
      if (data.length - at - HEADER < length) break;
      onFrame(data[at]!, view.getUint32(1), data.slice(at + HEADER, at + HEADER + length));
      at += HEADER + length;
    }
    rest = data.slice(at);
  }
}

/** Sends what `conn` reads as DATA frames of stream `id`, then CLOSE. */
async function pump(conn: Deno.Conn, id: number, out: FrameWriter): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (let n; (n = await conn.read(buf)) !== null;) out.frame(DATA, id, buf.subarray(0, n));
  } catch { /* the peer went away */ }
  out.frame(CLOSE, id);
}

function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch { /* already closed */ }
}

async function front(cert: string, key: string, tlsPort: number, publicPort: number) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: tlsPort,
    cert: await Deno.readTextFile(cert),
    key: await Deno.readTextFile(key),
  });
  console.log("front waiting for the back");
  const back = await listener.accept();
  const fd = sockopt.socketFd(back);
  const noDelay = fd !== null && sockopt.setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  const out = new FrameWriter(back);
  const visitors = new Map<number, { conn: Deno.TcpConn; sink: Sink }>();
  (async () => {
    let next = 1;
    for await (const conn of Deno.listen({ hostname: "127.0.0.1", port: publicPort })) {
      conn.setNoDelay(true);
      const id = next++;
      visitors.set(id, { conn, sink: new Sink(conn) });
      out.frame(OPEN, id);
      pump(conn, id, out).finally(() => {
        visitors.delete(id);
        closeQuietly(conn);
      });
    }
  })();
  console.log(`front ready (TCP_NODELAY on the TLS connection: ${noDelay})`);
  await readFrames(back, (kind, id, payload) => {
    const visitor = visitors.get(id);
    if (!visitor) return;
    if (kind === DATA) visitor.sink.write(payload);
    else if (kind === CLOSE) {
      visitors.delete(id);
      closeQuietly(visitor.conn);
    }
  });
}

/** The back's connection to the origin for one visitor; chunks wait in `queue` until it is open. */
interface Local {
  conn?: Deno.TcpConn;
  sink?: Sink;
  queue: Uint8Array[];
}

async function back(ca: string, tlsPort: number, originPort: number) {
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: tlsPort });
  raw.setNoDelay(true);
  const conn = await Deno.startTls(raw, {
    hostname: "localhost",
    caCerts: [await Deno.readTextFile(ca)],
  });
  const out = new FrameWriter(conn);
  const locals = new Map<number, Local>();
  const open = async (id: number) => {
    const local: Local = { queue: [] };
    locals.set(id, local);
    try {
      local.conn = await Deno.connect({ hostname: "127.0.0.1", port: originPort });
    } catch {
      out.frame(CLOSE, id);
      locals.delete(id);
      return;
    }
    local.conn.setNoDelay(true);
    local.sink = new Sink(local.conn);
    for (const chunk of local.queue) local.sink.write(chunk);
    local.queue = [];
    await pump(local.conn, id, out);
    locals.delete(id);
    closeQuietly(local.conn);
  };
  console.log("back ready");
  await readFrames(conn, (kind, id, payload) => {
    if (kind === OPEN) {
      open(id);
      return;
    }
    const local = locals.get(id);
    if (!local) return;
    if (kind === DATA) {
      if (local.sink) local.sink.write(payload);
      else local.queue.push(payload);
    } else if (kind === CLOSE) {
      locals.delete(id);
      closeQuietly(local.conn);
    }
  });
}

/** A running floor: its public port and its two processes. */
export interface Floor {
  port: number;
  procs: Proc[];
}

/**
 * Starts the front and the back (with a throwaway certificate in `dir`) in
 * front of `originPort`, each stopped with `stack`; resolves once both say
 * they are ready.
 */
export async function startFloor(
  dir: string,
  originPort: number,
  stack: AsyncDisposableStack,
): Promise<Floor> {
  await Deno.mkdir(dir, { recursive: true });
  const { cert, key } = await generateSelfSigned(["localhost"]);
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  await Deno.writeTextFile(certFile, cert);
  await Deno.writeTextFile(keyFile, key);
  const self = new URL(import.meta.url).pathname;
  const tlsPort = freePort();
  const port = freePort();
  const frontProc = stack.use(spawn("floor front", Deno.execPath(), {
    args: ["run", "-A", self, "front", certFile, keyFile, String(tlsPort), String(port)],
  }));
  await frontProc.waitForLine((l) => l.startsWith("front waiting"), READY_MS, "floor front up");
  const backProc = stack.use(spawn("floor back", Deno.execPath(), {
    args: ["run", "-A", self, "back", certFile, String(tlsPort), String(originPort)],
  }));
  await frontProc.waitForLine((l) => l.startsWith("front ready"), READY_MS, "floor connected");
  return { port, procs: [frontProc, backProc] };
}

if (import.meta.main) {
  const [role, ...args] = Deno.args;
  if (role === "front" && args.length === 4) {
    await front(args[0]!, args[1]!, Number(args[2]), Number(args[3]));
  } else if (role === "back" && args.length === 3) {
    await back(args[0]!, Number(args[1]), Number(args[2]));
  } else {
    console.error(
      "usage: _floor.ts front CERT KEY TLS_PORT PUBLIC_PORT | back CA TLS_PORT ORIGIN_PORT",
    );
    Deno.exit(2);
  }
}

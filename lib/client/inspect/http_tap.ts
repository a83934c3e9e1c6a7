/**
 * Reads the HTTP/1.1 exchanges of one connection from copies of its bytes:
 * requests (visitor → service) and responses (service → visitor), several
 * per kept-alive connection, pipelined or not. Pure: no I/O, no timers; the
 * caller feeds bytes and receives finished exchanges.
 *
 * Bodies are kept up to `maxBody` bytes each (chunked bodies de-chunked);
 * the rest is counted. After an upgrade (101) or `CONNECT` the bytes are no
 * longer HTTP and parsing stops; on bytes that are not HTTP it stops too
 * (`broken`), and nothing is ever thrown at the caller.
 *
 * @example
 * ```ts
 * import { HttpTap } from "./http_tap.ts";
 * const seen: string[] = [];
 * const tap = new HttpTap({ maxBody: 1024, onExchange: (x) => seen.push(x.request.method) });
 * const enc = new TextEncoder();
 * tap.request(enc.encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
 * tap.response(enc.encode("HTTP/1.1 204 No Content\r\n\r\n"), 5);
 * console.assert(seen[0] === "GET");
 * ```
 *
 * @module
 */

/** The largest head the tap reads; a longer one stops recording the connection. */
export const MAX_HEAD = 32 * 1024;
/** Requests waiting for their response on one connection; more stops recording it. */
export const MAX_PENDING = 32;

/** One message's head and body as recorded. */
export interface RecordedMessage {
  /** The head as sent, start line and header lines, without the final blank line ({@linkcode headerFields} splits it). */
  head: string;
  /** The body as far as kept (de-chunked), at most `maxBody` bytes. */
  body: Uint8Array;
  /** The body's whole length (de-chunked). */
  bodySize: number;
}

/** A request as recorded. */
export interface RecordedRequest extends RecordedMessage {
  /** Method, e.g. `GET`. */
  method: string;
  /** Request target, e.g. `/a?b=1`. */
  path: string;
}

/** A response as recorded. */
export interface RecordedResponse extends RecordedMessage {
  /** Status code. */
  status: number;
}

/** One request with its response (null when the connection ended first). */
export interface RecordedExchange {
  /** The request. */
  request: RecordedRequest;
  /** The final response (interim 1xx responses other than 101 are skipped). */
  response: RecordedResponse | null;
  /** Time of the request's first byte, in the clock of the caller. */
  start: number;
  /** Time of the response's last byte (or of the end), same clock. */
  end: number;
  /** The connection was upgraded (101) after this exchange. */
  upgraded: boolean;
}

/** Options of {@linkcode HttpTap}. */
export interface HttpTapOptions {
  /** Body bytes kept per message; the rest is counted. */
  maxBody: number;
  /** Where kept bodies are copied to; default: one of the tap's own. */
  arena?: BodyArena;
  /** Receives each finished exchange, in request order. */
  onExchange: (exchange: RecordedExchange) => void;
}

const DECODER = new TextDecoder();
const EMPTY = new Uint8Array(0);
/** Bytes of a body arena; a body larger than a quarter of it gets a buffer of its own. */
const ARENA_SIZE = 256 * 1024;

/**
 * Where kept bodies are copied: one buffer carved into many copies, since
 * allocating a buffer per small body costs more than the copy. A copy is a
 * view of an arena of at most 256 KiB, kept alive by the entries that use
 * it; the ring drops entries oldest first, so whole arenas go with them.
 */
export class BodyArena {
  #buffer = new Uint8Array(0);
  #used = 0;

  /** A copy of `bytes` that no later write to `bytes` changes. */
  copy(bytes: Uint8Array): Uint8Array {
    const n = bytes.length;
    if (n === 0) return EMPTY;
    if (n > ARENA_SIZE / 4) return bytes.slice();
    if (this.#used + n > this.#buffer.length) {
      this.#buffer = new Uint8Array(ARENA_SIZE);
      this.#used = 0;
    }
    const out = this.#buffer.subarray(this.#used, this.#used + n);
    out.set(bytes);
    this.#used += n;
    return out;
  }
}

type BodyMode =
  | { kind: "none" }
  | { kind: "length"; left: number }
  | { kind: "chunked"; state: "size" | "data" | "data-end" | "trailer"; left: number; line: string }
  | { kind: "close" };

/** One direction's parse state. */
class MessageReader {
  #head: Uint8Array[] = [];
  #headSize = 0;
  #tail: number[] = [];
  #body: BodyMode | null = null;
  #kept: Uint8Array[] = [];
  #keptSize = 0;
  #bodySize = 0;
  #maxBody: number;
  #arena: BodyArena;

  constructor(maxBody: number, arena: BodyArena) {
    this.#maxBody = maxBody;
    this.#arena = arena;
  }

  /** True between messages (nothing of the next one read). */
  get idle(): boolean {
    return this.#body === null && this.#headSize === 0;
  }

  /** True while reading a body that ends when the connection does. */
  get untilClose(): boolean {
    return this.#body?.kind === "close";
  }

  /**
   * Reads from `chunk` at `offset`: calls `onHead` when a head is complete
   * (it returns the body's framing) and `onBody` when the body ends; returns
   * the offset after what it consumed, or throws a `TypeError` on bytes that
   * are not HTTP.
   */
  feed(
    chunk: Uint8Array,
    offset: number,
    onHead: (head: string) => BodyMode,
    onBody: (body: Uint8Array, size: number) => void,
  ): number {
    let i = offset;
    if (this.#body === null) {
      const end = this.#findHeadEnd(chunk, i);
      if (end < 0) {
        this.#headSize += chunk.length - i;
        if (this.#headSize > MAX_HEAD) throw new TypeError("Head too long");
        this.#head.push(chunk.slice(i));
        return chunk.length;
      }
      this.#head.push(chunk.subarray(i, end));
      const whole = this.#head.length === 1 ? this.#head[0]! : concat(this.#head);
      const bytes = whole.subarray(0, whole.length - 4);
      const head = DECODER.decode(bytes);
      this.#head = [];
      this.#headSize = 0;
      this.#body = onHead(head);
      i = end;
    }
    const body = this.#body;
    switch (body.kind) {
      case "none":
        break;
      case "close":
        this.#keep(chunk.subarray(i));
        return chunk.length;
      case "length": {
        const n = Math.min(body.left, chunk.length - i);
        this.#keep(chunk.subarray(i, i + n));
        body.left -= n;
        i += n;
        if (body.left > 0) return i;
        break;
      }
      case "chunked":
        i = this.#chunked(body, chunk, i);
        if (body.state !== "trailer" || body.left !== -1) return i;
        break;
    }
    this.#finishBody(onBody);
    return i;
  }

  /** Ends a body that runs until the connection closes. */
  end(onBody: (body: Uint8Array, size: number) => void): void {
    if (this.#body?.kind === "close") this.#finishBody(onBody);
  }

  #finishBody(onBody: (body: Uint8Array, size: number) => void): void {
    const kept = this.#kept;
    onBody(kept.length === 1 ? kept[0]! : kept.length === 0 ? EMPTY : concat(kept), this.#bodySize);
    this.#body = null;
    this.#kept = [];
    this.#keptSize = 0;
    this.#bodySize = 0;
  }

  #keep(bytes: Uint8Array): void {
    this.#bodySize += bytes.length;
    const room = this.#maxBody - this.#keptSize;
    if (room <= 0 || bytes.length === 0) return;
    const part = bytes.length <= room ? bytes : bytes.subarray(0, room);
    // A copy: the caller may reuse its buffer.
    this.#kept.push(this.#arena.copy(part));
    this.#keptSize += part.length;
  }

  /** Position in `chunk` after the `\r\n\r\n` that ends the head, or -1. */
  #findHeadEnd(chunk: Uint8Array, from: number): number {
    // A terminator that starts in the bytes held from earlier chunks (at most 3 of them).
    const tail = this.#tail;
    for (let k = -tail.length; k < 0 && from + k + 3 < chunk.length; k++) {
      const at = (j: number) => (j < 0 ? tail[tail.length + j] : chunk[from + j]);
      if (at(k) === 13 && at(k + 1) === 10 && at(k + 2) === 13 && at(k + 3) === 10) {
        this.#tail = [];
        return from + k + 4;
      }
    }
    // Within the chunk: jump from line feed to line feed.
    for (let nl = chunk.indexOf(10, from + 3); nl >= 0; nl = chunk.indexOf(10, nl + 1)) {
      if (chunk[nl - 1] === 13 && chunk[nl - 2] === 10 && chunk[nl - 3] === 13) {
        this.#tail = [];
        return nl + 1;
      }
    }
    this.#tail = [...tail, ...chunk.subarray(Math.max(from, chunk.length - 3))].slice(-3);
    return -1;
  }

  /** Reads chunked framing; sets `left = -1` in state `trailer` when the message ends. */
  #chunked(
    body: Extract<BodyMode, { kind: "chunked" }>,
    chunk: Uint8Array,
    from: number,
  ): number {
    let i = from;
    while (i < chunk.length) {
      if (body.state === "data") {
        const n = Math.min(body.left, chunk.length - i);
        this.#keep(chunk.subarray(i, i + n));
        body.left -= n;
        i += n;
        if (body.left === 0) body.state = "data-end";
        continue;
      }
      // Line states: size line, the CRLF after data, trailer lines.
      const nl = chunk.indexOf(10, i);
      const stop = nl < 0 ? chunk.length : nl + 1;
      body.line += String.fromCharCode(...chunk.subarray(i, Math.min(stop, i + 1024)));
      if (body.line.length > 1024) throw new TypeError("Chunk line too long");
      i = stop;
      if (nl < 0) break;
      const line = body.line.replace(/\r?\n$/, "");
      body.line = "";
      if (body.state === "data-end") {
        if (line !== "") throw new TypeError("Bad chunk end");
        body.state = "size";
      } else if (body.state === "size") {
        const size = parseInt(line.split(";")[0]!.trim(), 16);
        if (!/^[0-9a-f]+$/i.test(line.split(";")[0]!.trim()) || !Number.isSafeInteger(size)) {
          throw new TypeError("Bad chunk size");
        }
        if (size === 0) body.state = "trailer";
        else {
          body.state = "data";
          body.left = size;
        }
      } else if (line === "") {
        body.left = -1;
        return i;
      }
    }
    return i;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * The header fields of a recorded head, in order, names as sent.
 *
 * @example
 * ```ts
 * import { headerFields } from "./http_tap.ts";
 * console.assert(headerFields("GET / HTTP/1.1\r\nHost: a")[0]![1] === "a");
 * ```
 */
export function headerFields(head: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of head.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    out.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return out;
}

/** The value of header `name` (lower case) in `lower` (a head in lower case); throws when repeated. */
function single(lower: string, name: string): string | undefined {
  const key = `\r\n${name}:`;
  const at = lower.indexOf(key);
  if (at < 0) return undefined;
  if (lower.indexOf(key, at + key.length) >= 0) throw new TypeError(`Repeated ${name}`);
  const end = lower.indexOf("\r\n", at + key.length);
  return lower.slice(at + key.length, end < 0 ? undefined : end).trim();
}

/**
 * The start line of `head` and the framing of its message; `fallback` when
 * it has neither length nor chunks. Throws on header lines that are not HTTP.
 */
function startAndFraming(head: string, fallback: BodyMode): [string, BodyMode] {
  const eol = head.indexOf("\r\n");
  const start = eol < 0 ? head : head.slice(0, eol);
  // Not every line checked: the bytes passed burrowd's parser or are the service's own answer;
  // a line without a colon is the cheap sign of bytes that are not a head at all.
  if (eol >= 0 && head.indexOf(":", eol) < 0) throw new TypeError("Bad header line");
  const lower = head.toLowerCase();
  const te = single(lower, "transfer-encoding");
  if (te !== undefined && /(^|,)\s*chunked$/.test(te)) {
    return [start, { kind: "chunked", state: "size", left: 0, line: "" }];
  }
  const cl = single(lower, "content-length");
  if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new TypeError("Bad Content-Length");
    const left = Number(cl);
    return [start, left === 0 ? { kind: "none" } : { kind: "length", left }];
  }
  return [start, fallback];
}

interface Pending {
  request: RecordedRequest;
  start: number;
  requestDone: boolean;
  response: RecordedResponse | null;
  /** The response has been read to its end. */
  responseDone: boolean;
  end: number;
  upgraded: boolean;
}

/** The HTTP/1.1 exchanges of one connection, from copies of its bytes in both directions. */
export class HttpTap {
  #options: HttpTapOptions;
  #up: MessageReader;
  #down: MessageReader;
  /** Requests in order; the first without a response gets the next one. */
  #pending: Pending[] = [];
  /** Requests whose head is read and body not yet. */
  #reading: Pending | null = null;
  #answering: Pending | null = null;
  #stopped: "broken" | "upgraded" | null = null;

  /** A tap that keeps `options.maxBody` bytes per body and reports to `options.onExchange`. */
  constructor(options: HttpTapOptions) {
    this.#options = options;
    const arena = options.arena ?? new BodyArena();
    this.#up = new MessageReader(options.maxBody, arena);
    this.#down = new MessageReader(options.maxBody, arena);
  }

  /** Why the tap stopped reading (`broken`: not HTTP; `upgraded`: 101 or CONNECT), or null. */
  get stopped(): "broken" | "upgraded" | null {
    return this.#stopped;
  }

  /** Bytes from the visitor to the service, received at `now`. */
  request(chunk: Uint8Array, now: number): void {
    if (this.#stopped) return;
    try {
      let i = 0;
      while (i < chunk.length && !this.#stopped) {
        if (this.#up.idle && !this.#reading && this.#pending.length >= MAX_PENDING) {
          throw new TypeError("Too many pending requests");
        }
        i = this.#up.feed(chunk, i, (head) => this.#requestHead(head, now), (body, size) => {
          const p = this.#reading;
          if (!p) return;
          p.request.body = body;
          p.request.bodySize = size;
          p.requestDone = true;
          this.#reading = null;
          this.#flush();
        });
      }
    } catch {
      this.#stopped = "broken";
    }
  }

  /** Bytes from the service to the visitor, received at `now`. */
  response(chunk: Uint8Array, now: number): void {
    if (this.#stopped) return;
    try {
      let i = 0;
      while (i < chunk.length && !this.#stopped) {
        i = this.#down.feed(chunk, i, (head) => this.#responseHead(head, now), (body, size) => {
          this.#responseDone(body, size, now);
        });
      }
    } catch {
      this.#stopped = "broken";
    }
  }

  /**
   * The connection ended at `now`: a body that runs until close ends, and
   * requests left without a response are reported with none.
   */
  end(now: number): void {
    if (!this.#stopped) {
      try {
        this.#down.end((body, size) => this.#responseDone(body, size, now));
      } catch { /* reported below as it stands */ }
    }
    for (const p of this.#pending) {
      if (!p.responseDone) p.end = now;
      this.#options.onExchange(toExchange(p));
    }
    this.#pending = [];
    if (!this.#stopped) this.#stopped = "broken";
  }

  #requestHead(head: string, now: number): BodyMode {
    const [start, mode] = startAndFraming(head, { kind: "none" });
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/.exec(start);
    if (!m) throw new TypeError("Not an HTTP/1 request");
    const request: RecordedRequest = {
      method: m[1]!,
      path: m[2]!,
      head,
      body: EMPTY,
      bodySize: 0,
    };
    const p: Pending = {
      request,
      start: now,
      requestDone: false,
      response: null,
      responseDone: false,
      end: now,
      upgraded: false,
    };
    this.#pending.push(p);
    this.#reading = p;
    return mode;
  }

  #responseHead(head: string, now: number): BodyMode {
    const [start, mode] = startAndFraming(head, { kind: "close" });
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(start);
    if (!m) throw new TypeError("Not an HTTP/1 response");
    const status = Number(m[1]);
    const p = this.#pending.find((x) => !x.response);
    if (!p) throw new TypeError("Response without a request");
    if (status === 101) {
      p.response = { status, head, body: EMPTY, bodySize: 0 };
      p.end = now;
      p.responseDone = true;
      p.upgraded = true;
      this.#stopped = "upgraded";
      this.#flush(true);
      return { kind: "none" };
    }
    // Interim responses (100 Continue, 103 Early Hints): the final one follows.
    if (status < 200) return { kind: "none" };
    p.response = { status, head, body: EMPTY, bodySize: 0 };
    this.#answering = p;
    const method = p.request.method;
    if (method === "CONNECT" && status < 300) {
      p.end = now;
      p.responseDone = true;
      p.upgraded = true;
      this.#stopped = "upgraded";
      this.#answering = null;
      this.#flush(true);
      return { kind: "none" };
    }
    if (method === "HEAD" || status === 204 || status === 304) return { kind: "none" };
    return mode;
  }

  #responseDone(body: Uint8Array, size: number, now: number): void {
    const p = this.#answering;
    if (!p?.response) return;
    p.response.body = body;
    p.response.bodySize = size;
    p.end = now;
    p.responseDone = true;
    this.#answering = null;
    this.#flush();
  }

  /** Reports exchanges from the front that are complete (`all`: every answered one). */
  #flush(all = false): void {
    while (this.#pending.length) {
      const p = this.#pending[0]!;
      if (!p.responseDone || (!p.requestDone && !all)) break;
      this.#pending.shift();
      this.#options.onExchange(toExchange(p));
    }
  }
}

function toExchange(p: Pending): RecordedExchange {
  return {
    request: p.request,
    response: p.response,
    start: p.start,
    end: p.end,
    upgraded: p.upgraded,
  };
}

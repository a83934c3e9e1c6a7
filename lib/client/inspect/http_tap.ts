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

/** Spare arena blocks kept for reuse at most (2 MiB). */
const MAX_SPARE = 8;

/**
 * Where kept heads and bodies are copied: blocks of 256 KiB carved into
 * many copies, since allocating a buffer per small body costs more than the
 * copy. Each block counts the copies handed out of it; a message given
 * back with {@linkcode releaseMessage} (the ring does, when it drops an
 * entry) lowers it, and a block with none left is filled again instead of
 * a new one: the recorder keeps reusing the same few warm blocks rather
 * than handing the garbage collector 256 KiB every few hundred requests.
 * A copy never given back only keeps its block from being reused; the
 * garbage collector frees it once no copy is referenced.
 */
export class BodyArena {
  #state = new ArenaState();

  /** A copy of `bytes[from, to)` that no later write to `bytes` changes. */
  copy(bytes: Uint8Array, from = 0, to = bytes.length): Uint8Array {
    const n = to - from;
    if (n <= 0 || n > ARENA_SIZE / 4) {
      lastBlock = null;
      return n <= 0 ? EMPTY : bytes.slice(from, to);
    }
    const block = this.#room(n);
    const at = this.#state.used;
    block.bytes.set(from === 0 && to === bytes.length ? bytes : bytes.subarray(from, to), at);
    this.#state.used += n;
    block.refs++;
    lastBlock = block;
    return block.bytes.subarray(at, at + n);
  }

  /** One copy of `parts` one after the other (a body kept in several pieces). */
  join(parts: Uint8Array[]): Uint8Array {
    let n = 0;
    for (const part of parts) n += part.length;
    if (n === 0 || n > ARENA_SIZE / 4) {
      lastBlock = null;
      return n === 0 ? EMPTY : concat(parts);
    }
    const block = this.#room(n);
    const at = this.#state.used;
    let o = at;
    for (const part of parts) {
      block.bytes.set(part, o);
      o += part.length;
    }
    this.#state.used += n;
    block.refs++;
    lastBlock = block;
    return block.bytes.subarray(at, at + n);
  }

  /** Blocks waiting to be reused (for tests). */
  get spare(): number {
    return this.#state.spare.length;
  }

  /** The block to copy `n` bytes into: the current one, else a spare one, else a new one. */
  #room(n: number): Block {
    const state = this.#state;
    if (state.used + n <= state.current.bytes.length) return state.current;
    const old = state.current;
    if (old.bytes.length > 0 && old.refs === 0 && state.spare.length < MAX_SPARE) {
      state.spare.push(old);
    }
    state.current = state.spare.pop() ?? new Block(ARENA_SIZE, state);
    state.used = 0;
    return state.current;
  }
}

/** What an arena and its blocks share: the block being filled, and the ones to fill next. */
class ArenaState {
  current: Block = new Block(0, null);
  used = 0;
  spare: Block[] = [];
}

/** One block of an arena, and how many copies out of it are still in use. */
class Block {
  readonly bytes: Uint8Array;
  readonly state: ArenaState | null;
  refs = 0;

  constructor(size: number, state: ArenaState | null) {
    this.bytes = new Uint8Array(size);
    this.state = state;
  }

  /** One copy out of this block is no longer used; with none left, it is filled again. */
  release(): void {
    if (this.refs <= 0) return;
    const state = this.state;
    if (--this.refs === 0 && state && this !== state.current && state.spare.length < MAX_SPARE) {
      state.spare.push(this);
    }
  }
}

/**
 * The block the last {@linkcode BodyArena.copy} or {@linkcode BodyArena.join}
 * went into (null for a copy of its own), read right after it: what a
 * message gives back when it is dropped, without looking its copies up.
 */
let lastBlock: Block | null = null;

type BodyMode =
  | { kind: "none" }
  | { kind: "length"; left: number }
  | { kind: "chunked"; state: "size" | "data" | "data-end" | "trailer"; left: number; line: string }
  | { kind: "close" };

const NONE: BodyMode = { kind: "none" };
const CLOSE: BodyMode = { kind: "close" };

/** `content-length` and `transfer-encoding` as char codes, to compare header names without strings. */
const CONTENT_LENGTH = [..."content-length"].map((c) => c.charCodeAt(0));
const TRANSFER_ENCODING = [..."transfer-encoding"].map((c) => c.charCodeAt(0));

/** True when `buf[at…]` is `name` (lower-case char codes), ignoring ASCII case. */
function nameIs(buf: Uint8Array, at: number, name: number[]): boolean {
  for (let k = 0; k < name.length; k++) if ((buf[at + k]! | 0x20) !== name[k]) return false;
  return true;
}

/** A head as read: its bytes (the tap's own copy), its start line's length, and the body's framing. */
interface HeadBytes {
  /** Start line and header lines, without the final blank line. */
  bytes: Uint8Array;
  /** Length of the start line (without its line end). */
  startLength: number;
  /** The body's framing from `Transfer-Encoding` / `Content-Length`; null when the head has neither. */
  framing: BodyMode | null;
  /** The arena block `bytes` were copied into (null: a buffer of their own). */
  block: Block | null;
}

/** What `onBody` of a reader receives: the body as kept, its whole size, its arena block. */
type OnBody = (body: Uint8Array, size: number, block: Block | null) => void;

/**
 * One direction's parse state. Heads are read as bytes, line by line, for
 * what framing needs (`Content-Length`, `Transfer-Encoding`); they are
 * decoded to text only when someone looks at them.
 */
class MessageReader {
  /** A head that spans chunks, as far as read (the reader's own buffer), or null. */
  #held: Uint8Array | null = null;
  #heldLength = 0;
  /** Where the next unread line starts, in the held head. */
  #lineStart = 0;
  /** Start line's length once read, else -1. */
  #startLength = -1;
  #contentLength = -1;
  #transferEncoding: string | null = null;
  #body: BodyMode | null = null;
  #kept: Uint8Array[] = [];
  /** The arena block of each kept part. */
  #keptBlocks: Array<Block | null> = [];
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
    return this.#body === null && this.#heldLength === 0;
  }

  /**
   * Reads `chunk[offset, to)`: calls `onHead` when a head is complete (it
   * returns the body's framing) and `onBody` when the body ends; returns the
   * offset after what it consumed, or throws a `TypeError` on bytes that are
   * not HTTP.
   */
  feed(
    chunk: Uint8Array,
    offset: number,
    to: number,
    onHead: (head: HeadBytes) => BodyMode,
    onBody: OnBody,
  ): number {
    let i = offset;
    if (this.#body === null) {
      let head: Uint8Array;
      let block: Block | null = null;
      if (this.#held === null) {
        const end = this.#scan(chunk, offset, offset, to);
        if (end < 0) {
          // The head goes on in a later chunk: hold what there is (the lines read are not read again).
          this.#hold(chunk, offset, to);
          this.#lineStart -= offset;
          return to;
        }
        head = this.#arena.copy(chunk, offset, end - 4);
        block = lastBlock;
        i = end;
      } else {
        const before = this.#heldLength;
        this.#hold(chunk, offset, to);
        const end = this.#scan(this.#held, 0, this.#lineStart, this.#heldLength);
        if (end < 0) return to;
        head = this.#held.subarray(0, end - 4);
        i = offset + end - before;
      }
      const framing =
        this.#transferEncoding !== null && /(^|,)\s*chunked$/.test(this.#transferEncoding)
          ? { kind: "chunked" as const, state: "size" as const, left: 0, line: "" }
          : this.#contentLength > 0
          ? { kind: "length" as const, left: this.#contentLength }
          : this.#contentLength === 0
          ? NONE
          : null;
      const startLength = this.#startLength;
      this.#held = null;
      this.#heldLength = 0;
      this.#lineStart = 0;
      this.#startLength = -1;
      this.#contentLength = -1;
      this.#transferEncoding = null;
      this.#body = onHead({ bytes: head, startLength, framing, block });
    }
    const body = this.#body;
    switch (body.kind) {
      case "none":
        break;
      case "close":
        this.#keep(chunk, i, to);
        return to;
      case "length": {
        const n = Math.min(body.left, to - i);
        this.#keep(chunk, i, i + n);
        body.left -= n;
        i += n;
        if (body.left > 0) return i;
        break;
      }
      case "chunked":
        i = this.#chunked(body, chunk, i, to);
        if (body.state !== "trailer" || body.left !== -1) return i;
        break;
    }
    this.#finishBody(onBody);
    return i;
  }

  /** Ends a body that runs until the connection closes. */
  end(onBody: OnBody): void {
    if (this.#body?.kind === "close") this.#finishBody(onBody);
  }

  /** Appends `chunk[from, to)` to the held head; throws past {@linkcode MAX_HEAD}. */
  #hold(chunk: Uint8Array, from: number, to: number): void {
    const n = to - from;
    if (this.#heldLength + n > MAX_HEAD + 4) throw new TypeError("Head too long");
    if (this.#held === null || this.#held.length < this.#heldLength + n) {
      const grown = new Uint8Array(
        Math.min(MAX_HEAD + 4, Math.max(1024, (this.#heldLength + n) * 2)),
      );
      if (this.#held) grown.set(this.#held.subarray(0, this.#heldLength));
      this.#held = grown;
    }
    this.#held.set(chunk.subarray(from, to), this.#heldLength);
    this.#heldLength += n;
  }

  /**
   * Reads whole lines of the head that starts at `base` in `buf`, from
   * `from` up to `to`: returns the position after the blank line that ends
   * it, or -1 (with `#lineStart` where the unfinished line starts).
   */
  #scan(buf: Uint8Array, base: number, from: number, to: number): number {
    let ls = from;
    while (ls < to) {
      // The colon (or the line's end) first, then the line feed: one comparison a byte for values.
      let j = ls;
      let b = 0;
      while (j < to && (b = buf[j]!) !== 58 && b !== 10) j++;
      const colon = j < to && b === 58 ? j : -1;
      while (j < to && buf[j] !== 10) j++;
      if (j === to) break;
      const le = j > ls && buf[j - 1] === 13 ? j - 1 : j;
      if (le === ls) {
        // A blank line: the end of the head when it is CRLF after a start line.
        if (le === j || this.#startLength < 0) throw new TypeError("Bad blank line");
        return j + 1;
      }
      if (this.#startLength < 0) this.#startLength = le - base;
      else {
        // A line without a colon is the cheap sign of bytes that are not a head at all.
        if (colon < 0) throw new TypeError("Bad header line");
        this.#header(buf, ls, colon, le);
      }
      ls = j + 1;
      if (ls - base > MAX_HEAD) throw new TypeError("Head too long");
    }
    if (to - base > MAX_HEAD) throw new TypeError("Head too long");
    this.#lineStart = ls;
    return -1;
  }

  /** Notes a framing header (name `buf[ls, colon)`, value up to `le`); throws when one is repeated or bad. */
  #header(buf: Uint8Array, ls: number, colon: number, le: number): void {
    const n = colon - ls;
    if (n === 14 && nameIs(buf, ls, CONTENT_LENGTH)) {
      if (this.#contentLength >= 0) throw new TypeError("Repeated content-length");
      let k = colon + 1;
      while (k < le && (buf[k] === 32 || buf[k] === 9)) k++;
      let e = le;
      while (e > k && (buf[e - 1] === 32 || buf[e - 1] === 9)) e--;
      if (k === e || e - k > 15) throw new TypeError("Bad Content-Length");
      let value = 0;
      for (; k < e; k++) {
        const d = buf[k]! - 48;
        if (d < 0 || d > 9) throw new TypeError("Bad Content-Length");
        value = value * 10 + d;
      }
      this.#contentLength = value;
    } else if (n === 17 && nameIs(buf, ls, TRANSFER_ENCODING)) {
      if (this.#transferEncoding !== null) throw new TypeError("Repeated transfer-encoding");
      this.#transferEncoding = String.fromCharCode(
        ...buf.subarray(colon + 1, Math.min(le, colon + 1025)),
      )
        .trim().toLowerCase();
    }
  }

  #finishBody(onBody: OnBody): void {
    const kept = this.#kept;
    let body: Uint8Array = EMPTY;
    let block: Block | null = null;
    if (kept.length === 1) {
      body = kept[0]!;
      block = this.#keptBlocks[0]!;
    } else if (kept.length > 1) {
      body = this.#arena.join(kept);
      block = lastBlock;
      for (const part of this.#keptBlocks) part?.release();
    }
    onBody(body, this.#bodySize, block);
    this.#body = null;
    this.#kept = [];
    this.#keptBlocks = [];
    this.#keptSize = 0;
    this.#bodySize = 0;
  }

  /** Counts `chunk[from, to)` into the body and keeps what fits under `maxBody` (a copy). */
  #keep(chunk: Uint8Array, from: number, to: number): void {
    this.#bodySize += to - from;
    const room = this.#maxBody - this.#keptSize;
    if (room <= 0 || to <= from) return;
    const end = Math.min(to, from + room);
    // A copy: the caller may reuse its buffer.
    this.#kept.push(this.#arena.copy(chunk, from, end));
    this.#keptBlocks.push(lastBlock);
    this.#keptSize += end - from;
  }

  /** Reads chunked framing; sets `left = -1` in state `trailer` when the message ends. */
  #chunked(
    body: Extract<BodyMode, { kind: "chunked" }>,
    chunk: Uint8Array,
    from: number,
    to: number,
  ): number {
    let i = from;
    while (i < to) {
      if (body.state === "data") {
        const n = Math.min(body.left, to - i);
        this.#keep(chunk, i, i + n);
        body.left -= n;
        i += n;
        if (body.left === 0) body.state = "data-end";
        continue;
      }
      // Line states: size line, the CRLF after data, trailer lines.
      let nl = chunk.indexOf(10, i);
      if (nl >= to) nl = -1;
      const stop = nl < 0 ? to : nl + 1;
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

/**
 * Gives the copies a recorded message holds back to the arena they came
 * from (see {@linkcode BodyArena}): for when nothing will read it again.
 * The message reads empty from then on; giving it back twice does nothing.
 */
export function releaseMessage(message: RecordedMessage): void {
  if (message instanceof Message) message.release();
}

/** True for the bytes of an HTTP token (a method). */
function isTchar(b: number): boolean {
  // ALPHA / DIGIT / "!#$%&'*+-.^_`|~"
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) ||
    b === 0x21 || (b >= 0x23 && b <= 0x27) || b === 0x2a || b === 0x2b || b === 0x2d ||
    b === 0x2e || b === 0x5e || b === 0x5f || b === 0x60 || b === 0x7c || b === 0x7e;
}

/** True when `bytes[at…]` is `HTTP/1.0` or `HTTP/1.1`. */
function isVersion(bytes: Uint8Array, at: number): boolean {
  return bytes[at] === 0x48 && bytes[at + 1] === 0x54 && bytes[at + 2] === 0x54 &&
    bytes[at + 3] === 0x50 && bytes[at + 4] === 0x2f && bytes[at + 5] === 0x31 &&
    bytes[at + 6] === 0x2e && (bytes[at + 7] === 0x30 || bytes[at + 7] === 0x31);
}

/** A recorded head whose text is decoded when first asked for. */
class Message implements RecordedMessage {
  #bytes: Uint8Array;
  #block: Block | null;
  #bodyBlock: Block | null = null;
  #text: string | null = null;
  body: Uint8Array = EMPTY;
  bodySize = 0;

  constructor(bytes: Uint8Array, block: Block | null) {
    this.#bytes = bytes;
    this.#block = block;
  }

  /** Sets the body as kept (`block`: its arena block) and its whole size. */
  setBody(body: Uint8Array, size: number, block: Block | null): void {
    this.body = body;
    this.bodySize = size;
    this.#bodyBlock = block;
  }

  /** Gives the head's and body's copies back to their arena; the message reads empty from now on. */
  release(): void {
    this.#block?.release();
    this.#bodyBlock?.release();
    this.#block = this.#bodyBlock = null;
    this.#bytes = EMPTY;
    this.#text = "";
    this.body = EMPTY;
  }

  get head(): string {
    return this.#text ??= DECODER.decode(this.#bytes);
  }

  /** Part of the head as text (bytes `from` to `to`, ASCII by the checks made). */
  protected slice(from: number, to: number): string {
    return this.#text?.slice(from, to) ?? DECODER.decode(this.#bytes.subarray(from, to));
  }
}

/** A request as recorded: method and target read from its start line when asked for. */
class Request extends Message implements RecordedRequest {
  #methodEnd: number;
  #pathEnd: number;
  #method: string | null = null;
  #path: string | null = null;

  constructor(bytes: Uint8Array, block: Block | null, methodEnd: number, pathEnd: number) {
    super(bytes, block);
    this.#methodEnd = methodEnd;
    this.#pathEnd = pathEnd;
  }

  get method(): string {
    return this.#method ??= this.slice(0, this.#methodEnd);
  }

  get path(): string {
    return this.#path ??= this.slice(this.#methodEnd + 1, this.#pathEnd);
  }
}

/** A response as recorded. */
class Response extends Message implements RecordedResponse {
  readonly status: number;

  constructor(bytes: Uint8Array, block: Block | null, status: number) {
    super(bytes, block);
    this.status = status;
  }
}

/** What a request's method changes in reading its response: nothing, `HEAD`, `CONNECT`. */
const OTHER = 0;
const HEAD = 1;
const CONNECT = 2;
type Method = typeof OTHER | typeof HEAD | typeof CONNECT;

/** One request on its way to being an exchange. */
class Pending implements RecordedExchange {
  request: Request;
  method: Method;
  start: number;
  requestDone = false;
  response: Response | null = null;
  /** The response has been read to its end. */
  responseDone = false;
  end: number;
  upgraded = false;

  constructor(request: Request, method: Method, now: number) {
    this.request = request;
    this.method = method;
    this.start = now;
    this.end = now;
  }
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
  /** The time of the bytes being read now. */
  #now = 0;
  #onRequestHead = (head: HeadBytes) => this.#requestHead(head);
  #onResponseHead = (head: HeadBytes) => this.#responseHead(head);
  #onRequestBody: OnBody = (body, size, block) => this.#requestBody(body, size, block);
  #onResponseBody: OnBody = (body, size, block) => this.#responseDone(body, size, block);

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

  /** Bytes `chunk[from, to)` from the visitor to the service, received at `now`. */
  request(chunk: Uint8Array, now: number, from = 0, to = chunk.length): void {
    if (this.#stopped) return;
    this.#now = now;
    try {
      let i = from;
      while (i < to && !this.#stopped) {
        if (this.#up.idle && !this.#reading && this.#pending.length >= MAX_PENDING) {
          throw new TypeError("Too many pending requests");
        }
        i = this.#up.feed(chunk, i, to, this.#onRequestHead, this.#onRequestBody);
      }
    } catch {
      this.#stopped = "broken";
    }
  }

  /** Bytes `chunk[from, to)` from the service to the visitor, received at `now`. */
  response(chunk: Uint8Array, now: number, from = 0, to = chunk.length): void {
    if (this.#stopped) return;
    this.#now = now;
    try {
      let i = from;
      while (i < to && !this.#stopped) {
        i = this.#down.feed(chunk, i, to, this.#onResponseHead, this.#onResponseBody);
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
    this.#now = now;
    if (!this.#stopped) {
      try {
        this.#down.end(this.#onResponseBody);
      } catch { /* reported below as it stands */ }
    }
    for (const p of this.#pending) {
      if (!p.responseDone) p.end = now;
      this.#options.onExchange(p);
    }
    this.#pending = [];
    if (!this.#stopped) this.#stopped = "broken";
  }

  #requestHead(head: HeadBytes): BodyMode {
    // `METHOD SP target SP HTTP/1.x`, checked on the bytes.
    const b = head.bytes;
    const n = head.startLength;
    let m = 0;
    while (m < n && isTchar(b[m]!)) m++;
    if (m === 0 || b[m] !== 0x20 || n - m < 11 || b[n - 9] !== 0x20 || !isVersion(b, n - 8)) {
      throw new TypeError("Not an HTTP/1 request");
    }
    const pathEnd = n - 9;
    if (pathEnd <= m + 1) throw new TypeError("Not an HTTP/1 request");
    for (let k = m + 1; k < pathEnd; k++) {
      if (b[k]! <= 0x20) throw new TypeError("Not an HTTP/1 request");
    }
    const method = m === 4 && b[0] === 0x48 && b[1] === 0x45 && b[2] === 0x41 && b[3] === 0x44
      ? HEAD
      : m === 7 && String.fromCharCode(...b.subarray(0, 7)) === "CONNECT"
      ? CONNECT
      : OTHER;
    const p = new Pending(new Request(b, head.block, m, pathEnd), method, this.#now);
    this.#pending.push(p);
    this.#reading = p;
    return head.framing ?? NONE;
  }

  #requestBody(body: Uint8Array, size: number, block: Block | null): void {
    const p = this.#reading;
    if (!p) return;
    p.request.setBody(body, size, block);
    p.requestDone = true;
    this.#reading = null;
    this.#flush();
  }

  #responseHead(head: HeadBytes): BodyMode {
    // `HTTP/1.x SP 3DIGIT [SP reason]`, checked on the bytes.
    const b = head.bytes;
    const n = head.startLength;
    const d0 = b[9]! - 48, d1 = b[10]! - 48, d2 = b[11]! - 48;
    if (
      n < 12 || !isVersion(b, 0) || b[8] !== 0x20 || d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9 ||
      d2 < 0 || d2 > 9 || (n > 12 && b[12] !== 0x20)
    ) {
      throw new TypeError("Not an HTTP/1 response");
    }
    const status = d0 * 100 + d1 * 10 + d2;
    const now = this.#now;
    let p: Pending | undefined;
    for (const x of this.#pending) {
      if (!x.response) {
        p = x;
        break;
      }
    }
    if (!p) throw new TypeError("Response without a request");
    if (status === 101) {
      p.response = new Response(b, head.block, status);
      p.end = now;
      p.responseDone = true;
      p.upgraded = true;
      this.#stopped = "upgraded";
      this.#flush(true);
      return NONE;
    }
    // Interim responses (100 Continue, 103 Early Hints): the final one follows.
    if (status < 200) {
      head.block?.release();
      return NONE;
    }
    p.response = new Response(b, head.block, status);
    this.#answering = p;
    if (p.method === CONNECT && status < 300) {
      p.end = now;
      p.responseDone = true;
      p.upgraded = true;
      this.#stopped = "upgraded";
      this.#answering = null;
      this.#flush(true);
      return NONE;
    }
    if (p.method === HEAD || status === 204 || status === 304) return NONE;
    return head.framing ?? CLOSE;
  }

  #responseDone(body: Uint8Array, size: number, block: Block | null): void {
    const p = this.#answering;
    if (!p?.response) return;
    p.response.setBody(body, size, block);
    p.end = this.#now;
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
      this.#options.onExchange(p);
    }
  }
}

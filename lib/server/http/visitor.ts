/**
 * One visitor's HTTP/1.1 connection, served by splicing: each request head
 * is read and checked strictly, routed by host and path, rewritten by its
 * tunnel's rules, and sent with its body bytes over a mux stream to the
 * client, which relays them to the local service untouched. The response
 * head is read back, rewritten and forwarded; bodies cross as bytes. A
 * framing tracker on each body keeps requests apart on a kept-alive
 * connection, so consecutive requests may go to different tunnels and
 * pipelined requests are answered in order. An upgrade (WebSocket) becomes a
 * raw pipe only after the service's 101 for a protocol the visitor asked.
 *
 * This file owns the visitor's connection: its buffer, reading and checking
 * request heads, sending each request, the switch to a pipe. The service's
 * answer is relayed by `response_relay.ts`, over an `upstream.ts` stream per
 * tunnel; what the engine asks of tunnels is in `splice_tunnel.ts`.
 *
 * @module
 */

import { HEADER_SIZE } from "../../protocol/mod.ts";
import { relay, type RelayConn, type RelayResult } from "../../mux/mod.ts";
import type { Logger } from "../../util/mod.ts";
import { BodyTracker } from "./framing.ts";
import {
  type BodyFraming,
  headEnd,
  HttpHeadError,
  MAX_HEAD_SIZE,
  parseRequestHead,
  requestFraming,
} from "./head.ts";
import { editedSize, writeEdited } from "./head_edit.ts";
import { answerBytes, errorPage, type LocalAnswer } from "./local_answer.ts";
import { type RequestHead, ResponseHead } from "./parsed_head.ts";
import {
  type Exchange,
  type Outcome,
  type PumpState,
  relayResponse,
  SCRATCH_SIZE,
  type VisitorSide,
} from "./response_relay.ts";
import { originTarget } from "./request_target.ts";
import type {
  Dispatch,
  RequestInfo,
  SpliceTunnel,
  Transfer,
  VisitorEndpoints,
} from "./splice_tunnel.ts";
import { Upstream } from "./upstream.ts";

/** Options of {@linkcode Http1Visitor}. */
export interface Http1VisitorOptions {
  /** `http` or `https` (for X-Forwarded-Proto). */
  scheme: "http" | "https";
  /** The visitor's address (IP policy, X-Forwarded-For, logs). */
  remote: string;
  /** The connection's addresses with ports, for the open frames of its streams; `null`: unknown. */
  endpoints: VisitorEndpoints | null;
  /** Routes a request: a tunnel, or an answer (404, 502, redirect, ACME challenge). */
  dispatch: (host: string, path: string) => Dispatch;
  /** Called for each request refused as malformed. */
  onBadRequest?: ((reason: string) => void) | undefined;
  /** Where events are logged. */
  logger: Logger;
}

/**
 * Serves one visitor connection until it closes.
 *
 * @example
 * ```ts ignore
 * const conn = await listener.accept();
 * await new Http1Visitor(conn, { scheme: "http", remote: "1.2.3.4",
 *   endpoints: { remote: "1.2.3.4:51234", local: "198.51.100.1:80" },
 *   dispatch: (host, path) => front.dispatch(host, path), logger }).run();
 * ```
 */
export class Http1Visitor {
  #conn: RelayConn;
  #options: Http1VisitorOptions;
  #buf = new Uint8Array(16 * 1024);
  /**
   * Reused for each request's first frame (head and the body bytes already
   * here) and for each response's head with its first body bytes: a new
   * array per request would cost more than the relay itself. While a
   * request frame in it waits to be written, a response gets a new array;
   * a response write is awaited.
   */
  #scratch = new Uint8Array(SCRATCH_SIZE);
  #scratchSending = false;
  #start = 0;
  #end = 0;
  #eof = false;
  #closed = false;
  #upstreams = new Map<SpliceTunnel, Upstream>();
  /** What relaying a response may use of this connection. */
  readonly #side: VisitorSide = {
    write: (bytes) => this.#write(bytes),
    scratch: this.#scratch,
    scratchSending: () => this.#scratchSending,
    drop: (tunnel) => this.#upstreams.delete(tunnel),
  };
  #switched = false;
  /** Set on every read and write; the front's idle sweep clears it (cheaper than a timer each). */
  touched = true;
  /**
   * Sweeps of the front since this visitor began waiting for a request head,
   * or -1 while it is not waiting: the front closes it when the head is late
   * (slowloris), so no request pays for a timer of its own.
   */
  headSweeps = -1;

  /** A visitor on `conn`. */
  constructor(conn: RelayConn, options: Http1VisitorOptions) {
    this.#conn = conn;
    this.#options = options;
  }

  /** Serves requests until the connection ends; never throws. */
  async run(): Promise<void> {
    try {
      while (!this.#closed) {
        const head = await this.#readHead();
        if (!head) break;
        if (!(await this.#serve(head))) break;
      }
    } catch (error) {
      if (!this.#closed && !(error instanceof Deno.errors.BadResource)) {
        this.#options.logger.debug("visitor connection failed", {
          remote: this.#options.remote,
          error,
        });
      }
    } finally {
      this.close();
    }
  }

  /** Whether the connection became a raw pipe (WebSocket): the idle sweep leaves those alone. */
  get switched(): boolean {
    return this.#switched;
  }

  /** Closes the connection and its streams. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const up of this.#upstreams.values()) up.discard("Visitor connection closed");
    this.#upstreams.clear();
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }

  // ---- visitor bytes ----

  get #buffered(): number {
    return this.#end - this.#start;
  }

  /** Reads more visitor bytes into the buffer; false at end of stream. */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    return this.#filled(await this.#conn.read(this.#room()));
  }

  /** Where the next read goes: the buffer's free end, made room for first. */
  #room(): Uint8Array {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      const used = this.#buffered;
      if (this.#start > 0 && used < this.#buf.length / 2) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const grown = new Uint8Array(this.#buf.length * 2);
        grown.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = grown;
      }
      this.#start = 0;
      this.#end = used;
    }
    return this.#buf.subarray(this.#end);
  }

  /** Takes the outcome of a read into {@linkcode #room}; false at end of stream. */
  #filled(n: number | null): boolean {
    this.touched = true;
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    return true;
  }

  /** The next request head; `null` when the visitor is done (end, deadline, or refused head). */
  async #readHead(): Promise<RequestHead | null> {
    this.headSweeps = 0;
    try {
      let scanned = 0;
      for (;;) {
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        while (
          this.#buffered >= 2 && this.#buf[this.#start] === 13 && this.#buf[this.#start + 1] === 10
        ) this.#start += 2;
        const view = this.#buf.subarray(this.#start, this.#end);
        try {
          const end = headEnd(view, scanned);
          if (end >= 0) return parseRequestHead(view, MAX_HEAD_SIZE, end);
        } catch (error) {
          if (!(error instanceof HttpHeadError)) throw error;
          await this.#refuse(error.status, error.message);
          return null;
        }
        scanned = view.length;
        // The read is awaited here rather than in #fill: one async frame fewer per request.
        if (this.#closed || this.#eof) return null;
        if (!this.#filled(await this.#conn.read(this.#room()))) return null;
      }
    } finally {
      this.headSweeps = -1;
    }
  }

  /** Answers a malformed request and ends the connection. */
  async #refuse(status: number, reason: string): Promise<void> {
    this.#options.onBadRequest?.(reason);
    await this.#write(answerBytes(errorPage(status, reason), true)).catch(() => {});
  }

  /** Writes all of `bytes`: one call when the connection takes them at once, as it mostly does. */
  #write(bytes: Uint8Array): Promise<void> {
    this.touched = true;
    return this.#conn.write(bytes).then((n) => {
      if (n < bytes.length) return this.#writeRest(bytes, n);
    });
  }

  async #writeRest(bytes: Uint8Array, off: number): Promise<void> {
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  // ---- one request ----

  /**
   * Serves one request; whether the connection goes on. Not `async`: the
   * promise it returns is the exchange's own, one hop fewer per request.
   */
  #serve(head: RequestHead): Promise<boolean> {
    const started = performance.now();
    // The head's bytes stay valid until the buffer is next filled, after the head is sent on.
    this.#start += head.size;
    const hosts = head.countOf("host");
    if (hosts > 1) return this.#refuse(400, "More than one Host header").then(() => false);
    if (hosts === 0 && head.version === "1.1") {
      return this.#refuse(400, "The request has no Host header").then(() => false);
    }
    const host = head.get("host") ?? "";
    const target = originTarget(head, host);
    if (typeof target !== "string") return this.#refuse(400, target.error).then(() => false);
    let framing: BodyFraming;
    try {
      framing = requestFraming(head);
    } catch (error) {
      return this.#refuse(400, (error as Error).message).then(() => false);
    }
    const keepAlive = head.version === "1.1"
      ? !head.hasToken("connection", "close")
      : head.hasToken("connection", "keep-alive");
    const decided = this.#options.dispatch(host, target);
    if ("answer" in decided) return this.#answer(decided.answer, framing, keepAlive);
    const tunnel = decided.tunnel;
    const info: RequestInfo = { method: head.method, host, path: target, status: 0 };
    const refusal = tunnel.refuse(
      this.#options.remote,
      head.get("authorization"),
      info,
    );
    if (refusal) return this.#answer(refusal, framing, keepAlive);
    const upgrade = head.hasToken("connection", "upgrade")
      ? new Set(head.tokens("upgrade").map((p) => p.split("/")[0]!))
      : null;
    return this.#exchange(
      tunnel,
      head,
      target,
      info,
      framing,
      keepAlive,
      upgrade,
      started,
    );
  }

  /** Sends a local answer; the connection goes on if the request had no body to skip. */
  async #answer(answer: LocalAnswer, framing: BodyFraming, keepAlive: boolean): Promise<boolean> {
    const goOn = keepAlive && framing.kind === "none";
    await this.#write(answerBytes(answer, !goOn));
    return goOn;
  }

  async #exchange(
    tunnel: SpliceTunnel,
    head: RequestHead,
    target: string,
    info: RequestInfo,
    framing: BodyFraming,
    keepAlive: boolean,
    upgrade: Set<string> | null,
    started: number,
  ): Promise<boolean> {
    const remote = this.#options.remote;
    let up = this.#upstreams.get(tunnel);
    if (!up || up.ended) {
      up?.discard("Replaced");
      try {
        up = new Upstream(tunnel, tunnel.open(this.#options.endpoints));
      } catch (error) {
        const message = `Tunnel "${tunnel.name}" is offline: ${(error as Error).message}`;
        return this.#answer(errorPage(502, message), framing, keepAlive);
      }
      this.#upstreams.set(tunnel, up);
    }
    const transfer = tunnel.begin();
    const edit = tunnel.requestHead(head, target, info.host, remote, this.#options.scheme);
    // The head and the body bytes already here go out as one frame.
    const body = new BodyTracker(framing);
    let bodyNow = 0;
    try {
      if (!body.done && this.#end > this.#start) {
        bodyNow = body.feed(this.#buf.subarray(this.#start, this.#end));
      }
    } catch (error) {
      tunnel.end(transfer, { ...info, status: 400 }, started, remote, (error as Error).message);
      await this.#refuse(400, (error as Error).message);
      return false;
    }
    const length = editedSize(head, edit) + bodyNow;
    const reuse = HEADER_SIZE + length <= SCRATCH_SIZE && !this.#scratchSending;
    const frame = reuse ? this.#scratch : new Uint8Array(HEADER_SIZE + length);
    const at = writeEdited(frame, HEADER_SIZE, head, edit);
    if (bodyNow > 0) frame.set(this.#buf.subarray(this.#start, this.#start + bodyNow), at);
    this.#start += bodyNow;
    transfer.sent += bodyNow;
    const sending = up.stream.writeFrame(frame, length);
    if (reuse) this.#scratchSending = true;
    // Its `pump` is read as a field rather than awaited: the common request has no body to pump.
    const exchange: Exchange = {
      tunnel,
      up,
      request: head,
      info,
      keepAlive,
      upgrade,
      transfer,
      started,
      pump: "pending",
    };
    sending.then(() => {
      if (reuse) this.#scratchSending = false;
      if (body.done) exchange.pump = "done";
    }, () => {
      if (reuse) this.#scratchSending = false;
      exchange.pump = "failed";
    });
    if (!body.done) {
      this.#pumpBody(body, up, tunnel, transfer, sending).then(
        (state) => (exchange.pump = state),
        () => (exchange.pump = "failed"),
      );
    }

    let outcome: Outcome;
    try {
      const answer = await relayResponse(this.#side, exchange);
      // A 101 comes back unrelayed: this connection becomes a pipe.
      outcome = answer instanceof ResponseHead
        ? await this.#switch(tunnel, up, answer, info, upgrade, transfer, started)
        : answer;
    } catch (error) {
      outcome = { keep: false, error: (error as Error).message };
    }
    // The service answered before the request body was through: the connection cannot go on.
    if (outcome.keep && exchange.pump !== "done") outcome.keep = false;
    if (info.status !== 101) tunnel.end(transfer, info, started, remote, outcome.error);
    return outcome.keep && !this.#closed;
  }

  /** Sends the rest of a request body; `done`, or why it stopped. */
  async #pumpBody(
    body: BodyTracker,
    up: Upstream,
    tunnel: SpliceTunnel,
    transfer: Transfer,
    head: Promise<void>,
  ): Promise<PumpState> {
    const pace = tunnel.pace?.in;
    await head;
    while (!body.done) {
      if (this.#buffered === 0 && !(await this.#fill())) {
        up.discard("The visitor left during the request body");
        return "visitor-ended";
      }
      const view = this.#buf.subarray(this.#start, this.#end);
      let n: number;
      try {
        n = body.feed(view);
      } catch (error) {
        up.discard((error as Error).message);
        this.#options.onBadRequest?.((error as Error).message);
        this.close();
        return "bad-body";
      }
      if (n === 0) continue;
      if (pace && !pace.tryTake(n)) await pace.take(n);
      const piece = view.subarray(0, n);
      this.#start += n;
      transfer.sent += n;
      await up.stream.write(piece);
    }
    return "done";
  }

  /** The service answered 101: relay it, then splice both ways. */
  async #switch(
    tunnel: SpliceTunnel,
    up: Upstream,
    response: ResponseHead,
    info: RequestInfo,
    upgrade: Set<string> | null,
    transfer: Transfer,
    started: number,
  ): Promise<Outcome> {
    const protocol = response.tokens("upgrade")[0]?.split("/")[0];
    if (!upgrade || !protocol || !upgrade.has(protocol)) {
      up.discard("Unrequested protocol switch");
      this.#upstreams.delete(tunnel);
      info.status = 502;
      const message = `Tunnel "${tunnel.name}": the service switched to a protocol the visitor ` +
        "did not ask for";
      await this.#write(answerBytes(errorPage(502, message), true));
      return { keep: false, error: message };
    }
    this.#upstreams.delete(tunnel);
    this.#switched = true;
    const edit = tunnel.responseHead(response, null);
    const switching = new Uint8Array(editedSize(response, edit));
    writeEdited(switching, 0, response, edit);
    await this.#write(switching);
    const rest = up.takeRest();
    if (rest) {
      await this.#write(rest);
      transfer.received += rest.length;
    }
    if (this.#buffered > 0) {
      const early = this.#buf.slice(this.#start, this.#end);
      this.#start = this.#end;
      transfer.sent += early.length;
      await up.stream.write(early);
    }
    // The relay adds to the request's live totals as bytes pass.
    const result = transfer as RelayResult;
    const pace = tunnel.pace;
    await relay(this.#eof ? endedConn(this.#conn) : this.#conn, up.stream, {
      result,
      maxBuffer: 64 * 1024,
      ...(pace ? { throttleUp: pace.in, throttleDown: pace.out } : {}),
    });
    tunnel.end(transfer, info, started, this.#options.remote, result.error?.message);
    return { keep: false };
  }
}

/** A connection whose read side already ended (the visitor half-closed before the 101). */
function endedConn(conn: RelayConn): RelayConn {
  return {
    read: () => Promise.resolve(null),
    write: (p) => conn.write(p),
    closeWrite: () => conn.closeWrite(),
    close: () => conn.close(),
  };
}

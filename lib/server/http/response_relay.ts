/**
 * The service's answer to one request, relayed back to the visitor: interim
 * 1xx heads passed on as they are; the final head rewritten by the tunnel's
 * rules and written together with the first body bytes (from the visitor's
 * reused buffer when they fit); then the body as bytes, paced, until its
 * framing says it ends. It decides whether the visitor's connection goes on
 * and whether the tunnel's stream can serve the next request. A service
 * that fails or misbehaves gets the visitor a 502. A 101 is handed back to
 * the visitor, whose connection becomes a pipe (`visitor.ts`).
 *
 * @module
 */

import { BodyTracker } from "./framing.ts";
import { type BodyFraming, responseFraming } from "./head.ts";
import { editedSize, writeEdited } from "./head_edit.ts";
import { answerBytes, errorPage } from "./local_answer.ts";
import type { RequestHead, ResponseHead } from "./parsed_head.ts";
import type { RequestInfo, SpliceTunnel, Transfer } from "./splice_tunnel.ts";
import type { Upstream } from "./upstream.ts";

/** Size of a visitor's reused buffer ({@linkcode VisitorSide.scratch}). */
export const SCRATCH_SIZE = 16 * 1024;

/** Where a request's body stands: still going, all sent, or why it stopped. */
export type PumpState = "pending" | "done" | "visitor-ended" | "bad-body" | "failed";

/** One request sent to a tunnel's service, whose answer is awaited. */
export interface Exchange {
  /** The tunnel the request went to. */
  readonly tunnel: SpliceTunnel;
  /** The tunnel's stream for this visitor. */
  readonly up: Upstream;
  /** The visitor's request head. */
  readonly request: RequestHead;
  /** The request as logged; its status is set when the answer comes. */
  readonly info: RequestInfo;
  /** Whether the visitor's connection may go on after this request. */
  readonly keepAlive: boolean;
  /** The protocols the request asks to upgrade to, or `null`. */
  readonly upgrade: Set<string> | null;
  /** The request's live totals. */
  readonly transfer: Transfer;
  /** When the request started (`performance.now()`). */
  readonly started: number;
  /**
   * Where the request body stands, set as it is sent: read as a field
   * rather than awaited, since the common request has no body to pump.
   */
  pump: PumpState;
}

/** What relaying an answer needs of the visitor's connection. */
export interface VisitorSide {
  /** Writes all of `bytes` to the visitor. */
  write(bytes: Uint8Array): Promise<void>;
  /** The visitor's reused buffer, {@linkcode SCRATCH_SIZE} bytes. */
  readonly scratch: Uint8Array;
  /** Whether a request frame in `scratch` still waits to be written (then it is not free). */
  scratchSending(): boolean;
  /** `tunnel`'s stream serves no further request of this visitor. */
  drop(tunnel: SpliceTunnel): void;
}

/** How a request ended: whether the visitor's connection goes on, and the error to report. */
export interface Outcome {
  /** Whether the visitor's connection goes on. */
  keep: boolean;
  /** What went wrong, for the access log. */
  error?: string | undefined;
}

/**
 * Relays the service's answer to `exchange`'s request; whether the
 * visitor's connection goes on. A 101 is returned unrelayed, with the
 * request's status and first byte recorded: the visitor checks it and
 * becomes a pipe.
 */
export async function relayResponse(
  visitor: VisitorSide,
  exchange: Exchange,
): Promise<Outcome | ResponseHead> {
  const { tunnel, up, request, info, keepAlive, upgrade, transfer, started } = exchange;
  let response: ResponseHead | null;
  for (;;) {
    try {
      response = await up.readHead();
    } catch (error) {
      return await badResponse(visitor, exchange, error);
    }
    if (!response) {
      visitor.drop(tunnel);
      up.discard("Ended");
      info.status = 502;
      const reason = up.failure ?? "the service closed the connection without answering";
      const message = /unavailable|offline/.test(reason)
        ? `Tunnel "${tunnel.name}": ${reason}`
        : `Tunnel "${tunnel.name}": the service's connection failed (${reason})`;
      if (exchange.pump !== "visitor-ended") {
        await visitor.write(answerBytes(errorPage(502, message), true));
      }
      return { keep: false, error: message };
    }
    const status = response.status;
    if (status === 101) break;
    if (status >= 200) break;
    // 100 Continue, 103 Early Hints: passed on as they are; the final answer follows.
    await visitor.write(response.bytes.subarray(0, response.size));
  }
  const head = response;
  tunnel.firstByte(performance.now() - started);
  info.status = head.status;
  if (head.status === 101) return head;

  let framing: BodyFraming;
  try {
    framing = responseFraming(request.method, head.status, head);
  } catch (error) {
    return await badResponse(visitor, exchange, error);
  }
  const serviceCloses = head.hasToken("connection", "close") ||
    (head.version === "1.0" && !head.hasToken("connection", "keep-alive"));
  // A request with Upgrade that the service did not switch ends the connection after its answer.
  const closeAfter = !keepAlive || framing.kind === "close" || upgrade !== null;
  const connection = closeAfter ? "close" : request.version === "1.0" ? "keep-alive" : null;
  // Written out with the first body bytes, from the scratch buffer when they fit.
  const edit = tunnel.responseHead(head, connection);
  const headLength = editedSize(head, edit);
  let pendingHead: Uint8Array | null = headLength <= SCRATCH_SIZE / 2 && !visitor.scratchSending()
    ? visitor.scratch.subarray(0, headLength)
    : new Uint8Array(headLength);
  writeEdited(pendingHead, 0, head, edit);
  const body = new BodyTracker(framing);
  const pace = tunnel.pace?.out;
  let error: string | undefined;
  while (!body.done) {
    // What came with the head is used without another await.
    const chunk = up.takeRest() ?? await up.next();
    if (chunk === null) {
      if (!body.untilClose) error = up.failure ?? "The service ended the response early";
      break;
    }
    let n: number;
    try {
      n = body.feed(chunk);
    } catch (e) {
      error = `Tunnel "${tunnel.name}": bad response body: ${(e as Error).message}`;
      break;
    }
    if (n < chunk.length) up.unread(chunk.subarray(n), true);
    if (n === 0) continue;
    if (pace && !pace.tryTake(n)) await pace.take(n);
    const piece = n === chunk.length ? chunk : chunk.subarray(0, n);
    if (pendingHead) {
      // Head and first body bytes in one write when they fit.
      if (pendingHead.buffer === visitor.scratch.buffer && headLength + n <= SCRATCH_SIZE) {
        visitor.scratch.set(piece, headLength);
        await visitor.write(visitor.scratch.subarray(0, headLength + n));
      } else {
        await visitor.write(pendingHead);
        await visitor.write(piece);
      }
      pendingHead = null;
    } else {
      await visitor.write(piece);
    }
    transfer.received += n;
  }
  if (pendingHead) await visitor.write(pendingHead);
  if (error) {
    up.discard(error);
    visitor.drop(tunnel);
    return { keep: false, error };
  }
  if (serviceCloses || framing.kind === "close") {
    up.discard("Service closes");
    visitor.drop(tunnel);
  }
  if (closeAfter) return { keep: false };
  return { keep: true };
}

/** The service's answer cannot be relayed: the visitor gets a 502 and the stream is dropped. */
async function badResponse(
  visitor: VisitorSide,
  exchange: Exchange,
  error: unknown,
): Promise<Outcome> {
  const { tunnel, up, info } = exchange;
  up.discard("Bad response");
  visitor.drop(tunnel);
  info.status = 502;
  const message = `Tunnel "${tunnel.name}": bad response from the service: ${
    (error as Error).message
  }`;
  await visitor.write(answerBytes(errorPage(502, message), true));
  return { keep: false, error: message };
}

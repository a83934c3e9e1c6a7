/**
 * How two burrowd nodes of one cluster recognise each other on a new link,
 * before the link carries a multiplexer. The connection is already TLS: the
 * dialer pinned the listener's certificate (its fingerprint is in the
 * `nodes` table), so what is left is to prove, both ways, that each side
 * knows the cluster secret, and to say which node is which.
 *
 * Four messages, each a 2-byte length and a JSON object (so nothing is read
 * past the handshake: the multiplexer's frames follow on the same bytes):
 *
 * 1. dialer → `{link: 1, node, to, nonce}`
 * 2. listener → `{node, nonce, proof}`, or `{error}`
 * 3. dialer → `{proof}`
 * 4. listener → `{ok: true}`, or `{error}`
 *
 * A proof is HMAC-SHA-256 under the secret of the role, both node ids and
 * both nonces: a listener's proof cannot be replayed as a dialer's, nor one
 * link's on another. Without a secret (nodes authenticated by mutual TLS),
 * proofs are empty and only the ids are exchanged.
 *
 * @example
 * ```ts
 * import { memoryPipe } from "../transport/mod.ts";
 * import { Secret } from "../util/mod.ts";
 * import { dialLinkHandshake, acceptLinkHandshake } from "./link_handshake.ts";
 * const [a, b] = memoryPipe();
 * const secret = new Secret("a cluster secret of some length");
 * const [peer] = await Promise.all([
 *   acceptLinkHandshake(b, { node: "n2", secret }),
 *   dialLinkHandshake(a, { node: "n1", to: "n2", secret }),
 * ]);
 * console.assert(peer === "n1");
 * ```
 *
 * @module
 */

import type { Duplex } from "../transport/mod.ts";
import { type Secret, timingSafeEqualTextSync } from "../util/mod.ts";

/** The link protocol's version, sent first. */
export const LINK_VERSION = 1;
/** The largest handshake message. */
const MAX_MESSAGE = 2048;
/** Milliseconds the whole handshake may take. */
export const LINK_HANDSHAKE_TIMEOUT = 10_000;

/** A node refused the link, or it was not a Burrow node: the message says which. */
export class LinkRefusedError extends Error {
  /**
   * The peer closed the connection before it sent a byte: what a dialler
   * that pins certificates does once it has read the certificate, not a
   * refusal worth a warning.
   */
  readonly silent: boolean;
  /** Creates the error. */
  constructor(message: string, silent = false) {
    super(message);
    this.name = "LinkRefusedError";
    this.silent = silent;
  }
}

/** What one side of the handshake knows. */
export interface LinkIdentity {
  /** This node's id. */
  node: string;
  /** The cluster secret; `null` when nodes are authenticated by mutual TLS. */
  secret: Secret | null;
  /** Milliseconds for the whole handshake. Default {@linkcode LINK_HANDSHAKE_TIMEOUT}. */
  timeout?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

async function readExactly(conn: Duplex, n: number, first = false): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  for (let got = 0; got < n;) {
    let r: number | null;
    try {
      r = await conn.read(out.subarray(got));
    } catch (error) {
      // A TLS handshake cut short shows here, at the first read.
      if (first && got === 0) {
        throw new LinkRefusedError(`The peer left: ${(error as Error).message}`, true);
      }
      throw error;
    }
    if (r === null) {
      throw new LinkRefusedError(
        "The peer closed the link during its handshake",
        first && got === 0,
      );
    }
    got += r;
  }
  return out;
}

async function send(conn: Duplex, message: Record<string, unknown>): Promise<void> {
  const body = enc.encode(JSON.stringify(message));
  const out = new Uint8Array(2 + body.length);
  new DataView(out.buffer).setUint16(0, body.length);
  out.set(body, 2);
  for (let n = 0; n < out.length;) n += await conn.write(out.subarray(n));
}

async function receive(conn: Duplex, first = false): Promise<Record<string, unknown>> {
  const size = new DataView((await readExactly(conn, 2, first)).buffer).getUint16(0);
  if (size === 0 || size > MAX_MESSAGE) {
    throw new LinkRefusedError(`Not a Burrow node link (handshake message of ${size} bytes)`);
  }
  let value: unknown;
  try {
    value = JSON.parse(dec.decode(await readExactly(conn, size)));
  } catch {
    throw new LinkRefusedError("Not a Burrow node link (handshake message is not JSON)");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new LinkRefusedError("Not a Burrow node link (handshake message is not an object)");
  }
  return value as Record<string, unknown>;
}

function text(message: Record<string, unknown>, key: string, max = 256): string {
  const value = message[key];
  if (typeof value !== "string" || value.length > max) {
    throw new LinkRefusedError(`Bad node link handshake: "${key}" missing or not text`);
  }
  return value;
}

function nonce(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

async function proof(
  secret: Secret | null,
  role: "dialer" | "listener",
  dialer: string,
  listener: string,
  dialerNonce: string,
  listenerNonce: string,
): Promise<string> {
  if (!secret) return "";
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(secret.reveal()),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const data = enc.encode(
    ["burrow-link", role, dialer, listener, dialerNonce, listenerNonce].join("\n"),
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, data));
  return btoa(String.fromCharCode(...mac));
}

/** Runs `work` on `conn` within the handshake's deadline; closes `conn` when it fails. */
async function bounded<T>(conn: Duplex, ms: number, work: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new LinkRefusedError(`The node link handshake took longer than ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([work(), deadline]);
  } catch (error) {
    try {
      conn.close();
    } catch { /* already closed */ }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The dialer's side: proves the secret to node `to` and checks its proof.
 * Resolves once the link may carry the multiplexer.
 *
 * @throws {LinkRefusedError} naming why (wrong node, other secret, refused).
 */
export function dialLinkHandshake(
  conn: Duplex,
  options: LinkIdentity & { to: string },
): Promise<void> {
  const { node, to, secret } = options;
  return bounded(conn, options.timeout ?? LINK_HANDSHAKE_TIMEOUT, async () => {
    const mine = nonce();
    await send(conn, { link: LINK_VERSION, node, to, nonce: mine });
    const reply = await receive(conn);
    if (typeof reply.error === "string") {
      throw new LinkRefusedError(`Node ${to} refused the link: ${reply.error}`);
    }
    const theirs = text(reply, "nonce");
    const listener = text(reply, "node");
    if (listener !== to) {
      throw new LinkRefusedError(
        `The address of node ${to} is served by node ${listener}: its row in the nodes table is out of date`,
      );
    }
    const expected = await proof(secret, "listener", node, to, mine, theirs);
    if (!timingSafeEqualTextSync(text(reply, "proof"), expected)) {
      // Said to the listener too, so that both nodes' logs name the cause.
      await send(conn, { error: "wrong cluster secret" }).catch(() => {});
      throw new LinkRefusedError(
        `Node ${to} does not know this cluster's secret (server.cluster.secret differs)`,
      );
    }
    await send(conn, { proof: await proof(secret, "dialer", node, to, mine, theirs) });
    const done = await receive(conn);
    if (typeof done.error === "string") {
      throw new LinkRefusedError(`Node ${to} refused the link: ${done.error}`);
    }
    if (done.ok !== true) throw new LinkRefusedError("Bad node link handshake: no answer");
  });
}

/**
 * The listener's side: checks the dialer's proof and proves the secret in
 * turn. Resolves with the dialer's node id once the link may carry the
 * multiplexer.
 *
 * @throws {LinkRefusedError} naming why; the dialer has been told.
 */
export function acceptLinkHandshake(conn: Duplex, options: LinkIdentity): Promise<string> {
  const { node, secret } = options;
  return bounded(conn, options.timeout ?? LINK_HANDSHAKE_TIMEOUT, async () => {
    const hello = await receive(conn, true);
    if (hello.link !== LINK_VERSION) {
      await send(conn, { error: `link protocol ${String(hello.link)} is not ${LINK_VERSION}` });
      throw new LinkRefusedError(
        `A node asked for link protocol ${String(hello.link)}; this node speaks ${LINK_VERSION}`,
      );
    }
    const dialer = text(hello, "node");
    const to = text(hello, "to");
    const theirs = text(hello, "nonce");
    if (to !== node) {
      await send(conn, { error: `this is node ${node}, not ${to}` });
      throw new LinkRefusedError(`Node ${dialer} dialled node ${to} at this node's address`);
    }
    const mine = nonce();
    await send(conn, {
      node,
      nonce: mine,
      proof: await proof(secret, "listener", dialer, node, theirs, mine),
    });
    const answer = await receive(conn);
    if (typeof answer.error === "string") {
      throw new LinkRefusedError(
        `Node ${dialer} does not know this cluster's secret (server.cluster.secret differs)`,
      );
    }
    const expected = await proof(secret, "dialer", dialer, node, theirs, mine);
    if (!timingSafeEqualTextSync(text(answer, "proof"), expected)) {
      await send(conn, { error: "wrong cluster secret" });
      throw new LinkRefusedError(
        `Node ${dialer} does not know this cluster's secret (server.cluster.secret differs)`,
      );
    }
    await send(conn, { ok: true });
    return dialer;
  });
}

/**
 * What an HTTP tunnel changes in the heads it carries: the hop-by-hop
 * headers that stop at Burrow, the forwarding headers only Burrow sets
 * (`X-Forwarded-For`, `-Proto`, `-Host`), and the tunnel's own rules
 * (headers set and removed each way, the basic-auth credentials it checked),
 * worked out once per tunnel. The splice engine gets them as a
 * {@linkcode HeadEdit} of the head it parsed; the node:http path (HTTP/2
 * visitors) as header lists. Both are here, side by side, so that the two
 * engines apply the same rules.
 *
 * @module
 */

import type http from "node:http";
import { type HeadEdit, latin1Bytes } from "../http/head_edit.ts";
import { HEADER_KIND, type KnownName, lowerName } from "../http/header_names.ts";
import type { RequestHead, ResponseHead } from "../http/parsed_head.ts";

/** A table of header kinds ({@linkcode HEADER_KIND}): 1 for each of `names`. */
function kindTable(names: KnownName[]): Uint8Array {
  const table = new Uint8Array(32);
  for (const name of names) table[HEADER_KIND[name]] = 1;
  return table;
}

/** Hop-by-hop headers a splice drops; the framing ones (Transfer-Encoding, Trailer) stay with their bytes. */
const SPLICE_HOP = kindTable([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "upgrade",
  "http2-settings",
]);
/** The hop-by-hop headers an upgrade request keeps. */
const UPGRADE_KEEPS = kindTable(["connection", "upgrade", "http2-settings"]);
/** The hop-by-hop headers a 101 response keeps. */
const SWITCH_KEEPS = kindTable(["connection", "upgrade"]);

/** The lines a head edit adds, as text and, once asked for twice in a row, as bytes. */
interface Extra {
  text: string;
  bytes: Uint8Array | undefined;
}

/** Forwarding headers only Burrow sets (a visitor's are dropped). */
const OURS = new Set(["x-forwarded-proto", "x-forwarded-host"]);

/** Hop-by-hop headers by name, for the node:http path (node frames the bodies itself). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "http2-settings",
]);

/** Options of {@linkcode HeaderEditor}: a tunnel's header rules. */
export interface HeaderEditorOptions {
  /** Request headers set, replacing the visitor's. Default none. */
  requestSet?: Record<string, string> | undefined;
  /** Request headers removed (lower case). Default none. */
  requestRemove?: readonly string[] | undefined;
  /** Removes the visitor's Authorization too (the tunnel checked basic auth itself). Default `false`. */
  stripAuthorization?: boolean | undefined;
  /** Response headers set, replacing the service's. Default none. */
  responseSet?: Record<string, string> | undefined;
  /** Response headers removed (lower case). Default none. */
  responseRemove?: readonly string[] | undefined;
}

/**
 * The header rules of one HTTP tunnel, worked out once rather than per
 * request, and the heads they make.
 *
 * @example
 * ```ts
 * import type http from "node:http";
 * import { HeaderEditor } from "./http_headers.ts";
 * const editor = new HeaderEditor({ responseSet: { "X-Frame-Options": "DENY" } });
 * const back = { rawHeaders: ["Connection", "close", "Content-Type", "text/plain"] };
 * const headers = editor.backHeaders(back as http.IncomingMessage, false);
 * console.assert(headers["connection"] === undefined && headers["x-frame-options"] === "DENY");
 * ```
 */
export class HeaderEditor {
  #requestRules: { drop: Set<string>; set: Array<[string, string]>; setsHost: boolean };
  #responseRules: { drop: Set<string>; set: Array<[string, string]> };
  #responseRemoved: Set<string>;
  /** The last request extra and what it was made of: a visitor's requests mostly repeat it. */
  #requestExtra: Extra & { forwardedFor: string; remote: string; scheme: string; host: string } = {
    forwardedFor: "",
    remote: "",
    scheme: "",
    host: "",
    text: "",
    bytes: undefined,
  };
  /** Response extras by the Connection header given. */
  #responseExtras = new Map<string | null, Extra>();

  /** The rules of `options`, worked out. */
  constructor(options: HeaderEditorOptions) {
    const requestRemoved = new Set(options.requestRemove ?? []);
    if (options.stripAuthorization) requestRemoved.add("authorization");
    const requestSet = Object.entries(options.requestSet ?? {})
      .filter(([k]) => !requestRemoved.has(k.toLowerCase()));
    this.#requestRules = {
      // Set headers replace the visitor's (the forwarding headers are always ours).
      drop: new Set([...requestRemoved, ...requestSet.map(([k]) => k.toLowerCase())]),
      set: requestSet,
      setsHost: requestSet.some(([k]) => k.toLowerCase() === "host"),
    };
    const responseRemoved = new Set(options.responseRemove ?? []);
    this.#responseRemoved = new Set([
      ...responseRemoved,
      ...Object.keys(options.responseSet ?? {}).map((k) => k.toLowerCase()),
    ]);
    this.#responseRules = {
      drop: new Set([...HOP_BY_HOP, ...responseRemoved]),
      set: Object.entries(options.responseSet ?? {})
        .map(([k, v]) => [k.toLowerCase(), v] as [string, string])
        .filter(([k]) => !responseRemoved.has(k)),
    };
  }

  // ---- the splice engine's heads (HTTP/1.1) ----

  /**
   * How the request head sent to the service differs from the visitor's:
   * hop-by-hop headers and the rules' removals out, forwarding headers and
   * set rules in; the lines kept cross as they came.
   */
  requestHead(
    head: RequestHead,
    target: string,
    host: string,
    remote: string,
    scheme: string,
  ): HeadEdit {
    const upgrade = head.hasToken("connection", "upgrade");
    // Headers the Connection header names are hop-by-hop too, unless they belong to an upgrade.
    const named = !upgrade && head.indexOf("connection") >= 0 ? head.tokens("connection") : null;
    const { drop, setsHost } = this.#requestRules;
    // Names are cut and lowered only when a rule or the Connection header names fields.
    const byName = drop.size > 0 || named !== null;
    const count = head.fieldCount;
    const keep = new Array<boolean>(count);
    let forwardedFor = "";
    for (let i = 0; i < count; i++) {
      const kind = head.kind(i);
      let kept = true;
      if (kind === HEADER_KIND.host) {
        kept = !setsHost;
      } else if (kind === HEADER_KIND["x-forwarded-for"]) {
        const value = head.value(i);
        forwardedFor = forwardedFor ? `${forwardedFor}, ${value}` : value;
        kept = false;
      } else if (
        kind === HEADER_KIND["x-forwarded-proto"] || kind === HEADER_KIND["x-forwarded-host"] ||
        (SPLICE_HOP[kind] === 1 && !(upgrade && UPGRADE_KEEPS[kind] === 1))
      ) {
        kept = false;
      } else if (byName) {
        const lower = lowerName(head.name(i));
        kept = !drop.has(lower) && !(named !== null && named.includes(lower));
      }
      keep[i] = kept;
    }
    const extra = this.#requestExtraFor(forwardedFor, remote, scheme, host);
    const firstLine = target === head.target
      ? null
      : `${head.method} ${target} HTTP/${head.version}`;
    return { firstLine, keep, extra: extra.text, extraBytes: extra.bytes };
  }

  /** The forwarding headers and set rules of a request, remembered from the last request. */
  #requestExtraFor(
    forwardedFor: string,
    remote: string,
    scheme: string,
    host: string,
  ): Extra {
    const last = this.#requestExtra;
    if (
      last.text !== "" && last.remote === remote && last.host === host &&
      last.forwardedFor === forwardedFor && last.scheme === scheme
    ) {
      last.bytes ??= latin1Bytes(last.text);
      return last;
    }
    let text = `X-Forwarded-For: ${forwardedFor ? `${forwardedFor}, ${remote}` : remote}\r\n` +
      `X-Forwarded-Proto: ${scheme}\r\n`;
    if (host) text += `X-Forwarded-Host: ${host}\r\n`;
    for (const [name, value] of this.#requestRules.set) text += `${name}: ${value}\r\n`;
    this.#requestExtra = { forwardedFor, remote, scheme, host, text, bytes: undefined };
    return this.#requestExtra;
  }

  /**
   * How the response head sent to the visitor differs from the service's:
   * the tunnel's response rules applied, and `connection` as the
   * Connection header when given.
   */
  responseHead(head: ResponseHead, connection: string | null): HeadEdit {
    const keeps = head.status === 101 ? SWITCH_KEEPS : null;
    const removed = this.#responseRemoved;
    const count = head.fieldCount;
    const keep = new Array<boolean>(count);
    for (let i = 0; i < count; i++) {
      const kind = head.kind(i);
      keep[i] = !(SPLICE_HOP[kind] === 1 && keeps?.[kind] !== 1) &&
        !(removed.size > 0 && removed.has(lowerName(head.name(i))));
    }
    let extra = this.#responseExtras.get(connection);
    if (extra === undefined) {
      let text = "";
      for (const [name, value] of this.#responseRules.set) text += `${name}: ${value}\r\n`;
      if (connection) text += `Connection: ${connection}\r\n`;
      extra = { text, bytes: latin1Bytes(text) };
      if (this.#responseExtras.size < 8) this.#responseExtras.set(connection, extra);
    }
    // The visitor speaks to an HTTP/1.1 proxy, whatever the service's version.
    const firstLine = head.version === "1.1" ? null : `HTTP/1.1 ${head.status} ${head.reason}`;
    return { firstLine, keep, extra: extra.text, extraBytes: extra.bytes };
  }

  // ---- the node:http path's headers (HTTP/2 visitors) ----

  /**
   * The request headers sent to the service for `req`, from `remote`, which
   * came in over `scheme`; `expect-continue` keeps its Expect header.
   */
  forwardHeaders(
    req: http.IncomingMessage,
    remote: string,
    scheme: string,
    mode: "request" | "expect-continue",
  ): Array<[string, string]> {
    const raw = req.rawHeaders;
    // Headers the Connection header names are hop-by-hop too (rare: computed only when present).
    const connection = req.headers.connection;
    const named = connection
      ? new Set(String(connection).toLowerCase().split(",").map((s) => s.trim()))
      : null;
    const { drop, set, setsHost } = this.#requestRules;
    const headers: Array<[string, string]> = [["Host", ""]];
    let host = "";
    let forwardedFor = "";
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      const lower = name.toLowerCase();
      const value = raw[i + 1]!;
      if (lower === ":authority" || lower === "host") {
        host ||= value;
        continue;
      }
      if (lower === "x-forwarded-for") {
        forwardedFor = forwardedFor ? `${forwardedFor}, ${value}` : value;
        continue;
      }
      if (
        lower.startsWith(":") || drop.has(lower) || named?.has(lower) || OURS.has(lower) ||
        (lower === "expect" && mode === "request") || HOP_BY_HOP.has(lower)
      ) continue;
      headers.push([name, value]);
    }
    if (setsHost) headers.shift();
    else headers[0]![1] = host;
    headers.push(["X-Forwarded-For", forwardedFor ? `${forwardedFor}, ${remote}` : remote]);
    headers.push(["X-Forwarded-Proto", scheme]);
    if (host) headers.push(["X-Forwarded-Host", host]);
    headers.push(...set);
    return headers;
  }

  /** The response headers sent to the visitor for the service's `res` (`h2`: to an HTTP/2 visitor). */
  backHeaders(res: http.IncomingMessage, h2: boolean): Record<string, string | string[]> {
    const { drop, set } = this.#responseRules;
    const out: Record<string, string | string[]> = {};
    const raw = res.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (drop.has(lower) || (h2 && lower === "host")) continue;
      const value = raw[i + 1]!;
      const prior = out[lower];
      out[lower] = prior === undefined
        ? value
        : Array.isArray(prior)
        ? [...prior, value]
        : [prior, value];
    }
    for (const [name, value] of set) out[name] = value;
    return out;
  }
}

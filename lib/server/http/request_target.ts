/**
 * The request target the splice engine routes and forwards: the origin
 * form (`/path?query`) as sent, or an absolute-form target
 * (`GET http://app.test/x`) rewritten to it when its host is the Host
 * header's (RFC 9112 §3.2.2), so a tunnel's service always sees the origin
 * form. `OPTIONS *` passes; CONNECT, other schemes, user info and a host
 * that differs from the Host header are refused with a reason for the 400.
 *
 * Pure: no I/O.
 *
 * @module
 */

import type { RequestHead } from "./parsed_head.ts";

/**
 * The origin-form target of a request, rewriting an absolute-form one
 * (`GET http://app.test/x`) whose host is the Host header's (RFC 9112 §3.2.2).
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "./head.ts";
 * import { originTarget } from "./request_target.ts";
 * const head = parseRequestHead(
 *   new TextEncoder().encode("GET http://a.test/x?y HTTP/1.1\r\nHost: a.test\r\n\r\n"),
 * )!;
 * console.assert(originTarget(head, "a.test") === "/x?y");
 * ```
 */
export function originTarget(head: RequestHead, host: string): string | { error: string } {
  const target = head.target;
  if (target.startsWith("/")) return target;
  if (target === "*" && head.method === "OPTIONS") return target;
  if (head.method === "CONNECT") return { error: "CONNECT is not supported by this proxy" };
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return { error: "Invalid request target" };
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password) {
    return { error: "Invalid request target" };
  }
  if (hostName(url.host) !== hostName(host)) {
    return { error: `The request target's host "${url.host}" differs from its Host header` };
  }
  return url.pathname + url.search;
}

/** The host of a Host value (or a URL's host), lower case, without its port. */
function hostName(value: string): string {
  const host = value.trim().toLowerCase();
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.lastIndexOf(":");
  return colon >= 0 ? host.slice(0, colon) : host;
}

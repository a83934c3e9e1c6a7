/**
 * The shapes of names that come from configuration, the wire and the admin
 * API: host names (and `*.` patterns of them), DNS labels and HTTP header
 * names; and what a host pattern covers.
 *
 * @example
 * ```ts
 * import { HOST_PATTERN, patternCovers } from "./names.ts";
 * console.assert(HOST_PATTERN.test("*.example.com"));
 * console.assert(patternCovers("*.example.com", "a.b.example.com"));
 * console.assert(!patternCovers("*.example.com", "a.b.example.com", { oneLabel: true }));
 * ```
 *
 * @module
 */

/** A DNS host name. */
export const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/** A DNS host name, or `*.` followed by one. */
export const HOST_PATTERN =
  /^(\*\.)?(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;

/** One DNS label (a subdomain). */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** A name of a user, group or similar: 1-64 letters, digits, `_`, `.` or `-`, not starting with a sign. */
export const ENTITY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** An HTTP header name (an RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Whether `pattern` (`name` or `*.name`, lower case) covers `host` (lower
 * case). `*.example.com` covers any name under `example.com`; with
 * `oneLabel`, only names one label deeper, as a certificate's wildcard does.
 */
export function patternCovers(
  pattern: string,
  host: string,
  options: { oneLabel?: boolean } = {},
): boolean {
  if (!pattern.startsWith("*.")) return pattern === host;
  const suffix = pattern.slice(1); // ".example.com"
  if (!host.endsWith(suffix) || host.length === suffix.length) return false;
  return !options.oneLabel || !host.slice(0, host.length - suffix.length).includes(".");
}

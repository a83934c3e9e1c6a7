/**
 * Token limits: what a client logged in with a token may publish (tunnel
 * types, port ranges, host names), checked and put in canonical form when
 * the token is issued.
 *
 * @module
 */

import { TUNNEL_TYPES } from "../protocol/mod.ts";
import { HOST_PATTERN, parsePortRanges } from "../util/mod.ts";
import { TokenError } from "./errors.ts";
import type { TokenLimits } from "./token_store.ts";

/**
 * Checks token limits, returning them in canonical form.
 *
 * @throws {TokenError} naming the bad part.
 */
export function checkTokenLimits(limits: TokenLimits): TokenLimits {
  const out: TokenLimits = {};
  if (limits.types !== undefined) {
    if (!Array.isArray(limits.types) || !limits.types.length) {
      throw new TokenError("limits.types must be a non-empty list of tunnel types");
    }
    for (const t of limits.types) {
      if (!(TUNNEL_TYPES as readonly string[]).includes(t)) {
        throw new TokenError(`Unknown tunnel type "${t}"; types are ${TUNNEL_TYPES.join(", ")}`);
      }
    }
    out.types = [...new Set(limits.types)];
  }
  if (limits.ports !== undefined) {
    try {
      parsePortRanges(limits.ports);
    } catch (error) {
      throw new TokenError(`limits.ports: ${(error as Error).message}`);
    }
    out.ports = limits.ports;
  }
  if (limits.domains !== undefined) {
    if (!Array.isArray(limits.domains) || !limits.domains.length) {
      throw new TokenError("limits.domains must be a non-empty list of host names");
    }
    for (const d of limits.domains) {
      if (typeof d !== "string" || !HOST_PATTERN.test(d)) {
        throw new TokenError(`limits.domains: ${JSON.stringify(d)} is not a host name or *.name`);
      }
    }
    out.domains = limits.domains.map((d) => d.toLowerCase());
  }
  return out;
}

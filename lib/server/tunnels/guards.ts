/**
 * What every tunnel type enforces on its visitors, written once: the IP
 * policy (`allow_ips`, `deny_ips`), the connection limit and the bandwidth
 * limit, with the counters they report to. Each type applies them its own
 * way: TCP closes a refused connection and paces over the bandwidth limit,
 * UDP drops datagrams, HTTP answers 403 / 503.
 *
 * @module
 */

import { IpPolicy, type Logger, type Throttle } from "../../util/mod.ts";

/** The visitor policy, limits and counters of one tunnel. */
export interface VisitorGuards {
  /** Where events are logged. */
  logger: Logger;
  /** Visitors allowed; others are refused before anything reaches the client. */
  policy?: IpPolicy | undefined;
  /** Called for each visitor (or datagram) the policy refused. */
  onDenied?: (() => void) | undefined;
  /** Bandwidth limit per direction (from / to visitors). */
  limit?: { in: Throttle; out: Throttle } | undefined;
  /** Called when the bandwidth limit held traffic back or dropped it. */
  onLimit?: (() => void) | undefined;
  /** Most open connections, UDP sessions or requests in flight; 0 or absent: unlimited. */
  maxConnections?: number | undefined;
  /** Called for each visitor refused by `maxConnections`. */
  onConnectionLimit?: (() => void) | undefined;
}

/**
 * The visitor policy of a tunnel request or row (`allow_ips`, `deny_ips`),
 * each `undefined`, `null` or a list of addresses and CIDR blocks.
 *
 * @throws {Error} naming a bad block or a list that is not a list of strings.
 */
export function visitorPolicy(allow: unknown, deny: unknown): IpPolicy {
  const strings = (v: unknown, name: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      throw new Error(`${name} must be a list of IP addresses or CIDR blocks`);
    }
    return v as string[];
  };
  return IpPolicy.parse(strings(allow, "allow_ips"), strings(deny, "deny_ips"));
}

/** Refusals by IP policy are logged at the first and then every this many. */
const LOG_EVERY = 1000;

/**
 * The guards of one tunnel: asks whether a visitor may come in, counts and
 * logs the refusals.
 *
 * @example
 * ```ts
 * import { IpPolicy } from "../../util/cidr.ts";
 * import { nullLogger } from "../../util/logger.ts";
 * import { VisitorGuard } from "./guards.ts";
 * const guard = new VisitorGuard("ssh", {
 *   logger: nullLogger,
 *   policy: IpPolicy.parse(["10.0.0.0/8"]),
 *   maxConnections: 2,
 * });
 * console.assert(guard.admits("10.1.2.3") && !guard.admits("192.0.2.1"));
 * console.assert(!guard.full(1) && guard.full(2));
 * ```
 */
export class VisitorGuard {
  /** Bandwidth limit per direction (from / to visitors), if any. */
  readonly limit: { in: Throttle; out: Throttle } | undefined;
  #tunnel: string;
  #log: Logger;
  #policy: IpPolicy | undefined;
  #onDenied: (() => void) | undefined;
  #onLimit: (() => void) | undefined;
  #max: number;
  #onConnectionLimit: (() => void) | undefined;
  #denied = 0;

  /** The guards of the tunnel named `tunnel`. */
  constructor(tunnel: string, options: VisitorGuards) {
    this.#tunnel = tunnel;
    this.#log = options.logger;
    // An empty policy allows everyone: not asked at all.
    this.#policy = options.policy?.empty ? undefined : options.policy;
    this.#onDenied = options.onDenied;
    this.limit = options.limit;
    this.#onLimit = options.onLimit;
    this.#max = options.maxConnections ?? 0;
    this.#onConnectionLimit = options.onConnectionLimit;
  }

  /** Visitors the IP policy refused so far. */
  get denied(): number {
    return this.#denied;
  }

  /**
   * Whether the IP policy lets `address` (a host, without port) in. A
   * refusal is counted, and logged at the first and every thousandth with
   * `remote` (what the log names the visitor by; default `address`).
   */
  admits(address: string, remote: string = address): boolean {
    const policy = this.#policy;
    if (policy === undefined || policy.allows(address)) return true;
    this.#denied++;
    this.#onDenied?.();
    if (this.#denied === 1 || this.#denied % LOG_EVERY === 0) {
      this.#log.warn("visitor refused by IP policy", {
        tunnel: this.#tunnel,
        remote,
        refused_so_far: this.#denied,
      });
    }
    return false;
  }

  /** Whether `open` visitors fill the connection limit, so a new one is refused (and counted). */
  full(open: number): boolean {
    if (this.#max <= 0 || open < this.#max) return false;
    this.#onConnectionLimit?.();
    return true;
  }

  /** Times the bandwidth limit held traffic back so far (read before a transfer, see `limitedSince`). */
  get throttled(): number {
    const limit = this.limit;
    return limit ? limit.in.throttled + limit.out.throttled : 0;
  }

  /** Reports a bandwidth-limit hit when traffic was held back since `throttled` read `before`. */
  limitedSince(before: number): void {
    if (this.limit && this.throttled > before) this.#onLimit?.();
  }

  /** Reports traffic the bandwidth limit dropped (UDP). */
  limited(): void {
    this.#onLimit?.();
  }
}

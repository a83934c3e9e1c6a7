/**
 * The addresses the client dials: each configured `HOST:PORT`, a name
 * expanded to every address it resolves to (A and AAAA) so that several
 * burrowd nodes behind one name count as several, duplicates removed. The
 * first pick is random, so that clients spread over the nodes; then each
 * pick is the next in the ring, skipping addresses another session of the
 * same client holds; names are resolved again at the start of each round.
 *
 * @example
 * ```ts
 * import { AddressBook } from "./addresses.ts";
 * const book = new AddressBook([{ host: "127.0.0.2", port: 7000 }, { host: "127.0.0.3", port: 7000 }]);
 * const first = await book.next(new Set());
 * const second = await book.next(new Set([first!.key]));
 * console.assert(first !== null && second !== null && first.key !== second.key);
 * ```
 *
 * @module
 */

import type { ServerAddr } from "../config/mod.ts";
import { type Logger, nullLogger } from "../util/mod.ts";

/** One address to dial. */
export interface ServerAddress {
  /** What is dialed: an IP address, or the name as written when it is not expanded. */
  hostname: string;
  /** Control port. */
  port: number;
  /** The host as configured: the name the server's certificate must be for. */
  serverName: string;
  /** Identity among a client's sessions (never two sessions on one key). */
  key: string;
  /** As logged and shown: `node1.example.com:7000 (10.0.0.5)`, or `10.0.0.5:7000`. */
  label: string;
}

/** Looks up the addresses of `name`; rejects or resolves to `[]` when it has none. */
export type Resolver = (name: string, type: "A" | "AAAA") => Promise<string[]>;

/** Options of {@linkcode AddressBook}. */
export interface AddressBookOptions {
  /**
   * Expand names to their addresses. Default true; false dials each name
   * as written and lets the system resolver pick (the single
   * `server_addr` form of one session does, as it always did).
   */
  expand?: boolean;
  /** The DNS lookup. Default `Deno.resolveDns` with a 3 s limit. */
  resolve?: Resolver;
  /** The random source of the first pick. Default `Math.random`. */
  random?: () => number;
  /** Where resolutions are logged (at debug). */
  logger?: Logger;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const RESOLVE_TIMEOUT = 3_000;

function isIp(host: string): boolean {
  return IPV4.test(host) || host.includes(":");
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

const resolveDns: Resolver = (name, type) =>
  Deno.resolveDns(name, type, { signal: AbortSignal.timeout(RESOLVE_TIMEOUT) });

/** The ring of addresses a client's sessions take turns on. */
export class AddressBook {
  #entries: ServerAddr[];
  #expand: boolean;
  #resolve: Resolver;
  #random: () => number;
  #log: Logger;
  #list: ServerAddress[] = [];
  #cursor = 0;
  /** Picks since the last resolution: a full round resolves again. */
  #picked = 0;
  #resolved = false;
  /** Picks run one at a time, so that two sessions never take the same address. */
  #queue: Promise<unknown> = Promise.resolve();

  /** A book of `entries`; nothing is resolved before the first pick. */
  constructor(entries: ServerAddr[], options: AddressBookOptions = {}) {
    this.#entries = entries;
    this.#expand = options.expand ?? true;
    this.#resolve = options.resolve ?? resolveDns;
    this.#random = options.random ?? Math.random;
    this.#log = options.logger ?? nullLogger;
  }

  /** Distinct addresses as last resolved (0 before the first pick). */
  get size(): number {
    return this.#list.length;
  }

  /** The configured entries, `a:7000, b:7000`, as messages name them. */
  get written(): string {
    return this.#entries.map((e) => hostPort(e.host, e.port)).join(", ");
  }

  /**
   * The next address of the ring that is not in `busy` (keys of addresses
   * other sessions hold), or null when they hold every one.
   */
  next(busy: ReadonlySet<string>): Promise<ServerAddress | null> {
    const pick = this.#queue.then(() => this.#next(busy));
    this.#queue = pick.catch(() => {});
    return pick;
  }

  async #next(busy: ReadonlySet<string>): Promise<ServerAddress | null> {
    if (!this.#resolved || this.#picked >= this.#list.length) await this.#refresh();
    const n = this.#list.length;
    for (let i = 0; i < n; i++) {
      const address = this.#list[this.#cursor % n]!;
      this.#cursor = (this.#cursor + 1) % n;
      if (busy.has(address.key)) continue;
      this.#picked++;
      return address;
    }
    return null;
  }

  async #refresh(): Promise<void> {
    const lists = await Promise.all(this.#entries.map((entry) => this.#addressesOf(entry)));
    const seen = new Set<string>();
    this.#list = lists.flat().filter((a) => !seen.has(a.key) && seen.add(a.key));
    this.#picked = 0;
    if (!this.#resolved) {
      // A random start spreads a fleet of clients over the nodes.
      this.#cursor = Math.floor(this.#random() * this.#list.length);
      this.#resolved = true;
    }
    this.#log.debug("server addresses", { addresses: this.#list.map((a) => a.label) });
  }

  /** The addresses of one entry: itself for an IP or `localhost`, else what its name resolves to. */
  async #addressesOf(entry: ServerAddr): Promise<ServerAddress[]> {
    const asWritten = [address(entry.host, entry.port, entry.host, false)];
    if (!this.#expand || isIp(entry.host) || entry.host.toLowerCase() === "localhost") {
      return asWritten;
    }
    const name = entry.host;
    const found = await Promise.all(
      (["A", "AAAA"] as const).map((type) => this.#resolve(name, type).catch(() => [])),
    );
    const ips = found.flat();
    // Nothing from DNS (a name only /etc/hosts knows, or no resolver): the dial resolves it,
    // and says "no such host" if nothing does.
    if (!ips.length) return asWritten;
    return ips.map((ip) => address(ip, entry.port, name, true));
  }
}

function address(hostname: string, port: number, serverName: string, resolved: boolean) {
  return {
    hostname,
    port,
    serverName,
    key: hostPort(hostname, port),
    label: resolved ? `${hostPort(serverName, port)} (${hostname})` : hostPort(hostname, port),
  };
}

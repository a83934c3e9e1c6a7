/**
 * The connection every transport provides and the mux runs over.
 *
 * @module
 */

/** A byte pipe: a `Deno.Conn`, a TLS connection, a node socket, a memory pipe. */
export interface Duplex {
  /** Reads into `p`; resolves with the count, or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p`; resolves with the count written. */
  write(p: Uint8Array): Promise<number>;
  /** Closes both directions. */
  close(): void;
}

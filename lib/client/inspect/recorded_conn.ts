/**
 * The local connection of an HTTP tunnel with its bytes also handed to the
 * inspector's recorder.
 *
 * @module
 */

import type { RelayConn } from "../../mux/mod.ts";
import type { ConnRecording } from "./recorder.ts";

/**
 * A local connection whose bytes are also handed to `recording`: what is
 * written to the service is the visitor's request, what is read from it the
 * response.
 */
export class RecordedConn implements RelayConn {
  #conn: RelayConn;
  #recording: ConnRecording;
  /** Bytes at the start of the next write already handed over (after a partial write). */
  #handed = 0;

  /** Wraps `conn`. */
  constructor(conn: RelayConn, recording: ConnRecording) {
    this.#conn = conn;
    this.#recording = recording;
  }

  /** Reads from the service. */
  async read(p: Uint8Array): Promise<number | null> {
    const n = await this.#conn.read(p);
    if (n) this.#recording.response(p.subarray(0, n));
    return n;
  }

  /** Writes to the service. */
  async write(p: Uint8Array): Promise<number> {
    // Handed over before the write, so a request is queued before its response.
    const skip = Math.min(this.#handed, p.length);
    if (skip < p.length) this.#recording.request(p.subarray(skip));
    const n = await this.#conn.write(p);
    // All of `p` is handed over now; a partial write is followed by a write of the rest.
    this.#handed = p.length - n;
    return n;
  }

  /** Ends writing to the service. */
  closeWrite(): Promise<void> | void {
    return this.#conn.closeWrite();
  }

  /** Closes the connection. */
  close(): void {
    this.#conn.close();
  }
}

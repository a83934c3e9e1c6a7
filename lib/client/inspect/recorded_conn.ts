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
  read(p: Uint8Array): Promise<number | null> {
    // A `then` rather than an `async` wrapper: one promise less per read on the relay's path.
    return this.#conn.read(p).then((n) => {
      if (n) this.#recording.response(p.subarray(0, n));
      return n;
    });
  }

  /** Writes to the service. */
  write(p: Uint8Array): Promise<number> {
    // Handed over before the write, so a request is queued before its response.
    const skip = Math.min(this.#handed, p.length);
    if (skip < p.length) this.#recording.request(p.subarray(skip));
    return this.#conn.write(p).then((n) => {
      // All of `p` is handed over now; a partial write is followed by a write of the rest.
      this.#handed = p.length - n;
      return n;
    });
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

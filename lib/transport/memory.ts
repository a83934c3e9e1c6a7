/**
 * An in-memory duplex pipe for tests: two connected ends with optional
 * one-way latency, so the multiplexer can be exercised without sockets.
 *
 * @example
 * ```ts
 * import { memoryPipe } from "./memory.ts";
 * const [a, b] = memoryPipe();
 * await a.write(new Uint8Array([7]));
 * const buf = new Uint8Array(4);
 * console.assert((await b.read(buf)) === 1);
 * a.close();
 * b.close();
 * ```
 *
 * @module
 */

/** One end of a {@linkcode memoryPipe}. */
export interface MemoryConn {
  /** Reads into `p`; resolves with the count, or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes from `p`; resolves with the count written. */
  write(p: Uint8Array): Promise<number>;
  /** Ends this side's writing; the peer reads `null` after the data. */
  closeWrite(): void;
  /** Closes both directions. */
  close(): void;
}

/** Options of {@linkcode memoryPipe}. */
export interface MemoryPipeOptions {
  /** One-way delay in ms applied to every write. Default 0. */
  latency?: number;
}

class Channel {
  queue: Array<{ data: Uint8Array; at: number }> = [];
  ended = false;
  waiter: (() => void) | null = null;
  timer: ReturnType<typeof setTimeout> | undefined;

  wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}

/** Creates two connected ends. */
export function memoryPipe(options: MemoryPipeOptions = {}): [MemoryConn, MemoryConn] {
  const latency = options.latency ?? 0;
  const ab = new Channel();
  const ba = new Channel();
  let closed = false;

  function closeAll() {
    closed = true;
    for (const ch of [ab, ba]) {
      ch.ended = true;
      clearTimeout(ch.timer);
      ch.wake();
    }
  }

  function end(inbox: Channel, outbox: Channel): MemoryConn {
    return {
      async read(p) {
        for (;;) {
          if (closed && inbox.queue.length === 0) return null;
          const head = inbox.queue[0];
          if (head) {
            const wait = head.at - performance.now();
            if (wait > 0) {
              await new Promise<void>((resolve) => {
                inbox.waiter = resolve;
                inbox.timer = setTimeout(resolve, wait);
              });
              clearTimeout(inbox.timer);
              continue;
            }
            const n = Math.min(p.length, head.data.length);
            p.set(head.data.subarray(0, n));
            if (n === head.data.length) inbox.queue.shift();
            else head.data = head.data.subarray(n);
            return n;
          }
          if (inbox.ended) return null;
          await new Promise<void>((resolve) => (inbox.waiter = resolve));
        }
      },
      write(p) {
        if (closed || outbox.ended) return Promise.reject(new Error("Broken pipe"));
        outbox.queue.push({ data: p.slice(), at: performance.now() + latency });
        outbox.wake();
        return Promise.resolve(p.length);
      },
      closeWrite() {
        outbox.ended = true;
        outbox.wake();
      },
      close: closeAll,
    };
  }
  return [end(ba, ab), end(ab, ba)];
}

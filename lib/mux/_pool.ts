/**
 * Reusable receive buffers for data payloads, so a busy stream does not
 * allocate a fresh buffer per frame: in Deno every new `Uint8Array` costs
 * about a microsecond (a backing store from malloc, tracked for the GC),
 * more than relaying a small frame does.
 *
 * Buffers come in power-of-two classes from 1 KiB to 128 KiB; a payload
 * takes the smallest class that fits, so a buffer is at most twice its
 * payload (or 1 KiB) and buffered memory stays within twice the
 * flow-control window.
 *
 * @module
 */

const MIN_CLASS = 1024;
const CLASSES = 8; // 1, 2, 4, 8, 16, 32, 64, 128 KiB
/** Bytes of free buffers kept per class (a busy 8-stream transfer needs ~3 MiB). */
const KEEP_BYTES_PER_CLASS = 4 * 1024 * 1024;

function classOf(size: number): number {
  let c = 0;
  while (c < CLASSES && MIN_CLASS << c < size) c++;
  return c;
}

/** A free list per size class. */
export class BufferPool {
  #free: Uint8Array[][] = Array.from({ length: CLASSES }, () => []);

  /** A buffer of at least `size` bytes (exactly `size` when larger than every class). */
  acquire(size: number): Uint8Array {
    const c = classOf(size);
    if (c >= CLASSES) return new Uint8Array(size);
    return this.#free[c]!.pop() ?? new Uint8Array(MIN_CLASS << c);
  }

  /** Returns the whole buffer under `view`, if it is one of ours. */
  release(view: Uint8Array): void {
    const size = view.buffer.byteLength;
    const c = classOf(size);
    if (c >= CLASSES || MIN_CLASS << c !== size) return;
    const list = this.#free[c]!;
    if ((list.length + 1) * size <= KEEP_BYTES_PER_CLASS) {
      list.push(new Uint8Array(view.buffer as ArrayBuffer));
    }
  }
}

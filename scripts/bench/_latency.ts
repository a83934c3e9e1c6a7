/**
 * Latency measurements over TCP: request/response round trips on one
 * connection, and connect-to-first-byte of new connections.
 *
 * @module
 */

/** Percentiles of a sample, in microseconds. */
export interface LatencySummary {
  samples: number;
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Median of an unsorted array. */
export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

function summarize(micros: number[]): LatencySummary {
  micros.sort((a, b) => a - b);
  return {
    samples: micros.length,
    p50: percentile(micros, 50),
    p99: percentile(micros, 99),
    max: micros[micros.length - 1] ?? NaN,
  };
}

/** Reads exactly `buf.length` bytes or throws on EOF. */
export async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const n = await conn.read(buf.subarray(off));
    if (n === null) throw new Error(`Connection closed after ${off} of ${buf.length} bytes`);
    off += n;
  }
}

/** Writes all of `data`. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Options of {@linkcode pingPong}. */
export interface PingPongOptions {
  /** Measured round trips. */
  count: number;
  /** Bytes per message. Default 32. */
  size?: number;
  /** Untimed round trips first. Default 500. */
  warmup?: number;
  /** Stop early after this long, keeping the samples so far. */
  budgetMs: number;
}

/**
 * Sequential request/response round trips over one connection to an echo
 * service, with TCP_NODELAY on the client socket.
 */
export async function pingPong(port: number, options: PingPongOptions): Promise<LatencySummary> {
  const request = new Uint8Array(options.size ?? 32).fill(0x61);
  const response = new Uint8Array(request.length);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    for (let i = 0; i < (options.warmup ?? 500); i++) {
      await writeAll(conn, request);
      await readFull(conn, response);
    }
    const micros: number[] = [];
    const deadline = performance.now() + options.budgetMs;
    for (let i = 0; i < options.count; i++) {
      const start = performance.now();
      await writeAll(conn, request);
      await readFull(conn, response);
      const end = performance.now();
      micros.push((end - start) * 1000);
      if (end > deadline) break;
    }
    return summarize(micros);
  } finally {
    conn.close();
  }
}

/** Options of {@linkcode connectToFirstByte}. */
export interface FirstByteOptions {
  /** Measured connections. */
  count: number;
  /** Untimed connections first. Default 50. */
  warmup?: number;
  /** Stop early after this long, keeping the samples so far. */
  budgetMs: number;
  /** Give up on one connection after this long. Default 5000. */
  perConnectionTimeoutMs?: number;
}

/** Connects, reads one byte, closes; returns microseconds or throws. */
async function connectOnce(port: number, buf: Uint8Array, timeoutMs: number): Promise<number> {
  const start = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    await readFull(conn, buf);
    return (performance.now() - start) * 1000;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/**
 * Sequential new connections to a service that writes one byte on accept:
 * time from `connect()` to that byte.
 */
export async function connectToFirstByte(
  port: number,
  options: FirstByteOptions,
): Promise<LatencySummary> {
  const buf = new Uint8Array(1);
  const timeout = options.perConnectionTimeoutMs ?? 5000;
  for (let i = 0; i < (options.warmup ?? 50); i++) await connectOnce(port, buf, timeout);
  const micros: number[] = [];
  const deadline = performance.now() + options.budgetMs;
  for (let i = 0; i < options.count && performance.now() < deadline; i++) {
    micros.push(await connectOnce(port, buf, timeout));
  }
  return summarize(micros);
}

/** Result of {@linkcode connectionRate}. */
export interface RateResult {
  perSecond: number;
  completed: number;
  failed: number;
  seconds: number;
}

/**
 * `workers` concurrent loops, each: connect, read one byte, close; for
 * `seconds`. Counts completed connections per second.
 */
export async function connectionRate(
  port: number,
  workers: number,
  seconds: number,
): Promise<RateResult> {
  const buf = () => new Uint8Array(1);
  let completed = 0;
  let failed = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const worker = async () => {
    const b = buf();
    while (performance.now() < deadline) {
      try {
        await connectOnce(port, b, 5000);
        completed++;
      } catch {
        failed++;
        if (failed > 1000) return;
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  const elapsed = (performance.now() - start) / 1000;
  return { perSecond: completed / elapsed, completed, failed, seconds: elapsed };
}

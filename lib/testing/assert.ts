/** Assertions on top of `node:assert/strict` (JSR's std/assert is unreachable here). */

import nodeAssert from "node:assert/strict";

/** Fails unless `value` is truthy. */
export function assert(value: unknown, message?: string): asserts value {
  nodeAssert.ok(value, message);
}

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Awaits `fn`, which must reject with an instance of `type` whose message includes `includes`. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (!(error instanceof type)) {
      throw new Error(
        `Expected ${type.name}, got ${
          error instanceof Error ? error.name : typeof error
        }: ${error}`,
      );
    }
    if (includes && !error.message.includes(includes)) {
      throw new Error(
        `Expected the message to include ${JSON.stringify(includes)}: ${error.message}`,
      );
    }
    return error;
  }
  throw new Error(`Expected a ${type.name}, but it resolved`);
}

/** Resolves with `promise`, or fails naming `what` after `ms`; never leaves a timer behind. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

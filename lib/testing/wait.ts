/**
 * Waiting in tests: polls with a deadline, whose timeout says what it
 * waited for and what it last saw.
 *
 * @module
 */

/** Polls `check` every 20 ms until it holds; fails naming `what` after `ms`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms = 10_000,
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Polls `fn` every 50 ms until it returns a value other than `undefined`;
 * a throw counts as "not yet". The timeout after `ms` names `what` and the
 * state last seen: the last error, or what `seen` describes (so that a
 * timeout tells late, missing and double-counted results apart).
 */
export async function eventually<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  ms = 10_000,
  seen?: () => unknown,
): Promise<T> {
  const deadline = performance.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
      last = seen?.();
    } catch (error) {
      last = error;
    }
    if (performance.now() > deadline) {
      const state = last instanceof Error ? String(last) : JSON.stringify(last);
      throw new Error(`Timed out waiting for ${what}${last !== undefined ? `: ${state}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

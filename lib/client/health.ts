/**
 * Health checks of a local service, run by the client: a TCP connect or an
 * HTTP GET every `interval`, each bounded by `timeout`. After `max_failed`
 * failures in a row the service counts as down; one success brings it back.
 * Only changes are reported.
 *
 * @module
 */

import type { HealthCheckConfig } from "../config/mod.ts";

/** A change of a local service's health. */
export interface HealthChange {
  /** Whether the service answers now. */
  healthy: boolean;
  /** What the last check saw. */
  reason: string;
}

/** One probe; resolves with `null` when healthy, else the reason. */
export async function probe(
  check: HealthCheckConfig,
  hostname: string,
  port: number,
): Promise<string | null> {
  const signal = AbortSignal.timeout(check.timeout);
  try {
    if (check.type === "http") {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      const response = await fetch(`http://${host}:${port}${check.path ?? "/"}`, {
        signal,
        redirect: "manual",
      });
      await response.body?.cancel();
      return response.status >= 200 && response.status < 400
        ? null
        : `HTTP ${response.status} from ${check.path ?? "/"}`;
    }
    const conn = await Deno.connect({ hostname, port, signal });
    conn.close();
    return null;
  } catch (error) {
    if (signal.aborted) return `no answer within ${check.timeout} ms`;
    return (error as Error).message;
  }
}

/**
 * Checks until `signal` aborts, calling `onChange` when the service goes
 * down (after `max_failed` failures) or comes back.
 */
export async function watchHealth(
  check: HealthCheckConfig,
  hostname: string,
  port: number,
  onChange: (change: HealthChange) => void,
  signal: AbortSignal,
): Promise<void> {
  let healthy = true;
  let failures = 0;
  while (!signal.aborted) {
    const reason = await probe(check, hostname, port);
    if (reason === null) {
      failures = 0;
      if (!healthy) {
        healthy = true;
        onChange({ healthy, reason: "check passed" });
      }
    } else if (++failures >= check.max_failed && healthy) {
      healthy = false;
      onChange({ healthy, reason: `${failures} checks failed; last: ${reason}` });
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, check.interval);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }
}

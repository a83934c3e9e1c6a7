/**
 * Monitoring: Prometheus metrics, per-tunnel state and windows, and the
 * alert rules engine with its notifiers.
 *
 * @example
 * ```ts
 * import { parseCondition } from "./mod.ts";
 * console.assert(parseCondition("error_rate > 5%").value === 0.05);
 * ```
 *
 * @module
 */

export * from "./alerts.ts";
export * from "./notifiers.ts";
export * from "./metrics.ts";
export * from "./stats.ts";

/**
 * The batched writes of the pending-writes queue: sessions, metric buckets
 * and log events written in one transaction under the batch's id, and the
 * arithmetic of metric buckets (one per tunnel and minute).
 *
 * @module
 */

import type { LogInput, SessionBeat, SessionOpen } from "./activity_dao.ts";
import type { MetricRow } from "./models.ts";

/** Rows written in one transaction, under an id that makes a retry write them once. */
export interface Batch {
  id: string;
  opens: SessionOpen[];
  beats: SessionBeat[];
  closes: Array<{ id: string; at: Date; reason: string }>;
  metrics: MetricRow[];
  logs: LogInput[];
}

/** The rows a batch holds. */
export function rowsOf(b: Batch): number {
  return b.opens.length + b.beats.length + b.closes.length + b.metrics.length + b.logs.length;
}

/** Adds the counters of `delta` into `row`. */
export function addInto(row: MetricRow, delta: Partial<MetricRow>): void {
  row.bytes_in += delta.bytes_in ?? 0;
  row.bytes_out += delta.bytes_out ?? 0;
  row.connections += delta.connections ?? 0;
  row.errors += delta.errors ?? 0;
  row.latency_ms_sum += delta.latency_ms_sum ?? 0;
  row.latency_count += delta.latency_count ?? 0;
}

/**
 * Metric rows with their tunnel ids resolved, one per tunnel and bucket
 * (a queued tunnel's early buckets meet the ones counted under its id);
 * rows of tunnels the database refused are left out.
 */
export function mergeMetrics(
  entries: Array<{ tunnel: number | { readonly id: number | null }; row: MetricRow }>,
): MetricRow[] {
  const out = new Map<string, MetricRow>();
  for (const { tunnel, row } of entries) {
    const id = typeof tunnel === "number" ? tunnel : tunnel.id;
    if (id === null) continue;
    const key = `${id}@${row.bucket.getTime()}`;
    const into = out.get(key);
    if (into) addInto(into, row);
    else out.set(key, { ...row, tunnel_id: id });
  }
  return [...out.values()];
}

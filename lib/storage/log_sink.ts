/**
 * A logger that also records warnings and errors in the `logs` table (kind
 * `error`), batched with the store's other writes, so operators can query
 * what went wrong without the log files.
 *
 * @module
 */

import type { LogFields, Logger, LogLevel } from "../util/mod.ts";
import type { Store } from "./store.ts";

function plain(fields: LogFields | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields ?? {})) {
    out[k] = v instanceof Error ? v.message : v;
  }
  return out;
}

/** Wraps `base` so its warn and error events are also queued into `store`. */
export function recordingLogger(base: Logger, store: Store, component = ""): Logger {
  const record = (level: LogLevel, msg: string, fields?: LogFields) => {
    const f = plain(fields);
    store.addLog({
      level,
      kind: "error",
      tunnel_id: null,
      session_id: typeof f.session_id === "string" ? f.session_id : null,
      message: msg,
      fields: component ? { component, ...f } : f,
    });
  };
  return {
    debug: (msg, fields) => base.debug(msg, fields),
    info: (msg, fields) => base.info(msg, fields),
    warn: (msg, fields) => {
      base.warn(msg, fields);
      record("warn", msg, fields);
    },
    error: (msg, fields) => {
      base.error(msg, fields);
      record("error", msg, fields);
    },
    child: (name) => recordingLogger(base.child(name), store, name),
    enabled: (level) => base.enabled(level),
  };
}

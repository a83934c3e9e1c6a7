/**
 * Structured logging: JSON lines (`ts`, `level`, `component`, `msg`, fields)
 * or a compact text form for people, on stderr and optionally a file.
 *
 * Every log event has a stable `msg` that tests and operators match on;
 * variable parts go into fields.
 *
 * @example
 * ```ts
 * import { createLogger } from "./logger.ts";
 * const log = createLogger({ level: "info", format: "json", sink: () => {} });
 * log.child("server").info("listening", { port: 7000 });
 * ```
 *
 * @module
 */

/** Log levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Extra key/value pairs of one event. */
export type LogFields = Record<string, unknown>;

/** What the server and client log through. */
export interface Logger {
  /** Logs at debug level. */
  debug(msg: string, fields?: LogFields): void;
  /** Logs at info level. */
  info(msg: string, fields?: LogFields): void;
  /** Logs at warn level. */
  warn(msg: string, fields?: LogFields): void;
  /** Logs at error level. */
  error(msg: string, fields?: LogFields): void;
  /** A logger whose events carry `component`. */
  child(component: string): Logger;
  /** Whether events of `level` are written. */
  enabled(level: LogLevel): boolean;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Default `info`. */
  level?: LogLevel;
  /** Default: `text` when stderr is a terminal, else `json`. */
  format?: "json" | "text";
  /** Also append lines to this file. */
  file?: string;
  /** Where lines go instead of stderr (tests). */
  sink?: (line: string) => void;
  /** Component of the root logger. Default `main`. */
  component?: string;
}

const encoder = new TextEncoder();

function errorFields(value: unknown): unknown {
  if (value instanceof Error) return value.message;
  return value;
}

function stderrSink(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

function textValue(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s !== undefined && /[\s"=]/.test(s) ? JSON.stringify(s) : String(s);
}

/** Creates the root logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = RANK[options.level ?? "info"];
  const format = options.format ??
    (Deno.stderr.isTerminal() ? "text" : "json");
  const sinks: Array<(line: string) => void> = [options.sink ?? stderrSink];
  if (options.file) {
    const file = Deno.openSync(options.file, { append: true, create: true });
    sinks.push((line) => {
      const bytes = encoder.encode(line + "\n");
      let off = 0;
      while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
    });
  }

  function emit(level: LogLevel, component: string, msg: string, fields?: LogFields) {
    if (RANK[level] < min) return;
    const ts = new Date().toISOString();
    let line: string;
    if (format === "json") {
      const event: LogFields = { ts, level, component, msg };
      if (fields) {
        for (const [k, v] of Object.entries(fields)) {
          if (v !== undefined) event[k] = errorFields(v);
        }
      }
      line = JSON.stringify(event);
    } else {
      line = `${ts} ${level.toUpperCase().padEnd(5)} ${component}: ${msg}`;
      if (fields) {
        for (const [k, v] of Object.entries(fields)) {
          if (v !== undefined) line += ` ${k}=${textValue(errorFields(v))}`;
        }
      }
    }
    for (const sink of sinks) sink(line);
  }

  function make(component: string): Logger {
    return {
      debug: (m, f) => emit("debug", component, m, f),
      info: (m, f) => emit("info", component, m, f),
      warn: (m, f) => emit("warn", component, m, f),
      error: (m, f) => emit("error", component, m, f),
      child: (c) => make(c),
      enabled: (level) => RANK[level] >= min,
    };
  }
  return make(options.component ?? "main");
}

/** A logger that drops everything (default in library code and tests). */
export const nullLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return nullLogger;
  },
  enabled() {
    return false;
  },
};

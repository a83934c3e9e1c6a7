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
  /** Levels by component, overriding `level`. */
  levels?: Record<string, LogLevel> | undefined;
  /** Also append warnings and errors to this file. */
  errorFile?: string | undefined;
  /** Rotation of the files: size in bytes and files kept. Default 100 MB, 5. */
  rotate?: { maxSize: number; maxFiles: number } | undefined;
}

/**
 * An append-only log file rotated by size: at `maxSize` bytes it becomes
 * `path.1` (older ones shift to `.2` … `.maxFiles`, the oldest is deleted)
 * and a new `path` is started.
 */
export class RotatingFile {
  /** The current file (rotated ones add `.1` … `.N`). */
  readonly path: string;
  #file: Deno.FsFile;
  #size: number;
  #maxSize: number;
  #maxFiles: number;

  /** Opens (appending to) `path`. */
  constructor(path: string, options: { maxSize: number; maxFiles: number }) {
    this.path = path;
    this.#maxSize = options.maxSize;
    this.#maxFiles = options.maxFiles;
    this.#file = Deno.openSync(path, { append: true, create: true });
    this.#size = this.#file.statSync().size;
  }

  /** Appends one line (a newline is added). */
  writeLine(line: string): void {
    const bytes = encoder.encode(line + "\n");
    if (this.#size > 0 && this.#size + bytes.length > this.#maxSize) this.#rotate();
    let off = 0;
    while (off < bytes.length) off += this.#file.writeSync(bytes.subarray(off));
    this.#size += bytes.length;
  }

  #rotate(): void {
    this.#file.close();
    for (let i = this.#maxFiles - 1; i >= 1; i--) {
      try {
        Deno.renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch { /* not there yet */ }
    }
    try {
      Deno.renameSync(this.path, `${this.path}.1`);
    } catch { /* removed from outside */ }
    try {
      Deno.removeSync(`${this.path}.${this.#maxFiles + 1}`);
    } catch { /* none */ }
    this.#file = Deno.openSync(this.path, { append: true, create: true });
    this.#size = 0;
  }

  /** Closes the file. */
  close(): void {
    try {
      this.#file.close();
    } catch { /* closed */ }
  }
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

/** The `log:` keys that both programs read from their configuration. */
export interface LogSettings {
  /** Lowest level written. */
  level: LogLevel;
  /** `json` lines or `text`. */
  format: "json" | "text";
  /** Also append lines to this file. */
  file?: string | undefined;
  /** Levels by component, overriding `level`. */
  levels?: Record<string, LogLevel> | undefined;
  /** Also append warnings and errors to this file. */
  error_file?: string | undefined;
  /** Rotate the files at this many bytes. */
  max_size: number;
  /** Rotated files kept. */
  max_files: number;
}

/** The root logger a configuration's `log:` section describes. */
export function loggerFromSettings(log: LogSettings): Logger {
  return createLogger({
    level: log.level,
    format: log.format,
    ...(log.file ? { file: log.file } : {}),
    levels: log.levels,
    errorFile: log.error_file,
    rotate: { maxSize: log.max_size, maxFiles: log.max_files },
  });
}

/** Creates the root logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = RANK[options.level ?? "info"];
  const levels = options.levels ?? {};
  const minOf = (component: string) => {
    const level = levels[component];
    return level ? RANK[level] : min;
  };
  const format = options.format ??
    (Deno.stderr.isTerminal() ? "text" : "json");
  const rotate = options.rotate ?? { maxSize: 100_000_000, maxFiles: 5 };
  const sinks: Array<(line: string) => void> = [options.sink ?? stderrSink];
  if (options.file) {
    const file = new RotatingFile(options.file, rotate);
    sinks.push((line) => file.writeLine(line));
  }
  const errorFile = options.errorFile ? new RotatingFile(options.errorFile, rotate) : null;

  function emit(level: LogLevel, component: string, msg: string, fields?: LogFields) {
    if (RANK[level] < minOf(component)) return;
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
    if (errorFile && RANK[level] >= RANK.warn) errorFile.writeLine(line);
  }

  function make(component: string): Logger {
    return {
      debug: (m, f) => emit("debug", component, m, f),
      info: (m, f) => emit("info", component, m, f),
      warn: (m, f) => emit("warn", component, m, f),
      error: (m, f) => emit("error", component, m, f),
      child: (c) => make(c),
      enabled: (level) => RANK[level] >= minOf(component),
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

/** One access event: a finished TCP connection or UDP session. */
export interface AccessEvent {
  /** Tunnel name. */
  tunnel: string;
  /** Owner of the tunnel. */
  user: string;
  /** `tcp` or `udp`. */
  type: string;
  /** Visitor `host:port`. */
  remote: string;
  /** Bytes from the visitor. */
  bytes_in: number;
  /** Bytes to the visitor. */
  bytes_out: number;
  /** How long it lasted. */
  duration_ms: number;
  /** `ok`, or `error` with `error` set. */
  status: "ok" | "error";
  /** Why it failed. */
  error?: string | undefined;
  /** HTTP tunnels: the request line and the status answered. */
  method?: string | undefined;
  /** HTTP tunnels: the `Host` asked for. */
  host?: string | undefined;
  /** HTTP tunnels: the path asked for. */
  path?: string | undefined;
  /** HTTP tunnels: the status code answered (101 for upgrades). */
  http_status?: number | undefined;
}

/**
 * Where access events go: a rotated JSON-lines file when `path` is set,
 * else debug lines of `fallback`.
 */
export function accessLog(
  path: string | undefined,
  fallback: Logger,
  rotate: { maxSize: number; maxFiles: number } = { maxSize: 100_000_000, maxFiles: 5 },
): (event: AccessEvent) => void {
  if (!path) {
    return (event) => {
      if (fallback.enabled("debug")) fallback.debug("access", { ...event });
    };
  }
  const file = new RotatingFile(path, rotate);
  return (event) => {
    const line: Record<string, unknown> = {
      ts: new Date().toISOString(),
      level: "info",
      msg: "access",
    };
    for (const [k, v] of Object.entries(event)) if (v !== undefined) line[k] = v;
    file.writeLine(JSON.stringify(line));
  };
}

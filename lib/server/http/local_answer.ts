/**
 * Answers the HTTP engine gives without asking a service: a refused or
 * malformed request, a host no tunnel serves, an offline tunnel, a redirect
 * or an ACME challenge. {@linkcode errorPage} words an error as a short
 * plain-text page (marked `x-burrow-error: 1`, so a visitor can tell it
 * from the service's own), and {@linkcode answerBytes} writes any
 * {@linkcode LocalAnswer} as a complete HTTP/1.1 response.
 *
 * @module
 */

/** An answer given without asking the service. */
export interface LocalAnswer {
  /** Status code. */
  status: number;
  /** Body (plain text unless `headers` say otherwise). */
  body: string;
  /** Extra response headers. */
  headers?: Record<string, string> | undefined;
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  301: "Moved Permanently",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const encoder = new TextEncoder();

/**
 * The text of an error page (`status`, reason, message).
 *
 * @example
 * ```ts
 * import { errorPage } from "./local_answer.ts";
 * const page = errorPage(404, 'No tunnel serves "a.test"');
 * console.assert(page.body === '404 Not Found\nNo tunnel serves "a.test"\n');
 * ```
 */
export function errorPage(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): LocalAnswer {
  return {
    status,
    body: `${status} ${STATUS_TEXT[status] ?? ""}\n${message}\n`,
    headers: { "content-type": "text/plain; charset=utf-8", "x-burrow-error": "1", ...headers },
  };
}

/**
 * The bytes of a local answer: a complete HTTP/1.1 response, with
 * `connection: close` when `close`.
 *
 * @example
 * ```ts
 * import { answerBytes } from "./local_answer.ts";
 * const bytes = answerBytes({ status: 200, body: "ok" }, true);
 * const text = new TextDecoder().decode(bytes);
 * console.assert(text === "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
 * ```
 */
export function answerBytes(answer: LocalAnswer, close: boolean): Uint8Array {
  const body = encoder.encode(answer.body);
  let head = `HTTP/1.1 ${answer.status} ${STATUS_TEXT[answer.status] ?? ""}\r\n`;
  for (const [k, v] of Object.entries(answer.headers ?? {})) head += `${k}: ${v}\r\n`;
  head += `content-length: ${body.length}\r\n`;
  if (close) head += "connection: close\r\n";
  const headBytes = encoder.encode(head + "\r\n");
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}

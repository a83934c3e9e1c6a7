/**
 * The ACME client's HTTP, over `fetch` with a Deno HTTP client: a deadline
 * per request, a bounded number of retries of network errors and transient
 * answers (429, 5xx, honouring Retry-After), and a stop when the
 * certificate manager closes.
 *
 * @module
 */

import type * as Acme from "acme-client";
import { sleep } from "../util/mod.ts";

/** Upper bound of one HTTP request to the ACME server. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Attempts of one request that meets a network error, a 429 or a 5xx. */
const REQUEST_ATTEMPTS = 3;
/** Longest wait between two attempts, whatever Retry-After says. */
const RETRY_MAX_DELAY_MS = 30_000;

/** The request function of acme-client 5's internal HTTP client. */
type AcmeRequest = (
  url: string,
  method: string,
  opts?: { data?: unknown; headers?: Record<string, string> },
) => Promise<{ status: number; headers: Record<string, string>; data: unknown }>;

/**
 * Sends the requests of `client` with `fetch` through `http`.
 *
 * acme-client 5 sends them through one axios instance shared by every client
 * in the process, with no timeout, with network errors retried for 75 s on
 * timers nothing can cancel, and with an exhausted retry surfacing as
 * "Cannot read properties of undefined (reading 'config')". Its own HTTP
 * client funnels every request through one `request(url, method, opts)`
 * method (axios-style response: `status`, lower-case `headers`, `data`
 * parsed from JSON), so that one method is replaced here.
 */
export function useTransport(
  client: Acme.Client,
  http: Deno.HttpClient,
  signal: AbortSignal,
): void {
  const holder = (client as unknown as { http?: { request?: AcmeRequest } }).http;
  if (!holder || typeof holder.request !== "function") {
    throw new Error("Unsupported acme-client version: its HTTP client cannot be replaced");
  }
  holder.request = (url, method, opts = {}) => send(http, signal, url, method, opts);
}

async function send(
  http: Deno.HttpClient,
  closed: AbortSignal,
  url: string,
  method: string,
  opts: { data?: unknown; headers?: Record<string, string> },
): ReturnType<AcmeRequest> {
  const verb = method.toUpperCase();
  for (let attempt = 1;; attempt++) {
    if (closed.aborted) throw new Error("Certificate manager is closed");
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), REQUEST_TIMEOUT_MS);
    let retryIn = 1000 * attempt;
    try {
      const response = await fetch(url, {
        method: verb,
        client: http,
        signal: AbortSignal.any([closed, deadline.signal]),
        headers: { "content-type": "application/jose+json", ...opts.headers },
        ...(opts.data === undefined ? {} : { body: JSON.stringify(opts.data) }),
      });
      const text = await response.text();
      const headers: Record<string, string> = {};
      response.headers.forEach((value, name) => (headers[name] = value));
      const json = (response.headers.get("content-type") ?? "").includes("json");
      const result = {
        status: response.status,
        headers,
        data: json && text ? JSON.parse(text) : text,
      };
      const transient = response.status === 429 || response.status >= 500;
      if (!transient || attempt >= REQUEST_ATTEMPTS) return result;
      const after = Number(response.headers.get("retry-after"));
      if (after > 0) retryIn = after * 1000;
    } catch (error) {
      if (closed.aborted) throw new Error("Certificate manager is closed");
      if (attempt >= REQUEST_ATTEMPTS) {
        const reason = deadline.signal.aborted
          ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`
          : error instanceof Error
          ? error.message
          : String(error);
        throw new Error(`ACME request ${verb} ${url} failed: ${reason}`, { cause: error });
      }
    } finally {
      clearTimeout(timer);
    }
    await sleep(Math.min(retryIn, RETRY_MAX_DELAY_MS), closed);
  }
}

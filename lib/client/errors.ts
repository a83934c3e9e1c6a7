/**
 * How the client's attempts to connect can fail for good or for a while:
 * the errors the reconnect loop and the program's exit code tell apart.
 *
 * @module
 */

/** The server refused our credentials; retrying will not help. */
export class AuthenticationError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "AuthenticationError";
  }
}

/** A refusal that retrying cannot fix (version mismatch, bad certificate pin). */
export class FatalClientError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "FatalClientError";
  }
}

/** The server's login limiter refused us for now; retry after `retryAfter` ms, not sooner. */
export class RetryLaterError extends Error {
  /** Milliseconds to wait before the next attempt. */
  readonly retryAfter: number;
  /** Creates the error. */
  constructor(message: string, retryAfter: number) {
    super(message);
    this.name = "RetryLaterError";
    this.retryAfter = retryAfter;
  }
}

/**
 * The server address answered like something other than burrowd (an HTTP
 * server, an SSH server, …). The program exits with code 2, unless
 * `reconnect.max_retries: 0` is written in the configuration: then it retries.
 */
export class NotBurrowdError extends Error {
  /** Creates the error; `message` names what the address looks like and the fix. */
  constructor(message: string) {
    super(message);
    this.name = "NotBurrowdError";
  }
}

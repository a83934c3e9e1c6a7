/**
 * The error of refused tokens and token operations.
 *
 * @module
 */

/** The token was refused; the message says why (never echoes the token). */
export class TokenError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "TokenError";
  }
}

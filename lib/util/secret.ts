/**
 * A value that must never be printed: logs, errors and JSON show it masked.
 *
 * @example
 * ```ts
 * import { Secret } from "./secret.ts";
 * const token = new Secret("s3cr3t");
 * console.assert(String(token) === "***");
 * console.assert(token.reveal() === "s3cr3t");
 * ```
 *
 * @module
 */

const MASK = "***";

/** Wraps a secret string so that printing it shows `***`. */
export class Secret {
  #value: string;

  /** Wraps `value`. */
  constructor(value: string) {
    this.#value = value;
  }

  /** The secret itself; call only where it is used, never to print. */
  reveal(): string {
    return this.#value;
  }

  /** Always `***`. */
  toString(): string {
    return MASK;
  }

  /** Always `***`. */
  toJSON(): string {
    return MASK;
  }

  /** Always `***` in `console.log` and `Deno.inspect`. */
  [Symbol.for("Deno.customInspect")](): string {
    return MASK;
  }

  /** Always `***` in `node:util` inspect. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return MASK;
  }
}

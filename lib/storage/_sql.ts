/**
 * Helpers the data-access files share: name checks, SQLSTATE codes, JSON
 * parameters.
 *
 * @module
 */

import { ENTITY_NAME } from "../util/mod.ts";
import { ValidationError } from "./errors.ts";

/** Throws a {@linkcode ValidationError} unless `name` is a valid entity name. */
export function checkName(what: string, name: string): void {
  if (!ENTITY_NAME.test(name)) {
    throw new ValidationError(
      `${what} name ${JSON.stringify(name)} is invalid: use 1-64 letters, digits, "_", "." ` +
        `or "-", starting with a letter or digit`,
    );
  }
}

/** The SQLSTATE code of a database error, if it has one. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** A JSON parameter (sent as text, cast to jsonb in SQL). */
export function json(value: unknown): string {
  return JSON.stringify(value);
}

/**
 * What the data access refuses: a clash with existing rows, a missing row,
 * invalid input. The admin API and CLI turn them into 409, 404 and 400.
 *
 * @module
 */

/** A change the database refused because it clashes with existing rows. */
export class ConflictError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConflictError";
  }
}

/** A named row does not exist. */
export class NotFoundError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

/** Invalid input for a table (bad name, port out of range, …). */
export class ValidationError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ValidationError";
  }
}

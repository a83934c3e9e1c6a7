/**
 * What a part of the benchmark gets from `main.ts`: where to put files, who
 * owns the processes it starts (so an interrupt stops them), and where to
 * report progress and failures.
 *
 * @module
 */

/** The context of one benchmark section. */
export interface Section {
  /** A directory of this run for the section's files. */
  dir: string;
  /**
   * Disposed by `main.ts` on SIGINT/SIGTERM. A section adds its own
   * AsyncDisposableStack here and disposes it itself when done (disposing
   * twice is a no-op), so an interrupt mid-section still stops its children.
   */
  owner: AsyncDisposableStack;
  errors: string[];
  progress: (message: string) => void;
}

/** Runs `fn`; on failure records the error and returns undefined. */
export async function attempt<T>(
  section: Pick<Section, "errors" | "progress">,
  what: string,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await fn();
  } catch (error) {
    const message = `${what}: ${(error as Error).message}`;
    section.errors.push(message);
    section.progress(`FAILED ${message.split("\n")[0]}`);
    return undefined;
  }
}

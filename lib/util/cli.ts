/**
 * What both mains share: running a commander program with Burrow's exit
 * codes, and turning SIGINT/SIGTERM into one graceful stop (a second signal
 * exits at once).
 *
 * @example
 * ```ts ignore
 * import { runProgram } from "./cli.ts";
 * await runProgram("burrowd", (exit) => program(exit));
 * ```
 *
 * @module
 */

import { Command, CommanderError, Option } from "commander";
import { VERSION } from "./version.ts";

/** An error that is the user's to fix (bad config or flags): exit code 2. */
export interface UsageErrorClass {
  /** Constructs the error class. */
  new (...args: never[]): Error;
}

/**
 * Parses `Deno.args` with the program built by `build`, then exits with the
 * code its action reported: 2 for usage errors (and `usageError`), 1 for
 * any other error.
 */
export async function runProgram(
  name: string,
  build: (exit: (code: number) => void) => Command,
  usageError: UsageErrorClass,
): Promise<never> {
  let code = 0;
  try {
    await build((c) => (code = c)).parseAsync(Deno.args, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      code = error.exitCode === 0 ? 0 : 2;
    } else {
      console.error(`${name}: ${(error as Error).message}`);
      code = error instanceof usageError ? 2 : 1;
    }
  }
  Deno.exit(code);
}

/**
 * Calls `onStop` on the first SIGINT or SIGTERM and exits with code 1 on a
 * second one. Returns a function that removes the listeners.
 */
export function onShutdownSignals(onStop: (signal: string) => void): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  let seen = 0;
  const handlers = signals.map((signal) => {
    const handler = () => {
      if (++seen > 1) Deno.exit(1);
      onStop(signal);
    };
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  };
}

/**
 * A program as both mains start theirs: `name`, its description,
 * `-v`/`--version` (and commander's `-V`, kept hidden for scripts that
 * used it) and `-h`, errors thrown instead of exiting (so
 * {@linkcode runProgram} picks the exit code), and `help` (environment,
 * examples, exit codes) after the generated help.
 */
export function newProgram(name: string, description: string, help: string): Command {
  const program = new Command(name)
    .description(description)
    .version(VERSION, "-v, --version", "print the version")
    .addOption(new Option("-V").hideHelp())
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .addHelpText("after", help);
  return program.on("option:V", () => {
    console.log(VERSION);
    throw new CommanderError(0, "commander.version", VERSION);
  });
}

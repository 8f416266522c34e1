// Shared by the two programs: how usage errors and fatal errors reach the user.
// Exit codes a script can rely on: 0 success, 1 the operation failed, 2 bad usage.
import { TswarmError } from '../common/errors.js';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * yargs .fail() handler. yargs calls it with a message for usage errors (exit 2, with a hint) and
 * with only an error when a command handler threw (exit 1).
 */
export function failUsage(msg: string | undefined | null, err: Error | undefined): never {
  if (!msg && err) reportFatal(process.argv[1]?.split('/').pop()?.replace(/\.js$/, '') ?? 'tswarm', err);
  process.stderr.write(`error: ${msg ?? 'invalid usage'}\nRun with --help for usage.\n`);
  process.exit(EXIT_USAGE);
}

/** Prints one line for an error and exits 1. Known errors print their message; others too, plainly. */
export function reportFatal(program: string, err: unknown): never {
  const message = err instanceof TswarmError || err instanceof Error ? err.message : String(err);
  process.stderr.write(`${program}: ${message}\n`);
  process.exit(EXIT_FAILURE);
}

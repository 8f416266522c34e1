// A task's log driver (TaskSpec.log_driver), read the same way by swarmctl, the control API and
// the node: "json-file" (Docker's JSON lines, always bounded here: Docker's own default is
// unbounded) or "none" (the output is dropped). Options as Docker's json-file takes them:
// max-size (a size, e.g. 10m) and max-file (how many files, the live one included).
import { InvalidArgumentError } from './errors.js';

/** The bound when a task gives none: 3 files of 10 MiB (Docker's `local` driver keeps 5 of 20 MiB). */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_MAX_FILES = 3;
/** The smallest file size taken: a line of output is up to 16 KiB (Docker's partial-line size). */
export const MIN_LOG_MAX_BYTES = 64 * 1024;

export const LOG_DRIVERS = ['json-file', 'none'] as const;

export type LogConfig = { driver: 'json-file'; maxSizeBytes: number; maxFiles: number } | { driver: 'none' };

/** A size as Docker reads it: a number with an optional unit b, k, m, g (binary), e.g. 512k, 10m, 1.5g. */
export function parseSize(text: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?) ?([bkmg])?[iI]?[bB]?$/i.exec(text.trim());
  if (!m) return undefined;
  const power = m[2] ? 'bkmg'.indexOf(m[2].toLowerCase()) : 0;
  const n = Math.round(Number(m[1]) * 1024 ** power);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * The log configuration a driver name and its options describe (an empty name is json-file);
 * throws a LogDriverError naming the option and the rule.
 */
export function logConfig(name: string, options: Record<string, string>): LogConfig {
  const driver = name === '' ? 'json-file' : name;
  if (!(LOG_DRIVERS as readonly string[]).includes(driver)) throw new LogDriverError('name', `"${name}" is not a log driver tswarm has (${LOG_DRIVERS.join(', ')})`);
  if (driver === 'none') {
    const [k] = Object.keys(options);
    if (k !== undefined) throw new LogDriverError(`options.${k}`, 'the none driver takes no options');
    return { driver: 'none' };
  }
  let maxSizeBytes = DEFAULT_LOG_MAX_BYTES;
  let maxFiles = DEFAULT_LOG_MAX_FILES;
  for (const [k, v] of Object.entries(options)) {
    if (k === 'max-size') {
      const n = parseSize(v);
      if (n === undefined) throw new LogDriverError('options.max-size', `"${v}" must be a size, e.g. 10m (logs are always bounded: -1 is not taken)`);
      if (n < MIN_LOG_MAX_BYTES) throw new LogDriverError('options.max-size', `"${v}" is below the minimum of 64k`);
      maxSizeBytes = n;
    } else if (k === 'max-file') {
      if (!/^[0-9]+$/.test(v) || Number(v) < 1 || Number(v) > 100) throw new LogDriverError('options.max-file', `"${v}" must be a whole number from 1 to 100`);
      maxFiles = Number(v);
    } else throw new LogDriverError(`options.${k}`, 'is not an option of json-file here (max-size, max-file)');
  }
  return { driver: 'json-file', maxSizeBytes, maxFiles };
}

/** A bad log driver or option: `field` is relative to the LogDriver ("name", "options.max-size"). */
export class LogDriverError extends InvalidArgumentError {}

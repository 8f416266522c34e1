// Tests that run the real programs use the build in dist/ (scripts/test.sh builds before testing).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** Absolute path of a built file, e.g. dist('cli/swarmd.js'); throws a clear error if not built. */
export function dist(relative: string): string {
  const path = join(REPO, 'dist', relative);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` (scripts/test.sh does) before the tests`);
  return path;
}

// Tests that run the real programs use the build in dist/ (scripts/test.sh builds before testing).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root: the nearest directory above this file with tswarm's package.json (also from dist/). */
function findRepo(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'tswarm') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no tswarm checkout above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export const REPO = findRepo();

/** Absolute path of a built file, e.g. dist('cli/swarmd.js'); throws a clear error if not built. */
export function dist(relative: string): string {
  const path = join(REPO, 'dist', relative);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` (scripts/test.sh does) before the tests`);
  return path;
}

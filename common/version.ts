// The version of tswarm, read once from the package.json at the root of the checkout (the same
// file whether running from sources or from dist/).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageJson(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string };
      if (pkg.name === 'tswarm') return candidate;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`version: no tswarm package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export const VERSION: string = (JSON.parse(readFileSync(findPackageJson(), 'utf8')) as { version: string }).version;

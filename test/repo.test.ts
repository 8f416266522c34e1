// Properties of the repository itself: the committed generated code matches the .proto files, and
// lint enforces the architecture's import boundaries.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { REPO } from './util/dist.js';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

describe('proto/', () => {
  it('regenerating proto/gen from the .proto files changes nothing', () => {
    const out = mkdtempSync(join(tmpdir(), 'proto-gen-'));
    try {
      const r = spawnSync('bash', [join(REPO, 'proto/generate.sh'), out], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const committed = join(REPO, 'proto/gen');
      expect(filesUnder(out)).toEqual(filesUnder(committed));
      for (const f of filesUnder(out)) {
        expect(readFileSync(join(out, f), 'utf8'), `proto/gen/${f} is stale: run npm run proto`).toBe(readFileSync(join(committed, f), 'utf8'));
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('import boundaries', () => {
  // Lints a probe file placed in the real tree, with the real config.
  async function lintProbe(dir: string, source: string): Promise<string[]> {
    const path = join(REPO, dir, `boundary-probe-${process.pid}.ts`);
    writeFileSync(path, source);
    try {
      const [result] = await new ESLint({ cwd: REPO }).lintFiles([path]);
      return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
    } finally {
      rmSync(path, { force: true });
    }
  }

  it('refuses manager/ imports in worker/', async () => {
    const messages = await lintProbe('worker', "import '../manager/x.js';\nexport {};\n");
    expect(messages).toEqual([expect.stringContaining('worker/ must not import manager/')]);
  });

  it('refuses worker/ imports in manager/', async () => {
    const messages = await lintProbe('manager', "import '../worker/x.js';\nexport {};\n");
    expect(messages).toEqual([expect.stringContaining('manager/ must not import worker/')]);
  });

  it('refuses either side in common/, and allows proto/ and common/ everywhere', async () => {
    expect(await lintProbe('common', "import '../cli/util.js';\nexport {};\n")).toHaveLength(1);
    expect(await lintProbe('worker', "import '../proto/gen/tswarm/types.js';\nimport '../common/errors.js';\nexport {};\n")).toEqual([]);
  });
});

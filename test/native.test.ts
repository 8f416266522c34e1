// The C build in native/ (made by the set-up) produces a runtime binary that reports its version.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './util/dist.js';

const runtime = join(REPO, 'native/build/swarm-runtime');

describe('native/', () => {
  it('builds swarm-runtime, which reports the package version and the OCI spec version', () => {
    const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    const r = spawnSync(runtime, ['--version'], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`swarm-runtime version ${version}\nspec: 1.2.0\n`);
  });

  it('refuses what it cannot do yet with one line naming the command', () => {
    const r = spawnSync(runtime, ['exec', 'c1'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('swarm-runtime: command `exec` is not available in this build yet\n');
  });
});

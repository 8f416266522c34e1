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

  it('names the command and the container in its one-line errors; bad usage exits 2', () => {
    const missing = spawnSync(runtime, ['--root', '/run/swarm-runtime-test-none', 'exec', 'no-such-c1'], { encoding: 'utf8' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe('swarm-runtime: exec no-such-c1: container `no-such-c1` does not exist\n');
    const usage = spawnSync(runtime, ['exec'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr.split('\n')[0]).toBe('swarm-runtime: exec: missing container id');
  });
});

// swarm-spawn, the fork server, through its client: status, output, stdin, signals, failures,
// many commands at once, large outputs (no root needed).
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandError } from '../network/bridge.js';
import { nativeBinary } from './runtime.js';
import { Spawner } from './spawner.js';

const BIN = nativeBinary('swarm-spawn');

describe.skipIf(!existsSync(BIN))('Spawner (swarm-spawn)', () => {
  const s = new Spawner(BIN);
  afterAll(() => s.close());

  it('returns the exit status and both outputs, and feeds stdin', async () => {
    expect(await s.run(['sh', '-c', 'echo out; echo err >&2; exit 3'])).toEqual({ code: 3, signal: 0, stdout: 'out\n', stderr: 'err\n' });
    expect(await s.run(['cat'], 'line 1\nline 2\n')).toEqual({ code: 0, signal: 0, stdout: 'line 1\nline 2\n', stderr: '' });
    expect((await s.run(['true'], 'ignored input')).code).toBe(0); // a command that does not read its stdin
    expect((await s.run(['sh', '-c', 'read x || echo eof'])).stdout).toBe('eof\n'); // no input: EOF at once
    expect(await s.run(['printf', '%s', 'a b\0c'])).toMatchObject({ code: 0, stdout: 'a b' }); // argv are C strings
  });

  it('reports signals and programs that cannot be started', async () => {
    expect(await s.run(['sh', '-c', 'kill -TERM $$'])).toMatchObject({ code: null, signal: 15 });
    const missing = await s.run(['no-such-program-here', 'x']);
    expect(missing).toMatchObject({ code: null, signal: 0, stdout: '' });
    expect(missing.stderr).toBe('swarm-spawn: no-such-program-here: No such file or directory\n');
    await expect(s.runner(['sh', '-c', 'echo bad >&2; exit 1'])).rejects.toThrow(CommandError);
    await expect(s.runner(['sh', '-c', 'echo bad >&2; exit 1'])).rejects.toThrow(/`sh -c echo bad >&2; exit 1` failed: bad$/);
    expect(await s.runner(['echo', 'ok'])).toBe('ok\n');
  });

  it('runs many commands at once and answers each in full, large outputs and inputs included', async () => {
    const big = 'x'.repeat(300_000);
    const runs = Array.from({ length: 50 }, (_, i) => s.run(['sh', '-c', `sleep 0.0${i % 10}; echo ${i}`]));
    const results = await Promise.all([...runs, s.run(['cat'], big), s.run(['sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" y'])]);
    results.slice(0, 50).forEach((r, i) => expect(r).toEqual({ code: 0, signal: 0, stdout: `${i}\n`, stderr: '' }));
    expect(results[50]!.stdout).toBe(big);
    expect(results[51]!.stdout).toBe('y'.repeat(1_000_000));
  });
});

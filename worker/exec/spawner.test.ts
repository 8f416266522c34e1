// swarm-spawn, the fork server, through its client: status, output, stdin, signals, failures,
// many commands at once, large outputs (no root needed); the built-in mount and unmount (root).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
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

  it.skipIf(process.getuid?.() !== 0)('mounts and unmounts in the server itself, and reports a failure with the path and the reason', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tswarm-spawn-'));
    const target = path.join(dir, 'mnt');
    try {
      await s.run(['mkdir', target]);
      await s.mounter.mount('tmpfs', 'tswarm-spawn-test', 'size=1m,mode=0700', target);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).toContain(` ${target} `);
      writeFileSync(path.join(target, 'f'), 'x');
      await s.mounter.unmount(target);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${target} `);
      expect(existsSync(path.join(target, 'f'))).toBe(false); // it was on the tmpfs
      await expect(s.mounter.unmount(target)).rejects.toThrow(`swarm-spawn:umount: ${target}: Invalid argument`);
      await expect(s.mounter.mount('tmpfs', 'x', '', path.join(dir, 'missing'))).rejects.toThrow(`${path.join(dir, 'missing')}: No such file or directory`);
      expect(await s.run(['swarm-spawn:nothing'])).toMatchObject({ code: 1, stderr: 'swarm-spawn:nothing: Invalid argument\n' });
    } finally {
      await s.mounter.unmount(target).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

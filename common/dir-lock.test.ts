import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DirectoryLockedError, DirLock } from './dir-lock.js';

const startTimeOf = (pid: number): string => {
  const t = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return t.slice(t.lastIndexOf(')') + 2).split(' ')[19]!;
};

describe('DirLock', () => {
  const dirs: string[] = [];
  const dir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'tswarm-lock-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('is exclusive while held, and free again once released', async () => {
    const d = dir();
    const a = await DirLock.acquire(d, 'swarmd');
    const err = await DirLock.acquire(d, 'swarmd').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DirectoryLockedError);
    expect((err as Error).message).toBe(`${d} is in use by another swarmd; stop it first, or use another directory`);
    a.release();
    (await DirLock.acquire(d, 'swarmd')).release();
  });

  it('refuses a directory whose lock file names another live process (a holder in another network namespace)', async () => {
    const d = dir();
    writeFileSync(join(d, 'lock'), JSON.stringify({ pid: 1, startTime: startTimeOf(1) }));
    const err = (await DirLock.acquire(d, 'executor').catch((e: unknown) => e)) as DirectoryLockedError;
    expect(err).toBeInstanceOf(DirectoryLockedError);
    expect(err.holderPid).toBe(1);
    expect(err.message).toMatch(/is in use by another executor \(pid 1\)/);
  });

  it('takes over a lock file left by a process that is gone (or reused its pid)', async () => {
    const d = dir();
    writeFileSync(join(d, 'lock'), JSON.stringify({ pid: 1, startTime: '1' }));
    const l = await DirLock.acquire(d, 'swarmd');
    expect(JSON.parse(readFileSync(join(d, 'lock'), 'utf8'))).toEqual({ pid: process.pid, startTime: startTimeOf(process.pid) });
    l.release();
  });
});

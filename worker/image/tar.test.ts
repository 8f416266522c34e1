// The tar reader against our writer and against GNU tar's gnu and pax formats.
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile, link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTar, TarFormatError, writeTar, type TarEntry } from './tar.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function read(b: Buffer, chunk = 7): Promise<TarEntry[]> {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let i = 0; i < b.length; i += chunk) {
      await Promise.resolve();
      yield b.subarray(i, i + chunk);
    }
  }
  const out: TarEntry[] = [];
  for await (const e of readTar(chunks())) out.push(e);
  return out;
}

describe('tar', () => {
  it('reads back what it writes, in small chunks, including pax long names', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(130)}`;
    const b = writeTar([
      { type: 'directory', path: 'a/', mode: 0o755, uid: 5, gid: 6, mtime: 1_700_000_000 },
      { type: 'file', path: 'a/x', content: Buffer.from('hello'), mode: 0o600 },
      { type: 'symlink', path: 'a/l', linkpath: `../${'t'.repeat(150)}` },
      { type: 'hardlink', path: 'a/h', linkpath: 'a/x' },
      { type: 'file', path: long, content: Buffer.alloc(1000, 1) },
      { type: 'chardev', path: 'a/null', devmajor: 1, devminor: 3 },
    ]);
    const es = await read(b);
    expect(es.map((e) => [e.type, e.path, e.linkpath])).toEqual([
      ['directory', 'a/', ''],
      ['file', 'a/x', ''],
      ['symlink', 'a/l', `../${'t'.repeat(150)}`],
      ['hardlink', 'a/h', 'a/x'],
      ['file', long, ''],
      ['chardev', 'a/null', ''],
    ]);
    expect([es[0]!.mode, es[0]!.uid, es[0]!.gid, es[0]!.mtime]).toEqual([0o755, 5, 6, 1_700_000_000]);
    expect(es[1]!.content.toString()).toBe('hello');
    expect(es[4]!.content).toEqual(Buffer.alloc(1000, 1));
    expect([es[5]!.devmajor, es[5]!.devminor]).toEqual([1, 3]);
  });

  it.each(['gnu', 'posix'])('reads GNU tar --format=%s archives (long names, links)', async (format) => {
    const d = await mkdtemp(path.join(tmpdir(), 'tswarm-tar-'));
    dirs.push(d);
    const long = path.join('r', 'n'.repeat(90), 'm'.repeat(90));
    await mkdir(path.join(d, long), { recursive: true });
    await writeFile(path.join(d, long, 'file'), 'content');
    await link(path.join(d, long, 'file'), path.join(d, 'r', 'hard'));
    await symlink('n'.repeat(90) + '/' + 'm'.repeat(90) + '/file', path.join(d, 'r', 'sym'));
    const b = execFileSync('tar', ['-C', d, `--format=${format}`, '--sort=name', '-cf', '-', 'r']);
    const es = await read(b, 4096);
    const byPath = new Map(es.map((e) => [e.path.replace(/\/$/, ''), e]));
    expect(byPath.get('r/sym')?.linkpath).toBe('n'.repeat(90) + '/' + 'm'.repeat(90) + '/file');
    // sorted by name, r/hard comes first and carries the content; the long path links to it
    expect(byPath.get('r/hard')?.content.toString()).toBe('content');
    expect(byPath.get(`${long}/file`)?.type).toBe('hardlink');
    expect(byPath.get(`${long}/file`)?.linkpath).toBe('r/hard');
  });

  it('refuses a header with a bad checksum and a truncated entry, with the offset', async () => {
    const b = writeTar([{ type: 'file', path: 'x', content: Buffer.alloc(600, 2) }]);
    const bad = Buffer.from(b);
    bad[0] = 0x79;
    await expect(read(bad)).rejects.toThrow(new TarFormatError('header checksum mismatch', 0));
    await expect(read(b.subarray(0, 700))).rejects.toThrow(/^tar at offset 512: truncated archive/);
  });
});

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IllegalStateError } from '../../../common/errors.js';
import { crc32, crc32Js } from './crc32.js';
import { bulkWritesUnderWay, MemFs, NodeFs, smallSyncsInline, StorageIoError } from './fs.js';
import { randInt, randomBytes, seededRandom } from './testing.js';

const bytes = (s: string): Uint8Array => Buffer.from(s);
const text = (b: Uint8Array): string => Buffer.from(b).toString();

describe('MemFs', () => {
  it('keeps synced bytes and loses unsynced ones in a crash without tear', () => {
    const fs = new MemFs();
    fs.mkdirp('/d');
    const h = fs.openAppend('/d/f');
    fs.syncDir('/d');
    h.append(bytes('synced'));
    h.sync();
    h.append(bytes('-lost'));
    expect(h.size()).toBe(11);
    fs.crash(seededRandom(1));
    expect(text(fs.read('/d/f'))).toBe('synced');
    expect(() => h.append(bytes('x'))).toThrow(IllegalStateError);
  });

  it('with tear keeps a random prefix of the unsynced tail, never more, never less than synced', () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 200; seed++) {
      const fs = new MemFs();
      fs.mkdirp('/d');
      const h = fs.openAppend('/d/f');
      fs.syncDir('/d');
      h.append(bytes('0123'));
      h.sync();
      h.append(bytes('456789'));
      fs.crash(seededRandom(seed), { tear: true });
      const got = text(fs.read('/d/f'));
      expect('0123456789'.startsWith(got)).toBe(true);
      expect(got.length).toBeGreaterThanOrEqual(4);
      seen.add(got.length);
    }
    expect(seen.size).toBe(7); // every cut from 4 to 10 bytes happens
  });

  it('may undo file creations and removals not followed by syncDir, keeping them in order', () => {
    const lone = new Set<string>();
    const ordered = new Set<string>();
    for (let seed = 0; seed < 100; seed++) {
      const fs = new MemFs();
      fs.mkdirp('/d');
      const a = fs.openAppend('/d/a');
      a.append(bytes('a'));
      a.sync(); // the data is synced, the creation is not
      fs.crash(seededRandom(seed));
      lone.add(fs.list('/d').join(','));

      fs.openAppend('/d/a').close();
      fs.openAppend('/d/b').close();
      fs.syncDir('/d');
      fs.remove('/d/b');
      fs.openAppend('/d/c').close();
      fs.crash(seededRandom(seed + 1000));
      ordered.add(fs.list('/d').join(','));
    }
    expect([...lone].sort()).toEqual(['', 'a']);
    // A prefix of [remove b, create c] survives: never c while b's removal was undone.
    expect([...ordered].sort()).toEqual(['a', 'a,b', 'a,c']);
    const fs = new MemFs();
    fs.mkdirp('/d');
    fs.openAppend('/d/a').close();
    fs.syncDir('/d');
    fs.remove('/d/a');
    fs.syncDir('/d');
    fs.crash(seededRandom(1));
    expect(fs.list('/d')).toEqual([]);
  });

  it('keeps created files after syncDir, and an interrupted writeAtomic is all-or-nothing', () => {
    for (let seed = 0; seed < 100; seed++) {
      let armed = false;
      const random = seededRandom(seed);
      const stopAt = randInt(random, 0, 4);
      let n = 0;
      const fs = new MemFs(() => {
        if (armed && n++ === stopAt) throw new Error('power loss');
      });
      fs.mkdirp('/d');
      fs.writeAtomic('/d/f', bytes('old'));
      armed = true;
      expect(() => fs.writeAtomic('/d/f', [bytes('ne'), bytes('w')])).toThrow('power loss');
      fs.crash(random, { tear: true });
      expect(['old', 'new']).toContain(text(fs.read('/d/f')));
    }
    const fs = new MemFs();
    fs.mkdirp('/d');
    fs.writeAtomic('/d/f', [bytes('ne'), bytes('w')]);
    fs.crash(seededRandom(3), { tear: true });
    expect(text(fs.read('/d/f'))).toBe('new');
    expect(fs.list('/d')).toEqual(['f']);
  });

  it('may undo an unsynced truncation below the synced length', () => {
    const outcomes = new Set<string>();
    for (let seed = 0; seed < 50; seed++) {
      const fs = new MemFs();
      fs.mkdirp('/d');
      const h = fs.openAppend('/d/f');
      fs.syncDir('/d');
      h.append(bytes('abcdef'));
      h.sync();
      h.truncate(2);
      h.append(bytes('XY'));
      expect(text(fs.read('/d/f'))).toBe('abXY');
      fs.crash(seededRandom(seed), { tear: true });
      outcomes.add(text(fs.read('/d/f')));
    }
    expect([...outcomes].sort()).toEqual(['ab', 'abX', 'abXY', 'abcdef']);
  });

  it('corrupt flips one bit; counts syncs; lists files and directories sorted', () => {
    const fs = new MemFs();
    fs.mkdirp('/d/sub');
    const h = fs.openAppend('/d/b');
    h.append(bytes('A'));
    h.sync();
    fs.openAppend('/d/a').close();
    fs.corrupt('/d/b', 0, 1);
    expect(text(fs.read('/d/b'))).toBe('C');
    expect(fs.list('/d')).toEqual(['a', 'b', 'sub']);
    expect(fs.stats).toMatchObject({ fsyncs: 1, appends: 1 });
    expect(() => fs.corrupt('/d/b', 5)).toThrow(/outside the file/);
    expect(() => fs.read('/d/zzz')).toThrow(StorageIoError);
    expect(() => fs.read('/d/zzz')).toThrow('/d/zzz');
    h.close();
    expect(() => h.append(bytes('x'))).toThrow(/closed/);
  });
});

describe('NodeFs', () => {
  const dirs: string[] = [];
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'raft-fs-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('appends, syncs, truncates and reopens real files', () => {
    const root = tmp();
    const fs = new NodeFs();
    const dir = join(root, 'a', 'b');
    fs.mkdirp(dir);
    fs.mkdirp(dir); // again: nothing to do
    const path = join(dir, 'seg');
    const h = fs.openAppend(path);
    fs.syncDir(dir);
    h.append(bytes('hello '));
    h.append(bytes('world'));
    expect(h.size()).toBe(11);
    h.sync();
    h.truncate(5);
    h.append(bytes('!'));
    h.sync();
    h.close();
    h.close();
    expect(() => h.append(bytes('x'))).toThrow(IllegalStateError);
    expect(readFileSync(path, 'utf8')).toBe('hello!');
    const again = fs.openAppend(path);
    expect(again.size()).toBe(6);
    again.close();
    expect(text(fs.read(path))).toBe('hello!');
    expect(fs.exists(path)).toBe(true);
    expect(fs.list(dir)).toEqual(['seg']);
  });

  it('syncAsync: a small write on a later turn of the event loop, a large one on the thread pool; each calls back once', async () => {
    const fs = new NodeFs();
    const path = join(tmp(), 'seg');
    const h = fs.openWrite(path);
    h.write(bytes('small'), 0);
    const order: string[] = [];
    const small = new Promise<Error | null>((resolve) =>
      h.syncAsync!((err) => {
        order.push('small synced');
        resolve(err);
      }, 5),
    );
    order.push('returned');
    expect(await small).toBeNull();
    h.write(new Uint8Array(64 * 1024).fill(1), 5);
    expect(await new Promise<Error | null>((resolve) => h.syncAsync!(resolve, 64 * 1024))).toBeNull();
    expect(order).toEqual(['returned', 'small synced']);
    expect(readFileSync(path).length).toBe(5 + 64 * 1024);
    h.close();
  });

  it('syncs small writes on the thread pool while a bulk file is written (the disk is busy), and counts each bulk write once', async () => {
    const fs = new NodeFs();
    const root = tmp();
    expect(bulkWritesUnderWay()).toBe(0);
    const stream = fs.openAtomicStream(join(root, 'snap'));
    expect(bulkWritesUnderWay()).toBe(1);
    expect(smallSyncsInline()).toBe(false);
    await new Promise<void>((resolve, reject) => stream.write([new Uint8Array(1 << 20)], (err) => (err ? reject(err) : resolve())));
    expect(smallSyncsInline()).toBe(false);
    await new Promise<void>((resolve, reject) => stream.commit((err) => (err ? reject(err) : resolve())));
    expect(bulkWritesUnderWay()).toBe(0);
    const zeroed = new Promise<Error | null>((resolve) => fs.writeZerosAsync(join(root, 'seg'), 4 << 20, resolve));
    expect(bulkWritesUnderWay()).toBe(1);
    expect(smallSyncsInline()).toBe(false);
    expect(await zeroed).toBeNull();
    const aborted = fs.openAtomicStream(join(root, 'other'));
    aborted.abort();
    aborted.abort();
    expect(bulkWritesUnderWay()).toBe(0);
  });

  it('writeAtomic replaces the file whole and leaves no temporary file behind', () => {
    const dir = tmp();
    const fs = new NodeFs();
    const path = join(dir, 'x.snap');
    fs.writeAtomic(path, bytes('first'));
    fs.writeAtomic(path, [bytes('sec'), bytes('ond'), new Uint8Array(0)]);
    expect(readFileSync(path, 'utf8')).toBe('second');
    expect(readdirSync(dir)).toEqual(['x.snap']);
  });

  it('names the path in errors and tolerates removing a missing file', () => {
    const dir = tmp();
    const fs = new NodeFs();
    const missing = join(dir, 'nope');
    let err: unknown;
    try {
      fs.read(missing);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StorageIoError);
    expect((err as StorageIoError).path).toBe(missing);
    expect((err as StorageIoError).code).toBe('ENOENT');
    expect((err as Error).message).toContain(missing);
    fs.remove(missing);
    expect(() => fs.list(missing)).toThrow(missing);
    expect(() => fs.writeAtomic(join(missing, 'f'), bytes('x'))).toThrow(StorageIoError);
    expect(existsSync(join(missing, 'f.tmp'))).toBe(false);
  });
});

describe('crc32', () => {
  it('zlib and the portable implementation agree, also when continued', () => {
    const random = seededRandom(7);
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32Js(Buffer.from('123456789'))).toBe(0xcbf43926);
    for (let i = 0; i < 50; i++) {
      const a = randomBytes(random, randInt(random, 0, 300));
      const b = randomBytes(random, randInt(random, 0, 300));
      expect(crc32Js(a)).toBe(crc32(a));
      expect(crc32Js(b, crc32Js(a))).toBe(crc32(Buffer.concat([a, b])));
    }
  });
});

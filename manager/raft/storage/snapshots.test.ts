import { describe, expect, it } from 'vitest';
import { CorruptFileError } from '../../../common/errors.js';
import type { SnapshotMetadata } from '../../../proto/gen/tswarm/raft.js';
import { MemFs } from './fs.js';
import { decodeSnapshot, encodeSnapshot, SnapshotStore, snapshotName } from './snapshots.js';

const DIR = '/data/snap';
const meta = (index: number, term: number): SnapshotMetadata => ({ index, term, confState: { voters: [1, 2, 3], learners: [4], addresses: {} } });

function store(): { fs: MemFs; snaps: SnapshotStore } {
  const fs = new MemFs();
  fs.mkdirp(DIR);
  return { fs, snaps: new SnapshotStore(fs, DIR) };
}

describe('snapshot files', () => {
  it('round-trip metadata and data under a name made of term and index', () => {
    const { fs, snaps } = store();
    const path = snaps.save(meta(300, 7), Buffer.from('state'));
    expect(path).toBe(`${DIR}/${snapshotName(7, 300)}`);
    expect(path).toBe(`${DIR}/0000000000000007-000000000000012c.snap`);
    const got = decodeSnapshot(path, fs.read(path), { index: 300, term: 7 });
    expect(got.metadata).toEqual(meta(300, 7));
    expect(Buffer.from(got.data).toString()).toBe('state');
    expect(fs.list(DIR)).toEqual(['0000000000000007-000000000000012c.snap']);
  });

  it('detects every single-bit flip and every truncation, naming the file and an offset', () => {
    const file = Buffer.concat(encodeSnapshot(meta(5, 2), Buffer.from('some snapshot data')));
    for (let offset = 0; offset < file.length; offset++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(file);
        bad[offset] = (bad[offset] as number) ^ (1 << bit);
        expect(() => decodeSnapshot('/x.snap', bad)).toThrow(CorruptFileError);
      }
    }
    for (let len = 0; len < file.length; len++) {
      expect(() => decodeSnapshot('/x.snap', file.subarray(0, len))).toThrow(/^\/x\.snap at offset \d+: /);
    }
  });

  it('refuses a file whose metadata does not match its name', () => {
    const { fs, snaps } = store();
    const path = snaps.save(meta(10, 2), Buffer.from('x'));
    const wrong = `${DIR}/${snapshotName(2, 11)}`;
    fs.writeAtomic(wrong, fs.read(path));
    expect(() => snaps.load(() => true)).toThrow(/metadata says index 10 term 2, the name says index 11 term 2/);
  });

  it('loads the newest valid file; a corrupt newest one is an error if the WAL refers to it, skipped if not', () => {
    const { fs, snaps } = store();
    snaps.save(meta(10, 1), Buffer.from('ten'));
    const p20 = snaps.save(meta(20, 1), Buffer.from('twenty'));
    expect(snaps.load(() => true).loaded?.metadata.index).toBe(20);
    fs.corrupt(p20, 25);
    let err: unknown;
    try {
      snaps.load((i) => i === 20);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CorruptFileError);
    expect((err as CorruptFileError).path).toBe(p20);
    const { loaded, ignored } = snaps.load((i) => i === 10);
    expect(loaded?.metadata.index).toBe(10);
    expect(Buffer.from(loaded?.data ?? []).toString()).toBe('ten');
    expect(ignored.map((x) => x.file.path)).toEqual([p20]);
    expect(ignored[0]?.problem).toMatch(/checksum mismatch/);
  });

  it('keeps the newest two files and removes temporaries', () => {
    const { fs, snaps } = store();
    for (const i of [5, 30, 10, 20]) snaps.save(meta(i, 1), Buffer.from(`s${i}`));
    fs.openAppend(`${DIR}/${snapshotName(1, 40)}.tmp`).close();
    expect(snaps.prune(2)).toEqual([`${DIR}/${snapshotName(1, 5)}`, `${DIR}/${snapshotName(1, 10)}`]);
    expect(snaps.removeTemporaries()).toEqual([`${DIR}/${snapshotName(1, 40)}.tmp`]);
    expect(snaps.list().map((f) => f.index)).toEqual([20, 30]);
  });
});

import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptFileError } from '../../../common/errors.js';
import { type Entry, EntryType, WalRecord } from '../../../proto/gen/tswarm/raft.js';
import { MemFs, NodeFs } from './fs.js';
import { describeEntries, entries, entry, randInt, randomBytes, seededRandom } from './testing.js';
import { LogState, parseSegmentName, RecordBuffer, recoverWal, segmentName, Wal, type WalOptions, type WalRecovery } from './wal.js';

const DIR = '/data/wal';
/** Segments of 64 KiB unless a test says otherwise: the default 64 MiB is heavy for MemFs. */
const SMALL = 64 * 1024;

function fresh(opts?: WalOptions): { fs: MemFs; wal: Wal } {
  const fs = new MemFs();
  fs.mkdirp(DIR);
  return { fs, wal: Wal.open(fs, recoverWal(fs, DIR), { segmentBytes: SMALL, ...opts }) };
}

function reopen(fs: MemFs, opts?: WalOptions): { wal: Wal; rec: WalRecovery } {
  const rec = recoverWal(fs, DIR);
  return { rec, wal: Wal.open(fs, rec, { segmentBytes: SMALL, ...opts }) };
}

/** Where the data of the last segment ends (the next record's offset), as recovery sees it. */
function dataEnd(fs: MemFs): number {
  return recoverWal(fs, DIR).segments.at(-1)?.size ?? -1;
}

/** Raw bytes written at `offset` and synced, bypassing the WAL (a hand-made torn tail or stale bytes). */
function writeRaw(fs: MemFs, path: string, offset: number, data: Uint8Array): void {
  const h = fs.openWrite(path);
  h.write(data, offset);
  h.sync();
  h.close();
}

/** The segment files (not the prepared `*.tmp`). */
function walNames(fs: MemFs): string[] {
  return fs.list(DIR).filter((n) => n.endsWith('.wal'));
}

function writeEntries(wal: Wal, list: readonly Entry[]): void {
  for (const e of list) wal.appendEntry(e);
}

function segments(fs: MemFs): string[] {
  return walNames(fs).map((n) => `${DIR}/${n}`);
}

function expectCorrupt(fn: () => unknown, path: string, offset: number, problem: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CorruptFileError);
  const c = err as CorruptFileError;
  expect({ path: c.path, offset: c.offset }).toEqual({ path, offset });
  expect(c.message).toContain(`${path} at offset ${offset}`);
  expect(c.problem).toMatch(problem);
}

describe('WAL record encoding', () => {
  it('writes entries byte for byte as WalRecord.encode does', () => {
    const random = seededRandom(11);
    const types = [EntryType.ENTRY_TYPE_NORMAL, EntryType.ENTRY_TYPE_CONF_CHANGE, EntryType.ENTRY_TYPE_EMPTY];
    const specials = [0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35 + 3, Number.MAX_SAFE_INTEGER];
    for (let i = 0; i < 500; i++) {
      const pick = (): number => (random() < 0.5 ? (specials[randInt(random, 0, specials.length - 1)] as number) : randInt(random, 0, 2 ** 40));
      const len = random() < 0.2 ? 0 : random() < 0.9 ? randInt(random, 1, 200) : randInt(random, 16000, 20000);
      const e: Entry = { term: pick(), index: Math.max(1, pick()), type: types[randInt(random, 0, 2)] as EntryType, data: randomBytes(random, len) };
      const ours = new RecordBuffer(16);
      ours.entry(e);
      const theirs = new RecordBuffer(16);
      theirs.record({ record: { $case: 'entry', entry: e } });
      expect(Buffer.from(ours.bytes()).equals(Buffer.from(theirs.bytes()))).toBe(true);
      const payload = ours.bytes().subarray(8);
      expect(Buffer.from(payload).equals(Buffer.from(WalRecord.encode({ record: { $case: 'entry', entry: e } }).finish()))).toBe(true);
    }
  });

  it('names segments with 16 hex digits and parses them back', () => {
    expect(segmentName(1, 255)).toBe('0000000000000001-00000000000000ff.wal');
    expect(parseSegmentName('0000000000000001-00000000000000ff.wal')).toEqual({ seq: 1, firstIndex: 255 });
    expect(parseSegmentName('0000000000000001-00000000000000ff.wal.tmp')).toBeUndefined();
  });
});

describe('WAL', () => {
  it('round-trips entries, hard states and snapshot points', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 5, 1));
    wal.appendHardState({ term: 1, vote: 2, commit: 3 });
    wal.sync();
    wal.appendSnapshot({ index: 2, term: 1, confState: { voters: [1, 2, 3], learners: [], addresses: {} } });
    writeEntries(wal, entries(6, 7, 2));
    wal.appendHardState({ term: 2, vote: 0, commit: 6 });
    wal.close();
    const rec = recoverWal(fs, DIR);
    expect(rec.hardState).toEqual({ term: 2, vote: 0, commit: 6 });
    expect(rec.snapshot?.metadata).toEqual({ index: 2, term: 1, confState: { voters: [1, 2, 3], learners: [], addresses: {} } });
    expect(describeEntries(rec.log.entries ?? [])).toEqual(describeEntries([...entries(3, 5, 1), ...entries(6, 7, 2)]));
    expect(rec.tornTail).toBeUndefined();
  });

  it('group-commits: many queued records, one write and one fsync per sync', () => {
    const { fs, wal } = fresh();
    const before = { ...fs.stats };
    writeEntries(wal, entries(1, 100, 1));
    wal.appendHardState({ term: 1, vote: 1, commit: 50 });
    expect(fs.stats.writes - before.writes).toBe(0);
    wal.sync();
    expect(fs.stats.writes - before.writes).toBe(1);
    expect(fs.stats.appends - before.appends).toBe(0);
    expect(fs.stats.fsyncs - before.fsyncs).toBe(1);
    wal.sync(); // nothing queued: no I/O
    expect(fs.stats.fsyncs - before.fsyncs).toBe(1);
  });

  it('starts a new segment past segmentBytes, each with the hard state and snapshot point at its head', () => {
    const { fs, wal } = fresh({ segmentBytes: 200 });
    wal.appendHardState({ term: 1, vote: 1, commit: 0 });
    wal.appendSnapshot({ index: 10, term: 1, confState: undefined });
    for (let i = 11; i <= 60; i++) {
      wal.appendEntry(entry(i, 1));
      if (i % 3 === 0) wal.sync();
    }
    wal.sync();
    const names = walNames(fs);
    expect(names.length).toBeGreaterThan(5);
    names.forEach((n, k) => expect(parseSegmentName(n)?.seq).toBe(k));
    // A segment in the middle replays alone to the same hard state and snapshot point.
    const third = Buffer.from(fs.read(`${DIR}/${names[3] as string}`));
    const first = WalRecord.decode(third.subarray(8, 8 + third.readUInt32LE(0)));
    expect(first.record).toEqual({ $case: 'hardState', hardState: { term: 1, vote: 1, commit: 0 } });
    wal.close();
    const rec = recoverWal(fs, DIR);
    expect(describeEntries(rec.log.entries ?? [])).toEqual(describeEntries(entries(11, 60, 1)));
    expect(rec.segments.map((s) => s.maxIndex).every((m, k, all) => k === 0 || m >= (all[k - 1] as number) || m === 0)).toBe(true);
  });

  it('releases whole old segments covered by a snapshot, never the current one, and still replays', () => {
    const { fs, wal } = fresh({ segmentBytes: 150 });
    for (let i = 1; i <= 40; i++) {
      wal.appendEntry(entry(i, 1));
      wal.sync();
    }
    const before = walNames(fs).length;
    wal.appendSnapshot({ index: 25, term: 1, confState: undefined });
    wal.sync();
    const removed = wal.release(25);
    expect(removed.length).toBeGreaterThan(0);
    const left = wal.listSegments();
    expect(left.length).toBe(before - removed.length);
    expect(left.every((s) => s.maxIndex > 25 || s === left.at(-1))).toBe(true);
    expect(left[0]?.maxIndex).toBeGreaterThan(25);
    wal.close();
    const rec = recoverWal(fs, DIR);
    expect(rec.snapshot?.metadata.index).toBe(25);
    expect(describeEntries(rec.log.entries ?? [])).toEqual(describeEntries(entries(26, 40, 1)));
    const { wal: w2 } = reopen(fs, { segmentBytes: 150 });
    expect(() => w2.release(30)).toThrow(/no snapshot record at or above 30/);
    w2.appendSnapshot({ index: 40, term: 1, confState: undefined });
    w2.sync();
    w2.release(40);
    expect(w2.listSegments().length).toBe(1);
    w2.close();
    const rec2 = recoverWal(fs, DIR);
    expect(rec2.log.snapIndex).toBe(40);
    expect(rec2.log.entries).toEqual([]);
  });

  it('replays an overwritten suffix: later records win', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 6, 1));
    wal.sync();
    writeEntries(wal, entries(4, 5, 2)); // a new leader replaced 4..6
    wal.sync();
    writeEntries(wal, entries(6, 7, 2));
    wal.close();
    const rec = recoverWal(fs, DIR);
    expect(describeEntries(rec.log.entries ?? [])).toEqual(describeEntries([...entries(1, 3, 1), ...entries(4, 7, 2)]));
  });

  it('keeps the entries after a compaction snapshot, drops all for a conflicting (installed) one', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 6, 1));
    wal.appendSnapshot({ index: 3, term: 1, confState: undefined });
    wal.close();
    expect(describeEntries(recoverWal(fs, DIR).log.entries ?? [])).toEqual(describeEntries(entries(4, 6, 1)));
    const { wal: w2 } = reopen(fs);
    w2.appendSnapshot({ index: 5, term: 3, confState: undefined }); // the log's entry 5 has term 1
    w2.appendEntry(entry(6, 3));
    w2.close();
    const rec = recoverWal(fs, DIR);
    expect(rec.log.snapIndex).toBe(5);
    expect(describeEntries(rec.log.entries ?? [])).toEqual(describeEntries([entry(6, 3)]));
  });

  it('cuts a torn tail (a half-written record before the zeros) by zeroing it, and tells what it cut', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 3, 1));
    wal.close();
    const [seg] = segments(fs);
    const path = seg as string;
    const good = dataEnd(fs);
    expect(fs.read(path).length).toBe(SMALL); // preallocated
    const half = new RecordBuffer();
    half.entry(entry(4, 1, 'x'.repeat(100)));
    writeRaw(fs, path, good, half.bytes().subarray(0, 50));
    const cuts: [string, number, number][] = [];
    const { rec, wal: w2 } = reopen(fs, { onTruncate: (p, o, b) => cuts.push([p, o, b]) });
    expect(rec.tornTail).toMatchObject({ path, offset: good, bytes: 50 });
    expect(cuts).toEqual([[path, good, 50]]);
    expect(fs.read(path).length).toBe(SMALL);
    expect(Buffer.from(fs.read(path).subarray(good)).equals(Buffer.alloc(SMALL - good))).toBe(true);
    w2.appendEntry(entry(4, 1));
    w2.close();
    expect(describeEntries(recoverWal(fs, DIR).log.entries ?? [])).toEqual(describeEntries(entries(1, 4, 1)));
  });

  it('zeros after the data are a clean end; a short or bad header before them is a torn tail', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 2, 1));
    wal.close();
    const clean = recoverWal(fs, DIR);
    expect(clean.tornTail).toBeUndefined();
    expect(clean.log.lastIndex).toBe(2);
    for (const tail of [Buffer.from([0, 0, 0, 0, 7]), Buffer.from([5, 0, 0, 0, 1, 2, 3, 4, 9]), Buffer.from([0, 1])]) {
      const { fs, wal } = fresh();
      writeEntries(wal, entries(1, 2, 1));
      wal.close();
      const path = segments(fs)[0] as string;
      const good = dataEnd(fs);
      writeRaw(fs, path, good, tail);
      const { rec } = reopen(fs);
      expect(rec.tornTail?.offset).toBe(good);
      expect(dataEnd(fs)).toBe(good);
      expect(recoverWal(fs, DIR).tornTail).toBeUndefined(); // zeroed
      expect(rec.log.lastIndex).toBe(2);
    }
  });

  it('opens a segment from before preallocation (short: the end of the file ends the data), torn tail and all', () => {
    const fs = new MemFs();
    fs.mkdirp(DIR);
    const path = `${DIR}/${segmentName(0, 1)}`;
    const old = new RecordBuffer();
    old.record({ record: { $case: 'hardState', hardState: { term: 1, vote: 1, commit: 0 } } });
    for (const e of entries(1, 3, 1)) old.entry(e);
    const good = old.length;
    old.entry(entry(4, 1));
    const h = fs.openAppend(path);
    fs.syncDir(DIR);
    h.append(old.bytes().subarray(0, good + 5)); // entry 4 torn: 5 bytes of it
    h.sync();
    h.close();
    const { rec, wal } = reopen(fs);
    expect(rec.tornTail).toMatchObject({ path, offset: good, bytes: 5 });
    expect(rec.log.lastIndex).toBe(3);
    wal.appendEntry(entry(4, 2));
    wal.close();
    const again = recoverWal(fs, DIR);
    expect(describeEntries(again.log.entries ?? [])).toEqual(describeEntries([...entries(1, 3, 1), entry(4, 2)]));
    expect(again.tornTail).toBeUndefined();
  });

  it('cuts a torn tail of many megabytes of noise quickly (the forward scan stays linear)', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 2, 1));
    wal.close();
    const path = segments(fs)[0] as string;
    const good = dataEnd(fs);
    writeRaw(fs, path, good, randomBytes(seededRandom(3), 8 << 20));
    const started = performance.now();
    const { rec } = reopen(fs);
    expect(performance.now() - started).toBeLessThan(5000); // about 0.1 s; without the filter, minutes
    expect(rec.tornTail).toMatchObject({ offset: good, bytes: 8 << 20 });
  });

  it('a damaged record followed by a valid one in the last segment is corruption, and nothing changes', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 3, 1));
    wal.sync();
    const path = segments(fs)[0] as string;
    const second = wal.listSegments()[0]?.size as number; // offset of entry 4's record
    writeEntries(wal, entries(4, 6, 1));
    wal.close();
    fs.corrupt(path, second + 12); // inside entry 4's payload
    const before = fs.dump();
    expectCorrupt(() => recoverWal(fs, DIR), path, second, /checksum mismatch.*followed by a valid record/);
    expect(fs.dump()).toEqual(before);
    // The length field itself damaged: found by scanning forward.
    const { fs: fs2, wal: w2 } = fresh();
    writeEntries(w2, entries(1, 6, 1));
    w2.close();
    const p2 = segments(fs2)[0] as string;
    const firstLen = Buffer.from(fs2.read(p2)).readUInt32LE(0);
    fs2.corrupt(p2, 8 + firstLen + 3, 7); // the high byte of the next record's length
    expectCorrupt(() => recoverWal(fs2, DIR), p2, 8 + firstLen, /exceeds the maximum.*followed by a valid record/);
  });

  it('a damaged record in an earlier segment is corruption even at its end', () => {
    const { fs, wal } = fresh({ segmentBytes: 100 });
    for (let i = 1; i <= 20; i++) {
      wal.appendEntry(entry(i, 1));
      wal.sync();
    }
    wal.close();
    const [first] = segments(fs);
    const path = first as string;
    const size = recoverWal(fs, DIR).segments[0]?.size as number;
    fs.corrupt(path, size - 1);
    const before = fs.dump();
    const data = Buffer.from(fs.read(path));
    let last = 0;
    for (let p = 0; p < size; p += 8 + data.readUInt32LE(p)) last = p;
    expectCorrupt(() => recoverWal(fs, DIR), path, last, /checksum mismatch .*, in a segment that is not the last/);
    expect(fs.dump()).toEqual(before);
  });

  it('a gap between entries is corruption naming the file and the offset of the record', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 3, 1));
    wal.sync();
    const path = segments(fs)[0] as string;
    const at = wal.listSegments()[0]?.size as number;
    wal.appendEntry(entry(5, 1));
    wal.close();
    expectCorrupt(() => recoverWal(fs, DIR), path, at, /entry 5 leaves a gap after entry 3/);
  });

  it('a missing segment in the middle is corruption', () => {
    const { fs, wal } = fresh({ segmentBytes: 80 });
    for (let i = 1; i <= 20; i++) {
      wal.appendEntry(entry(i, 1));
      wal.sync();
    }
    wal.close();
    const all = segments(fs);
    fs.remove(all[2] as string);
    expectCorrupt(() => recoverWal(fs, DIR), all[3] as string, 0, /segment 0000000000000002 is missing/);
  });

  it('a damaged last record with nothing after it is indistinguishable from a torn write, and is cut', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 3, 1));
    wal.close();
    const path = segments(fs)[0] as string;
    const size = dataEnd(fs);
    fs.corrupt(path, size - 1);
    const { rec } = reopen(fs);
    expect(rec.log.lastIndex).toBe(2);
  });

  it('never replays stale bytes after a cut: what followed a torn record is zeroed before new records land there', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 3, 1));
    wal.sync();
    const path = segments(fs)[0] as string;
    const cut = wal.listSegments()[0]?.size as number;
    // Entries 4 (big) and 5 reach the disk, but a sector in the middle of 4 does not (reads zeros).
    const big = 'x'.repeat(2000);
    wal.appendEntry(entry(4, 1, big));
    wal.appendEntry(entry(5, 1));
    wal.close();
    const sector = (Math.floor(cut / 512) + 2) * 512;
    writeRaw(fs, path, sector, new Uint8Array(512));
    const { rec, wal: w2 } = reopen(fs);
    expect(rec.log.lastIndex).toBe(3); // 4 is torn; 5, though intact, came after it
    expect(rec.tornTail).toMatchObject({ offset: cut });
    // A new leader's entry 4 of the same size ends exactly where the stale entry 5 started.
    w2.appendEntry(entry(4, 2, big.replace(/x/g, 'y')));
    w2.close();
    const after = recoverWal(fs, DIR);
    expect(describeEntries(after.log.entries ?? [])).toEqual(describeEntries([...entries(1, 3, 1), entry(4, 2, big.replace(/x/g, 'y'))]));
    expect(after.tornTail).toBeUndefined();
  });

  it('a torn-looking record in a segment that is not the last is corruption naming the file and offset', () => {
    const { fs, wal } = fresh({ segmentBytes: 3000 });
    writeEntries(wal, entries(1, 2, 1));
    wal.sync();
    const at = wal.listSegments()[0]?.size as number;
    wal.appendEntry(entry(3, 1, 'z'.repeat(3000))); // fills segment 0: segment 1 starts
    wal.sync();
    wal.appendEntry(entry(4, 1));
    wal.close();
    const [first] = segments(fs);
    writeRaw(fs, first as string, (Math.floor(at / 512) + 2) * 512, new Uint8Array(512));
    const before = fs.dump();
    expectCorrupt(() => recoverWal(fs, DIR), first as string, at, /checksum mismatch .*, in a segment that is not the last/);
    expect(fs.dump()).toEqual(before);
  });

  it('rotates onto the prepared zero-filled segment: renamed into place, the next one prepared right after', () => {
    const { fs, wal } = fresh({ segmentBytes: 1024 });
    const prepared = wal.preparedPath as string;
    expect(prepared).toMatch(/\.tmp$/);
    expect(fs.read(prepared)).toEqual(new Uint8Array(1024));
    expect(fs.stats.zeroFiles).toBe(2); // the first segment, and the next one
    let i = 0;
    while (walNames(fs).length === 1) {
      wal.appendEntry(entry(++i, 1, 'd'.repeat(100)));
      wal.sync();
    }
    expect(fs.exists(prepared)).toBe(false); // renamed
    expect(fs.stats.zeroFiles).toBe(3); // no zeros written in the rotation itself, one for the segment after
    expect(wal.preparedPath).not.toBe(prepared);
    const second = `${DIR}/${walNames(fs)[1] as string}`;
    expect(fs.read(second).length).toBe(1024);
    wal.close();
    expect(fs.list(DIR).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(recoverWal(fs, DIR).log.lastIndex).toBe(i);
  });

  it('removes a leftover .tmp on open without reading it', () => {
    const { fs, wal } = fresh();
    writeEntries(wal, entries(1, 2, 1));
    wal.close();
    // Valid-looking records under a temporary name: never read.
    const junk = new RecordBuffer();
    for (const e of entries(3, 9, 1)) junk.entry(e);
    fs.writeAtomic(`${DIR}/next-0.wal.tmp`, junk.bytes());
    fs.writeAtomic(`${DIR}/${segmentName(1, 3)}.tmp`, junk.bytes());
    const { rec, wal: w2 } = reopen(fs);
    expect(rec.log.lastIndex).toBe(2);
    expect(fs.exists(`${DIR}/${segmentName(1, 3)}.tmp`)).toBe(false);
    expect(fs.read(w2.preparedPath as string)).toEqual(new Uint8Array(SMALL)); // a fresh one
    w2.close();
  });

  it('on real files: segments preallocated with zeros, the next prepared in the background once half full, and used', async () => {
    const root = mkdtempSync(join(tmpdir(), 'raft-wal-'));
    try {
      const fs = new NodeFs();
      const wal = Wal.open(fs, recoverWal(fs, root), { segmentBytes: 64 * 1024 });
      const [first] = readdirSync(root).filter((n) => n.endsWith('.wal'));
      expect(statSync(join(root, first as string)).size).toBe(64 * 1024);
      await new Promise((r) => setTimeout(r, 50));
      expect(readdirSync(root).filter((n) => n.endsWith('.tmp'))).toEqual([]); // not at open
      let i = 0;
      while (wal.listSegments()[0]!.size < 32 * 1024) {
        wal.appendEntry(entry(++i, 1, 'd'.repeat(1000)));
        wal.sync();
      }
      for (let k = 0; k < 100 && wal.preparedPath === undefined; k++) await new Promise((r) => setTimeout(r, 10));
      const prepared = wal.preparedPath as string;
      expect(statSync(prepared).size).toBe(64 * 1024);
      while (wal.listSegments().length === 1) {
        wal.appendEntry(entry(++i, 1, 'd'.repeat(1000)));
        wal.sync();
      }
      expect(existsSync(prepared)).toBe(false); // renamed into place
      const second = wal.listSegments()[1]?.path as string;
      expect(statSync(second).size).toBe(64 * 1024);
      wal.close();
      for (let k = 0; k < 100 && readdirSync(root).some((n) => n.endsWith('.tmp')); k++) await new Promise((r) => setTimeout(r, 10));
      expect(readdirSync(root).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      expect(recoverWal(fs, root).log.lastIndex).toBe(i);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('on real files: released segments are removed in the thread pool, oldest first, and the log still replays', async () => {
    const root = mkdtempSync(join(tmpdir(), 'raft-wal-'));
    try {
      const fs = new NodeFs();
      const removals: string[] = [];
      const removeAsync = fs.removeAsync.bind(fs);
      fs.removeAsync = (path, done) => {
        removals.push(path);
        removeAsync(path, done);
      };
      const wal = Wal.open(fs, recoverWal(fs, root), { segmentBytes: 16 * 1024 });
      for (let i = 1; i <= 120; i++) {
        wal.appendEntry(entry(i, 1, 'd'.repeat(1000)));
        wal.sync();
      }
      const before = wal.listSegments().map((s) => s.path);
      wal.appendSnapshot({ index: 100, term: 1, confState: undefined });
      wal.sync();
      const removed = wal.release(100);
      expect(removed.length).toBeGreaterThan(2);
      expect(removed).toEqual(before.slice(0, removed.length));
      // The WAL forgets them at once; the files go one after the other, oldest first.
      expect(wal.listSegments().map((s) => s.path)).toEqual(before.slice(removed.length));
      for (let k = 0; k < 200 && removed.some((p) => existsSync(p)); k++) await new Promise((r) => setTimeout(r, 10));
      expect(removed.filter((p) => existsSync(p))).toEqual([]);
      expect(removals).toEqual(removed);
      wal.close();
      const rec = recoverWal(fs, root);
      expect(rec.snapshot?.metadata.index).toBe(100);
      expect(rec.log.lastIndex).toBe(120);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses every call after a failed write or fsync', () => {
    let fail = false;
    const fs = new MemFs((op) => {
      if (fail && op === 'sync') throw new Error('EIO');
    });
    fs.mkdirp(DIR);
    const wal = Wal.open(fs, recoverWal(fs, DIR));
    wal.appendEntry(entry(1, 1));
    fail = true;
    expect(() => wal.sync()).toThrow('EIO');
    expect(() => wal.appendEntry(entry(2, 1))).toThrow(/an earlier write or fsync failed \(EIO\)/);
  });
});

describe('LogState', () => {
  it('accepts a released prefix (an unanchored start) only until the end of replay', () => {
    const log = new LogState(true);
    expect(log.snapshot(90, 1)).toBeUndefined();
    expect(log.entry(101, 1, undefined, { path: 'p', offset: 8 })).toBeUndefined(); // entries 91..100 were released
    expect(log.entry(102, 1)).toBeUndefined();
    expect(log.finish()).toEqual({ problem: expect.stringMatching(/entries 91 to 100 are missing/) as unknown, pos: { path: 'p', offset: 8 } });
    expect(log.snapshot(101, 1)).toBeUndefined();
    expect(log.finish()).toBeUndefined();
    expect(log.terms).toEqual([1]);
    expect(log.checkEntry(104, 1)).toMatch(/gap/);
    expect(log.checkEntry(101, 1)).toMatch(/at or below the snapshot/);
    expect(log.checkEntry(103, 0)).toMatch(/below the term 1/);
    expect(log.checkSnapshot(100, 1)).toMatch(/older/);
  });
});

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptFileError, IllegalStateError, InvalidArgumentError } from '../../../common/errors.js';
import type { Entry, HardState, SnapshotMetadata } from '../../../proto/gen/tswarm/raft.js';
import { RaftDisk, type PersistedState, type RaftDiskOptions } from './disk.js';
import { type FileHandle, MemFs, type MemFsCrashOptions, type MemFsOp, NodeFs, type RaftFs } from './fs.js';
import { snapshotName } from './snapshots.js';
import { describeEntries, entries, entry, randInt, randomBytes, seededRandom } from './testing.js';

const DIR = '/raft';
const WAL = `${DIR}/wal`;
const SNAP = `${DIR}/snap`;
const meta = (index: number, term: number): SnapshotMetadata => ({ index, term, confState: { voters: [1, 2, 3], learners: [], addresses: {} } });
const hs = (term: number, vote: number, commit: number): HardState => ({ term, vote, commit });

/** Segments of 64 KiB unless a test says otherwise: the default 64 MiB is heavy for MemFs. */
function openMem(fs: RaftFs, opts?: RaftDiskOptions): { disk: RaftDisk; state: PersistedState } {
  return RaftDisk.open(fs, DIR, { segmentBytes: 64 * 1024, ...opts });
}

/** The WAL segment files (not the prepared next segment, a `*.tmp`). */
function walFiles(fs: RaftFs): string[] {
  return fs.list(WAL).filter((n) => n.endsWith('.wal'));
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

// ---------------------------------------------------------------------------------------------
// A model of the persisted state, written independently of the implementation: the state after
// applying records in order, with the same rules (later entries win; a snapshot keeps the
// entries after it only if the log holds its entry with its term).

interface Model {
  hs: HardState;
  snapIndex: number;
  snapTerm: number;
  snapData: string;
  entries: Entry[];
}

type Op = { kind: 'entry'; e: Entry } | { kind: 'hs'; hs: HardState } | { kind: 'snap'; meta: SnapshotMetadata; data: Buffer };

const EMPTY: Model = { hs: hs(0, 0, 0), snapIndex: 0, snapTerm: 0, snapData: '', entries: [] };

function apply(m: Model, op: Op): Model {
  switch (op.kind) {
    case 'entry':
      return { ...m, entries: [...m.entries.filter((x) => x.index < op.e.index), op.e] };
    case 'hs':
      return { ...m, hs: op.hs };
    case 'snap': {
      const at = m.entries.find((x) => x.index === op.meta.index);
      const rest = at !== undefined && at.term === op.meta.term ? m.entries.filter((x) => x.index > op.meta.index) : [];
      return { ...m, snapIndex: op.meta.index, snapTerm: op.meta.term, snapData: op.data.toString('hex'), entries: rest };
    }
  }
}

function signature(m: Model): string {
  return JSON.stringify([m.hs.term, m.hs.vote, m.hs.commit, m.snapIndex, m.snapTerm, m.snapData, describeEntries(m.entries)]);
}

function modelOf(state: PersistedState): Model {
  return {
    hs: state.hardState,
    snapIndex: state.snapshot?.metadata.index ?? 0,
    snapTerm: state.snapshot?.metadata.term ?? 0,
    snapData: state.snapshot === undefined ? '' : Buffer.from(state.snapshot.data).toString('hex'),
    entries: state.entries,
  };
}

/** The states a crash may leave: the synced state plus any prefix of what was pending (and, for a snapshot in flight, the snapshot adopted on top of any prefix of what preceded it). */
function allowedStates(synced: Model, pending: readonly Op[]): Model[] {
  const out: Model[] = [];
  let m = synced;
  out.push(m);
  for (const op of pending) {
    m = apply(m, op);
    out.push(m);
  }
  const lastOp = pending.at(-1);
  if (lastOp?.kind === 'snap') {
    let p = synced;
    for (let k = 0; k < pending.length; k++) {
      out.push(apply(p, lastOp));
      p = apply(p, pending[k] as Op);
    }
  }
  return out;
}

class SimulatedCrash extends Error {}

/** A power switch for MemFs: after `failAt` mutating operations, every operation throws. */
class Power {
  private n = 0;
  private failAt = Infinity;
  private only: MemFsOp | undefined;
  private dead = false;
  readonly hook = (op: MemFsOp): void => {
    if (this.dead) throw new SimulatedCrash('power is off');
    if (this.only !== undefined && op !== this.only) return;
    if (++this.n === this.failAt) {
      this.dead = true;
      throw new SimulatedCrash('power loss');
    }
  };
  /** Fails the `failAt`-th operation from now (of kind `only`, if given), and every one after it. */
  arm(failAt = Infinity, only?: MemFsOp): void {
    this.n = 0;
    this.failAt = failAt;
    this.only = only;
    this.dead = false;
  }
  get count(): number {
    return this.n;
  }
}

/** Drives RaftDisk with a random workload and keeps the model of what is synced and what is pending. */
class Driver {
  synced: Model = EMPTY;
  pending: Op[] = [];
  term = 1;

  constructor(
    public disk: RaftDisk,
    private readonly random: () => number,
  ) {}

  adopt(state: Model): void {
    this.synced = state;
    this.pending = [];
    const last = state.entries.at(-1);
    this.term = Math.max(1, state.hs.term, state.snapTerm, last?.term ?? 0);
  }

  current(): Model {
    return this.pending.reduce(apply, this.synced);
  }

  step(): void {
    const r = this.random();
    const cur = this.current();
    const lastEntry = cur.entries.at(-1);
    const last = lastEntry?.index ?? cur.snapIndex;
    if (r < 0.45) {
      const overwrite = this.random() < 0.15 && last > cur.snapIndex;
      const start = overwrite ? randInt(this.random, Math.max(cur.snapIndex + 1, last - 4), last) : last + 1;
      if (overwrite) this.term++;
      const n = randInt(this.random, 1, 6);
      const list: Entry[] = [];
      for (let i = 0; i < n; i++) list.push(entry(start + i, this.term, randomBytes(this.random, this.random() < 0.1 ? 300 : randInt(this.random, 0, 30))));
      const state = this.random() < 0.5 ? hs(this.term, randInt(this.random, 0, 3), randInt(this.random, 0, start + n - 1)) : undefined;
      this.disk.append(list, state);
      for (const e of list) this.pending.push({ kind: 'entry', e });
      if (state !== undefined) this.pending.push({ kind: 'hs', hs: state });
    } else if (r < 0.55) {
      const state = hs(this.term, randInt(this.random, 0, 3), randInt(this.random, 0, last));
      this.disk.append([], state);
      this.pending.push({ kind: 'hs', hs: state });
    } else if (r < 0.85) {
      this.disk.sync();
      this.synced = this.current();
      this.pending = [];
    } else if (r < 0.95 && last > cur.snapIndex) {
      // A compaction at an entry of the log.
      const index = randInt(this.random, cur.snapIndex + 1, last);
      const at = cur.entries.find((x) => x.index === index) as Entry;
      this.snapshot(meta(index, at.term));
    } else {
      // An installed snapshot: beyond the log, or inside it with a newer term (a conflict).
      const index = randInt(this.random, Math.max(cur.snapIndex + 1, last - 2), last + 3);
      this.term++;
      this.snapshot(meta(index, this.term));
    }
  }

  private snapshot(m: SnapshotMetadata): void {
    const data = randomBytes(this.random, randInt(this.random, 0, 40));
    this.pending.push({ kind: 'snap', meta: m, data });
    this.disk.saveSnapshot(m, data);
    this.synced = this.current();
    this.pending = [];
  }

  /** Checks a recovered state against the model and continues from it. */
  verify(state: PersistedState, context: string): void {
    const got = signature(modelOf(state));
    const allowed = allowedStates(this.synced, this.pending);
    const match = allowed.find((m) => signature(m) === got);
    if (match === undefined) {
      throw new Error(`${context}: recovered state not allowed\n got:     ${got}\n synced:  ${signature(this.synced)}\n current: ${signature(this.current())}`);
    }
    this.adopt(match);
  }
}

/** No temporary file but the prepared next WAL segment. */
function expectNoTemporaries(fs: MemFs): void {
  for (const path of fs.dump().keys()) expect(path.endsWith('.tmp') && !/\/wal\/next-\d+\.wal\.tmp$/.test(path)).toBe(false);
}

// ---------------------------------------------------------------------------------------------

describe('RaftDisk', () => {
  it('opens an empty directory as an empty state', () => {
    const fs = new MemFs();
    const { disk, state } = openMem(fs);
    expect(state).toEqual({ hardState: hs(0, 0, 0), entries: [] });
    expect(walFiles(fs)).toEqual(['0000000000000000-0000000000000001.wal']);
    expect(fs.list(SNAP)).toEqual([]);
    disk.close();
    expect(openMem(fs).state).toEqual({ hardState: hs(0, 0, 0), entries: [] });
  });

  it('round-trips entries, hard state and a snapshot', () => {
    const fs = new MemFs();
    const { disk } = openMem(fs);
    disk.append(entries(1, 10, 1), hs(1, 1, 5));
    disk.sync();
    disk.saveSnapshot(meta(5, 1), Buffer.from('five'));
    disk.append(entries(11, 12, 2), hs(2, 3, 11));
    disk.close();
    const { state } = openMem(fs);
    expect(state.hardState).toEqual(hs(2, 3, 11));
    expect(state.snapshot?.metadata).toEqual(meta(5, 1));
    expect(Buffer.from(state.snapshot?.data ?? []).toString()).toBe('five');
    expect(describeEntries(state.entries)).toEqual(describeEntries([...entries(6, 10, 1), ...entries(11, 12, 2)]));
  });

  it('group-commits: N appends and one sync make one write and one fsync', () => {
    const fs = new MemFs();
    const { disk } = openMem(fs);
    const before = { ...fs.stats };
    for (let i = 1; i <= 64; i++) disk.append([entry(i, 1)], hs(1, 1, i - 1));
    disk.sync();
    expect(fs.stats.writes - before.writes).toBe(1);
    expect(fs.stats.fsyncs - before.fsyncs).toBe(1);
    expect(fs.stats.dirSyncs - before.dirSyncs).toBe(0);
  });

  it('rotates segments, releases those a snapshot covers, and keeps the newest two snapshots', () => {
    const fs = new MemFs();
    const { disk } = openMem(fs, { segmentBytes: 256 });
    let index = 0;
    for (let round = 1; round <= 4; round++) {
      for (let k = 0; k < 30; k++) {
        disk.append([entry(++index, 1)], hs(1, 1, index));
        disk.sync();
      }
      const before = disk.segments();
      expect(before.length).toBeGreaterThan(3);
      disk.saveSnapshot(meta(index - 5, 1), Buffer.from(`snap${round}`));
      const after = disk.segments();
      expect(after.length).toBeLessThan(before.length);
      expect(after.slice(0, -1).every((s) => s.maxIndex > index - 5)).toBe(true);
      expect(walFiles(fs).length).toBe(after.length);
    }
    expect(fs.list(SNAP)).toEqual([snapshotName(1, 85), snapshotName(1, 115)]);
    disk.close();
    const { state } = openMem(fs, { segmentBytes: 256 });
    expect(state.snapshot?.metadata.index).toBe(115);
    expect(describeEntries(state.entries)).toEqual(describeEntries(entries(116, 120, 1)));
    expect(state.hardState).toEqual(hs(1, 1, 120));
  });

  it('replays an overwritten suffix', () => {
    const fs = new MemFs();
    const { disk } = openMem(fs);
    disk.append(entries(1, 8, 1));
    disk.sync();
    disk.append(entries(5, 6, 2), hs(2, 2, 4));
    disk.close();
    const { disk: d2, state } = openMem(fs);
    expect(describeEntries(state.entries)).toEqual(describeEntries([...entries(1, 4, 1), ...entries(5, 6, 2)]));
    expect(d2.lastIndex).toBe(6);
  });

  it('refuses appends that would not replay, queueing nothing', () => {
    const fs = new MemFs();
    const { disk } = openMem(fs);
    disk.append(entries(1, 5, 2));
    expect(caught(() => disk.append([entry(7, 2)]))).toBeInstanceOf(InvalidArgumentError);
    expect(() => disk.append([entry(7, 2)])).toThrow(/entry 7 leaves a gap after entry 5/);
    expect(() => disk.append([entry(6, 2), entry(8, 2)])).toThrow(/entries\[1\]\.index: 8 does not follow 6/);
    expect(() => disk.append([entry(6, 1)])).toThrow(/below the term 2 of entry 5/);
    expect(() => disk.append([entry(6, 2), entry(7, 1)])).toThrow(/entries\[1\]\.term/);
    expect(() => disk.append([entry(0, 2)])).toThrow(/entries\[0\]: index 0 is not a positive integer/);
    expect(() => disk.append([], hs(-1, 0, 0))).toThrow(/hardState\.term/);
    disk.sync();
    disk.saveSnapshot(meta(3, 2), Buffer.from('x'));
    expect(() => disk.append([entry(3, 2)])).toThrow(/at or below the snapshot index 3/);
    expect(() => disk.saveSnapshot(meta(2, 2), Buffer.from('x'))).toThrow(IllegalStateError);
    expect(() => disk.saveSnapshot(meta(3, 5), Buffer.from('x'))).toThrow(/same index has term 2/);
    expect(() => disk.saveSnapshot(meta(4, 1), Buffer.from('x'))).toThrow(/below the term 2 of the snapshot before it/);
    disk.close();
    expect(describeEntries(openMem(fs).state.entries)).toEqual(describeEntries(entries(4, 5, 2)));
    expect(() => disk.sync()).toThrow(/after close/);
  });

  it('keeps the log after a compaction snapshot, replaces it with an installed one', () => {
    const fs = new MemFs();
    const { disk } = openMem(fs);
    disk.append(entries(1, 10, 1));
    disk.saveSnapshot(meta(4, 1), Buffer.from('c'));
    expect(disk.lastIndex).toBe(10);
    disk.saveSnapshot(meta(7, 3), Buffer.from('i')); // entry 7 has term 1: a conflicting install
    expect(disk.lastIndex).toBe(7);
    disk.append(entries(8, 9, 3));
    disk.close();
    const { state } = openMem(fs);
    expect(state.snapshot?.metadata).toEqual(meta(7, 3));
    expect(describeEntries(state.entries)).toEqual(describeEntries(entries(8, 9, 3)));
  });

  it('keeps the hard state when the segment it was restated in never got its header', () => {
    const fs = new MemFs();
    const opts = { segmentBytes: 100 };
    const { disk } = openMem(fs, opts);
    disk.append(entries(1, 6, 1), hs(5, 1, 3));
    disk.sync(); // past 100 bytes: a new segment, its header only queued
    expect(disk.segments().length).toBe(2);
    fs.crash(seededRandom(1));
    const { disk: d2 } = openMem(fs, opts);
    expect(d2.segments().at(-1)?.size).toBe(0);
    d2.append(entries(7, 8, 1)); // no hard state
    d2.sync();
    d2.saveSnapshot(meta(8, 1), Buffer.from('s')); // releases the segment holding hs(5, 1, 3)
    expect(d2.segments().length).toBe(1);
    fs.crash(seededRandom(2));
    expect(openMem(fs, opts).state.hardState).toEqual(hs(5, 1, 3));
  });

  it('a crash without tear loses exactly what was not synced', () => {
    const fs = new MemFs();
    const { disk } = openMem(fs, { segmentBytes: 200 });
    disk.append(entries(1, 20, 1), hs(1, 1, 10));
    disk.sync();
    disk.append(entries(21, 25, 1), hs(1, 1, 20));
    fs.crash(seededRandom(5));
    const { state } = openMem(fs, { segmentBytes: 200 });
    expect(describeEntries(state.entries)).toEqual(describeEntries(entries(1, 20, 1)));
    expect(state.hardState).toEqual(hs(1, 1, 10));
  });

  /**
   * 300 seeds of a random workload on MemFs, each run `rounds` times through a power failure
   * (before some fsync, or before any other operation, or between calls when the workload ends
   * first), a crash of `crash`'s kind, and a recovery checked against what was synced. Segment
   * sizes by seed: `sizes[seed % 3]`. Returns the torn tails the recoveries cut.
   */
  function crashRounds(sizes: number[], seedOf: (seed: number) => number, rounds: number, crash: MemFsCrashOptions): number {
    let torn = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const opts = { segmentBytes: sizes[seed % 3] as number };
      const random = seededRandom(seedOf(seed));
      const power = new Power();
      const fs = new MemFs(power.hook);
      const driver = new Driver(openMem(fs, opts).disk, random);
      for (let round = 0; round < rounds; round++) {
        if (random() < 0.5) power.arm(randInt(random, 1, 12), 'sync');
        else power.arm(randInt(random, 1, 60));
        try {
          for (let s = 0; s < 60; s++) driver.step();
        } catch (err) {
          if (!(err instanceof SimulatedCrash)) throw err;
        }
        fs.crash(random, crash);
        power.arm();
        const { disk, state } = openMem(fs, { ...opts, onTruncate: () => torn++ });
        driver.verify(state, `seed ${seed} round ${round}`);
        driver.disk = disk;
        expectNoTemporaries(fs);
      }
    }
    return torn;
  }

  it('recovers from torn writes after many seeded random crashes: open succeeds, nothing synced is lost, nothing contradicts it', () => {
    // Segments of 1 byte rotate at every sync; 300 every few; 64 KiB hardly ever.
    const torn = crashRounds([300, 1, 65536], (seed) => seed, 3, { tear: true });
    expect(torn).toBeGreaterThan(100); // the workload does produce torn tails
  });

  it('recovers when a crash keeps any subset of the unsynced sectors (not a prefix), never resurrecting stale bytes', () => {
    expect(crashRounds([4096, 1, 65536], (seed) => seed * 31 + 7, 4, { sectors: true })).toBeGreaterThan(100);
  });

  it('recovers from a power loss at every file-system operation, also during recovery itself', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const opts = { segmentBytes: seed % 3 === 0 ? 1 : 300 };
      // Count the operations of the workload, then cut the power at each of them in turn.
      const power = new Power();
      const workload = (fs: MemFs): Driver => {
        const random = seededRandom(seed);
        const driver = new Driver(openMem(fs, opts).disk, random);
        for (let s = 0; s < 50; s++) driver.step();
        return driver;
      };
      workload(new MemFs(power.hook));
      const total = power.count;
      expect(total).toBeGreaterThan(20);
      for (let k = 1; k <= total; k++) {
        const crashRandom = seededRandom(seed * 100_000 + k);
        power.arm(k);
        const fs = new MemFs(power.hook);
        let driver: Driver | undefined;
        const random = seededRandom(seed);
        let model: Driver = new Driver(undefined as unknown as RaftDisk, random);
        let crashed = false;
        try {
          driver = new Driver(openMem(fs, opts).disk, random);
          model = driver;
          for (let s = 0; s < 50; s++) driver.step();
        } catch (err) {
          if (!(err instanceof SimulatedCrash)) throw err;
          crashed = true;
        }
        expect(crashed).toBe(true);
        fs.crash(crashRandom, { tear: true });
        // Half the time, the power fails again during recovery.
        if (crashRandom() < 0.5) {
          power.arm(randInt(crashRandom, 1, 6));
          try {
            openMem(fs, opts);
          } catch (err) {
            if (!(err instanceof SimulatedCrash)) throw err;
          }
          fs.crash(crashRandom, { tear: true });
        }
        power.arm();
        const { disk, state } = openMem(fs, opts);
        model.verify(state, `seed ${seed} crash at operation ${k} of ${total}`);
        expectNoTemporaries(fs);
        // The recovered storage takes new writes that replay.
        model.disk = disk;
        for (let s = 0; s < 10; s++) model.step();
        disk.sync();
        fs.crash(crashRandom);
        model.verify(openMem(fs, opts).state, `seed ${seed} crash at operation ${k}, after more writes`);
      }
    }
  });

  it('adopts a snapshot saved just before a crash that kept its WAL record from the disk', () => {
    const power = new Power();
    const fs = new MemFs(power.hook);
    const { disk } = openMem(fs);
    disk.append(entries(1, 5, 1));
    disk.sync();
    disk.append(entries(6, 6, 1));
    // The snapshot file is durable after writeAtomic (5 operations); the WAL append is next.
    power.arm(6);
    expect(() => disk.saveSnapshot(meta(20, 2), Buffer.from('installed'))).toThrow(SimulatedCrash);
    fs.crash(seededRandom(1));
    power.arm();
    const { disk: d2, state } = openMem(fs);
    expect(state.snapshot?.metadata).toEqual(meta(20, 2));
    expect(state.entries).toEqual([]);
    d2.append([entry(21, 2)]);
    d2.close();
    const { state: again } = openMem(fs);
    expect(again.snapshot?.metadata.index).toBe(20);
    expect(describeEntries(again.entries)).toEqual(describeEntries([entry(21, 2)]));
  });

  describe('corrupt snapshot files', () => {
    function twoSnapshots(): { fs: MemFs; newest: string; previous: string } {
      const fs = new MemFs();
      const { disk } = openMem(fs);
      disk.append(entries(1, 10, 1));
      disk.saveSnapshot(meta(4, 1), Buffer.from('four'));
      disk.saveSnapshot(meta(8, 1), Buffer.from('eight'));
      disk.close();
      return { fs, newest: `${SNAP}/${snapshotName(1, 8)}`, previous: `${SNAP}/${snapshotName(1, 4)}` };
    }

    it('a corrupt newest snapshot that the WAL refers to is an error naming it, and nothing changes', () => {
      const { fs, newest } = twoSnapshots();
      fs.corrupt(newest, 30);
      const before = fs.dump();
      const err = caught(() => openMem(fs));
      expect(err).toBeInstanceOf(CorruptFileError);
      expect((err as CorruptFileError).path).toBe(newest);
      expect((err as Error).message).toMatch(new RegExp(`^${newest} at offset \\d+: checksum mismatch`));
      expect(fs.dump()).toEqual(before);
    });

    it('a corrupt newest snapshot nothing refers to is discarded, and the previous one used', () => {
      const fs = new MemFs();
      const { disk } = openMem(fs);
      disk.append(entries(1, 10, 1));
      disk.saveSnapshot(meta(4, 1), Buffer.from('four'));
      disk.close();
      // As if a snapshot was written but the crash came before its WAL record reached the disk.
      const orphan = `${SNAP}/${snapshotName(1, 9)}`;
      fs.writeAtomic(orphan, Buffer.from('half a snapshot'));
      const discarded: string[] = [];
      const { state } = openMem(fs, { onDiscard: (path, problem) => discarded.push(`${path}: ${problem}`) });
      expect(state.snapshot?.metadata.index).toBe(4);
      expect(describeEntries(state.entries)).toEqual(describeEntries(entries(5, 10, 1)));
      expect(discarded).toEqual([expect.stringMatching(new RegExp(`^${orphan}: ${orphan} at offset 0: `)) as unknown]);
      expect(fs.exists(orphan)).toBe(false);
    });

    it('a missing snapshot the WAL refers to is an error naming the WAL record', () => {
      const { fs, newest, previous } = twoSnapshots();
      fs.remove(newest);
      fs.remove(previous);
      const err = caught(() => openMem(fs)) as CorruptFileError;
      expect(err).toBeInstanceOf(CorruptFileError);
      expect(err.path.startsWith(`${WAL}/`)).toBe(true);
      expect(err.offset).toBeGreaterThan(0);
      expect(err.message).toContain(`needs ${newest}, which is missing or unreadable`);
    });
  });

  it('a WAL damaged in the middle is an error naming the segment and offset, and nothing changes', () => {
    const fs = new MemFs();
    const { disk } = openMem(fs, { segmentBytes: 200 });
    for (let i = 1; i <= 30; i++) {
      disk.append([entry(i, 1)]);
      disk.sync();
    }
    disk.append(entries(31, 33, 1));
    disk.sync();
    expect(disk.segments().at(-1)?.size).toBeGreaterThan(60); // several records
    disk.close();
    const segs = walFiles(fs).map((n) => `${WAL}/${n}`);
    const last = segs.at(-1) as string;
    for (const [path, offset] of [
      [segs[1] as string, 20], // an earlier segment
      [last, 2], // the last segment, valid records after it
    ] as const) {
      const copy = new MemFs();
      copy.mkdirp(WAL);
      copy.mkdirp(SNAP);
      for (const [p, data] of fs.dump()) copy.writeAtomic(p, data);
      copy.corrupt(path, offset);
      const before = copy.dump();
      const err = caught(() => openMem(copy));
      expect(err).toBeInstanceOf(CorruptFileError);
      expect((err as CorruptFileError).path).toBe(path);
      expect((err as Error).message).toMatch(new RegExp(`^${path} at offset \\d+: `));
      expect(copy.dump()).toEqual(before);
    }
  });

  it('refuses every call after a failed fsync', () => {
    let fail = false;
    const fs = new MemFs((op) => {
      if (fail && op === 'sync') throw new Error('EIO: i/o error');
    });
    const { disk } = openMem(fs);
    disk.append(entries(1, 3, 1));
    fail = true;
    expect(() => disk.sync()).toThrow('EIO');
    fail = false;
    expect(() => disk.append([entry(4, 1)])).toThrow(/restart to recover from disk/);
    expect(() => disk.sync()).toThrow(/restart to recover from disk/);
  });
});

describe('RaftDisk on NodeFs', () => {
  const dirs: string[] = [];
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'raft-disk-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** Counts appends and fsyncs of WAL files. */
  class CountingFs extends NodeFs {
    appends = 0;
    fsyncs = 0;
    override openWrite(path: string): FileHandle {
      const h = super.openWrite(path);
      return {
        append: (d) => {
          this.appends++;
          h.append(d);
        },
        write: (d, offset) => {
          this.appends++;
          h.write(d, offset);
        },
        sync: () => {
          this.fsyncs++;
          h.sync();
        },
        size: () => h.size(),
        truncate: (n) => h.truncate(n),
        close: () => h.close(),
      };
    }
  }

  it('group-commits on real files, rotates, snapshots, recovers and leaves no temporary file', () => {
    const root = join(tmp(), 'node1', 'raft');
    const fs = new CountingFs();
    const { disk, state } = RaftDisk.open(fs, root, { segmentBytes: 4096 });
    expect(state.entries).toEqual([]);
    for (let batch = 0; batch < 10; batch++) {
      const before = { appends: fs.appends, fsyncs: fs.fsyncs };
      const list = entries(batch * 16 + 1, batch * 16 + 16, 1);
      for (const e of list) disk.append([e]);
      disk.append([], hs(1, 1, batch * 16));
      disk.sync();
      expect([fs.appends - before.appends, fs.fsyncs - before.fsyncs]).toEqual([1, 1]);
    }
    disk.saveSnapshot(meta(100, 1), Buffer.from('state at 100'));
    disk.close();
    expect(readdirSync(join(root, 'snap'))).toEqual([snapshotName(1, 100)]);
    const { disk: d2, state: again } = RaftDisk.open(new NodeFs(), root, { segmentBytes: 4096 });
    expect(again.hardState).toEqual(hs(1, 1, 144));
    expect(again.snapshot?.metadata.index).toBe(100);
    expect(Buffer.from(again.snapshot?.data ?? []).toString()).toBe('state at 100');
    expect(describeEntries(again.entries)).toEqual(describeEntries(entries(101, 160, 1)));
    d2.close();
  });

  it('cuts a torn tail of a real file (zeroed, the file keeps its preallocated size)', () => {
    const root = tmp();
    const fs = new NodeFs();
    const opts = { segmentBytes: 256 * 1024 };
    const { disk } = RaftDisk.open(fs, root, opts);
    disk.append(entries(1, 3, 1));
    disk.sync();
    const size = disk.segments()[0]?.size as number;
    disk.close();
    const seg = join(root, 'wal', readdirSync(join(root, 'wal')).filter((n) => n.endsWith('.wal'))[0] as string);
    expect(fs.read(seg).length).toBe(256 * 1024);
    const h = fs.openWrite(seg);
    h.write(Buffer.from([200, 0, 0, 0, 1, 2, 3]), size);
    h.sync();
    h.close();
    const cuts: number[][] = [];
    const { state, disk: d2 } = RaftDisk.open(fs, root, { ...opts, onTruncate: (_p, offset, bytes) => cuts.push([offset, bytes]) });
    expect(cuts).toEqual([[size, 7]]);
    expect(fs.read(seg).length).toBe(256 * 1024);
    expect(Buffer.from(fs.read(seg).subarray(size, size + 7)).equals(Buffer.alloc(7))).toBe(true);
    expect(state.entries.length).toBe(3);
    d2.close();
  });
});

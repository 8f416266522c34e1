// RaftDisk: the durable storage the Raft driver uses, over a RaftFs. `<dir>/wal/` holds the
// write-ahead log (wal.ts), `<dir>/snap/` the snapshot files (snapshots.ts). Synchronous: the
// driver calls it from its single loop. See docs/raft-storage.md.
//
// The promise of `open` after a crash: the state holds everything that was synced and nothing that
// contradicts it (it may also hold records queued after the last sync that happened to reach the
// disk, always a prefix of what was queued).
import { posix } from 'node:path';
import { CorruptFileError, IllegalStateError, InvalidArgumentError } from '../../../common/errors.js';
import type { Entry, HardState, SnapshotMetadata } from '../../../proto/gen/tswarm/raft.js';
import type { RaftFs } from './fs.js';
import { SnapshotStore } from './snapshots.js';
import { entryProblem, LogState, recoverWal, Wal, type WalSegment } from './wal.js';

export interface PersistedState {
  /** All zeros when nothing was ever stored. */
  hardState: HardState;
  snapshot?: { metadata: SnapshotMetadata; data: Uint8Array };
  /** Consecutive, starting right after the snapshot index (or at 1). */
  entries: Entry[];
}

export interface RaftDiskOptions {
  /** WAL segments are preallocated (zeros) at this size, and the next started when one is full (default 64 MiB). */
  segmentBytes?: number;
  /** Told what recovery cut off a torn WAL tail (zeroed): file, offset of the cut, bytes zeroed. Log it. */
  onTruncate?: (path: string, offset: number, bytes: number) => void;
  /** Told of a corrupt snapshot file that nothing referenced, removed on open. Log it. */
  onDiscard?: (path: string, problem: string) => void;
}

export class RaftDisk {
  /** The same rules as the WAL replay, kept up to date to refuse appends that would not replay. */
  private readonly log: LogState;
  private closed = false;

  private constructor(
    private readonly wal: Wal,
    private readonly snaps: SnapshotStore,
    log: LogState,
  ) {
    this.log = log;
  }

  /**
   * Opens (or initializes) the storage in `dir` and returns what it holds. Everything that can
   * refuse the state (a CorruptFileError naming the file and offset) is checked before anything is
   * changed on disk; only then is a torn WAL tail cut off, leftover temporary files removed and
   * an adopted snapshot recorded in the WAL.
   */
  static open(fs: RaftFs, dir: string, opts: RaftDiskOptions = {}): { disk: RaftDisk; state: PersistedState } {
    const walDir = posix.join(dir, 'wal');
    const snapDir = posix.join(dir, 'snap');
    fs.mkdirp(walDir);
    fs.mkdirp(snapDir);

    // Read-only phase.
    const rec = recoverWal(fs, walDir);
    const snaps = new SnapshotStore(fs, snapDir);
    const { loaded, ignored } = snaps.load((index) => rec.snapshotRecords.has(index));
    if (rec.segments.length === 0 && (loaded !== undefined || ignored.length > 0)) {
      throw new CorruptFileError(walDir, `the WAL has no segments, but there are snapshot files in ${snapDir}: the WAL is missing`);
    }
    const walSnap = rec.snapshot;
    if (walSnap !== undefined && (loaded === undefined || loaded.metadata.index < walSnap.metadata.index)) {
      const want = snaps.pathFor(walSnap.metadata.term, walSnap.metadata.index);
      throw new CorruptFileError(walSnap.pos.path, `the snapshot record for index ${walSnap.metadata.index} needs ${want}, which is missing or unreadable`, walSnap.pos.offset);
    }
    // A snapshot file newer than the WAL's last snapshot record: saved, but the crash came before
    // its record was synced. It holds committed state, so it is adopted (with the record's rules).
    let adopt: SnapshotMetadata | undefined;
    if (loaded !== undefined) {
      const problem = rec.log.snapshot(loaded.metadata.index, loaded.metadata.term);
      if (problem !== undefined) throw new CorruptFileError(loaded.file.path, `does not agree with the WAL: ${problem}`, 0);
      if (walSnap === undefined || loaded.metadata.index > walSnap.metadata.index) adopt = loaded.metadata;
    }

    // Changing phase.
    const wal = Wal.open(fs, rec, opts);
    try {
      snaps.removeTemporaries();
      for (const { file, problem } of ignored) {
        fs.remove(file.path);
        opts.onDiscard?.(file.path, problem);
      }
      if (adopt !== undefined) {
        // So that the WAL names the snapshot it now depends on before anything is appended after it.
        wal.appendSnapshot(adopt);
        wal.sync();
      }
    } catch (err) {
      try {
        wal.close();
      } catch {
        // The first error is the one to report.
      }
      throw err;
    }
    const entries = rec.log.takeEntries();
    const state: PersistedState = { hardState: rec.hardState, entries };
    if (loaded !== undefined) state.snapshot = { metadata: loaded.metadata, data: loaded.data };
    return { disk: new RaftDisk(wal, snaps, rec.log), state };
  }

  /**
   * Queues entries and/or a hard state; nothing is durable before `sync`. The entries must be
   * consecutive, with non-decreasing terms; the first may be at or below the last stored index
   * (a new leader overwrote a suffix: it replaces everything from there) but not above it + 1,
   * and above the snapshot index. A refused call (InvalidArgumentError) queues nothing.
   */
  append(entries: readonly Entry[], hardState?: HardState): void {
    this.check();
    const first = entries[0];
    if (first !== undefined) {
      for (let k = 0; k < entries.length; k++) {
        const e = entries[k] as Entry;
        const problem = entryProblem(e);
        if (problem !== undefined) throw new InvalidArgumentError(`entries[${k}]`, problem);
        if (k > 0) {
          const prev = entries[k - 1] as Entry;
          if (e.index !== prev.index + 1) throw new InvalidArgumentError(`entries[${k}].index`, `${e.index} does not follow ${prev.index}`);
          if (e.term < prev.term) throw new InvalidArgumentError(`entries[${k}].term`, `${e.term} is below the term ${prev.term} of the entry before it`);
        }
      }
      const problem = this.log.checkEntry(first.index, first.term);
      if (problem !== undefined) throw new InvalidArgumentError('entries[0]', problem);
    }
    if (hardState !== undefined) {
      for (const field of ['term', 'vote', 'commit'] as const) {
        const v = hardState[field];
        if (!Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`hardState.${field}`, `${v} is not a non-negative integer`);
      }
    }
    for (const e of entries) {
      this.log.entry(e.index, e.term);
      this.wal.appendEntry(e);
    }
    if (hardState !== undefined) this.wal.appendHardState(hardState);
  }

  /** One write and one fsync for everything queued since the last sync (nothing if nothing is queued). */
  sync(): void {
    this.check();
    this.wal.sync();
  }

  /** sync() with the fsync off the event loop; `done` runs once everything queued is durable. */
  syncAsync(done: (err: Error | null) => void): void {
    this.check();
    this.wal.syncAsync(done);
  }

  /**
   * Saves a snapshot: the file, durably; then its WAL record, synced together with anything still
   * queued; then removes the WAL segments whose entries are all at or below `metadata.index`
   * (below it for an installed snapshot; never the current segment) and the snapshot files
   * beyond the newest two. If the log holds the
   * entry at `metadata.index` with `metadata.term`, the entries after it stay (a compaction);
   * otherwise the snapshot replaces the whole log (an installed snapshot), on disk as in replay.
   * An index below the current snapshot's, the same index with another term, or a term below the
   * current snapshot's, is refused (IllegalStateError).
   */
  saveSnapshot(metadata: SnapshotMetadata, data: Uint8Array): void {
    this.checkSnapshot(metadata);
    this.snaps.save(metadata, data);
    this.commitSnapshot(metadata);
  }

  /**
   * The first half of saveSnapshot, off the event loop: writes the snapshot file from `pieces`
   * (`size` bytes) durably and calls back; nothing else changes until commitSnapshot. The file
   * alone counts for nothing (no WAL record names it), so a crash or an abort before the commit
   * loses only the work.
   */
  writeSnapshot(metadata: SnapshotMetadata, pieces: readonly Uint8Array[], size: number, done: (err: Error | null) => void): { abort(): void } {
    this.checkSnapshot(metadata);
    return this.snaps.saveStreamed(metadata, pieces, size, (err) => done(err));
  }

  /**
   * The second half: the WAL record of the snapshot written by writeSnapshot (synced with anything
   * queued), the release of the WAL segments it covers, the pruning of old snapshot files. Refused
   * as saveSnapshot refuses (a newer snapshot was installed meanwhile, say): then the caller drops
   * the file with discardSnapshot.
   */
  commitSnapshot(metadata: SnapshotMetadata): void {
    this.checkSnapshot(metadata);
    const { index, term } = metadata;
    // A compaction when the log holds the snapshot's entry with its term; else an installed
    // snapshot, which replays as "drop the whole log" only if the replay can still see the entry
    // it conflicts with: so an install releases the segments below its index, not at it.
    const compaction = this.log.termOf(index) === term;
    this.wal.appendSnapshot(metadata);
    this.wal.sync();
    this.log.snapshot(index, term);
    this.wal.release(compaction ? index : index - 1);
    this.snaps.prune(2);
  }

  /** Removes a snapshot file that writeSnapshot made and that will not be committed. */
  discardSnapshot(metadata: SnapshotMetadata): void {
    if (this.log.snapIndex === metadata.index) return; // it is the committed one
    this.snaps.remove(metadata);
  }

  /** saveSnapshot's refusals, before anything is written. */
  private checkSnapshot(metadata: SnapshotMetadata): void {
    this.check();
    const { index, term } = metadata;
    if (!Number.isSafeInteger(index) || index < 1) throw new InvalidArgumentError('metadata.index', `${index} is not a positive integer`);
    if (!Number.isSafeInteger(term) || term < 0) throw new InvalidArgumentError('metadata.term', `${term} is not a non-negative integer`);
    const problem = this.log.checkSnapshot(index, term);
    if (problem !== undefined) throw new IllegalStateError(`snapshot refused: ${problem}`);
  }

  /** The WAL segments, oldest first (for tests and diagnostics). */
  segments(): WalSegment[] {
    return this.wal.listSegments();
  }

  /** Last entry index stored or queued (the snapshot index when the log after it is empty). */
  get lastIndex(): number {
    return this.log.lastIndex;
  }

  /** Syncs anything still queued, then closes. Every later call throws. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wal.close();
  }

  /** Refuses calls after close, and after a failed write or fsync (before anything is changed). */
  private check(): void {
    if (this.closed) throw new IllegalStateError(`raft storage ${this.wal.dir}: used after close`);
    this.wal.check('use');
  }
}

// The small, synchronous file-system interface under Raft's durable storage, with two
// implementations: NodeFs (real files, real fsync) and MemFs (in memory, for tests, able to
// simulate a power loss). Synchronous on purpose: the Raft driver calls storage from its single
// loop, and a simulation that runs many nodes in one process stays deterministic.
//
// Durability contract (what the storage code relies on, and what MemFs models):
// - Bytes written to a file (appended, or overwritten inside it) are durable once
//   `FileHandle.sync()` returns. Before that a crash may keep any part of them: a prefix, or
//   (on a real disk, for writes inside the file) any subset of its 512-byte sectors.
// - A file's creation, removal or rename is durable once `syncDir()` of its directory returns.
//   Until then a crash may undo it (a synced file whose creation was not synced can vanish).
// - `writeAtomic` is all-or-nothing and durable when it returns.
import {
  close as closeCb,
  closeSync,
  constants as fsConstants,
  existsSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsync as fsyncCb,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  open as openCb,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlink as unlinkCb,
  unlinkSync,
  write as writeCb,
  writeSync,
  writev as writevCb,
  rename as renameCb,
} from 'node:fs';
import { dirname, posix, resolve } from 'node:path';
import { IllegalStateError, TswarmError } from '../../../common/errors.js';

/**
 * An open file; `size` is tracked without a syscall. From `openAppend` every write goes to the end
 * (`write` refuses another offset); from `openWrite` `write` goes where it is told.
 */
export interface FileHandle {
  /** Appends all of `data` (loops over partial writes). Not durable before `sync`. */
  append(data: Uint8Array): void;
  /**
   * Writes all of `data` at `offset` (pwrite), over what is there; past the end the file grows
   * (a gap reads as zeros). Not durable before `sync`.
   */
  write(data: Uint8Array, offset: number): void;
  /** Makes every byte written so far (and any truncation) durable. */
  sync(): void;
  /**
   * Like sync, later: `done` runs once the bytes written so far are durable (or with the error).
   * `bytes`, what was written since the last sync, lets the file system choose how (NodeFs).
   * Optional: the in-memory file system has none, and callers fall back to sync.
   */
  syncAsync?(done: (err: Error | null) => void, bytes?: number): void;
  /** The file's current length in bytes, including unsynced appends. */
  size(): number;
  /** Cuts the file to `length` bytes; not durable before `sync`. Later appends go to the new end. */
  truncate(length: number): void;
  close(): void;
}

export interface RaftFs {
  /** Creates the directory and its missing parents; the new entries are durable when it returns. */
  mkdirp(dir: string): void;
  /** The names in the directory, sorted (code-unit order). */
  list(dir: string): string[];
  exists(path: string): boolean;
  /** The whole file. */
  read(path: string): Uint8Array;
  /** Opens for appending, creating the file if it is missing (its creation needs a syncDir). */
  openAppend(path: string): FileHandle;
  /** Opens for positional writes, creating the file if it is missing (its creation needs a syncDir). */
  openWrite(path: string): FileHandle;
  /**
   * Creates `path` (replacing any file of that name) holding `bytes` zeros, really written (not
   * fallocate'd: overwriting unwritten extents costs a metadata update per fsync, as appending
   * does) and fdatasynced when it returns. Its creation is not durable before `syncDir`.
   */
  writeZeros(path: string, bytes: number): void;
  /**
   * Like writeZeros, off the calling thread; `done` runs when the file is complete and synced (or
   * with the error, the file removed). Optional: the in-memory file system has none.
   */
  writeZerosAsync?(path: string, bytes: number, done: (err: Error | null) => void): void;
  /** Renames a file (atomically replacing `to`). Not durable before `syncDir`. */
  rename(from: string, to: string): void;
  /**
   * Replaces `path` all-or-nothing and durably: writes `path.tmp`, fsyncs it, renames it over
   * `path`, fsyncs the directory. Several chunks are written in order, without concatenating them.
   * A crash can leave `path.tmp` behind; the owner of the directory removes it on start.
   */
  writeAtomic(path: string, data: Uint8Array | readonly Uint8Array[]): void;
  /**
   * writeAtomic in pieces, off the calling thread: the writes, the fsync, the rename and the
   * directory's fsync run in the thread pool, so that a file of a hundred megabytes costs the event
   * loop nothing. Optional: the in-memory file system has none (callers use writeAtomic).
   */
  openAtomicStream?(path: string): AtomicStream;
  /** Removes a file; a missing file is not an error. Not durable before `syncDir`. */
  remove(path: string): void;
  /**
   * remove() in the thread pool, for files whose removal can take a while (a snapshot of tens of
   * megabytes: freeing its blocks). `done` gets the error, if any. Optional.
   */
  removeAsync?(path: string, done: (err: Error | null) => void): void;
  /** Makes the creations, removals and renames in the directory durable. */
  syncDir(dir: string): void;
}

/** A file being written as writeAtomic writes one, in pieces; nothing is at `path` before commit. */
export interface AtomicStream {
  /** Appends `chunks` in order; `done` once written (not yet durable). One call at a time. */
  write(chunks: readonly Uint8Array[], done: (err: Error | null) => void): void;
  /** fsync, rename over the path, fsync of the directory; `done` once it is all durable. */
  commit(done: (err: Error | null) => void): void;
  /** Closes and removes what was written (after a failure, or when the file is no longer wanted). */
  abort(): void;
}

/** A file-system call failed; names the operation and the path, keeps the system error as `cause`. */
export class StorageIoError extends TswarmError {
  /** The system error code (ENOENT, ENOSPC, EIO, ...), when there is one. */
  readonly code: string | undefined;
  constructor(
    readonly op: string,
    readonly path: string,
    cause: unknown,
  ) {
    const code = errorCode(cause);
    super(`${op} ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.code = code;
  }
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/** Runs a node:fs call, turning its error into a StorageIoError naming `op` and `path`. */
function io<T>(op: string, path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StorageIoError) throw err;
    throw new StorageIoError(op, path, err);
  }
}

/** Writes all of `data`: at the current position (O_APPEND: the end) if `position` is null. */
function writeAll(fd: number, data: Uint8Array, position: number | null = null): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position === null ? null : position + done);
}

/** The chunk zero-filled files are written in. */
const ZERO_CHUNK_BYTES = 1 << 20;
/** NodeFs.syncAsync syncs writes up to this size on the event loop (see there). */
const SMALL_SYNC_BYTES = 4096;
/**
 * Whether a small sync may run on the event loop (NodeFileHandle.syncAsync). Not while this
 * process writes a bulk file (a snapshot, a zero-filled segment), and not for 10 s after one made
 * there took over 2 ms: the disk is busy (another manager on the same disk writing its snapshot
 * does it too), and a sync then waits for the disk's queue, on the loop. The steady benchmark saw
 * 130 ms ones there, right after snapshots.
 */
const inlineSync = { bulkWrites: 0, poolUntil: 0 };
/** An inline sync slower than this sends the syncs to the pool for the next POOL_AFTER_SLOW_MS. */
const SLOW_INLINE_SYNC_MS = 2;
const POOL_AFTER_SLOW_MS = 10_000;

/** Whether small syncs run on the event loop now (see inlineSync). */
export function smallSyncsInline(): boolean {
  return inlineSync.bulkWrites === 0 && performance.now() >= inlineSync.poolUntil;
}

/** Bulk writes of this process under way (snapshot files, zero-filled segments). */
export function bulkWritesUnderWay(): number {
  return inlineSync.bulkWrites;
}
let zeroChunk: Buffer | undefined;
function zeros(): Buffer {
  zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES);
  return zeroChunk;
}

// ---------------------------------------------------------------------------------------------
// NodeFs

class NodeFileHandle implements FileHandle {
  private fd: number | undefined;
  private length: number;

  constructor(
    private readonly path: string,
    fd: number,
    /** Opened with O_APPEND: every write lands at the end. */
    private readonly appendOnly: boolean,
  ) {
    this.fd = fd;
    this.length = io('fstat', path, () => fstatSync(fd).size);
  }

  private open(op: string): number {
    if (this.fd === undefined) throw new IllegalStateError(`${op} ${this.path}: the file is closed`);
    return this.fd;
  }

  append(data: Uint8Array): void {
    const fd = this.open('append');
    // O_APPEND: each write lands at the current end, also after a truncate. If a write fails
    // part-way, the length is unknown; the caller must stop using the handle (the WAL does).
    io('write', this.path, () => writeAll(fd, data, this.appendOnly ? null : this.length));
    this.length += data.length;
  }

  write(data: Uint8Array, offset: number): void {
    const fd = this.open('write');
    if (this.appendOnly && offset !== this.length) throw new IllegalStateError(`write ${this.path}: at offset ${offset}, but the file is open for appending (length ${this.length})`);
    io('write', this.path, () => writeAll(fd, data, this.appendOnly ? null : offset));
    this.length = Math.max(this.length, offset + data.length);
  }

  sync(): void {
    const fd = this.open('sync');
    // fdatasync flushes the data and the metadata needed to read it back (the file size), but
    // not timestamps: all an append-only log needs, and cheaper than fsync on most file systems.
    io('fdatasync', this.path, () => fdatasyncSync(fd));
  }

  /**
   * A small write (up to SMALL_SYNC_BYTES: a lone entry, the light load where latency is all that
   * counts) is synced on the event loop on its next turn, after what was queued before it (a
   * leader's appends are on the wire by then); a larger one on the thread pool, so the loop
   * goes on taking acknowledgements and proposals meanwhile. The thread pool's hop and wake-up
   * cost a small sync as much as the sync itself here, and most of its tail: a 1.1 KiB
   * fdatasync in Node, p50/p99 0.11/0.17 ms inline against 0.14/0.67 ms through the pool (three
   * such loops at once: 0.17/0.65 against 0.21/1.37 ms). Unless the disk is busy: then all go to
   * the pool (inlineSync).
   */
  syncAsync(done: (err: Error | null) => void, bytes?: number): void {
    const fd = this.open('sync');
    if (bytes !== undefined && bytes <= SMALL_SYNC_BYTES && smallSyncsInline()) {
      setImmediate(() => {
        const started = performance.now();
        try {
          io('fdatasync', this.path, () => fdatasyncSync(fd));
        } catch (err) {
          return done(err as Error);
        }
        const ended = performance.now();
        if (ended - started > SLOW_INLINE_SYNC_MS) inlineSync.poolUntil = ended + POOL_AFTER_SLOW_MS;
        done(null);
      });
      return;
    }
    fdatasync(fd, (err) => done(err ? new StorageIoError('fdatasync', this.path, err) : null));
  }

  size(): number {
    this.open('size');
    return this.length;
  }

  truncate(length: number): void {
    const fd = this.open('truncate');
    io('truncate', this.path, () => ftruncateSync(fd, length));
    this.length = length;
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    io('close', this.path, () => closeSync(fd));
  }
}

/** Real files through node:fs synchronous calls. Every error is a StorageIoError with the path. */
export class NodeFs implements RaftFs {
  mkdirp(dir: string): void {
    const abs = resolve(dir);
    const first = io('mkdir', abs, () => mkdirSync(abs, { recursive: true }));
    if (first === undefined) return;
    // Each created directory's entry lives in its parent: fsync those parents, deepest first.
    const top = dirname(first);
    for (let d = abs; d !== top && d !== dirname(d); d = dirname(d)) this.syncDir(dirname(d));
  }

  list(dir: string): string[] {
    return io('readdir', dir, () => readdirSync(dir)).sort();
  }

  exists(path: string): boolean {
    return existsSync(path);
  }

  read(path: string): Uint8Array {
    return io('read', path, () => readFileSync(path));
  }

  openAppend(path: string): FileHandle {
    const fd = io('open', path, () => openSync(path, 'a', 0o600));
    try {
      return new NodeFileHandle(path, fd, true);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  openWrite(path: string): FileHandle {
    const fd = io('open', path, () => openSync(path, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o600));
    try {
      return new NodeFileHandle(path, fd, false);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  writeZeros(path: string, bytes: number): void {
    const fd = io('open', path, () => openSync(path, 'w', 0o600));
    try {
      for (let at = 0; at < bytes; at += ZERO_CHUNK_BYTES) {
        const n = Math.min(ZERO_CHUNK_BYTES, bytes - at);
        io('write', path, () => writeAll(fd, zeros().subarray(0, n), at));
      }
      io('fdatasync', path, () => fdatasyncSync(fd));
    } catch (err) {
      closeSync(fd);
      this.remove(path);
      throw err;
    }
    io('close', path, () => closeSync(fd));
  }

  writeZerosAsync(path: string, bytes: number, whenDone: (err: Error | null) => void): void {
    // One chunk at a time, in the thread pool: the event loop (and the WAL's own writes and
    // fsyncs) go on meanwhile.
    inlineSync.bulkWrites++;
    const done = (err: Error | null): void => {
      inlineSync.bulkWrites--;
      whenDone(err);
    };
    openCb(path, 'w', 0o600, (err, fd) => {
      if (err) return done(new StorageIoError('open', path, err));
      const fail = (op: string, cause: unknown): void => {
        closeCb(fd, () => unlinkCb(path, () => done(new StorageIoError(op, path, cause))));
      };
      const next = (at: number): void => {
        if (at >= bytes) {
          fdatasync(fd, (syncErr) => {
            if (syncErr) return fail('fdatasync', syncErr);
            closeCb(fd, (closeErr) => done(closeErr ? new StorageIoError('close', path, closeErr) : null));
          });
          return;
        }
        const n = Math.min(ZERO_CHUNK_BYTES, bytes - at);
        writeCb(fd, zeros(), 0, n, at, (writeErr, written) => {
          if (writeErr) return fail('write', writeErr);
          next(at + written);
        });
      };
      next(0);
    });
  }

  rename(from: string, to: string): void {
    io('rename', from, () => renameSync(from, to));
  }

  writeAtomic(path: string, data: Uint8Array | readonly Uint8Array[]): void {
    const tmp = `${path}.tmp`;
    const chunks = data instanceof Uint8Array ? [data] : data;
    const fd = io('open', tmp, () => openSync(tmp, 'w', 0o600));
    try {
      for (const chunk of chunks) io('write', tmp, () => writeAll(fd, chunk));
      io('fsync', tmp, () => fsyncSync(fd));
    } catch (err) {
      closeSync(fd);
      this.remove(tmp);
      throw err;
    }
    io('close', tmp, () => closeSync(fd));
    io('rename', tmp, () => renameSync(tmp, path));
    this.syncDir(dirname(path));
  }

  openAtomicStream(path: string): AtomicStream {
    return new NodeAtomicStream(path, (dir, done) => this.syncDirAsync(dir, done));
  }

  /** syncDir in the thread pool. */
  private syncDirAsync(dir: string, done: (err: Error | null) => void): void {
    openCb(dir, 'r', (err, fd) => {
      if (err) return done(new StorageIoError('open', dir, err));
      fsyncCb(fd, (syncErr) => closeCb(fd, () => done(syncErr ? new StorageIoError('fsync', dir, syncErr) : null)));
    });
  }

  remove(path: string): void {
    try {
      unlinkSync(path);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw new StorageIoError('unlink', path, err);
    }
  }

  removeAsync(path: string, done: (err: Error | null) => void): void {
    unlinkCb(path, (err) => done(err && errorCode(err) !== 'ENOENT' ? new StorageIoError('unlink', path, err) : null));
  }

  syncDir(dir: string): void {
    // A directory is fsynced through a read-only descriptor (Linux allows fsync on it).
    const fd = io('open', dir, () => openSync(dir, 'r'));
    try {
      io('fsync', dir, () => fsyncSync(fd));
    } finally {
      closeSync(fd);
    }
  }
}

/** writev takes at most IOV_MAX (1024 on Linux) buffers a call. */
const IOV_MAX = 1024;

/** NodeFs's AtomicStream: `<path>.tmp`, written with writev in the thread pool, then renamed. */
class NodeAtomicStream implements AtomicStream {
  private readonly tmp: string;
  private fd: number | undefined;
  private position = 0;
  /** Counted in inlineSync.bulkWrites until committed or aborted. */
  private bulk = true;

  constructor(
    private readonly path: string,
    private readonly syncDir: (dir: string, done: (err: Error | null) => void) => void,
  ) {
    this.tmp = `${path}.tmp`;
    // Opening is one quick syscall; the writes are what takes time.
    this.fd = io('open', this.tmp, () => openSync(this.tmp, 'w', 0o600));
    inlineSync.bulkWrites++;
  }

  private bulkDone(): void {
    if (this.bulk) inlineSync.bulkWrites--;
    this.bulk = false;
  }

  write(chunks: readonly Uint8Array[], done: (err: Error | null) => void): void {
    const fd = this.fd;
    if (fd === undefined) return done(new IllegalStateError(`write ${this.tmp}: the stream is closed`));
    const next = (from: number, offset: number): void => {
      if (from >= chunks.length) return done(null);
      // A partial writev leaves `offset` bytes of chunks[from] written: resume inside it.
      const batch = chunks.slice(from, from + IOV_MAX).map((c, i) => (i === 0 && offset > 0 ? c.subarray(offset) : c));
      writevCb(fd, batch as NodeJS.ArrayBufferView[], this.position, (err, written) => {
        if (err) return done(new StorageIoError('write', this.tmp, err));
        this.position += written;
        let i = from;
        let left = written + offset;
        while (i < chunks.length && left >= chunks[i]!.length) left -= chunks[i++]!.length;
        next(i, left);
      });
    };
    next(0, 0);
  }

  commit(done: (err: Error | null) => void): void {
    const fd = this.fd;
    if (fd === undefined) return done(new IllegalStateError(`commit ${this.tmp}: the stream is closed`));
    fsyncCb(fd, (syncErr) => {
      if (syncErr) {
        this.abort();
        return done(new StorageIoError('fsync', this.tmp, syncErr));
      }
      this.fd = undefined;
      this.bulkDone();
      closeCb(fd, (closeErr) => {
        if (closeErr) return done(new StorageIoError('close', this.tmp, closeErr));
        renameCb(this.tmp, this.path, (renameErr) => {
          if (renameErr) return done(new StorageIoError('rename', this.tmp, renameErr));
          this.syncDir(dirname(this.path), done);
        });
      });
    });
  }

  abort(): void {
    const fd = this.fd;
    this.fd = undefined;
    this.bulkDone();
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(this.tmp);
    } catch {
      // gone already
    }
  }
}

// ---------------------------------------------------------------------------------------------
// MemFs

/** The MemFs operations a hook sees, in the order they happen. */
export type MemFsOp = 'create' | 'append' | 'write' | 'sync' | 'truncate' | 'rename' | 'remove' | 'syncDir';

/** Counters for tests (group commit: writes vs fsyncs). */
export interface MemFsStats {
  /** FileHandle.sync calls, plus the fsyncs inside writeAtomic and writeZeros. */
  fsyncs: number;
  /** syncDir calls, also those inside writeAtomic. */
  dirSyncs: number;
  /** FileHandle.append calls. */
  appends: number;
  /** FileHandle.write calls (positional). */
  writes: number;
  writeAtomics: number;
  /** writeZeros calls, and the zero bytes they wrote. */
  zeroFiles: number;
  zeroBytes: number;
}

/** A change to a file's contents since its last sync, with what it replaced, so that a crash can undo it. */
type ContentOp =
  | { kind: 'write'; offset: number; data: Uint8Array; old: Uint8Array; lenBefore: number }
  | { kind: 'truncate'; length: number; oldTail: Uint8Array; lenBefore: number };

/** An inode: current contents `buf[0, len)`; undoing `ops` (newest first) gives the durable contents. */
interface MemNode {
  buf: Uint8Array;
  len: number;
  ops: ContentOp[];
}

type DirOp =
  | { kind: 'link'; name: string; node: MemNode }
  | { kind: 'unlink'; name: string }
  | { kind: 'rename'; from: string; to: string; node: MemNode };

/** A directory: its current entries, the entries as of its last syncDir, and the operations since. */
interface MemDir {
  current: Map<string, MemNode>;
  durable: Map<string, MemNode>;
  pending: DirOp[];
}

function applyOp(entries: Map<string, MemNode>, op: DirOp): void {
  switch (op.kind) {
    case 'link':
      entries.set(op.name, op.node);
      break;
    case 'unlink':
      entries.delete(op.name);
      break;
    case 'rename':
      entries.delete(op.from);
      entries.set(op.to, op.node);
      break;
  }
}

function enoent(): Error & { code: string } {
  return Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' });
}

function newNode(len = 0): MemNode {
  return { buf: new Uint8Array(Math.max(64, len)), len, ops: [] };
}

/** The sector size of the `sectors` crash mode: the unit a disk writes atomically. */
export const MEMFS_SECTOR_BYTES = 512;

export interface MemFsCrashOptions {
  /** Unsynced writes: keep a random prefix of them, the last one possibly cut mid-way (else all lost). */
  tear?: boolean;
  /**
   * Unsynced writes: every 512-byte sector they touched independently ends up new or old (and the
   * file's length old or new), as a disk may persist an overwrite's sectors in any order. Takes
   * precedence over `tear`.
   */
  sectors?: boolean;
}

/**
 * An in-memory RaftFs that can simulate a power loss. The model, kept simple on purpose:
 * - File contents: what was synced survives. Unsynced writes (appends, overwrites inside the file,
 *   truncations) are, in a crash: lost; or with `tear` a random prefix of them survives, the last
 *   one possibly cut in the middle (a torn write, possibly cutting a record in half); or with
 *   `sectors` each 512-byte sector they touched survives or not independently (a torn write that
 *   is not a prefix: a later sector on disk, an earlier one not). A torn write never leaves
 *   garbage: what is not new is the old contents (tests add garbage by hand). Without `tear` or
 *   `sectors`, each unsynced truncation survives or not, at random.
 * - Directory entries: each directory keeps the operations (create, remove, rename) since its last
 *   syncDir; a crash keeps a random prefix of them (metadata is journaled in order, as on ext4 and
 *   xfs; a rename is atomic). Directories themselves are durable at once.
 * - Handles opened before a crash refuse every call afterwards.
 * `hook`, if given, runs before each mutating operation; a test throws from it to stop the code
 * under test at that point (then calls `crash`).
 */
export class MemFs implements RaftFs {
  readonly stats: MemFsStats = { fsyncs: 0, dirSyncs: 0, appends: 0, writes: 0, writeAtomics: 0, zeroFiles: 0, zeroBytes: 0 };
  private readonly dirs = new Map<string, MemDir>();
  /** Bumped by crash(): handles of an older generation are dead. */
  private generation = 0;

  constructor(private readonly hook?: (op: MemFsOp, path: string) => void) {}

  private dir(dir: string, op: string): MemDir {
    const d = this.dirs.get(posix.normalize(dir));
    if (d === undefined) throw new StorageIoError(op, dir, enoent());
    return d;
  }

  private locate(path: string, op: string): { dir: MemDir; name: string } {
    const p = posix.normalize(path);
    return { dir: this.dir(posix.dirname(p), op), name: posix.basename(p) };
  }

  private node(path: string, op: string): MemNode {
    const { dir, name } = this.locate(path, op);
    const node = dir.current.get(name);
    if (node === undefined) throw new StorageIoError(op, path, enoent());
    return node;
  }

  mkdirp(dir: string): void {
    for (let d = posix.normalize(dir); !this.dirs.has(d); d = posix.dirname(d)) {
      this.dirs.set(d, { current: new Map(), durable: new Map(), pending: [] });
      if (d === posix.dirname(d)) break;
    }
  }

  list(dir: string): string[] {
    const d = posix.normalize(dir);
    const names = [...this.dir(d, 'readdir').current.keys()];
    for (const sub of this.dirs.keys()) if (sub !== d && posix.dirname(sub) === d) names.push(posix.basename(sub));
    return names.sort();
  }

  exists(path: string): boolean {
    const p = posix.normalize(path);
    if (this.dirs.has(p)) return true;
    return this.dirs.get(posix.dirname(p))?.current.has(posix.basename(p)) === true;
  }

  read(path: string): Uint8Array {
    const node = this.node(path, 'read');
    return node.buf.slice(0, node.len);
  }

  openAppend(path: string): FileHandle {
    return this.handle(path, this.openNode(path), true);
  }

  openWrite(path: string): FileHandle {
    return this.handle(path, this.openNode(path), false);
  }

  private openNode(path: string): MemNode {
    const { dir, name } = this.locate(path, 'open');
    let node = dir.current.get(name);
    if (node === undefined) {
      this.hook?.('create', path);
      node = newNode();
      dir.current.set(name, node);
      dir.pending.push({ kind: 'link', name, node });
    }
    return node;
  }

  private handle(path: string, node: MemNode, appendOnly: boolean): FileHandle {
    const generation = this.generation;
    let closed = false;
    const check = (op: string): void => {
      if (closed) throw new IllegalStateError(`${op} ${path}: the file is closed`);
      if (generation !== this.generation) throw new IllegalStateError(`${op} ${path}: the handle was opened before a crash`);
    };
    return {
      append: (data) => {
        check('append');
        this.hook?.('append', path);
        this.stats.appends++;
        recordWrite(node, data, node.len);
      },
      write: (data, offset) => {
        check('write');
        if (appendOnly && offset !== node.len) throw new IllegalStateError(`write ${path}: at offset ${offset}, but the file is open for appending (length ${node.len})`);
        this.hook?.('write', path);
        this.stats.writes++;
        recordWrite(node, data, offset);
      },
      sync: () => {
        check('sync');
        this.hook?.('sync', path);
        this.stats.fsyncs++;
        node.ops = [];
      },
      size: () => {
        check('size');
        return node.len;
      },
      truncate: (length) => {
        check('truncate');
        this.hook?.('truncate', path);
        const oldTail = length < node.len ? node.buf.slice(length, node.len) : new Uint8Array(0);
        node.ops.push({ kind: 'truncate', length, oldTail, lenBefore: node.len });
        setLength(node, length);
      },
      close: () => {
        closed = true;
      },
    };
  }

  writeZeros(path: string, bytes: number): void {
    const { dir, name } = this.locate(path, 'open');
    this.hook?.('create', path);
    const node = newNode(bytes);
    dir.current.set(name, node);
    dir.pending.push({ kind: 'link', name, node });
    this.hook?.('write', path);
    this.hook?.('sync', path);
    this.stats.zeroFiles++;
    this.stats.zeroBytes += bytes;
    this.stats.fsyncs++;
  }

  rename(from: string, to: string): void {
    const src = this.locate(from, 'rename');
    const dst = this.locate(to, 'rename');
    if (src.dir !== dst.dir) throw new IllegalStateError(`rename ${from} ${to}: MemFs renames only within a directory`);
    const node = src.dir.current.get(src.name);
    if (node === undefined) throw new StorageIoError('rename', from, enoent());
    this.hook?.('rename', to);
    src.dir.current.delete(src.name);
    src.dir.current.set(dst.name, node);
    src.dir.pending.push({ kind: 'rename', from: src.name, to: dst.name, node });
  }

  writeAtomic(path: string, data: Uint8Array | readonly Uint8Array[]): void {
    const { dir, name } = this.locate(path, 'writeAtomic');
    const tmp = `${name}.tmp`;
    const tmpPath = `${path}.tmp`;
    this.stats.writeAtomics++;
    this.hook?.('create', tmpPath);
    const chunks = data instanceof Uint8Array ? [data] : data;
    const node = newNode(chunks.reduce((n, c) => n + c.length, 0));
    dir.current.set(tmp, node);
    dir.pending.push({ kind: 'link', name: tmp, node });
    this.hook?.('append', tmpPath);
    let at = 0;
    for (const chunk of chunks) {
      node.buf.set(chunk, at);
      at += chunk.length;
    }
    this.hook?.('sync', tmpPath);
    this.stats.fsyncs++;
    this.hook?.('rename', path);
    dir.current.delete(tmp);
    dir.current.set(name, node);
    dir.pending.push({ kind: 'rename', from: tmp, to: name, node });
    this.syncDir(posix.dirname(path));
  }

  remove(path: string): void {
    const { dir, name } = this.locate(path, 'unlink');
    if (!dir.current.has(name)) return;
    this.hook?.('remove', path);
    dir.current.delete(name);
    dir.pending.push({ kind: 'unlink', name });
  }

  syncDir(dir: string): void {
    const d = this.dir(dir, 'fsync');
    this.hook?.('syncDir', dir);
    this.stats.dirSyncs++;
    d.durable = new Map(d.current);
    d.pending = [];
  }

  /**
   * Simulates a power loss (see the class comment for the model). `random` is a seeded PRNG
   * returning [0, 1); the same seed and history give the same outcome.
   */
  crash(random: () => number, opts?: MemFsCrashOptions): void {
    this.generation++;
    const nodes = new Set<MemNode>();
    for (const dir of [...this.dirs.keys()].sort()) {
      const d = this.dirs.get(dir);
      if (d === undefined) continue;
      const keep = Math.floor(random() * (d.pending.length + 1));
      const entries = new Map(d.durable);
      for (const op of d.pending.slice(0, keep)) applyOp(entries, op);
      d.current = entries;
      d.durable = new Map(entries);
      d.pending = [];
      for (const node of entries.values()) nodes.add(node);
    }
    for (const node of nodes) crashNode(node, random, opts ?? {});
  }

  /** For tests: flips bit `bit` (0-7) of the byte at `offset` of the file (durable and current contents). */
  corrupt(path: string, offset: number, bit = 0): void {
    const node = this.node(path, 'corrupt');
    if (!Number.isInteger(offset) || offset < 0 || offset >= node.len) {
      throw new IllegalStateError(`corrupt ${path}: offset ${offset} is outside the file (${node.len} bytes)`);
    }
    const mask = 1 << bit;
    node.buf[offset] = (node.buf[offset] ?? 0) ^ mask;
    for (const op of node.ops) {
      const old = op.kind === 'write' ? op.old : op.oldTail;
      const base = op.kind === 'write' ? op.offset : op.length;
      if (offset >= base && offset < base + old.length) old[offset - base] = (old[offset - base] ?? 0) ^ mask;
    }
  }

  /** For tests: every file's current contents by path, to check that nothing changed. */
  dump(): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>();
    for (const [dir, d] of this.dirs) for (const [name, node] of d.current) out.set(posix.join(dir, name), node.buf.slice(0, node.len));
    return out;
  }
}

function reserve(node: MemNode, length: number): void {
  if (length <= node.buf.length) return;
  const grown = new Uint8Array(Math.max(length, node.buf.length * 2));
  grown.set(node.buf.subarray(0, node.len));
  node.buf = grown;
}

/** Sets the length; bytes that come into the file by growing it read as zeros. */
function setLength(node: MemNode, length: number): void {
  if (length > node.len) {
    reserve(node, length);
    node.buf.fill(0, node.len, length);
  }
  node.len = length;
}

/** Writes without recording (the contents after the write). */
function applyWrite(node: MemNode, data: Uint8Array, offset: number): void {
  if (offset > node.len) setLength(node, offset);
  reserve(node, offset + data.length);
  node.buf.set(data, offset);
  if (offset + data.length > node.len) node.len = offset + data.length;
}

/** Writes and records what the write replaced, so that a crash can undo it. */
function recordWrite(node: MemNode, data: Uint8Array, offset: number): void {
  const old = node.buf.slice(Math.min(offset, node.len), Math.min(offset + data.length, node.len));
  node.ops.push({ kind: 'write', offset, data: Uint8Array.from(data), old, lenBefore: node.len });
  applyWrite(node, data, offset);
}

/** Undoes one recorded op (the newest). */
function undo(node: MemNode, op: ContentOp): void {
  if (op.kind === 'write') {
    node.buf.set(op.old, op.offset);
  } else if (op.length < op.lenBefore) {
    reserve(node, op.lenBefore);
    node.buf.set(op.oldTail, op.length);
  }
  node.len = op.lenBefore;
}

function crashNode(node: MemNode, random: () => number, opts: MemFsCrashOptions): void {
  const ops = node.ops;
  node.ops = [];
  if (ops.length === 0) return;
  const current = node.buf.slice(0, node.len);
  for (let k = ops.length - 1; k >= 0; k--) undo(node, ops[k] as ContentOp);
  if (opts.sectors === true) {
    // Each sector any unsynced op touched: old or new, independently; the length: old or new.
    const durableLen = node.len;
    const length = random() < 0.5 ? current.length : durableLen;
    setLength(node, length);
    const touched = new Set<number>();
    for (const op of ops) {
      const [from, to] = op.kind === 'write' ? [op.offset, op.offset + op.data.length] : [Math.min(op.length, op.lenBefore), Math.max(op.length, op.lenBefore)];
      for (let s = Math.floor(from / MEMFS_SECTOR_BYTES); s * MEMFS_SECTOR_BYTES < to; s++) touched.add(s);
    }
    for (const s of [...touched].sort((a, b) => a - b)) {
      if (random() < 0.5) continue;
      const from = s * MEMFS_SECTOR_BYTES;
      const to = Math.min(from + MEMFS_SECTOR_BYTES, length);
      for (let i = from; i < to; i++) node.buf[i] = i < current.length ? (current[i] as number) : 0;
    }
    return;
  }
  if (opts.tear !== true) {
    for (const op of ops) if (op.kind === 'truncate' && random() < 0.5) setLength(node, op.length);
    return;
  }
  // A prefix of the ops, the next one (a write) possibly cut.
  const full = Math.floor(random() * (ops.length + 1));
  for (let k = 0; k < full; k++) {
    const op = ops[k] as ContentOp;
    if (op.kind === 'write') applyWrite(node, op.data, op.offset);
    else setLength(node, op.length);
  }
  const next = ops[full];
  if (next?.kind === 'write') {
    const kept = Math.floor(random() * (next.data.length + 1));
    if (kept > 0) applyWrite(node, next.data.subarray(0, kept), next.offset);
  }
}

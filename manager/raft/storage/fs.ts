// The small, synchronous file-system interface under Raft's durable storage, with two
// implementations: NodeFs (real files, real fsync) and MemFs (in memory, for tests, able to
// simulate a power loss). Synchronous on purpose: the Raft driver calls storage from its single
// loop, and a simulation that runs many nodes in one process stays deterministic.
//
// Durability contract (what the storage code relies on, and what MemFs models):
// - Bytes appended to a file are durable once `FileHandle.sync()` returns.
// - A file's creation, removal or rename is durable once `syncDir()` of its directory returns.
//   Until then a crash may undo it (a synced file whose creation was not synced can vanish).
// - `writeAtomic` is all-or-nothing and durable when it returns.
import {
  closeSync,
  existsSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, posix, resolve } from 'node:path';
import { IllegalStateError, TswarmError } from '../../../common/errors.js';

/** A file open for appending. Every write goes to the end; `size` is tracked without a syscall. */
export interface FileHandle {
  /** Appends all of `data` (loops over partial writes). Not durable before `sync`. */
  append(data: Uint8Array): void;
  /** Makes every byte appended so far (and any truncation) durable. */
  sync(): void;
  /**
   * Like sync, off the calling thread: `done` runs once the bytes appended so far are durable (or
   * with the error). Optional: the in-memory file system has none, and callers fall back to sync.
   */
  syncAsync?(done: (err: Error | null) => void): void;
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
  /**
   * Replaces `path` all-or-nothing and durably: writes `path.tmp`, fsyncs it, renames it over
   * `path`, fsyncs the directory. Several chunks are written in order, without concatenating them.
   * A crash can leave `path.tmp` behind; the owner of the directory removes it on start.
   */
  writeAtomic(path: string, data: Uint8Array | readonly Uint8Array[]): void;
  /** Removes a file; a missing file is not an error. Not durable before `syncDir`. */
  remove(path: string): void;
  /** Makes the creations, removals and renames in the directory durable. */
  syncDir(dir: string): void;
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

function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done);
}

// ---------------------------------------------------------------------------------------------
// NodeFs

class NodeFileHandle implements FileHandle {
  private fd: number | undefined;
  private length: number;

  constructor(
    private readonly path: string,
    fd: number,
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
    io('write', this.path, () => writeAll(fd, data));
    this.length += data.length;
  }

  sync(): void {
    const fd = this.open('sync');
    // fdatasync flushes the data and the metadata needed to read it back (the file size), but
    // not timestamps: all an append-only log needs, and cheaper than fsync on most file systems.
    io('fdatasync', this.path, () => fdatasyncSync(fd));
  }

  syncAsync(done: (err: Error | null) => void): void {
    const fd = this.open('sync');
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
      return new NodeFileHandle(path, fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
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

  remove(path: string): void {
    try {
      unlinkSync(path);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw new StorageIoError('unlink', path, err);
    }
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

// ---------------------------------------------------------------------------------------------
// MemFs

/** The MemFs operations a hook sees, in the order they happen. */
export type MemFsOp = 'create' | 'append' | 'sync' | 'truncate' | 'rename' | 'remove' | 'syncDir';

/** Counters for tests (group commit: appends vs fsyncs). */
export interface MemFsStats {
  /** FileHandle.sync calls, plus the fsync of the temporary file inside writeAtomic. */
  fsyncs: number;
  /** syncDir calls, also those inside writeAtomic. */
  dirSyncs: number;
  /** FileHandle.append calls. */
  appends: number;
  writeAtomics: number;
}

/**
 * An inode: current contents `buf[0, len)`, of which `buf[0, synced)` is durable. A truncation
 * below the synced length is not durable either: until the next sync the old durable contents are
 * kept in `beforeTruncate`, and a crash picks one of the two at random.
 */
interface MemNode {
  buf: Uint8Array;
  len: number;
  synced: number;
  beforeTruncate: Uint8Array | undefined;
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

/**
 * An in-memory RaftFs that can simulate a power loss. The model, kept simple on purpose:
 * - File contents: what was synced survives; unsynced appends are lost, or with `tear` a random
 *   prefix of them survives (a torn write, possibly cutting a record in half). Writes are not
 *   reordered within a file, and a torn tail is never garbage or zeros (tests add those by hand).
 *   An unsynced truncation below the synced length survives or not, at random.
 * - Directory entries: each directory keeps the operations (create, remove, rename) since its last
 *   syncDir; a crash keeps a random prefix of them (metadata is journaled in order, as on ext4 and
 *   xfs; a rename is atomic). Directories themselves are durable at once.
 * - Handles opened before a crash refuse every call afterwards.
 * `hook`, if given, runs before each mutating operation; a test throws from it to stop the code
 * under test at that point (then calls `crash`).
 */
export class MemFs implements RaftFs {
  readonly stats: MemFsStats = { fsyncs: 0, dirSyncs: 0, appends: 0, writeAtomics: 0 };
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
    const { dir, name } = this.locate(path, 'open');
    let node = dir.current.get(name);
    if (node === undefined) {
      this.hook?.('create', path);
      node = { buf: new Uint8Array(64), len: 0, synced: 0, beforeTruncate: undefined };
      dir.current.set(name, node);
      dir.pending.push({ kind: 'link', name, node });
    }
    return this.handle(path, node);
  }

  private handle(path: string, node: MemNode): FileHandle {
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
        reserve(node, node.len + data.length);
        node.buf.set(data, node.len);
        node.len += data.length;
      },
      sync: () => {
        check('sync');
        this.hook?.('sync', path);
        this.stats.fsyncs++;
        node.synced = node.len;
        node.beforeTruncate = undefined;
      },
      size: () => {
        check('size');
        return node.len;
      },
      truncate: (length) => {
        check('truncate');
        this.hook?.('truncate', path);
        truncateNode(node, length);
      },
      close: () => {
        closed = true;
      },
    };
  }

  writeAtomic(path: string, data: Uint8Array | readonly Uint8Array[]): void {
    const { dir, name } = this.locate(path, 'writeAtomic');
    const tmp = `${name}.tmp`;
    const tmpPath = `${path}.tmp`;
    this.stats.writeAtomics++;
    this.hook?.('create', tmpPath);
    const node: MemNode = { buf: new Uint8Array(0), len: 0, synced: 0, beforeTruncate: undefined };
    dir.current.set(tmp, node);
    dir.pending.push({ kind: 'link', name: tmp, node });
    this.hook?.('append', tmpPath);
    const chunks = data instanceof Uint8Array ? [data] : data;
    reserve(node, chunks.reduce((n, c) => n + c.length, 0));
    for (const chunk of chunks) {
      node.buf.set(chunk, node.len);
      node.len += chunk.length;
    }
    this.hook?.('sync', tmpPath);
    this.stats.fsyncs++;
    node.synced = node.len;
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
  crash(random: () => number, opts?: { tear?: boolean }): void {
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
    for (const node of nodes) {
      let contents: Uint8Array;
      if (node.beforeTruncate !== undefined && random() < 0.5) {
        contents = node.beforeTruncate;
      } else {
        const unsynced = node.len - node.synced;
        const kept = opts?.tear === true && unsynced > 0 ? Math.floor(random() * (unsynced + 1)) : 0;
        contents = node.buf.slice(0, node.synced + kept);
      }
      node.buf = contents;
      node.len = contents.length;
      node.synced = contents.length;
      node.beforeTruncate = undefined;
    }
  }

  /** For tests: flips bit `bit` (0-7) of the byte at `offset` of the file (durable and current contents). */
  corrupt(path: string, offset: number, bit = 0): void {
    const node = this.node(path, 'corrupt');
    if (!Number.isInteger(offset) || offset < 0 || offset >= node.len) {
      throw new IllegalStateError(`corrupt ${path}: offset ${offset} is outside the file (${node.len} bytes)`);
    }
    const mask = 1 << bit;
    node.buf[offset] = (node.buf[offset] ?? 0) ^ mask;
    const before = node.beforeTruncate;
    if (before !== undefined && offset < before.length) before[offset] = (before[offset] ?? 0) ^ mask;
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

function truncateNode(node: MemNode, length: number): void {
  if (length < node.synced) {
    node.beforeTruncate ??= node.buf.slice(0, node.synced);
    node.synced = length;
  }
  if (length > node.len) {
    reserve(node, length);
    node.buf.fill(0, node.len, length);
  }
  node.len = length;
}

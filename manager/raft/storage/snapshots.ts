// Snapshot files: `<term:16 hex>-<index:16 hex>.snap`, each written whole with writeAtomic.
//
// Format (integers little-endian):
//   0  magic "TSNP"            4  format version u32 (1)
//   8  metadata length M u32  12  data length D u64
//  20  SnapshotMetadata protobuf (M bytes)
//  20+M  the data (D bytes)
//  20+M+D  CRC-32 of every byte before it, u32
//
// Which file counts (see `SnapshotStore.load` and docs/raft-storage.md): the newest valid one. A
// corrupt newest file is an error unless no WAL snapshot record refers to its index: then it was
// written but the crash came before its WAL record was synced, nothing relies on it yet, and the
// previous one is the right one.
import { posix } from 'node:path';
import { CorruptFileError, IllegalStateError } from '../../../common/errors.js';
import { SnapshotMetadata } from '../../../proto/gen/tswarm/raft.js';
import { crc32 } from './crc32.js';
import type { RaftFs } from './fs.js';
import { hex16 } from './wal.js';

const MAGIC = 0x504e5354; // "TSNP" read as u32 LE
const VERSION = 1;
const HEADER_BYTES = 20;
const TRAILER_BYTES = 4;
const SNAP_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export function snapshotName(term: number, index: number): string {
  return `${hex16(term)}-${hex16(index)}.snap`;
}

export interface SnapshotFile {
  path: string;
  term: number;
  index: number;
}

export interface LoadedSnapshot {
  file: SnapshotFile;
  metadata: SnapshotMetadata;
  /** A view into the file's bytes (no copy). */
  data: Uint8Array;
}

/** A snapshot file's header (magic, version, lengths, metadata) for `dataBytes` of data. */
function snapshotHead(metadata: SnapshotMetadata, dataBytes: number): Buffer {
  const meta = SnapshotMetadata.encode(metadata).finish();
  const head = Buffer.allocUnsafe(HEADER_BYTES + meta.length);
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt32LE(VERSION, 4);
  head.writeUInt32LE(meta.length, 8);
  head.writeUInt32LE(dataBytes % 2 ** 32, 12);
  head.writeUInt32LE(Math.floor(dataBytes / 2 ** 32), 16);
  head.set(meta, HEADER_BYTES);
  return head;
}

function trailerOf(crc: number): Buffer {
  const trailer = Buffer.allocUnsafe(TRAILER_BYTES);
  trailer.writeUInt32LE(crc, 0);
  return trailer;
}

/** The chunks of a snapshot file, for writeAtomic: the data is not copied. */
export function encodeSnapshot(metadata: SnapshotMetadata, data: Uint8Array): Uint8Array[] {
  const head = snapshotHead(metadata, data.length);
  return [head, data, trailerOf(crc32(data, crc32(head)))];
}

/** How much of a streamed snapshot is checksummed on the event loop between two writes. */
const STREAM_SLICE_BYTES = 4 << 20;

/** Checks and decodes a snapshot file; every problem is a CorruptFileError naming `path` and the offset. */
export function decodeSnapshot(path: string, bytes: Uint8Array, expect?: { term: number; index: number }): { metadata: SnapshotMetadata; data: Uint8Array } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < HEADER_BYTES + TRAILER_BYTES) throw new CorruptFileError(path, `too short for a snapshot file (${buf.length} bytes)`, 0);
  if (buf.readUInt32LE(0) !== MAGIC) throw new CorruptFileError(path, 'not a snapshot file (bad magic)', 0);
  const version = buf.readUInt32LE(4);
  if (version !== VERSION) throw new CorruptFileError(path, `unknown snapshot format version ${version}`, 4);
  const metaLen = buf.readUInt32LE(8);
  const dataLen = buf.readUInt32LE(12) + buf.readUInt32LE(16) * 2 ** 32;
  const total = HEADER_BYTES + metaLen + dataLen + TRAILER_BYTES;
  if (total !== buf.length) throw new CorruptFileError(path, `the header gives ${total} bytes but the file has ${buf.length}`, 8);
  const crcAt = total - TRAILER_BYTES;
  const want = buf.readUInt32LE(crcAt);
  const got = crc32(buf.subarray(0, crcAt));
  if (want !== got) throw new CorruptFileError(path, `checksum mismatch (stored ${want.toString(16)}, computed ${got.toString(16)})`, crcAt);
  let metadata: SnapshotMetadata;
  try {
    metadata = SnapshotMetadata.decode(buf.subarray(HEADER_BYTES, HEADER_BYTES + metaLen));
  } catch (err) {
    throw new CorruptFileError(path, `undecodable metadata: ${err instanceof Error ? err.message : String(err)}`, HEADER_BYTES);
  }
  if (expect !== undefined && (metadata.index !== expect.index || metadata.term !== expect.term)) {
    throw new CorruptFileError(path, `metadata says index ${metadata.index} term ${metadata.term}, the name says index ${expect.index} term ${expect.term}`, HEADER_BYTES);
  }
  return { metadata, data: buf.subarray(HEADER_BYTES + metaLen, crcAt) };
}

/** The snapshot files of one directory. */
export class SnapshotStore {
  constructor(
    private readonly fs: RaftFs,
    readonly dir: string,
  ) {}

  /** The snapshot files by name, oldest (lowest index) first; other names are ignored. */
  list(): SnapshotFile[] {
    const files: SnapshotFile[] = [];
    for (const name of this.fs.list(this.dir)) {
      const m = SNAP_RE.exec(name);
      if (m === null) continue;
      const term = parseInt(m[1] as string, 16);
      const index = parseInt(m[2] as string, 16);
      if (Number.isSafeInteger(term) && Number.isSafeInteger(index)) files.push({ path: posix.join(this.dir, name), term, index });
    }
    return files.sort((a, b) => a.index - b.index || a.term - b.term);
  }

  pathFor(term: number, index: number): string {
    return posix.join(this.dir, snapshotName(term, index));
  }

  /** Writes the snapshot durably (tmp file, fsync, rename, directory fsync). */
  save(metadata: SnapshotMetadata, data: Uint8Array): string {
    const path = this.pathFor(metadata.term, metadata.index);
    this.fs.writeAtomic(path, encodeSnapshot(metadata, data));
    return path;
  }

  /**
   * save(), with the data in `pieces` (`size` bytes in all) and off the event loop: the file is
   * written through the file system's AtomicStream in slices of a few megabytes, each
   * checksummed on the loop (native CRC-32: about a millisecond per slice) while the previous one
   * is written in the thread pool. `done` runs once the file is durable, with its path; the same
   * file as save() makes. Without an AtomicStream (the in-memory file system) it is save().
   */
  saveStreamed(metadata: SnapshotMetadata, pieces: readonly Uint8Array[], size: number, done: (err: Error | null, path?: string) => void): { abort(): void } {
    const path = this.pathFor(metadata.term, metadata.index);
    if (this.fs.openAtomicStream === undefined) {
      try {
        this.fs.writeAtomic(path, encodeSnapshot(metadata, Buffer.concat(pieces, size)));
      } catch (err) {
        done(err as Error);
        return { abort: () => undefined };
      }
      done(null, path);
      return { abort: () => undefined };
    }
    const stream = this.fs.openAtomicStream(path);
    const head = snapshotHead(metadata, size);
    let crc = crc32(head);
    let aborted = false;
    let next = 0;
    let written = 0;
    const fail = (err: Error): void => {
      stream.abort();
      done(err);
    };
    const step = (): void => {
      if (aborted) return;
      if (next >= pieces.length) {
        if (written !== size) return fail(new IllegalStateError(`snapshot ${path}: ${written} bytes of data, ${size} announced`));
        stream.write([trailerOf(crc)], (err) => {
          if (aborted) return;
          if (err) return fail(err);
          stream.commit((commitErr) => (aborted ? undefined : commitErr ? done(commitErr) : done(null, path)));
        });
        return;
      }
      const slice: Uint8Array[] = [];
      let bytes = 0;
      while (next < pieces.length && bytes < STREAM_SLICE_BYTES) {
        const p = pieces[next++]!;
        crc = crc32(p, crc);
        slice.push(p);
        bytes += p.length;
      }
      written += bytes;
      stream.write(slice, (err) => (aborted ? undefined : err ? fail(err) : step()));
    };
    stream.write([head], (err) => (aborted ? undefined : err ? fail(err) : step()));
    return {
      abort: () => {
        if (aborted) return;
        aborted = true;
        stream.abort();
      },
    };
  }

  /**
   * The newest valid snapshot, read-only. Walks from the newest file down: a valid file is the
   * answer; a corrupt file whose index `referenced` says a WAL snapshot record names is a
   * CorruptFileError (no silent fallback: the WAL before it may be released already); a corrupt
   * file nothing references is skipped and reported in `ignored`.
   */
  load(referenced: (index: number) => boolean): { loaded: LoadedSnapshot | undefined; ignored: { file: SnapshotFile; problem: string }[] } {
    const ignored: { file: SnapshotFile; problem: string }[] = [];
    const files = this.list();
    for (let i = files.length - 1; i >= 0; i--) {
      const file = files[i] as SnapshotFile;
      try {
        const { metadata, data } = decodeSnapshot(file.path, this.fs.read(file.path), file);
        return { loaded: { file, metadata, data }, ignored };
      } catch (err) {
        if (!(err instanceof CorruptFileError) || referenced(file.index)) throw err;
        ignored.push({ file, problem: err.message });
      }
    }
    return { loaded: undefined, ignored };
  }

  /** Removes the file of a snapshot (not fsynced: a file no WAL record names counts for nothing). */
  remove(metadata: SnapshotMetadata): void {
    this.fs.remove(this.pathFor(metadata.term, metadata.index));
  }

  /**
   * Removes all but the newest `keep` snapshot files. Not fsynced: an undone removal is harmless.
   * In the thread pool where the file system can (freeing a large file's blocks took tens of
   * milliseconds of the event loop); a failure there is left for the next prune.
   */
  prune(keep = 2): string[] {
    const files = this.list();
    const old = files.slice(0, Math.max(0, files.length - keep)).map((f) => f.path);
    for (const path of old) {
      if (this.fs.removeAsync) this.fs.removeAsync(path, () => undefined);
      else this.fs.remove(path);
    }
    return old;
  }

  /** Removes `*.tmp` files left by a crash inside writeAtomic. */
  removeTemporaries(): string[] {
    const tmps = this.fs
      .list(this.dir)
      .filter((n) => n.endsWith('.tmp'))
      .map((n) => posix.join(this.dir, n));
    for (const path of tmps) this.fs.remove(path);
    return tmps;
  }
}

// The write-ahead log: Raft entries, hard states and snapshot points as checksummed records in
// segment files, appended with group commit and replayed on start. See docs/raft-storage.md.
//
// Files: `<seq:16 hex>-<firstIndex:16 hex>.wal` in one directory. `seq` counts up by one per
// segment (a missing number is corruption); `firstIndex` is the index the next entry had when the
// segment was made (informational: an overwrite can later write lower indexes into it).
//
// A record: [payload length u32 LE][CRC-32 of the payload u32 LE][payload = WalRecord protobuf].
// A segment starts with the hard state and the snapshot point current when it was made, so that
// releasing older segments never loses them.
//
// Segments are preallocated: made at their full size of written zeros (as `*.tmp`, renamed into
// place), then overwritten record by record, so that an fdatasync has no file size to journal. A
// valid record is never all zeros (its length is at least 2), so a zero header ends the data.
import { posix } from 'node:path';
import { CorruptFileError, IllegalStateError } from '../../../common/errors.js';
import { type Entry, entryTypeToNumber, type HardState, type SnapshotMetadata, WalRecord } from '../../../proto/gen/tswarm/raft.js';
import { crc32 } from './crc32.js';
import type { FileHandle, RaftFs } from './fs.js';
import { varintSize, writeVarint } from '../../../common/varint.js';

/** Frame header: payload length and checksum. */
export const RECORD_HEADER_BYTES = 8;
/** The largest payload accepted; a larger length in a header is damage, not a record. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** The unit a torn write is judged by: a disk writes a 512-byte sector whole or not at all. */
export const SECTOR_BYTES = 512;

const SEGMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export function segmentName(seq: number, firstIndex: number): string {
  return `${hex16(seq)}-${hex16(firstIndex)}.wal`;
}

export function parseSegmentName(name: string): { seq: number; firstIndex: number } | undefined {
  const m = SEGMENT_RE.exec(name);
  if (m === null) return undefined;
  const seq = parseInt(m[1] as string, 16);
  const firstIndex = parseInt(m[2] as string, 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return undefined;
  return { seq, firstIndex };
}

export function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

/** Where a record sits, for error messages. */
export interface RecordPos {
  path: string;
  offset: number;
}

// ---------------------------------------------------------------------------------------------
// Replay semantics

/**
 * The shape of the log as records are applied in order: the snapshot point and the index and term
 * of every entry after it (and the entries themselves while replaying). Used both to replay the
 * WAL and, by RaftDisk, to check appends against the same rules, so that what is written always
 * replays. Each operation returns a problem (and changes nothing) or undefined (and applies it).
 *
 * The rules (later records win):
 * - An entry at `last + 1` extends the log; one at or below `last` (but above the snapshot point)
 *   truncates the log there and replaces it (a new leader overwrote the uncommitted suffix); a gap
 *   or an entry at or below the snapshot point is a problem. Terms never decrease along the log.
 * - A snapshot record (index, term) sets the snapshot point. If the log holds that entry with that
 *   term (a local compaction) the entries after it stay; otherwise the snapshot replaces the whole
 *   log (an installed snapshot: what followed conflicts with it or is behind it), as etcd's raft
 *   does. A snapshot older than the current one is a problem.
 * - While replaying a WAL whose older segments were released, the first entry read may start
 *   anywhere above the snapshot point ("unanchored"): the released segments held the entries
 *   before it. A later snapshot record anchors it; `finish` reports a log still unanchored.
 *   A snapshot record whose entry was released is taken as a compaction. That gives the same log
 *   as replaying every segment: an installed snapshot releases only segments below its index, so
 *   its own record can still compare its entry; and once entries follow an install, the first of
 *   them truncates whatever a misread older record kept. (A residual case needs a log that breaks
 *   Raft's log matching property: two installs with no entry between them, the second matching a
 *   stale entry's term after the first conflicted.)
 */
export class LogState {
  snapIndex = 0;
  snapTerm = 0;
  /** Index of terms[0] (and entries[0]). */
  first = 1;
  readonly terms: number[] = [];
  /** Parallel to terms while replaying; undefined once handed out (RaftDisk keeps terms only). */
  entries: Entry[] | undefined;
  /** False while the first entry does not follow the snapshot point (a released WAL prefix). */
  private anchored = true;
  /** Whether the log's start is known: after the first entry or after `finish`. */
  private started = false;
  /** Where the current run of entries started, for `finish`'s message. */
  private startPos: RecordPos | undefined;

  constructor(keepEntries: boolean) {
    this.entries = keepEntries ? [] : undefined;
  }

  get lastIndex(): number {
    return this.terms.length > 0 ? this.first + this.terms.length - 1 : this.snapIndex;
  }

  /** The term of the entry at `index` if the log holds it, else undefined. */
  termOf(index: number): number | undefined {
    return index >= this.first ? this.terms[index - this.first] : undefined;
  }

  /** Checks an entry without applying it. */
  checkEntry(index: number, term: number): string | undefined {
    if (index <= this.snapIndex) return `entry ${index} is at or below the snapshot index ${this.snapIndex}`;
    const n = this.terms.length;
    const last = this.first + n - 1;
    if (n === 0 && this.started && index !== this.snapIndex + 1) return `entry ${index} does not follow the snapshot index ${this.snapIndex}`;
    if (n > 0 && index > last + 1) return `entry ${index} leaves a gap after entry ${last}`;
    // The term of the entry before it: the snapshot term at the snapshot point.
    const before = index - 1;
    const prev = before === this.snapIndex ? this.snapTerm : n > 0 && before >= this.first && before <= last ? this.terms[before - this.first] : undefined;
    if (prev !== undefined && term < prev) return `entry ${index} has term ${term}, below the term ${prev} of entry ${before}`;
    return undefined;
  }

  entry(index: number, term: number, entry?: Entry, pos?: RecordPos): string | undefined {
    const problem = this.checkEntry(index, term);
    if (problem !== undefined) return problem;
    const n = this.terms.length;
    if (n === 0 || index < this.first) {
      // A new run: the first entry, the first after a snapshot dropped the log, or an overwrite
      // below the start of an unanchored log (possible only while replaying a released WAL).
      this.terms.length = 0;
      if (this.entries !== undefined) this.entries.length = 0;
      this.first = index;
      this.anchored = index === this.snapIndex + 1;
      this.startPos = pos;
    } else if (index <= this.first + n - 1) {
      this.terms.length = index - this.first;
      if (this.entries !== undefined) this.entries.length = index - this.first;
    }
    this.terms.push(term);
    if (this.entries !== undefined && entry !== undefined) this.entries.push(entry);
    this.started = true;
    return undefined;
  }

  /** Checks a snapshot point without applying it. */
  checkSnapshot(index: number, term: number): string | undefined {
    if (index < 1) return `snapshot index ${index} is not positive`;
    if (index < this.snapIndex) return `snapshot ${index} is older than the snapshot ${this.snapIndex} before it`;
    if (index === this.snapIndex && term !== this.snapTerm) {
      return `snapshot ${index} has term ${term}, but the snapshot before it at the same index has term ${this.snapTerm}`;
    }
    if (term < this.snapTerm) return `snapshot ${index} has term ${term}, below the term ${this.snapTerm} of the snapshot before it`;
    return undefined;
  }

  snapshot(index: number, term: number): string | undefined {
    const problem = this.checkSnapshot(index, term);
    if (problem !== undefined) return problem;
    if (index === this.snapIndex) return undefined;
    const n = this.terms.length;
    const last = this.first + n - 1;
    if (n > 0 && index >= this.first && index <= last && this.terms[index - this.first] === term) {
      // A compaction: drop the entries the snapshot covers, keep the rest.
      this.terms.splice(0, index - this.first + 1);
      this.entries?.splice(0, index - this.first + 1);
      this.first = index + 1;
      this.anchored = true;
    } else if (n > 0 && index < this.first && !this.anchored) {
      // Its entry is in a released segment: taken as a compaction (see the class comment). The
      // entries it covers are gone already.
      this.anchored = this.first === index + 1;
    } else {
      this.terms.length = 0;
      if (this.entries !== undefined) this.entries.length = 0;
      this.first = index + 1;
      this.anchored = true;
    }
    this.snapIndex = index;
    this.snapTerm = term;
    return undefined;
  }

  /** After replay: the log must start right after the snapshot point. Returns the problem and where. */
  finish(): { problem: string; pos: RecordPos | undefined } | undefined {
    if (this.terms.length > 0 && !this.anchored) {
      return {
        problem: `the log starts at entry ${this.first} but the snapshot index is ${this.snapIndex}: entries ${this.snapIndex + 1} to ${this.first - 1} are missing`,
        pos: this.startPos,
      };
    }
    this.started = true;
    return undefined;
  }

  /** Hands out the replayed entries; from then on only terms are kept. */
  takeEntries(): Entry[] {
    const entries = this.entries ?? [];
    this.entries = undefined;
    return entries;
  }
}

// ---------------------------------------------------------------------------------------------
// Record encoding

/**
 * Frames records into one growable buffer, so that a sync is one write of one buffer. Entries
 * (the hot path) are encoded by hand straight into the buffer, byte for byte what
 * `WalRecord.encode` produces (a test checks it); the rare hard state and snapshot records go
 * through the generated encoder.
 */
export class RecordBuffer {
  private buf: Buffer;
  length = 0;

  constructor(private readonly initialCapacity = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialCapacity);
  }

  /** The framed records so far: a view, valid until the next change. */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** Empties the buffer; lets a buffer grown by a large batch go. */
  reset(): void {
    this.length = 0;
    if (this.buf.length > 16 * this.initialCapacity && this.buf.length > 4 * 1024 * 1024) this.buf = Buffer.allocUnsafe(this.initialCapacity);
  }

  private reserve(bytes: number): void {
    const need = this.length + bytes;
    if (need <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }

  /** Appends one entry record. The entry must have been validated (see `entryProblem`). */
  entry(e: Entry): void {
    const type = entryTypeToNumber(e.type);
    const dlen = e.data.length;
    const inner =
      (e.term !== 0 ? 1 + varintSize(e.term) : 0) +
      (e.index !== 0 ? 1 + varintSize(e.index) : 0) +
      (type !== 0 ? 1 + varintSize(type) : 0) +
      (dlen !== 0 ? 1 + varintSize(dlen) + dlen : 0);
    const payload = 1 + varintSize(inner) + inner;
    this.reserve(RECORD_HEADER_BYTES + payload);
    const buf = this.buf;
    const start = this.length + RECORD_HEADER_BYTES;
    let p = start;
    buf[p++] = 0x0a; // WalRecord.entry: field 1, length-delimited
    p = writeVarint(buf, p, inner);
    if (e.term !== 0) {
      buf[p++] = 0x08;
      p = writeVarint(buf, p, e.term);
    }
    if (e.index !== 0) {
      buf[p++] = 0x10;
      p = writeVarint(buf, p, e.index);
    }
    if (type !== 0) {
      buf[p++] = 0x18;
      p = writeVarint(buf, p, type);
    }
    if (dlen !== 0) {
      buf[p++] = 0x22;
      p = writeVarint(buf, p, dlen);
      buf.set(e.data, p);
      p += dlen;
    }
    this.seal(start, p);
  }

  /** Appends any record through the generated encoder. */
  record(record: WalRecord): void {
    const payload = WalRecord.encode(record).finish();
    this.reserve(RECORD_HEADER_BYTES + payload.length);
    const start = this.length + RECORD_HEADER_BYTES;
    this.buf.set(payload, start);
    this.seal(start, start + payload.length);
  }

  private seal(start: number, end: number): void {
    const header = start - RECORD_HEADER_BYTES;
    this.buf.writeUInt32LE(end - start, header);
    this.buf.writeUInt32LE(crc32(this.buf.subarray(start, end)), header + 4);
    this.length = end;
  }
}

/** What makes an entry unwritable (non-integer or out-of-range fields, an unknown type, too big), or undefined. */
export function entryProblem(e: Entry): string | undefined {
  if (!Number.isSafeInteger(e.index) || e.index < 1) return `index ${e.index} is not a positive integer`;
  if (!Number.isSafeInteger(e.term) || e.term < 0) return `term ${e.term} is not a non-negative integer`;
  if (entryTypeToNumber(e.type) < 0) return `type ${String(e.type)} is not a known entry type`;
  // 32 bytes: the most the record's fields and lengths add to the data.
  if (e.data.length > MAX_RECORD_BYTES - 32) return `data of ${e.data.length} bytes exceeds the record maximum of ${MAX_RECORD_BYTES - 32}`;
  return undefined;
}

function u32(data: Uint8Array, p: number): number {
  return ((data[p] as number) | ((data[p + 1] as number) << 8) | ((data[p + 2] as number) << 16) | ((data[p + 3] as number) << 24)) >>> 0;
}

type Parsed = { ok: true; record: WalRecord; next: number } | { ok: false; problem: string; claimedEnd: number | undefined };

/** Reads the record at `p`: its frame, checksum and protobuf, without judging its meaning. */
function parseRecord(data: Uint8Array, p: number): Parsed {
  const left = data.length - p;
  if (left < RECORD_HEADER_BYTES) return { ok: false, problem: `short record header (${left} bytes before the end of the file)`, claimedEnd: undefined };
  const len = u32(data, p);
  if (len === 0) return { ok: false, problem: 'record of length 0', claimedEnd: undefined };
  if (len > MAX_RECORD_BYTES) return { ok: false, problem: `record length ${len} exceeds the maximum of ${MAX_RECORD_BYTES}`, claimedEnd: undefined };
  const end = p + RECORD_HEADER_BYTES + len;
  if (end > data.length) return { ok: false, problem: `record length ${len} runs past the end of the file (${data.length} bytes)`, claimedEnd: undefined };
  const payload = data.subarray(p + RECORD_HEADER_BYTES, end);
  const want = u32(data, p + 4);
  const got = crc32(payload);
  if (got !== want) return { ok: false, problem: `checksum mismatch (stored ${hex8(want)}, computed ${hex8(got)})`, claimedEnd: end };
  let record: WalRecord;
  try {
    record = WalRecord.decode(payload);
  } catch (err) {
    return { ok: false, problem: `undecodable record: ${err instanceof Error ? err.message : String(err)}`, claimedEnd: end };
  }
  if (record.record === undefined) return { ok: false, problem: 'record holds no entry, hard state or snapshot', claimedEnd: end };
  return { ok: true, record, next: end };
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/**
 * The offset of the first valid record (plausible header, matching checksum, decodable) at or
 * after `from`, or -1. Tries the end the bad record's header claims first (a damaged payload with
 * an intact length is the common case), then every byte offset.
 *
 * The byte-by-byte scan only computes a checksum where the frame is plausible: the length fits,
 * and the payload starts the way every WalRecord does (one length-delimited field 1, 2 or 3 whose
 * length accounts for the whole payload). Without that filter a multi-megabyte torn tail would
 * cost a checksum of up to the rest of the file at each offset whose 4 bytes happen to read as a
 * length that fits (cubic in the tail's size); with it, about one offset in a million gets one.
 */
function findValidRecord(data: Uint8Array, from: number, claimedEnd: number | undefined): number {
  if (claimedEnd !== undefined && claimedEnd < data.length && parseRecord(data, claimedEnd).ok) return claimedEnd;
  // A record's header has a non-zero byte: none starts past the last one (the zeros of a
  // preallocated segment cost one memcmp, not a byte-by-byte scan).
  const last = lastNonZero(data, from);
  for (let p = from; p <= last && p + RECORD_HEADER_BYTES < data.length; p++) {
    const len = u32(data, p);
    if (len < 2 || len > MAX_RECORD_BYTES || p + RECORD_HEADER_BYTES + len > data.length) continue;
    if (!plausiblePayload(data, p + RECORD_HEADER_BYTES, len)) continue;
    if (parseRecord(data, p).ok) return p;
  }
  return -1;
}

/** The offset of the last non-zero byte at or after `from`, or -1 (memcmp speed, from the end). */
export function lastNonZero(data: Uint8Array, from: number): number {
  const chunk = 64 * 1024;
  const zero = ZERO_BLOCK.length >= chunk ? ZERO_BLOCK : (ZERO_BLOCK = Buffer.alloc(chunk));
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let end = data.length; end > from; ) {
    const start = Math.max(from, end - chunk);
    if (buf.compare(zero, 0, end - start, start, end) !== 0) {
      for (let i = end - 1; i >= start; i--) if (data[i] !== 0) return i;
    }
    end = start;
  }
  return -1;
}
let ZERO_BLOCK: Buffer = Buffer.alloc(0);

/** Whether the bytes from `p` to the end of the header (or of the file) are all zero: the end of the data. */
function zeroHeader(data: Uint8Array, p: number): boolean {
  const end = Math.min(p + RECORD_HEADER_BYTES, data.length);
  for (let i = p; i < end; i++) if (data[i] !== 0) return false;
  return true;
}

/**
 * Whether the bad record at `p` looks torn: some piece of it between two sector boundaries (the
 * first and last pieces may be partial) is all zeros, as a sector the disk never wrote reads in
 * a preallocated segment. `claimedEnd` is where its header says it ends, when the length is sane.
 */
function tornLooking(data: Uint8Array, p: number, claimedEnd: number | undefined): boolean {
  const end = Math.min(claimedEnd ?? p + RECORD_HEADER_BYTES, data.length);
  for (let from = p; from < end; ) {
    const to = Math.min(end, (Math.floor(from / SECTOR_BYTES) + 1) * SECTOR_BYTES);
    let zero = true;
    for (let i = from; i < to && zero; i++) if (data[i] !== 0) zero = false;
    if (zero) return true;
    from = to;
  }
  return false;
}

/** Whether `len` bytes at `p` start like a WalRecord: tag 0x0a, 0x12 or 0x1a, then a varint that is the rest's length. */
function plausiblePayload(data: Uint8Array, p: number, len: number): boolean {
  const tag = data[p];
  if (tag !== 0x0a && tag !== 0x12 && tag !== 0x1a) return false;
  let inner = 0;
  let scale = 1;
  for (let i = 1; i <= 5 && i < len; i++) {
    const b = data[p + i] as number;
    inner += (b & 0x7f) * scale;
    scale *= 128;
    if (b < 0x80) return 1 + i + inner === len;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Recovery

export interface WalSegment {
  seq: number;
  firstIndex: number;
  path: string;
  /** Bytes of valid records: where the next record goes. The file may be longer (zeros). */
  size: number;
  /** The highest entry index written in the segment (0 if none): it may go once a snapshot covers it. */
  maxIndex: number;
}

/** What `recoverWal` read. Nothing on disk has been changed yet. */
export interface WalRecovery {
  dir: string;
  segments: WalSegment[];
  /** The replayed log; `log.entries` holds the entries. */
  log: LogState;
  hardState: HardState;
  /** The latest snapshot record, and where it is. */
  snapshot: { metadata: SnapshotMetadata; pos: RecordPos } | undefined;
  /** Every snapshot record still in the WAL, by index. */
  snapshotRecords: Map<number, RecordPos>;
  /**
   * Non-zero bytes after the end of the data in the last segment (a torn write, or what follows
   * it): `bytes` from `offset` to the last non-zero byte, zeroed when the WAL is opened for writing.
   */
  tornTail: { path: string; offset: number; bytes: number; problem: string } | undefined;
}

/**
 * Reads and replays every segment, read-only. The data of a segment ends at a zero header (the
 * zeros of a preallocated segment) or at the end of the file (a segment from before
 * preallocation). In the last segment, a bad record that looks torn (a sector's worth of it is
 * zeros), or that no valid record follows, is a torn write (never synced): it and every non-zero
 * byte after it are reported in `tornTail` and zeroed later by `Wal.open`. Any other bad record,
 * a missing segment or a record that breaks the replay rules is corruption: a CorruptFileError
 * naming the file and offset.
 */
export function recoverWal(fs: RaftFs, dir: string): WalRecovery {
  const found: WalSegment[] = [];
  for (const name of fs.list(dir)) {
    const parsed = parseSegmentName(name);
    if (parsed !== undefined) found.push({ ...parsed, path: posix.join(dir, name), size: 0, maxIndex: 0 });
  }
  found.sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < found.length; i++) {
    const prev = found[i - 1] as WalSegment;
    const seg = found[i] as WalSegment;
    if (seg.seq !== prev.seq + 1) {
      throw new CorruptFileError(seg.path, `segment ${hex16(prev.seq + 1)} is missing (sequence numbers jump from ${hex16(prev.seq)} to ${hex16(seg.seq)})`, 0);
    }
  }

  const log = new LogState(true);
  let hardState: HardState = { term: 0, vote: 0, commit: 0 };
  let snapshot: WalRecovery['snapshot'];
  const snapshotRecords = new Map<number, RecordPos>();
  let tornTail: WalRecovery['tornTail'];

  for (let s = 0; s < found.length; s++) {
    const seg = found[s] as WalSegment;
    const isLast = s === found.length - 1;
    const data = fs.read(seg.path);
    let p = 0;
    let torn: string | undefined;
    while (p < data.length) {
      if (zeroHeader(data, p)) break; // the end of the data
      const parsed = parseRecord(data, p);
      if (!parsed.ok) {
        if (!isLast) throw new CorruptFileError(seg.path, `${parsed.problem}, in a segment that is not the last`, p);
        // Torn by a crash, the unwritten sectors read as zeros (and what follows is the rest of
        // the same unsynced write, or zeros). No zeros in it: a damaged record, which is
        // corruption if a valid record follows (synced data after it), else taken as torn.
        if (!tornLooking(data, p, parsed.claimedEnd)) {
          const later = findValidRecord(data, p + 1, parsed.claimedEnd);
          if (later >= 0) throw new CorruptFileError(seg.path, `${parsed.problem}, followed by a valid record at offset ${later}`, p);
        }
        torn = parsed.problem;
        break;
      }
      const pos = { path: seg.path, offset: p };
      const rec = parsed.record.record;
      let problem: string | undefined;
      switch (rec?.$case) {
        case 'entry': {
          const e = rec.entry;
          problem = entryProblem(e) ?? log.entry(e.index, e.term, e, pos);
          if (e.index > seg.maxIndex) seg.maxIndex = e.index;
          break;
        }
        case 'hardState':
          hardState = rec.hardState;
          break;
        case 'snapshot':
          problem = log.snapshot(rec.snapshot.index, rec.snapshot.term);
          snapshot = { metadata: rec.snapshot, pos };
          snapshotRecords.set(rec.snapshot.index, pos);
          break;
        case undefined:
          break; // parseRecord refuses empty records
      }
      if (problem !== undefined) throw new CorruptFileError(seg.path, problem, p);
      p = parsed.next;
    }
    seg.size = p;
    if (isLast) {
      // Whatever is not zero after the data goes, so that no stale byte can ever follow records
      // written later (see Wal.open).
      const last = lastNonZero(data, p);
      if (last >= p) tornTail = { path: seg.path, offset: p, bytes: last + 1 - p, problem: torn ?? 'non-zero bytes after the zeros that end the data' };
    }
  }
  const unfinished = log.finish();
  if (unfinished !== undefined) {
    const pos = unfinished.pos ?? { path: dir, offset: 0 };
    throw new CorruptFileError(pos.path, unfinished.problem, pos.offset);
  }
  return { dir, segments: found, log, hardState, snapshot, snapshotRecords, tornTail };
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface WalOptions {
  /**
   * The size segments are preallocated at (zeros); a segment whose records reach it is closed and
   * the next one started (default 64 MiB). A batch that does not fit grows the file past it.
   */
  segmentBytes?: number;
  /** Told what recovery zeroed after the data (a torn write): the file, the offset and the bytes. */
  onTruncate?: (path: string, offset: number, bytes: number) => void;
}

/** The name of a segment being prepared; `*.tmp` files in the WAL directory are removed on open, never read. */
function preparedName(n: number): string {
  return `next-${n}.wal.tmp`;
}

let zeroChunk: Uint8Array | undefined;
/** Writes `bytes` zeros at `offset` in chunks of at most 1 MiB. */
function writeZerosAt(handle: FileHandle, offset: number, bytes: number): void {
  zeroChunk ??= new Uint8Array(1 << 20);
  for (let at = 0; at < bytes; at += zeroChunk.length) handle.write(zeroChunk.subarray(0, Math.min(zeroChunk.length, bytes - at)), offset + at);
}

/**
 * The WAL open for writing. Records are framed into one buffer as they are queued; `sync` writes
 * that buffer with one write (at the end of the data, over the segment's zeros) and one fsync
 * (group commit). A failed write or fsync leaves the file in an unknown state (after a failed
 * fsync the kernel may have dropped the dirty pages), so the WAL then refuses every call: the
 * process must restart and recover from disk.
 *
 * The next segment is prepared ahead of need (a zero-filled `next-N.wal.tmp`, synced): in the
 * background where the file system can (`writeZerosAsync`), once the current segment is half
 * full (not at open: tens of MiB written back at once delay the fsyncs of the first writes, and
 * a short-lived node never needs them); else synchronously at open and right after each
 * rotation. A rotation renames it into place; if it is not ready yet, the rotation makes one
 * synchronously (and the background one, when it completes, is removed).
 */
export class Wal {
  private readonly buffer = new RecordBuffer();
  private handle: FileHandle | undefined;
  private failure: unknown = undefined;
  /** Highest entry index queued since the last sync, for the current segment's maxIndex. */
  private pendingMaxIndex = 0;
  private readonly segmentBytes: number;
  /** The index of the last snapshot record known to be on disk (0: none). */
  private syncedSnapshotIndex: number;
  /** A complete, synced, zero-filled next segment under a temporary name. */
  private prepared: string | undefined;
  /** The background preparation in flight, if any; its callback checks it is still the one wanted. */
  private preparing: { path: string } | undefined;
  private preparedCount = 0;
  /** Released segments still to remove in the thread pool, oldest first (see release). */
  private readonly toRemove: string[] = [];
  private removing = false;

  private constructor(
    private readonly fs: RaftFs,
    readonly dir: string,
    /** Oldest first; the last one is being written. */
    private readonly segments: WalSegment[],
    private hardState: HardState,
    private snapshot: SnapshotMetadata | undefined,
    /** The index the next entry would get, for the name of the next segment. */
    private nextIndex: number,
    opts: WalOptions,
  ) {
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.syncedSnapshotIndex = snapshot?.index ?? 0;
  }

  /**
   * Opens the recovered WAL for writing: removes leftover temporary files, zeroes a torn tail
   * (durably, before anything new is written: no stale byte may follow later records), then
   * continues the last segment, or makes the first one in an empty directory; then prepares the
   * next segment. Call only once every check that may refuse the state has passed: this is where
   * the disk starts to change.
   */
  static open(fs: RaftFs, recovery: WalRecovery, opts: WalOptions = {}): Wal {
    const segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1) throw new IllegalStateError(`WAL ${recovery.dir}: segmentBytes ${segmentBytes} is not a positive integer`);
    const wal = new Wal(fs, recovery.dir, recovery.segments, recovery.hardState, recovery.snapshot?.metadata, recovery.log.lastIndex + 1, opts);
    // Not synced: a removal undone by a crash is removed again next time.
    for (const name of fs.list(recovery.dir)) if (name.endsWith('.tmp')) fs.remove(posix.join(recovery.dir, name));
    const last = recovery.segments.at(-1);
    if (last === undefined) {
      wal.startSegment(0);
    } else {
      const handle = fs.openWrite(last.path);
      try {
        const torn = recovery.tornTail;
        if (torn !== undefined && torn.path === last.path) {
          writeZerosAt(handle, torn.offset, torn.bytes);
          handle.sync();
          opts.onTruncate?.(torn.path, torn.offset, torn.bytes);
        }
      } catch (err) {
        handle.close();
        throw err;
      }
      wal.handle = handle;
      // Restate the recovered hard state and snapshot point in the segment being written: it may
      // lack its header (a crash right after it was made), and release() relies on the newest
      // segment holding them once older ones go.
      wal.queueHeader();
    }
    wal.prepareSoon();
    return wal;
  }

  /** Queues an entry (validated by the caller against LogState). */
  appendEntry(e: Entry): void {
    this.check('append');
    this.buffer.entry(e);
    if (e.index > this.pendingMaxIndex) this.pendingMaxIndex = e.index;
    this.nextIndex = e.index + 1;
  }

  appendHardState(hardState: HardState): void {
    this.check('append');
    this.buffer.record({ record: { $case: 'hardState', hardState } });
    this.hardState = hardState;
  }

  appendSnapshot(snapshot: SnapshotMetadata): void {
    this.check('append');
    this.buffer.record({ record: { $case: 'snapshot', snapshot } });
    this.snapshot = snapshot;
    if (snapshot.index + 1 > this.nextIndex) this.nextIndex = snapshot.index + 1;
  }

  /** Bytes queued and not yet synced. */
  get pendingBytes(): number {
    return this.buffer.length;
  }

  /**
   * Writes everything queued with one write and one fsync; a no-op if nothing is queued. Then,
   * if the segment has reached `segmentBytes`, starts the next one.
   */
  sync(): void {
    this.check('sync');
    if (this.buffer.length === 0) return;
    const seg = this.current();
    const handle = this.handle as FileHandle;
    try {
      handle.write(this.buffer.bytes(), seg.size);
      handle.sync();
    } catch (err) {
      this.failure = err;
      throw err;
    }
    seg.size += this.buffer.length;
    this.syncedSnapshotIndex = this.snapshot?.index ?? 0;
    if (this.pendingMaxIndex > seg.maxIndex) seg.maxIndex = this.pendingMaxIndex;
    this.pendingMaxIndex = 0;
    this.buffer.reset();
    if (seg.size >= this.segmentBytes) this.startSegment(seg.seq + 1);
    else this.prepareSoon();
  }

  /**
   * Like sync(), but the fsync runs off the event loop: the bytes are written now, and `done` is
   * called once they are durable (or with the error, after which the log refuses further use).
   * The caller queues nothing more until `done` runs. Falls back to sync() where the segment ends
   * (the handle is closed on rotation) or the file system has no asynchronous sync.
   */
  syncAsync(done: (err: Error | null) => void): void {
    this.check('sync');
    if (this.buffer.length === 0) return done(null);
    const seg = this.current();
    const handle = this.handle as FileHandle;
    if (!handle.syncAsync || seg.size + this.buffer.length >= this.segmentBytes) {
      try {
        this.sync();
      } catch (err) {
        return done(err as Error);
      }
      return done(null);
    }
    const bytes = this.buffer.length;
    try {
      handle.write(this.buffer.bytes(), seg.size);
    } catch (err) {
      this.failure = err;
      return done(err as Error);
    }
    seg.size += bytes;
    const snapshotIndex = this.snapshot?.index ?? 0;
    if (this.pendingMaxIndex > seg.maxIndex) seg.maxIndex = this.pendingMaxIndex;
    this.pendingMaxIndex = 0;
    this.buffer.reset();
    this.prepareSoon();
    handle.syncAsync((err) => {
      if (err) {
        this.failure = err;
        return done(err);
      }
      this.syncedSnapshotIndex = Math.max(this.syncedSnapshotIndex, snapshotIndex);
      done(null);
    }, bytes);
  }

  /**
   * Removes the oldest segments while all their entries are at or below `index` (never the one
   * being written), one at a time with a directory fsync after each, so that a crash leaves a
   * contiguous run of segments. Call after a snapshot record at `index` or above is synced.
   */
  release(index: number): string[] {
    this.check('release');
    if (this.syncedSnapshotIndex < index) {
      // Releasing past the last synced snapshot record would lose entries nothing else holds.
      throw new IllegalStateError(`WAL ${this.dir}: release(${index}) with no snapshot record at or above ${index} synced`);
    }
    // A segment made by the last sync has its header (hard state, snapshot point) only queued:
    // it must be on disk before the older segments holding that state go.
    if (this.buffer.length > 0) this.sync();
    // If that sync started yet another segment, its header is only queued in turn: keep the
    // segment before it, whose header is on disk.
    const keep = this.buffer.length > 0 ? 2 : 1;
    const removed: string[] = [];
    while (this.segments.length > keep) {
      const oldest = this.segments[0] as WalSegment;
      if (oldest.maxIndex > index) break;
      if (this.fs.removeAsync) {
        this.toRemove.push(oldest.path);
      } else {
        this.fs.remove(oldest.path);
        this.fs.syncDir(this.dir);
      }
      this.segments.shift();
      removed.push(oldest.path);
    }
    this.removeReleased();
    return removed;
  }

  /**
   * Removes released segments in the thread pool where the file system can: freeing a 64 MiB
   * segment's blocks took 25-40 ms of the event loop each, and a snapshot under load releases
   * several at once (half a second of a leader's loop, measured). One at a time, oldest first, as
   * the synchronous way did: what a crash leaves is the newest of the released segments, next to
   * the ones kept, all below a synced snapshot record; the next start reads past them (as after a
   * crash between two synchronous removals) and the next release removes them.
   */
  private removeReleased(): void {
    if (this.removing || !this.fs.removeAsync) return;
    const path = this.toRemove.shift();
    if (path === undefined) return;
    this.removing = true;
    this.fs.removeAsync(path, () => {
      this.removing = false;
      // A failure leaves the file for the next start; the directory's entry goes when it can.
      if (this.toRemove.length === 0) {
        try {
          this.fs.syncDir(this.dir);
        } catch {
          // not durable yet: the next start removes the segment again
        }
      }
      this.removeReleased();
    });
  }

  /** The segment files, oldest first (copies). */
  listSegments(): WalSegment[] {
    return this.segments.map((s) => ({ ...s }));
  }

  /** The prepared next segment (a temporary file), if one is ready: for tests. */
  get preparedPath(): string | undefined {
    return this.prepared;
  }

  /**
   * Syncs whatever is still queued (unless the WAL has failed), then closes; the prepared segment
   * is removed (not fsynced: one that comes back is removed on the next open). Idempotent.
   */
  close(): void {
    if (this.handle === undefined) return;
    const handle = this.handle;
    this.preparing = undefined;
    try {
      if (this.failure === undefined) this.sync();
    } finally {
      this.handle = undefined;
      handle.close();
      const prepared = this.prepared;
      this.prepared = undefined;
      if (prepared !== undefined && this.failure === undefined) this.fs.remove(prepared);
    }
  }

  private current(): WalSegment {
    return this.segments.at(-1) as WalSegment;
  }

  /**
   * Makes the next segment current: the prepared zero-filled file (or one made now) renamed into
   * place, the directory fsynced (before any record in it counts), its header queued (the current
   * hard state and snapshot point); then prepares the one after it.
   */
  private startSegment(seq: number): void {
    const path = posix.join(this.dir, segmentName(seq, this.nextIndex));
    try {
      let tmp = this.prepared;
      this.prepared = undefined;
      if (tmp === undefined) {
        // Not ready: abandon a background preparation (its callback removes its file).
        this.preparing = undefined;
        tmp = posix.join(this.dir, preparedName(this.preparedCount++));
        this.fs.writeZeros(tmp, this.segmentBytes);
      }
      this.fs.rename(tmp, path);
      const handle = this.fs.openWrite(path);
      this.handle?.close();
      this.handle = handle;
      this.fs.syncDir(this.dir);
    } catch (err) {
      this.failure = err;
      throw err;
    }
    this.segments.push({ seq, firstIndex: this.nextIndex, path, size: 0, maxIndex: 0 });
    this.queueHeader();
    if (this.segments.length > 1) this.prepareSoon();
  }

  /** Prepares the next segment when it is time (see the class comment). */
  private prepareSoon(): void {
    if (this.fs.writeZerosAsync !== undefined && this.current().size < this.segmentBytes / 2) return;
    this.prepareNext();
  }

  /**
   * Starts preparing the next segment unless one is ready or on its way: in the background if the
   * file system can, else now. A background failure is forgotten (the rotation then makes the
   * segment itself, and fails the WAL if that fails too); a synchronous one fails the WAL.
   */
  private prepareNext(): void {
    if (this.prepared !== undefined || this.preparing !== undefined) return;
    const path = posix.join(this.dir, preparedName(this.preparedCount++));
    const fs = this.fs;
    if (fs.writeZerosAsync === undefined) {
      try {
        fs.writeZeros(path, this.segmentBytes);
      } catch (err) {
        this.failure = err;
        throw err;
      }
      this.prepared = path;
      return;
    }
    const job = { path };
    this.preparing = job;
    fs.writeZerosAsync(path, this.segmentBytes, (err) => {
      const wanted = this.preparing === job;
      if (wanted) this.preparing = undefined;
      if (err !== null) return; // writeZerosAsync removed the file
      if (wanted && this.handle !== undefined && this.failure === undefined && this.prepared === undefined) {
        this.prepared = path;
        return;
      }
      try {
        fs.remove(path);
      } catch {
        // Removed on the next open.
      }
    });
  }

  /** Queues the current hard state and snapshot point (records that change nothing in replay). */
  private queueHeader(): void {
    this.buffer.record({ record: { $case: 'hardState', hardState: this.hardState } });
    if (this.snapshot !== undefined) this.buffer.record({ record: { $case: 'snapshot', snapshot: this.snapshot } });
  }

  /** Throws IllegalStateError if the WAL is closed or has failed. */
  check(op: string): void {
    if (this.handle === undefined) throw new IllegalStateError(`WAL ${this.dir}: ${op} after close`);
    if (this.failure !== undefined) {
      const why = this.failure instanceof Error ? this.failure.message : 'unknown error';
      throw new IllegalStateError(`WAL ${this.dir}: ${op} refused: an earlier write or fsync failed (${why}); restart to recover from disk`);
    }
  }
}

// Reading a container's log: the JSON lines swarm-monitor writes (Docker's json-file format,
// {"log":"line\n","stream":"stdout","time":"2026-11-22T21:00:38.123456789Z"}), across the files
// of its rotation: <path> is the live file, <path>.1 the newest rotated one, up to
// <path>.<maxFiles-1> (native/src/monitor.c, log_shift).
//
// What the reader relies on from the monitor:
// - a rotation renames the oldest first (…, .1 → .2, then <path> → .1) and then makes a new
//   <path>: at every instant, the files present, from the highest number down to <path>, are in
//   the order they were written, without a gap in their content (the oldest may be gone);
// - the monitor never writes to a file again once it was renamed: a file that is not at <path>
//   any more is complete;
// - the monitor is the only writer, and it writes whole records (a reader may still see the end
//   of one not yet written, since reads are not atomic with writes).
// The reader holds its files open, so a file renamed or removed under it is still read to its end,
// and its inode is not reused while it is held (inodes identify files across renames).
import { closeSync, fstatSync, openSync, read, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CorruptFileError, InvalidArgumentError, TswarmError } from '../../common/errors.js';
import { MIN_LOG_MAX_BYTES, type LogConfig } from '../../common/log-driver.js';
import type { LogEntry } from './executor.js';

/** Bytes read at a time (and the most a reader holds besides a line being written). */
const CHUNK = 64 * 1024;

/** Parses one log line; a line that is not a record is a CorruptFileError naming the file and offset. */
export function parseLogLine(path: string, offset: number, line: string): LogEntry {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw new CorruptFileError(path, `not JSON: ${(err as Error).message}`, offset);
  }
  const r = v as Partial<LogEntry> | null;
  if (r === null || typeof r !== 'object' || typeof r.log !== 'string' || typeof r.time !== 'string' || (r.stream !== 'stdout' && r.stream !== 'stderr'))
    throw new CorruptFileError(path, 'not a log record ({log, stream, time})', offset);
  return { time: r.time, stream: r.stream, log: r.log };
}

/** Refuses a log configuration the monitor cannot take, naming the field (`log.…`). */
export function checkLogConfig(log: LogConfig): void {
  if (log.driver === 'none') return;
  if (log.driver !== 'json-file') throw new InvalidArgumentError('log.driver', `must be json-file or none, got ${JSON.stringify((log as { driver: unknown }).driver)}`);
  if (!Number.isSafeInteger(log.maxSizeBytes) || log.maxSizeBytes < MIN_LOG_MAX_BYTES)
    throw new InvalidArgumentError('log.maxSizeBytes', `must be a whole number of bytes of at least ${MIN_LOG_MAX_BYTES}, got ${log.maxSizeBytes}`);
  if (!Number.isInteger(log.maxFiles) || log.maxFiles < 1 || log.maxFiles > 100) throw new InvalidArgumentError('log.maxFiles', `must be a whole number from 1 to 100, got ${log.maxFiles}`);
}

/** Whether `v` is a log configuration the monitor can take (for records read back from disk). */
export function isLogConfig(v: unknown): v is LogConfig {
  if (v === null || typeof v !== 'object') return false;
  try {
    checkLogConfig(v as LogConfig);
    return true;
  } catch {
    return false;
  }
}

/** The log's files, live first, as the monitor names them: <path>, <path>.1 … <path>.<maxFiles-1>. */
export function logFileNames(path: string, maxFiles: number): string[] {
  return [path, ...Array.from({ length: Math.max(maxFiles, 1) - 1 }, (_, i) => `${path}.${i + 1}`)];
}

/** One of the log's files, held open. */
interface LogFile {
  /** Its name when it was listed (it may have been renamed since). */
  name: string;
  fd: number;
  /** Device and inode (bigints: XFS inode numbers may pass 2^53). */
  dev: bigint;
  ino: bigint;
  /** Its size when it was listed. */
  size: number;
}

type FileId = { dev: bigint; ino: bigint };
const sameFile = (a: FileId | undefined, b: FileId | undefined): boolean => a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino;

function statOf(name: string): FileId | undefined {
  return statSync(name, { throwIfNoEntry: false, bigint: true });
}

function closeAll(files: readonly LogFile[]): void {
  for (const f of files) closeSync(f.fd);
}

/**
 * The log's files as they are at one instant, oldest first, held open. Each name is opened, then
 * every name is looked at again: if each still names the file opened (or still nothing), no
 * rename happened between the first and the last open, so the list is one instant's (a rename
 * in between changes a name that was opened before it and is looked at again after it). Else
 * the files are closed and it is tried again: a rotation takes microseconds.
 */
export async function listLogFiles(path: string, maxFiles: number): Promise<LogFile[]> {
  const names = logFileNames(path, maxFiles);
  for (let attempt = 1; ; attempt++) {
    const files: (LogFile | undefined)[] = [];
    try {
      for (const name of names) {
        let fd: number;
        try {
          fd = openSync(name, 'r');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          files.push(undefined);
          continue;
        }
        const s = fstatSync(fd, { bigint: true });
        files.push({ name, fd, dev: s.dev, ino: s.ino, size: Number(s.size) });
      }
    } catch (err) {
      closeAll(files.filter((f) => f !== undefined));
      throw err;
    }
    const held = files.filter((f) => f !== undefined);
    if (names.every((name, i) => (files[i] === undefined ? statOf(name) === undefined : sameFile(statOf(name), files[i])))) return held.reverse();
    closeAll(held);
    if (attempt >= 1000) throw new TswarmError(`${path}: the log's files kept changing while they were listed (1000 attempts)`);
    if (attempt >= 10) await sleep(1);
  }
}

function readAt(fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * Where the last `n` complete lines of `files` (oldest first) start: the index of the file and
 * the offset in it. Reads backwards from the end of the newest file (its listed size), counting
 * newlines: only the end of the log is read, however long the log.
 */
export async function tailStart(files: readonly LogFile[], n: number): Promise<{ index: number; offset: number }> {
  // The (n+1)th newline from the end ends the line before the last n (the first one found ends
  // the last complete line: what follows it is being written).
  let need = n + 1;
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (let i = files.length - 1; i >= 0; i--) {
    const f = files[i]!;
    let end = f.size;
    while (end > 0) {
      const start = Math.max(0, end - buf.length);
      const got = await readAt(f.fd, buf.subarray(0, end - start), start);
      for (let at = got - 1; at >= 0; at--) {
        at = buf.lastIndexOf(10, at);
        if (at < 0) break;
        if (--need === 0) return { index: i, offset: start + at + 1 };
      }
      end = start;
    }
  }
  return { index: 0, offset: 0 };
}

/** Reads one file's records in order, from an offset, keeping a line not yet complete for later. */
class Cursor {
  private pending = Buffer.alloc(0);
  private readonly buf = Buffer.allocUnsafe(CHUNK);

  constructor(
    readonly file: LogFile,
    private offset: number,
  ) {}

  /** The complete records from the offset up to `end` (default: the end of the file now). */
  async *records(end = Infinity): AsyncGenerator<LogEntry> {
    while (this.offset < end) {
      const got = await readAt(this.file.fd, this.buf.subarray(0, Math.min(CHUNK, end - this.offset)), this.offset);
      if (got === 0) return;
      const data = this.pending.length > 0 ? Buffer.concat([this.pending, this.buf.subarray(0, got)]) : this.buf.subarray(0, got);
      const base = this.offset - this.pending.length;
      this.offset += got;
      let start = 0;
      const entries: LogEntry[] = [];
      for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
        if (nl > start) entries.push(parseLogLine(this.file.name, base + start, data.toString('utf8', start, nl)));
        start = nl + 1;
      }
      // A copy: `data` may be this.buf, which the next read overwrites.
      this.pending = Buffer.from(data.subarray(start));
      yield* entries;
    }
  }
}

export interface ReadLogOptions {
  tail?: number;
  follow?: boolean;
  signal?: AbortSignal;
  /** While following: true once the writer is done (the container exited and its monitor wrote the exit file). */
  finished: () => Promise<boolean>;
  pollMs?: number;
  /** How many files the monitor keeps, the live one included (its --log-max-files); default 1. */
  maxFiles?: number;
}

/**
 * The entries of the log at `path` and its rotated files, oldest first: all, or the last `tail`;
 * with `follow`, then the new ones as they are written, until `finished()` and the log is read to
 * its end, or `signal` aborts. A missing log is an empty one. A trailing line without its newline
 * is left for later (the monitor writes whole records, so it is being written).
 *
 * Following goes through rotations: each poll, the live name is looked at before the file held
 * is read to its end; if the name is another file's, the one held was complete (renamed before
 * that look), and the files after it are listed (listLogFiles) and read in turn. A reader that
 * falls so far behind that its next file was removed (more than maxFiles-1 rotations in one poll,
 * or while it was reading) goes on from the oldest file left: those lines are lost, as with
 * Docker's json-file.
 */
export async function* readLog(path: string, opts: ReadLogOptions): AsyncGenerator<LogEntry> {
  const maxFiles = opts.maxFiles ?? 1;
  const pollMs = opts.pollMs ?? 50;
  const files = await listLogFiles(path, maxFiles);
  const held = new Set(files);
  try {
    const from = opts.tail === undefined ? { index: 0, offset: 0 } : await tailStart(files, Math.max(0, opts.tail));
    for (const f of files.slice(0, from.index)) {
      closeSync(f.fd);
      held.delete(f);
    }
    const rest = files.slice(from.index);
    if (opts.follow !== true) {
      for (const [i, f] of rest.entries()) yield* new Cursor(f, i === 0 ? from.offset : 0).records(f.size);
      return;
    }
    // Only the newest file listed can still grow: the others are read whole first.
    for (const [i, f] of rest.slice(0, -1).entries()) {
      yield* new Cursor(f, i === 0 ? from.offset : 0).records();
      closeSync(f.fd);
      held.delete(f);
    }
    let current = rest.length > 0 ? new Cursor(rest[rest.length - 1]!, rest.length === 1 ? from.offset : 0) : undefined;
    for (;;) {
      if (opts.signal?.aborted === true) return;
      // Read before the file: nothing written before it turned true is missed.
      const done = await opts.finished();
      const live = statOf(path);
      if (current !== undefined) yield* current.records();
      if (current === undefined ? live === undefined : sameFile(live, current.file)) {
        if (done) return;
        try {
          await sleep(pollMs, undefined, { signal: opts.signal });
        } catch {
          return; // aborted
        }
        continue;
      }
      // The file held is complete (or there was none): what comes after it.
      const listed = await listLogFiles(path, maxFiles);
      for (const f of listed) held.add(f);
      const anchor = current?.file;
      const at = anchor === undefined ? -1 : listed.findIndex((f) => sameFile(f, anchor));
      const newer = listed.slice(at + 1);
      for (const f of listed.slice(0, at + 1)) {
        closeSync(f.fd);
        held.delete(f);
      }
      if (newer.length === 0) {
        if (done) return;
        try {
          await sleep(pollMs, undefined, { signal: opts.signal });
        } catch {
          return;
        }
        continue;
      }
      // A line left incomplete at the end of a complete file is dropped: the monitor writes whole
      // records, so it is one whose write failed (the first error is in the exit file).
      if (current !== undefined) {
        closeSync(current.file.fd);
        held.delete(current.file);
      }
      for (const f of newer.slice(0, -1)) {
        yield* new Cursor(f, 0).records();
        closeSync(f.fd);
        held.delete(f);
      }
      current = new Cursor(newer[newer.length - 1]!, 0);
    }
  } finally {
    closeAll([...held]);
  }
}

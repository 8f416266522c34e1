// Reading a container's log: the JSON lines swarm-monitor writes (Docker's json-file format,
// {"log":"line\n","stream":"stdout","time":"2026-11-22T21:00:38.123456789Z"}).
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { CorruptFileError } from '../../common/errors.js';
import type { LogEntry } from './executor.js';

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

/** Complete lines of `buf` from the start, with their offsets (relative to `base`), and the bytes consumed. */
function splitLines(buf: Buffer, base: number): { lines: { offset: number; text: string }[]; used: number } {
  const lines: { offset: number; text: string }[] = [];
  let start = 0;
  for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
    if (nl > start) lines.push({ offset: base + start, text: buf.subarray(start, nl).toString('utf8') });
    start = nl + 1;
  }
  return { lines, used: start };
}

export interface ReadLogOptions {
  tail?: number;
  follow?: boolean;
  signal?: AbortSignal;
  /** While following: true once the writer is done (the container exited and its monitor wrote the exit file). */
  finished: () => Promise<boolean>;
  pollMs?: number;
}

/**
 * The entries of the log at `path`: all, or the last `tail`; with `follow`, then the new ones as
 * they are written, until `finished()` and the file is read to its end, or `signal` aborts. A
 * missing file is an empty log. A trailing line without its newline is left for later (the
 * monitor writes each record with one write, so it is being written).
 */
export async function* readLog(path: string, opts: ReadLogOptions): AsyncGenerator<LogEntry> {
  let offset = 0;
  let pending = Buffer.alloc(0);
  let first = true;
  const pollMs = opts.pollMs ?? 50;
  for (;;) {
    if (opts.signal?.aborted === true) return;
    // finished() is read before the file, so that nothing written before it turned true is missed.
    const done = opts.follow === true ? await opts.finished() : true;
    const size = await stat(path).then(
      (s) => s.size,
      () => 0,
    );
    if (size > offset) {
      const fh = await open(path, 'r');
      try {
        const chunk = Buffer.alloc(size - offset);
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, offset);
        const buf = Buffer.concat([pending, chunk.subarray(0, bytesRead)]);
        const base = offset - pending.length;
        const { lines, used } = splitLines(buf, base);
        pending = buf.subarray(used);
        offset += bytesRead;
        let entries = lines.map((l) => parseLogLine(path, l.offset, l.text));
        if (first && opts.tail !== undefined) entries = opts.tail <= 0 ? [] : entries.slice(-opts.tail);
        for (const e of entries) yield e;
      } finally {
        await fh.close();
      }
    }
    first = false;
    if (opts.follow !== true || (done && size <= offset)) return;
    try {
      await sleep(pollMs, undefined, { signal: opts.signal });
    } catch {
      return; // aborted
    }
  }
}

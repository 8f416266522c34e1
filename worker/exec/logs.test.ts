// readLog over rotated files: --tail across files, and following through rotations made the
// monitor's way (native/src/monitor.c, log_shift) — by a writer in this process whose every file
// operation may be separated from the next by the reader's turn, and by a writer in another
// process, for real concurrency with the reader's listing of the files.
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listLogFiles, logFileNames, readLog, type ReadLogOptions } from './logs.js';

const rec = (n: number | string, stream = 'stdout'): string => `${JSON.stringify({ log: `${n}\n`, stream, time: '2026-12-07T00:00:00.000000001Z' })}\n`;

let dir: string;
let log: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tswarm-logs-'));
  log = path.join(dir, 'c.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function collect(opts: Partial<ReadLogOptions> & { maxFiles: number }): Promise<string[]> {
  const out: string[] = [];
  for await (const e of readLog(log, { finished: () => Promise.resolve(true), ...opts })) out.push(e.log.trimEnd());
  return out;
}

const range = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

/** A small deterministic generator (mulberry32), for the writer's schedule. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The monitor's rotation, one file operation at a time: drop the oldest, shift the rest up, start a new live file. */
function rotationSteps(file: string, maxFiles: number): (() => void)[] {
  const name = (i: number): string => (i === 0 ? file : `${file}.${i}`);
  const gone = (f: () => void): void => {
    try {
      f();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  };
  if (maxFiles === 1) return [() => gone(() => unlinkSync(file)), () => writeFileSync(file, '')];
  const steps = [() => gone(() => unlinkSync(name(maxFiles - 1)))];
  for (let i = maxFiles - 1; i >= 1; i--) steps.push(() => gone(() => renameSync(name(i - 1), name(i))));
  steps.push(() => writeFileSync(file, ''));
  return steps;
}

/**
 * Writes records 1..count, `perFile` to a file, rotating as the monitor does; between any two
 * file operations (and within a record, which is written in two halves) it may yield to the
 * reader: not at all, for a turn of the event loop, or for a few milliseconds. A rotation that
 * removes a file waits until the reader has read that file's records (`read()` of them): else the
 * reader could lose them by being slow, which is not what is tested here.
 */
async function writeRotating(opts: { count: number; perFile: number; maxFiles: number; seed: number; read: () => number }): Promise<void> {
  const rnd = random(opts.seed);
  const pause = async (): Promise<void> => {
    const r = rnd();
    if (r < 0.5) return;
    if (r < 0.85) await new Promise((resolve) => setImmediate(resolve));
    else await sleep(1 + Math.floor(rnd() * 3));
  };
  writeFileSync(log, '');
  for (let i = 1; i <= opts.count; i++) {
    if (i > 1 && (i - 1) % opts.perFile === 0) {
      const removed = (i - 1) / opts.perFile - opts.maxFiles; // the files are numbered from 0
      while (removed >= 0 && opts.read() < (removed + 1) * opts.perFile) await sleep(1);
      for (const step of rotationSteps(log, opts.maxFiles)) {
        step();
        await pause();
      }
    }
    const r = rec(i);
    const cut = 1 + Math.floor(rnd() * (r.length - 1));
    appendFileSync(log, r.slice(0, cut));
    await pause();
    appendFileSync(log, r.slice(cut));
    await pause();
  }
}

describe('readLog over rotated files', () => {
  /** 30 records: 1-10 in .2, 11-20 in .1, 21-30 live, then a record being written. */
  function threeFiles(): void {
    writeFileSync(`${log}.2`, range(1, 10).map((n) => rec(n)).join(''));
    writeFileSync(`${log}.1`, range(11, 20).map((n) => rec(n, Number(n) % 2 ? 'stderr' : 'stdout')).join(''));
    writeFileSync(log, range(21, 30).map((n) => rec(n)).join('') + '{"log":"31\\n","str');
  }

  it('reads every file in order, and --tail N takes the last N lines over all of them', async () => {
    threeFiles();
    expect(await collect({ maxFiles: 3 })).toEqual(range(1, 30));
    expect(await collect({ maxFiles: 3, tail: 5 })).toEqual(range(26, 30));
    expect(await collect({ maxFiles: 3, tail: 10 })).toEqual(range(21, 30));
    expect(await collect({ maxFiles: 3, tail: 11 })).toEqual(range(20, 30));
    expect(await collect({ maxFiles: 3, tail: 25 })).toEqual(range(6, 30));
    expect(await collect({ maxFiles: 3, tail: 30 })).toEqual(range(1, 30));
    expect(await collect({ maxFiles: 3, tail: 1000 })).toEqual(range(1, 30));
    expect(await collect({ maxFiles: 3, tail: 0 })).toEqual([]);
    // Only the files of the bound are the log's: .2 is beyond two files.
    expect(await collect({ maxFiles: 2 })).toEqual(range(11, 30));
    expect(await collect({ maxFiles: 1, tail: 3 })).toEqual(range(28, 30));
  });

  it('takes a missing rotated file as it is (a rotation half-way: no gap in the content)', async () => {
    threeFiles();
    renameSync(`${log}.2`, `${log}.3`); // the oldest moved up, .2 not there yet
    expect(await collect({ maxFiles: 4, tail: 22 })).toEqual(range(9, 30));
    renameSync(`${log}.1`, `${log}.2`);
    expect(await collect({ maxFiles: 4 })).toEqual(range(1, 30));
  });

  it('reads a tail whose lines are long, through several chunks of every file', async () => {
    const long = (n: number): string => `${JSON.stringify({ log: `${n} ${'x'.repeat(30_000)}\n`, stream: 'stdout', time: 't' })}\n`;
    writeFileSync(`${log}.1`, [1, 2, 3, 4, 5].map(long).join(''));
    writeFileSync(log, [6, 7, 8].map(long).join(''));
    const got = async (tail: number): Promise<string[]> => (await collect({ maxFiles: 2, tail })).map((l) => l.split(' ')[0]!);
    expect(await got(2)).toEqual(['7', '8']);
    expect(await got(6)).toEqual(range(3, 8));
    expect(await got(100)).toEqual(range(1, 8));
  });

  for (const [maxFiles, seed] of [
    [3, 1],
    [3, 2],
    [2, 3],
    [1, 4],
    [5, 5],
  ] as const) {
    it(`follows through rotations made while it reads, without losing or repeating a line (${maxFiles} files, seed ${seed})`, async () => {
      let done = false;
      const out: string[] = [];
      const writer = writeRotating({ count: 800, perFile: 7, maxFiles, seed, read: () => out.length }).finally(() => (done = true));
      for await (const e of readLog(log, { follow: true, pollMs: 1, maxFiles, finished: () => Promise.resolve(done) })) out.push(e.log.trimEnd());
      await writer;
      expect(out.length).toBe(800);
      expect(out).toEqual(range(1, 800));
    });
  }

  it('follows with --tail from an earlier file', async () => {
    threeFiles();
    let done = false;
    const out: string[] = [];
    const reader = (async () => {
      for await (const e of readLog(log, { follow: true, tail: 12, pollMs: 1, maxFiles: 3, finished: () => Promise.resolve(done) })) out.push(e.log.trimEnd());
    })();
    await sleep(20);
    appendFileSync(log, 'eam":"stdout","time":"t"}\n'); // 31 complete
    for (const step of rotationSteps(log, 3)) step();
    appendFileSync(log, rec(32));
    await sleep(20);
    done = true;
    await reader;
    expect(out).toEqual(range(19, 32));
  });

  it('a reader that falls behind by more than the files kept goes on from the oldest file left, repeating nothing', async () => {
    writeFileSync(log, rec(1) + rec(2));
    let done = false;
    const out: string[] = [];
    const reader = readLog(log, { follow: true, pollMs: 1, maxFiles: 3, finished: () => Promise.resolve(done) });
    const first = await reader.next(); // it holds the first file
    if (first.done === true) throw new Error('no first record');
    out.push(first.value.log.trimEnd());
    // Ten rotations of 3 records each while the reader does not read.
    let n = 3;
    for (let r = 0; r < 10; r++) {
      for (const step of rotationSteps(log, 3)) step();
      for (let i = 0; i < 3; i++) appendFileSync(log, rec(n++));
    }
    done = true;
    for await (const e of reader) out.push(e.log.trimEnd());
    const nums = out.map(Number);
    expect(nums.slice(0, 2)).toEqual([1, 2]); // its file read to the end
    expect(nums.slice(2)).toEqual(range(n - 9, n - 1).map(Number)); // then the 3 files left
  });

  it('ends a follower without leaking its files when it is aborted, or when its consumer stops', async () => {
    writeFileSync(`${log}.1`, rec(1));
    writeFileSync(log, rec(2));
    const ac = new AbortController();
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    const out: string[] = [];
    setTimeout(() => ac.abort(), 30);
    for await (const e of readLog(log, { follow: true, pollMs: 5, maxFiles: 2, signal: ac.signal, finished: () => Promise.resolve(false) })) out.push(e.log.trimEnd());
    expect(out).toEqual(['1', '2']);
    for await (const _ of readLog(log, { follow: true, maxFiles: 2, finished: () => Promise.resolve(false) })) break;
    expect(fds()).toBe(before);
  });

  it('lists the files of one instant while another process rotates them as fast as it can', async () => {
    // The writer: each new live file holds one record, its sequence number; 5 files kept.
    const script = `
      const fs = require('node:fs');
      const [file, maxFiles] = [process.argv[1], Number(process.argv[2])];
      const name = (i) => (i === 0 ? file : file + '.' + i);
      const gone = (f) => { try { f(); } catch (e) { if (e.code !== 'ENOENT') throw e; } };
      fs.writeFileSync(file, '0\\n');
      for (let n = 1; !fs.existsSync(file + '.stop'); n++) {
        gone(() => fs.unlinkSync(name(maxFiles - 1)));
        for (let i = maxFiles - 1; i >= 1; i--) gone(() => fs.renameSync(name(i - 1), name(i)));
        fs.writeFileSync(file, n + '\\n');
      }`;
    const child = spawn(process.execPath, ['-e', script, log, '5'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 200 && !existsSync(`${log}.4`); i++) await sleep(5);
      // Bounded by counts, not time: a loaded CI machine lists and rotates slower, and what
      // matters is that many listings raced many rotations (20 s is only the guard).
      let listings = 0;
      const firsts = new Set<number>();
      const end = Date.now() + 20_000;
      while ((listings < 60 || firsts.size <= 10) && Date.now() < end) {
        const files = await listLogFiles(log, 5);
        const seqs = files.map((f) => Number(readFileSync(f.fd, 'utf8').trim() || 'NaN'));
        for (const f of files) closeSync(f.fd);
        // One instant's files: consecutive numbers, oldest first (the newest may still be empty).
        const known = seqs.filter((s) => !Number.isNaN(s));
        expect(known, `listing ${listings}: ${seqs.join(' ')}`).toEqual(known.map((_, i) => known[0]! + i));
        expect(files.length).toBeGreaterThanOrEqual(4);
        if (known.length > 0) firsts.add(known[0]!);
        listings++;
        await new Promise((r) => setImmediate(r));
      }
      expect(listings).toBeGreaterThanOrEqual(60);
      expect(firsts.size).toBeGreaterThan(10); // the writer rotated between listings
    } finally {
      writeFileSync(`${log}.stop`, '');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    }
  });

  it('names the log files as the monitor does', () => {
    expect(logFileNames('/l/c.json', 3)).toEqual(['/l/c.json', '/l/c.json.1', '/l/c.json.2']);
    expect(logFileNames('/l/c.json', 1)).toEqual(['/l/c.json']);
  });
});


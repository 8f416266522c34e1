// swarm-monitor with our runtime and with runc: the same container under both, its output in the
// JSON-lines log with timestamps and stream names, exit codes and signal exits in the exit file,
// the runtime's one-line error when create fails, and a monitor that outlives its caller. Then
// the log's rotation (--log-max-size, --log-max-files: sizes, file count, order, nothing lost or
// repeated, a line longer than the limit, one file), the none driver, and readLog following the
// log while the monitor rotates it.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readLog } from '../../worker/exec/logs.js';
import { REPO } from '../util/dist.js';
import { missingPrerequisites, Workspace, type Runtime } from './bundle.js';

const MONITOR = join(REPO, 'native/build/swarm-monitor');
const missing = missingPrerequisites();
if (!existsSync(MONITOR)) missing.push(`${MONITOR} (make -C native)`);
if (missing.length > 0) console.warn(`monitor tests skipped; missing: ${missing.join(', ')}`);

interface LogRecord {
  log: string;
  stream: string;
  time: string;
}
interface ExitRecord {
  exitCode: number;
  signal?: string;
  finishedAt: string;
  oomKilled: boolean;
  pid: number;
  createError?: string;
}

const RFC3339_NANO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;

describe.skipIf(missing.length > 0)('swarm-monitor', () => {
  let ws: Workspace;
  let n = 0;

  beforeAll(() => {
    ws = new Workspace();
  });

  afterEach(() => {
    expect(ws.cleanup()).toEqual([]);
  });

  afterAll(async () => {
    try {
      ws.cleanup();
      // A monitor exits once it has reaped its container and written the exit file.
      for (let i = 0; i < 100 && ws.leftovers().length > 0; i++) await sleep(50);
      expect(ws.leftovers()).toEqual([]);
    } finally {
      ws.remove();
    }
  });

  function files(): { log: string; exit: string; pid: string } {
    const i = ++n;
    return { log: join(ws.dir, `log-${i}.json`), exit: join(ws.dir, `exit-${i}.json`), pid: join(ws.dir, `pid-${i}`) };
  }

  function monitorArgs(rt: Runtime, bundle: string, id: string, f: ReturnType<typeof files>): string[] {
    const bin = rt.bin === 'runc' ? spawnSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).stdout.trim() : rt.bin;
    return ['--runtime', bin, '--runtime-root', rt.root, '--bundle', bundle, '--id', id, '--log', f.log, '--exit-file', f.exit, '--pid-file', f.pid];
  }

  /** Runs the monitor without --ready-fd: the first process relays the ready line. */
  function monitor(rt: Runtime, bundle: string, id: string, f: ReturnType<typeof files>, extra: string[] = []): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(MONITOR, [...monitorArgs(rt, bundle, id, f), ...extra], { encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  async function exitRecord(path: string): Promise<ExitRecord> {
    for (let i = 0; i < 200 && !existsSync(path); i++) await sleep(25);
    return JSON.parse(readFileSync(path, 'utf8')) as ExitRecord;
  }

  /** Runs `script` in a container under the monitor with `extra` flags, to its exit. */
  async function runToExit(script: string, extra: string[], f = files(), rt = ws.ours): Promise<{ f: ReturnType<typeof files>; exit: ExitRecord }> {
    const bundle = ws.bundle(['sh', '-c', script]);
    const id = ws.id(rt, 'rot');
    const m = monitor(rt, bundle, id, f, extra);
    expect(m.stderr).toBe('');
    expect(m.status).toBe(0);
    expect(ws.exec(rt, ['start', id]).status).toBe(0);
    const exit = await exitRecord(f.exit);
    expect(ws.exec(rt, ['delete', id]).status).toBe(0);
    return { f, exit };
  }

  /** The log's files, oldest first: FILE.N … FILE.1, FILE. */
  function rotated(log: string): string[] {
    const base = log.slice(log.lastIndexOf('/') + 1);
    const nums = readdirSync(ws.dir)
      .filter((n) => n.startsWith(`${base}.`))
      .map((n) => Number(n.slice(base.length + 1)))
      .sort((a, b) => b - a);
    return [...nums.map((n) => `${log}.${n}`), ...(existsSync(log) ? [log] : [])];
  }

  function logRecords(path: string): LogRecord[] {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as LogRecord);
  }

  for (const which of ['ours', 'runc'] as const) {
    describe(which, () => {
      const rt = (): Runtime => (which === 'ours' ? ws.ours : ws.runc);

      it('logs both streams as JSON lines with nanosecond timestamps and records the exit code', async () => {
        const script = 'echo out1; echo err1 >&2; printf "partial"; sleep 0.1; printf " q\\"t\\ttab\\n"; echo err2 >&2; exit 3';
        const bundle = ws.bundle(['sh', '-c', script]);
        const id = ws.id(rt(), 'mon');
        const f = files();
        const before = Date.now();
        const m = monitor(rt(), bundle, id, f);
        expect(m.stderr).toBe('');
        expect(m.status).toBe(0);
        const ready = JSON.parse(m.stdout) as { monitorPid: number; pid: number };
        expect(ready.pid).toBe(Number(readFileSync(f.pid, 'utf8')));
        // The monitor is a session leader of its own, and the init is its child (subreaper).
        const stat = readFileSync(`/proc/${ready.monitorPid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        expect(Number(stat[3])).toBe(ready.monitorPid); // session id
        expect(Number(readFileSync(`/proc/${ready.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1])).toBe(ready.monitorPid);
        expect(ws.state(rt(), id).status).toBe('created');
        expect(ws.exec(rt(), ['start', id]).status).toBe(0);

        const exit = await exitRecord(f.exit);
        expect(exit).toMatchObject({ exitCode: 3, oomKilled: false, pid: ready.pid });
        expect(exit.signal).toBeUndefined();
        expect(exit.finishedAt).toMatch(RFC3339_NANO);
        const logs = logRecords(f.log);
        expect(logs.map((l) => [l.stream, l.log])).toEqual([
          ['stdout', 'out1\n'],
          ['stderr', 'err1\n'],
          ['stdout', 'partial q"t\ttab\n'],
          ['stderr', 'err2\n'],
        ]);
        for (const l of logs) {
          expect(l.time).toMatch(RFC3339_NANO);
          expect(Date.parse(l.time)).toBeGreaterThanOrEqual(before - 1000);
        }
        // Docker's field order, one record per line
        expect(readFileSync(f.log, 'utf8').split('\n')[0]).toMatch(/^\{"log":"out1\\n","stream":"stdout","time":"[^"]+"\}$/);
        // the monitor is gone once the exit file is there
        for (let i = 0; i < 100 && existsSync(`/proc/${ready.monitorPid}/stat`) && !readFileSync(`/proc/${ready.monitorPid}/stat`, 'utf8').includes(') Z'); i++) await sleep(20);
        expect(ws.exec(rt(), ['delete', id]).status).toBe(0);
      });

      it('records a signal exit (SIGKILL: 137) and flushes a last line without a newline', async () => {
        const bundle = ws.bundle(['sh', '-c', 'printf "no newline"; exec sleep 1000']);
        const id = ws.id(rt(), 'sig');
        const f = files();
        expect(monitor(rt(), bundle, id, f).status).toBe(0);
        expect(ws.exec(rt(), ['start', id]).status).toBe(0);
        for (let i = 0; i < 100 && !existsSync(f.log); i++) await sleep(20);
        await sleep(200);
        expect(ws.exec(rt(), ['kill', id, 'KILL']).status).toBe(0);
        const exit = await exitRecord(f.exit);
        expect(exit).toMatchObject({ exitCode: 137, signal: 'SIGKILL' });
        expect(logRecords(f.log).map((l) => [l.stream, l.log])).toEqual([['stdout', 'no newline']]);
      });

      it("reports the runtime's one-line error when create fails, and writes it to the exit file", async () => {
        const bundle = ws.bundle(['no-such-program']);
        const id = ws.id(rt(), 'bad');
        const f = files();
        const m = monitor(rt(), bundle, id, f);
        expect(m.status).toBe(1);
        const err = (JSON.parse(m.stderr) as { error: string }).error;
        expect(err).toMatch(/no-such-program.*executable file not found in \$PATH/);
        expect(err).not.toMatch(/level=error/);
        expect(err.split('\n')).toHaveLength(1);
        const exit = await exitRecord(f.exit);
        expect(exit).toMatchObject({ exitCode: -1, createError: err });
        expect(existsSync(join(rt().root, id))).toBe(false);
      });
    });
  }

  it.each(['ours', 'runc'] as const)('gives a terminal container a pty and logs what it writes there as stdout (%s)', async (which) => {
    const rt = which === 'ours' ? ws.ours : ws.runc;
    const bundle = ws.bundle(['sh', '-c', 'tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-three-are-terminals; echo to-stderr >&2'], (c) => {
      c.process.terminal = true;
    });
    const id = ws.id(rt, 'tty');
    const f = files();
    const sock = join(ws.dir, `console-${n}.sock`);
    const r = spawnSync(MONITOR, [...monitorArgs(rt, bundle, id, f), '--console-socket', sock], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(existsSync(sock)).toBe(false); // removed once the terminal arrived
    expect(ws.exec(rt, ['start', id]).status).toBe(0);
    expect(await exitRecord(f.exit)).toMatchObject({ exitCode: 0 });
    const logs = logRecords(f.log);
    // Everything comes through the terminal (the line discipline turns \n into \r\n), as stdout.
    expect(logs.every((l) => l.stream === 'stdout')).toBe(true);
    expect(logs.map((l) => l.log)).toEqual([expect.stringMatching(/^\/dev\/pts\/\d+\r\n$/), 'all-three-are-terminals\r\n', 'to-stderr\r\n']);
  });

  it('answers on --ready-fd and keeps the container running after its caller is killed with -9', async () => {
    const rt = ws.ours;
    const bundle = ws.bundle(['sh', '-c', 'while true; do echo tick; sleep 0.05; done']);
    const id = ws.id(rt, 'orphan');
    const f = files();
    // The caller: a shell that runs the monitor with fd 3 as the ready pipe, then sleeps.
    const caller = spawn('sh', ['-c', `"$0" "$@" 3>&1 1>/dev/null; sleep 1000`, MONITOR, ...monitorArgs(rt, bundle, id, f), '--ready-fd', '3'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true, // its own process group: the kill below takes its sleep too
    });
    const killCaller = (): void => {
      try {
        process.kill(-caller.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    };
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        caller.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out);
        });
        caller.once('exit', () => reject(new Error(`caller exited: ${out}`)));
      });
      const ready = JSON.parse(line) as { monitorPid: number; pid: number };
      expect(ws.exec(rt, ['start', id]).status).toBe(0);
      const exited = new Promise((r) => caller.once('exit', r));
      killCaller();
      await exited;
      await sleep(300);
      expect(ws.state(rt, id).status).toBe('running');
      const ticks = logRecords(f.log).length;
      await sleep(300);
      expect(logRecords(f.log).length).toBeGreaterThan(ticks); // still logging
      expect(ws.exec(rt, ['kill', id, 'KILL']).status).toBe(0);
      expect(await exitRecord(f.exit)).toMatchObject({ exitCode: 137, signal: 'SIGKILL', pid: ready.pid });
    } finally {
      killCaller();
    }
  });

  describe('log rotation', () => {
    const PAD = 'x'.repeat(60);
    const lines = (from: number, to: number): string => `seq ${from} ${to} | sed 's/$/ ${PAD}/'`;

    it('rotates before a file would pass max-size, keeps max-files files, oldest renamed highest, nothing lost or repeated', async () => {
      const { f, exit } = await runToExit(lines(1, 2000), ['--log-max-size', '4096', '--log-max-files', '3']);
      expect(exit.exitCode).toBe(0);
      const all = rotated(f.log);
      expect(all).toEqual([`${f.log}.2`, `${f.log}.1`, f.log]);
      const records = all.map((p) => logRecords(p));
      const recordSize = (r: LogRecord): number => JSON.stringify(r).length + 1;
      for (const [i, p] of all.entries()) {
        expect(statSync(p).size).toBeLessThanOrEqual(4096);
        // A rotated file was rotated because the next record would not fit.
        if (i < all.length - 1) expect(statSync(p).size + recordSize(records[i + 1]![0]!)).toBeGreaterThan(4096);
      }
      const nums = records.flat().map((r) => Number(r.log.split(' ')[0]));
      expect(nums[nums.length - 1]).toBe(2000);
      expect(nums).toEqual(nums.map((_, i) => nums[0]! + i)); // consecutive, in order
      expect(nums.length).toBeGreaterThan(2 * Math.floor(4096 / recordSize(records[0]![0]!))); // two full files and the live one
      // What is read back through the executor's reader: the same lines, and the tail.
      const read = async (tail?: number): Promise<number[]> => {
        const out: number[] = [];
        for await (const e of readLog(f.log, { maxFiles: 3, finished: () => Promise.resolve(true), ...(tail !== undefined ? { tail } : {}) })) out.push(Number(e.log.split(' ')[0]));
        return out;
      };
      expect(await read()).toEqual(nums);
      expect(await read(5)).toEqual([1996, 1997, 1998, 1999, 2000]);
    });

    it('puts a line longer than max-size whole into a file of its own (as 16 KiB partial records, as Docker)', async () => {
      const { f } = await runToExit("echo before; head -c 20000 /dev/zero | tr '\\0' x; echo; echo after", ['--log-max-size', '4096', '--log-max-files', '3']);
      const all = rotated(f.log);
      expect(all).toEqual([`${f.log}.2`, `${f.log}.1`, f.log]);
      const [first, long, last] = all.map((p) => logRecords(p).map((r) => r.log));
      expect(first).toEqual(['before\n']);
      expect(long).toEqual(['x'.repeat(16384)]); // the partial record, without a newline
      expect(statSync(all[1]!).size).toBeGreaterThan(16384);
      expect(last).toEqual([`${'x'.repeat(20000 - 16384)}\n`, 'after\n']);
    });

    it('with one file, starts the file anew: only the last lines stay', async () => {
      const { f } = await runToExit(lines(1, 500), ['--log-max-size', '4096', '--log-max-files', '1']);
      expect(rotated(f.log)).toEqual([f.log]);
      expect(statSync(f.log).size).toBeLessThanOrEqual(4096);
      const nums = logRecords(f.log).map((r) => Number(r.log.split(' ')[0]));
      expect(nums[nums.length - 1]).toBe(500);
      expect(nums).toEqual(nums.map((_, i) => nums[0]! + i));
    });

    it('the none driver reads the output and drops it: no file, the container never blocks', async () => {
      const f = files();
      const bundle = ws.bundle(['sh', '-c', 'head -c 20000000 /dev/zero; echo done >&2; exit 5']);
      const id = ws.id(ws.ours, 'none');
      const args = monitorArgs(ws.ours, bundle, id, f);
      const i = args.indexOf('--log');
      args.splice(i, 2, '--log-driver', 'none');
      const m = spawnSync(MONITOR, args, { encoding: 'utf8', timeout: 30_000 });
      expect(m.stderr).toBe('');
      expect(m.status).toBe(0);
      expect(ws.exec(ws.ours, ['start', id]).status).toBe(0);
      expect(await exitRecord(f.exit)).toMatchObject({ exitCode: 5 });
      expect(readdirSync(ws.dir).filter((n) => n.startsWith(basename(f.log)))).toEqual([]); // nor a rotated one
      expect(ws.exec(ws.ours, ['delete', id]).status).toBe(0);
    });

    it("is followed by the executor's reader through every rotation, line for line", async () => {
      // 3000 lines of ~180-byte records at about 4000 lines/s: a rotation every ~90 ms, 4 files kept.
      const script = `i=0; while [ $i -lt 3000 ]; do echo "$i ${PAD}${PAD}"; i=$((i+1)); [ $((i % 20)) -eq 0 ] && usleep 5000; done; true`;
      const f = files();
      const bundle = ws.bundle(['sh', '-c', script]);
      const id = ws.id(ws.ours, 'follow');
      expect(monitor(ws.ours, bundle, id, f, ['--log-max-size', '65536', '--log-max-files', '4']).status).toBe(0);
      const out: number[] = [];
      const ac = new AbortController();
      const reading = (async () => {
        for await (const e of readLog(f.log, { follow: true, pollMs: 5, maxFiles: 4, signal: ac.signal, finished: () => Promise.resolve(existsSync(f.exit)) })) out.push(Number(e.log.split(' ')[0]));
      })();
      try {
        expect(ws.exec(ws.ours, ['start', id]).status).toBe(0);
        expect(await exitRecord(f.exit)).toMatchObject({ exitCode: 0 });
        await reading;
      } finally {
        ac.abort();
      }
      expect(rotated(f.log).length).toBe(4); // it did rotate (and drop files)
      expect(out.length).toBe(3000);
      expect(out).toEqual(out.map((_, i) => i));
      expect(ws.exec(ws.ours, ['delete', id]).status).toBe(0);
    }, 30_000);
  });

  it('refuses bad usage with exit code 2', () => {
    const r = spawnSync(MONITOR, ['--runtime', '/bin/true'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^swarm-monitor: --runtime, --bundle, --id and --exit-file are required/);
    const base = ['--runtime', '/bin/true', '--bundle', '/b', '--id', 'x', '--exit-file', '/e'];
    const refused = (args: string[]): string => {
      const x = spawnSync(MONITOR, [...base, ...args], { encoding: 'utf8' });
      expect(x.status).toBe(2);
      return x.stderr.split('\n')[0]!;
    };
    expect(refused([])).toBe('swarm-monitor: --log FILE is required (or --log-driver none)');
    expect(refused(['--log-driver', 'none', '--log', '/l'])).toBe('swarm-monitor: --log-driver none writes no log: --log and --log-max-* are not taken');
    expect(refused(['--log-driver', 'syslog'])).toBe('swarm-monitor: --log-driver: json-file or none');
    expect(refused(['--log', '/l', '--log-max-files', '3'])).toBe('swarm-monitor: --log-max-files needs --log-max-size');
    expect(refused(['--log', '/l', '--log-max-size', '0'])).toBe('swarm-monitor: --log-max-size: a number of bytes, 1 or more');
    expect(refused(['--log', '/l', '--log-max-size', '10m'])).toBe('swarm-monitor: --log-max-size: a number of bytes, 1 or more');
    expect(refused(['--log', '/l', '--log-max-size', '1', '--log-max-files', '101'])).toBe('swarm-monitor: --log-max-files: a whole number from 1 to 100');
  });
});

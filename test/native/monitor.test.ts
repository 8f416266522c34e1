// swarm-monitor with our runtime and with runc: the same container under both, its output in the
// JSON-lines log with timestamps and stream names, exit codes and signal exits in the exit file,
// the runtime's one-line error when create fails, and a monitor that outlives its caller.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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
  function monitor(rt: Runtime, bundle: string, id: string, f: ReturnType<typeof files>): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(MONITOR, monitorArgs(rt, bundle, id, f), { encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  async function exitRecord(path: string): Promise<ExitRecord> {
    for (let i = 0; i < 200 && !existsSync(path); i++) await sleep(25);
    return JSON.parse(readFileSync(path, 'utf8')) as ExitRecord;
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

  // swarm-runtime takes --console-socket once it makes terminals; runc does today.
  it('gives a terminal container a pty and logs what it writes there as stdout (runc)', async () => {
    const rt = ws.runc;
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

  it('refuses bad usage with exit code 2', () => {
    const r = spawnSync(MONITOR, ['--runtime', '/bin/true'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^swarm-monitor: --runtime, --bundle, --id, --log and --exit-file are required/);
  });
});

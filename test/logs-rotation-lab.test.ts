// Bounded logs on lab hosts (one manager, drained, and one worker; real containers, swarmd from
// dist/): a container that writes 100 MB under --log-opt max-size=1m --log-opt max-file=3 keeps
// at most 3 MiB of log on its node at every moment, and `swarmctl service logs` returns its
// last lines (--tail) and the whole bounded log, consecutive, across the rotated files; `-f`
// follows a log through its rotations without losing or repeating a line.
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabCluster, until } from './lab/cluster.js';
import { dist } from './util/dist.js';

const MiB = 1024 * 1024;
/** 990 characters: each numbered line is about 1 KB, its record about 1.07 KB. */
const PAD = 'p'.repeat(990);

/** The last `n` bytes of a file ('' when it is missing: between a rotation's rename and its new file). */
function tailOf(file: string, n: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(n, size));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** `service logs` output lines without their prefix ("flood.1.xxxx@w1 | "). */
const bodies = (out: string): string[] =>
  out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(l.indexOf(' | ') + 3));

describe('bounded logs', () => {
  let c: LabCluster;

  beforeAll(async () => {
    c = await LabCluster.create({ managers: 1, workers: 1, heartbeatPeriod: '1s' });
  }, 120_000);

  afterAll(async () => {
    if (c) await c.destroy();
  }, 120_000);

  /** The worker's log directory, as seen from outside its host. */
  const logDir = (): string => join(c.host('w1').stateDir, 'exec', 'logs');

  /** The task's log files and their sizes (a file may be renamed or removed while listed). */
  function logFiles(taskId: string): { name: string; size: number }[] {
    if (!existsSync(logDir())) return [];
    const out: { name: string; size: number }[] = [];
    for (const name of readdirSync(logDir()).filter((n) => n.startsWith(`${taskId}.json`))) {
      try {
        out.push({ name, size: statSync(join(logDir(), name)).size });
      } catch {
        // rotated away meanwhile
      }
    }
    return out;
  }

  it('keeps a container writing 100 MB within max-size=1m x max-file=3, and --tail shows its last lines', async () => {
    // The disk use of the task's log files, sampled every ~2 ms from before the service exists
    // until the last line is in the live file; and when the first and the last bytes came.
    let id = '';
    let most = 0;
    let mostFiles = 0;
    let samples = 0;
    let firstByte = 0;
    let lastLine = 0;
    const sampler = (async () => {
      const end = Date.now() + 40_000;
      while (lastLine === 0 && Date.now() < end) {
        if (id !== '') {
          const files = logFiles(id);
          const total = files.reduce((sum, f) => sum + f.size, 0);
          most = Math.max(most, total);
          mostFiles = Math.max(mostFiles, files.length);
          samples++;
          if (firstByte === 0 && total > 0) firstByte = Date.now();
          if (tailOf(join(logDir(), `${id}.json`), 200).includes('"log":"END\\n"')) lastLine = Date.now();
        }
        await sleep(2);
      }
    })();
    // The container waits a little, so that the sampler knows the task's id before it writes.
    const script = `sleep 1; seq 1 100000 | sed 's/$/ ${PAD}/'; echo END; exec sleep 3600`;
    await c.ok('m1', 'service', 'create', '--name', 'flood', '--detach', '--stop-signal', 'SIGKILL', '--image', c.image, '--log-driver', 'json-file', '--log-opt', 'max-size=1m', '--log-opt', 'max-file=3', '--', 'sh', '-c', script);
    id = (await until('the task on w1', async () => (await c.tasks('flood')).find((t) => t.nodeId !== '')?.id))!;
    await sampler;
    expect(lastLine, 'the last line written within 40 s').toBeGreaterThan(0);
    const wrote = lastLine - firstByte;
    // The monitor's CPU for the 100 MB (it is still running: the container sleeps).
    // A figure, not a check (best effort: "?" when the process is not found).
    const monitor = (await c.host('w1').exec('sh', ['-c', `pgrep -f "swarm-monitor .*--id ${id}" | head -1`])).stdout.trim();
    let cpu = '?';
    try {
      const stat = readFileSync(`/proc/${monitor}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpu = ((Number(fields[11]) + Number(fields[12])) / 100).toFixed(2); // utime + stime, in clock ticks of 10 ms
    } catch {
      // gone, or not found
    }

    const files = logFiles(id);
    expect(files.map((f) => f.name).sort()).toEqual([`${id}.json`, `${id}.json.1`, `${id}.json.2`]);
    for (const f of files) expect(f.size).toBeLessThanOrEqual(MiB);
    expect(most).toBeLessThanOrEqual(3 * MiB);
    expect(mostFiles).toBeLessThanOrEqual(3);

    // --tail: the last lines written, from the live file and across the rotated ones.
    const t5 = await c.ctl('m1', 'service', 'logs', 'flood', '--tail', '5');
    expect(t5.code, t5.stderr).toBe(0);
    expect(bodies(t5.stdout)).toEqual([...[99997, 99998, 99999, 100000].map((n) => `${n} ${PAD}`), 'END']);
    const t2500 = await c.ctl('m1', 'service', 'logs', 'flood', '--tail', '2500');
    expect(t2500.code, t2500.stderr).toBe(0);
    const last = bodies(t2500.stdout);
    expect(last.length).toBe(2500);
    expect(last.slice(0, -1)).toEqual(Array.from({ length: 2499 }, (_, i) => `${100000 - 2498 + i} ${PAD}`));
    // The whole log: every line the bound keeps, consecutive, ending with the last.
    const whole = await c.ctl('m1', 'service', 'logs', 'flood', '--no-task-ids');
    expect(whole.code, whole.stderr).toBe(0);
    const nums = bodies(whole.stdout).slice(0, -1).map((l) => Number(l.split(' ')[0]));
    expect(nums[nums.length - 1]).toBe(100000);
    expect(nums).toEqual(nums.map((_, i) => nums[0]! + i));
    expect(nums.length).toBeGreaterThan(2 * 900); // two full files at least
    console.log(
      `100 MB under 1m x 3: written and rotated in ${wrote} ms from its first byte to its last (monitor CPU ${cpu} s); ` +
        `log at most ${(most / MiB).toFixed(2)} MiB in ${mostFiles} files over ${samples} samples; the service logs keep ${nums.length} lines`,
    );
    await c.ok('m1', 'service', 'rm', 'flood');
    await until('the log removed with the task', () => Promise.resolve(logFiles(id).length === 0 ? true : undefined), 30_000);
  }, 60_000);

  it('-f follows a log through its rotations without losing or repeating a line', async () => {
    // 4000 lines (records of ~230 bytes, 920 KB) at about 4000 lines/s after a pause: a rotation
    // every ~70 ms under max-size=64k, 5 files kept.
    const script = `sleep 2; i=0; while [ $i -lt 4000 ]; do echo "$i ${PAD.slice(0, 150)}"; i=$((i+1)); [ $((i % 20)) -eq 0 ] && usleep 5000; done; echo END; exec sleep 3600`;
    await c.ok('m1', 'service', 'create', '--name', 'ticker', '--stop-signal', 'SIGKILL', '--image', c.image, '--log-opt', 'max-size=64k', '--log-opt', 'max-file=5', '--', 'sh', '-c', script);
    const [task] = await c.converged('ticker', 1);
    let child: ChildProcess | undefined;
    try {
      child = c.host('m1').spawnInside(process.execPath, [dist('cli/swarmctl.js'), 'service', 'logs', '-f', 'ticker'], {}, ['ignore', 'pipe', 'pipe']);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child!.once('close', (code) => resolve(code)));
      await until('END', () => Promise.resolve(stdout.includes('| END\n') ? true : undefined), 40_000, () => stderr + stdout.slice(-300));
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(stderr).toBe('');
      const got = bodies(stdout);
      expect(got.length).toBe(4001);
      expect(got.slice(0, -1).map((l) => Number(l.split(' ')[0]))).toEqual(Array.from({ length: 4000 }, (_, i) => i));
      expect(got[4000]).toBe('END');
      // It was rotated under the follower (and its oldest files dropped).
      expect(logFiles(task!.id).length).toBe(5);
    } finally {
      child?.kill('SIGKILL');
    }
    await c.ok('m1', 'service', 'rm', 'ticker');
    await until('the log removed with the task', () => Promise.resolve(logFiles(task!.id).length === 0 ? true : undefined), 30_000);
  }, 60_000);
});

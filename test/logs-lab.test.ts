// `swarmctl service logs` / `task logs` on lab hosts with real containers: two managers (drained)
// and two workers; a service whose containers print numbered lines on stdout and, every fifth
// line, on stderr.
// - every task's lines, in order, with Docker's prefixes (service.slot.task@node), stdout and
//   stderr apart, from both workers; --tail N per task; --timestamps and --no-task-ids, through
//   the follower (the stream proxied to the leader) and over TCP with a manager's certificate;
// - a log of 100 000 lines arrives complete and in order (and how long it takes);
// - -f streams new lines, takes in tasks that start later (a scale-up) and ends cleanly on SIGINT;
// - bad input: an unknown service, --tail -3; a worker's certificate is refused;
// - a worker's swarmd killed with -9: the command returns within seconds with one warning line
//   naming the node, and exits 1 when nothing at all could be shown (`task logs` of its task).
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning, LabCluster, until, type TaskJson } from './lab/cluster.js';
import { dist } from './util/dist.js';

const SCRIPT = 'i=0; while true; do echo line $i; [ $((i % 5)) -eq 0 ] && echo oops $i >&2; i=$((i+1)); sleep 0.2; done';
const LINE = /^(talk)\.(\d+)\.([a-z0-9]{12})@(\w+) \| (line|oops) (\d+)$/;

interface Parsed {
  slot: number;
  task: string;
  node: string;
  kind: string;
  n: number;
}

function parse(text: string): Parsed[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = LINE.exec(l);
      if (!m) throw new Error(`not a log line: ${JSON.stringify(l)}`);
      return { slot: Number(m[2]), task: m[3]!, node: m[4]!, kind: m[5]!, n: Number(m[6]) };
    });
}

/** Lines by task (12-character id). */
function byTask(lines: Parsed[]): Map<string, Parsed[]> {
  const out = new Map<string, Parsed[]>();
  for (const l of lines) out.set(l.task, [...(out.get(l.task) ?? []), l]);
  return out;
}

describe('service logs', () => {
  let c: LabCluster;
  let follower = 'm2';
  let tasks: TaskJson[] = [];

  beforeAll(async () => {
    c = await LabCluster.create({ managers: 2, workers: 2, heartbeatPeriod: '1s' });
    await c.ok('m1', 'service', 'create', '--name', 'talk', '--image', c.image, '--replicas', '4', '--', 'sh', '-c', SCRIPT);
    tasks = await c.converged('talk', 4);
    follower = (await c.leader()) === 'm1' ? 'm2' : 'm1';
    // Some lines to read.
    await new Promise((r) => setTimeout(r, 1_500));
  }, 240_000);

  afterAll(async () => {
    if (c) await c.destroy();
  }, 120_000);

  /** The expected prefix parts of each running task: 12-character id → slot and hostname. */
  async function expected(): Promise<Map<string, { slot: number; node: string }>> {
    const out = new Map<string, { slot: number; node: string }>();
    for (const t of tasks) out.set(t.id.slice(0, 12), { slot: t.slot, node: (await c.hostOf(t.nodeId))! });
    return out;
  }

  it("shows every task's lines in order, with Docker's prefixes, stdout and stderr apart, from both workers", async () => {
    const r = await c.ctl('m1', 'service', 'logs', 'talk');
    expect(r.code, r.stderr).toBe(0);
    const out = parse(r.stdout);
    const err = parse(r.stderr);
    expect(out.every((l) => l.kind === 'line')).toBe(true);
    expect(err.every((l) => l.kind === 'oops' && l.n % 5 === 0)).toBe(true);
    const want = await expected();
    const seen = byTask(out);
    expect([...seen.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [task, lines] of seen) {
      expect(lines.every((l) => l.slot === want.get(task)!.slot && l.node === want.get(task)!.node)).toBe(true);
      // The whole log from its first line, in order.
      expect(lines.map((l) => l.n)).toEqual(lines.map((_, i) => i));
      expect(lines.length).toBeGreaterThanOrEqual(5);
    }
    expect(new Set(out.map((l) => l.node))).toEqual(new Set(['w1', 'w2']));
    expect(new Set(err.map((l) => l.task))).toEqual(new Set(want.keys()));
  });

  it('--tail 2 gives the last 2 lines of each task', async () => {
    const r = await c.ctl('m1', 'service', 'logs', 'talk', '--tail', '2');
    expect(r.code, r.stderr).toBe(0);
    const all = [...parse(r.stdout), ...parse(r.stderr)];
    const seen = byTask(all);
    expect(seen.size).toBe(4);
    for (const lines of seen.values()) expect(lines.length).toBe(2);
  });

  it('works through the follower, with --timestamps and --no-task-ids, and over TCP with a certificate', async () => {
    const r = await c.ctl(follower, 'service', 'logs', 'talk', '--tail', '3', '--timestamps', '--no-task-ids');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const l of lines) expect(l).toMatch(/^talk\.\d+@w[12] \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line \d+$/);

    const t = await c.ctl(follower, '--host', c.addr('m1'), '--cert-dir', '/var/lib/tswarm/certs', 'service', 'logs', 'talk', '--tail', '1');
    expect(t.code, t.stderr).toBe(0);
    expect(byTask([...parse(t.stdout), ...parse(t.stderr)]).size).toBe(4);
  });

  it('task logs shows one task', async () => {
    const task = tasks[0]!;
    const r = await c.ctl('m1', 'task', 'logs', task.id, '--tail', '4');
    expect(r.code, r.stderr).toBe(0);
    const all = [...parse(r.stdout), ...parse(r.stderr)];
    expect(all.length).toBe(4);
    expect(new Set(all.map((l) => l.task))).toEqual(new Set([task.id.slice(0, 12)]));
  });

  it('refuses an unknown service and a negative --tail, naming them', async () => {
    const a = await c.ctl('m1', 'service', 'logs', 'nosuch');
    expect(a.code).toBe(1);
    expect(a.stderr).toBe('swarmctl: service nosuch not found\n');
    const b = await c.ctl('m1', 'service', 'logs', 'talk', '--tail', '-3');
    expect(b.code).toBe(2);
    expect(b.stderr).toBe('swarmctl: --tail: "-3" must be a whole number, 0 or more, or "all"\n');
    // A worker's certificate may not read logs (only managers and the local socket).
    const w = await c.ctl('w1', '--host', c.addr('m1'), '--cert-dir', '/var/lib/tswarm/certs', 'service', 'logs', 'talk');
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/^swarmctl: node \w+ is a worker; only managers may call the control API\n$/);
  });

  it('delivers a log of 100 000 lines complete and in order', async () => {
    await c.ok('m1', 'service', 'create', '--name', 'big', '--image', c.image, '--replicas', '1', '--', 'sh', '-c', 'seq 1 100000; sleep 3600');
    await c.converged('big', 1);
    await until('the whole log written', async () => ((await c.ok('m1', 'service', 'logs', 'big', '--tail', '1')).endsWith('| 100000\n') ? true : undefined), 30_000);
    const started = Date.now();
    const r = await c.ctl(follower, 'service', 'logs', 'big', '--no-task-ids');
    const ms = Date.now() - started;
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines.length).toBe(100_000);
    expect(lines.every((l, i) => l === `big.1@${lines[0]!.split('@')[1]!.split(' ')[0]} | ${i + 1}`)).toBe(true);
    console.log(`service logs through the follower: 100000 lines in ${ms} ms (${Math.round(100_000 / (ms / 1000))} lines/s, CLI start included)`);
    await c.ok('m1', 'service', 'rm', 'big');
  }, 120_000);

  it('-f streams new lines, takes in tasks that start later, and ends cleanly on SIGINT', async () => {
    let child: ChildProcess | undefined;
    try {
      child = c.host(follower).spawnInside(process.execPath, [dist('cli/swarmctl.js'), 'service', 'logs', '-f', '--tail', '0', 'talk'], {}, ['ignore', 'pipe', 'pipe']);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child!.once('close', (code) => resolve(code)));
      const complete = (): Parsed[] => parse(stdout.slice(0, stdout.lastIndexOf('\n') + 1));
      // New lines of the 4 tasks as they are written (tail 0: none of the earlier ones).
      await until('lines of the 4 tasks', () => Promise.resolve(byTask(complete()).size === 4 ? true : undefined), 20_000, () => stdout + stderr);
      const first = byTask(complete());
      for (const lines of first.values()) expect(lines[0]!.n).toBeGreaterThan(0);

      await c.ok('m1', 'service', 'scale', 'talk=6', '--detach');
      const all = await until('lines of 6 tasks', () => Promise.resolve(byTask(complete()).size === 6 ? byTask(complete()) : undefined), 60_000, () => stdout + stderr);
      // The new tasks' logs from their first line.
      const fresh = [...all].filter(([id]) => !first.has(id));
      expect(fresh.length).toBe(2);
      for (const [, lines] of fresh) expect(lines[0]!.n).toBe(0);

      const before = Date.now();
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(Date.now() - before).toBeLessThan(5_000);
      expect(stderr.replace(/^(talk\.\S+ \| oops \d+\n)*/, '')).toBe('');
    } finally {
      child?.kill('SIGKILL');
    }
    tasks = await c.converged('talk', 6);
  }, 120_000);

  it('reports a worker whose swarmd was killed (-9) instead of hanging, and exits 1 when nothing could be shown', async () => {
    const onW2 = tasks.filter((t) => isRunning(t) && t.nodeId === c.nodeIds.get('w2'));
    expect(onW2.length).toBeGreaterThan(0);
    const w2 = c.nodeIds.get('w2')!;
    await c.kill9('w2');

    const started = Date.now();
    const r = await c.ctl('m1', 'service', 'logs', 'talk', '--tail', '1');
    const took = Date.now() - started;
    expect(r.code, r.stderr).toBe(0);
    expect(took).toBeLessThan(12_000);
    console.log(`service logs with a worker killed: returned in ${took} ms`);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning:'));
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toMatch(new RegExp(`^warning: node w2 \\(${w2}\\) (is down|did not answer)[^:]*: logs of \\d+ tasks? unavailable$`));
    const shown = parse(r.stdout);
    expect(shown.length).toBeGreaterThan(0);
    expect(new Set(shown.map((l) => l.node))).toEqual(new Set(['w1']));

    const t = await c.ctl('m1', 'task', 'logs', onW2[0]!.id);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(new RegExp(`^warning: node w2 \\(${w2}\\) [^\\n]*: logs of 1 task unavailable\\nswarmctl: no logs of task ${onW2[0]!.id} could be shown: node w2 unavailable\\n$`));
  }, 60_000);
});

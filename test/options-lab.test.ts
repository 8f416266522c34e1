// Every option a service asks for is in force inside its container, checked from inside real
// containers on a lab worker: the probes of test/options/fields.ts run in the containers of a few
// services (each carrying many options) and print what the container sees; the options whose
// effect shows over time (stop signal and grace period, init, healthcheck timing, --force,
// labels, a terminal) have tests of their own here. test/options/guard.test.ts checks that every
// TaskSpec field has an entry in fields.ts, so none goes untested.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning, LabCluster, RUNTIME, until, type TaskJson } from './lab/cluster.js';
import { HOST_STATE_MOUNT } from './lab/lab.js';
import { EXTRA_PROBES, FIELDS, PROBE_FLAGS, type Probe, type ProbeService } from './options/fields.js';

const SERVICES: ProbeService[] = ['root', 'user', 'init'];

/** Every probe to run inside, keyed by what it checks. */
const PROBES: [string, Probe][] = [
  ...Object.entries(FIELDS).flatMap(([field, c]): [string, Probe][] => ('inside' in c ? [[field, c.inside]] : [])),
  ...Object.entries(EXTRA_PROBES),
];

/** The service's command: each probe's output between markers, then sleep. */
function script(service: ProbeService): string {
  // $(...) drops the trailing newlines and printf ends the output with exactly one.
  const parts = PROBES.filter(([, p]) => p.service === service).map(([key, p]) => `echo "@@${key}"; printf '%s\\n' "$( { ${p.sh}; } 2>&1 )"`);
  return `${parts.join('; ')}; echo "@@done"; exec sleep 600`;
}

/** The sections of a probe service's output, by key. */
function sections(lines: string[]): Map<string, string> {
  const out = new Map<string, string>();
  let key: string | undefined;
  let body: string[] = [];
  for (const line of lines) {
    if (line.startsWith('@@')) {
      if (key !== undefined) out.set(key, body.join('\n'));
      key = line.slice(2);
      body = [];
    } else body.push(line);
  }
  return out;
}

describe('options in force inside containers', () => {
  let c: LabCluster;
  const seen = new Map<ProbeService, Map<string, string>>();

  const logLines = async (service: string): Promise<string[]> =>
    (await c.ok('m1', 'service', 'logs', service, '--no-task-ids'))
      .split('\n')
      .filter((l) => l.includes(' | '))
      .map((l) => l.slice(l.indexOf(' | ') + 3));

  const running = async (service: string): Promise<TaskJson> => (await c.converged(service, 1, 90_000))[0]!;

  beforeAll(async () => {
    c = await LabCluster.create({ managers: 1, workers: 1, swarmdArgs: ['--bridge', 'tsw0:172.31.0.0/16'] });
    const m1 = c.host('m1');
    writeFileSync(join(m1.stateDir, 'pw.txt'), 'hunter2');
    writeFileSync(join(m1.stateDir, 'probe.conf'), 'probe = 1\n');
    await c.ok('m1', 'secret', 'create', 'probe-pw', `${HOST_STATE_MOUNT}/pw.txt`);
    await c.ok('m1', 'config', 'create', 'probe-conf', `${HOST_STATE_MOUNT}/probe.conf`);
    mkdirSync(join(c.host('w1').stateDir, 'probe-bind'));
    writeFileSync(join(c.host('w1').stateDir, 'probe-bind', 'file'), 'from-the-host\n');
    const ctx = { bindDir: `${HOST_STATE_MOUNT}/probe-bind` };
    for (const s of SERVICES) {
      const extra = s === 'root' ? ['--container-label', 'tier=probe'] : [];
      await c.ok('m1', 'service', 'create', '--detach', '--name', `opt-${s}`, '--image', c.image, ...PROBE_FLAGS[s](ctx), ...extra, ...(s === 'root' ? ['--', script(s)] : ['--', 'sh', '-c', script(s)]));
    }
    for (const s of SERVICES) {
      await running(`opt-${s}`);
      const lines = await until(`the probes of opt-${s} to finish`, async () => {
        const l = await logLines(`opt-${s}`);
        return l.includes('@@done') ? l : undefined;
      }, 30_000);
      seen.set(s, sections(lines));
    }
  }, 240_000);

  afterAll(async () => {
    if (c) await c.destroy();
  }, 120_000);

  it.each(PROBES)('%s', (key, probe) => {
    const out = seen.get(probe.service)?.get(key);
    expect(out, `no output for ${key}`).toBeDefined();
    expect(out).toMatch(probe.expect);
  });

  it("puts the service's container labels and Docker's swarm labels on the container", async () => {
    const t = await running('opt-root');
    const state = JSON.parse((await c.host('w1').exec(RUNTIME, ['state', t.id])).stdout) as { annotations: Record<string, string> };
    expect(state.annotations).toMatchObject({
      tier: 'probe',
      'com.docker.swarm.service.name': 'opt-root',
      'com.docker.swarm.service.id': t.serviceId,
      'com.docker.swarm.task.id': t.id,
      'com.docker.swarm.task.name': `opt-root.1.${t.id}`,
      'com.docker.swarm.node.id': t.nodeId,
    });
  });

  it('writes what the volume held on the host', async () => {
    const r = await c.host('w1').exec('sh', ['-c', `cat ${HOST_STATE_MOUNT}/exec/volumes/probevol/_data/from-the-container`]);
    expect(r.stdout).toBe('written\n');
  });

  it('stops with the stop signal through the init, then SIGKILL once the grace period is over', async () => {
    // The signal reaches the program through the init; the program ignores it, so SIGKILL ends it
    // after the 2 s grace period (not Docker's 10 s default).
    const prog = "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done";
    await c.ok('m1', 'service', 'create', '--name', 'stopper', '--image', c.image, '--init', '--stop-signal', 'usr1', '--stop-grace-period', '2s', '--', 'sh', '-c', prog);
    const t = await running('stopper');
    await until('the program to be ready', async () => ((await logLines('stopper')).includes('ready') ? true : undefined));
    const started = Date.now();
    await c.ok('m1', 'service', 'scale', 'stopper=0');
    const took = Date.now() - started;
    const after = (await c.tasks('stopper')).find((x) => x.id === t.id) as TaskJson & { status?: { container?: { exitCode?: number } } };
    expect(after.status?.state).toBe('TASK_STATE_SHUTDOWN');
    expect(after.status?.container?.exitCode).toBe(137);
    expect(await logLines('stopper')).toContain('got-usr1');
    expect(took).toBeGreaterThanOrEqual(2_000);
    expect(took).toBeLessThan(9_000);
    await c.ok('m1', 'service', 'rm', 'stopper');
  }, 60_000);

  it('runs the init as PID 1: it forwards signals, reaps zombies and exits with the status of its child', async () => {
    // Orphans re-parented to PID 1 are reaped: none is left a zombie.
    const t = await running('opt-init');
    const orphans = await c.host('w1').exec(RUNTIME, ['exec', t.id, 'sh', '-c', "(busybox sleep 0.2 &); (busybox sleep 0.2 &); busybox sleep 1; busybox grep -l '^State:.Z' /proc/[0-9]*/status | busybox wc -l"]);
    expect(orphans.stdout.trim()).toBe('0');
    // Its exit status is the child's.
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'init-exit', '--image', c.image, '--init', '--mode', 'replicated-job', '--', 'sh', '-c', 'exit 3');
    const [done] = await until('the job to fail', async () => {
      const ts = (await c.tasks('init-exit')).filter((x) => x.status?.state === 'TASK_STATE_FAILED');
      return ts.length > 0 ? ts : undefined;
    }, 60_000);
    expect(done!.status?.message).toBe('exit code 3');
    await c.ok('m1', 'service', 'rm', 'init-exit');
  }, 90_000);

  it('fails a healthcheck that outlasts its timeout', async () => {
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'slowcheck', '--image', c.image, '--health-cmd', 'sleep 5', '--health-timeout', '300ms', '--health-interval', '500ms', '--health-retries', '1', '--restart-condition', 'none', '--', 'sleep', '600');
    const [t] = await until('the task to fail its healthcheck', async () => {
      const ts = (await c.tasks('slowcheck')).filter((x) => x.status?.state === 'TASK_STATE_FAILED');
      return ts.length > 0 ? ts : undefined;
    }, 60_000);
    expect(t!.status?.err).toBe('healthcheck failed 1 times in a row: timed out after 300 ms');
    await c.ok('m1', 'service', 'rm', 'slowcheck');
  }, 90_000);

  it('checks every start interval during the start period, and counts no failure there', async () => {
    // Failing checks every 200 ms for the 6 s start period do not count; after it, the first
    // failure (retries 1) fails the task; the interval outside the start period is 1 s. A task
    // whose check has not passed yet is STARTING, not RUNNING (as Docker's swarm: it serves no VIP).
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'startcheck', '--image', c.image, '--health-cmd', 'echo x >> /tmp/checks; false', '--health-start-period', '6s', '--health-start-interval', '200ms', '--health-interval', '1s', '--health-retries', '1', '--restart-condition', 'none', '--', 'sleep', '600');
    const t = await until('the task to start', async () => (await c.tasks('startcheck')).find((x) => x.status?.state === 'TASK_STATE_STARTING' && x.desiredState === 'TASK_STATE_RUNNING'), 60_000);
    await until('its container to run', async () => ((await c.host('w1').exec(RUNTIME, ['state', t.id])).stdout.includes('"running"') ? true : undefined), 30_000);
    const since = Date.now();
    await new Promise((r) => setTimeout(r, 2_000));
    const checks = await c.host('w1').exec(RUNTIME, ['exec', t.id, 'sh', '-c', 'busybox wc -l < /tmp/checks']);
    expect(Number(checks.stdout.trim())).toBeGreaterThanOrEqual(6);
    expect((await c.tasks('startcheck')).find((x) => x.id === t.id)?.status?.state).toBe('TASK_STATE_STARTING');
    await until('the task to fail after the start period', async () => ((await c.tasks('startcheck')).find((x) => x.id === t.id)?.status?.state === 'TASK_STATE_FAILED' ? true : undefined), 30_000);
    expect(Date.now() - since).toBeGreaterThanOrEqual(4_000);
    await c.ok('m1', 'service', 'rm', 'startcheck');
  }, 90_000);

  it('rolls the tasks out again on --force, with nothing else changed', async () => {
    const before = await running('opt-user');
    await c.ok('m1', 'service', 'update', 'opt-user', '--force');
    const after = await running('opt-user');
    expect(after.id).not.toBe(before.id);
    expect((await c.tasks('opt-user')).find((x) => x.id === before.id)?.status?.state).toBe('TASK_STATE_SHUTDOWN');
  }, 90_000);

  it('keeps no log for a --log-driver none service', async () => {
    await c.ok('m1', 'service', 'create', '--name', 'nolog', '--image', c.image, '--log-driver', 'none', '--', 'sh', '-c', 'echo dropped; exec sleep 600');
    const t = await running('nolog');
    await new Promise((r) => setTimeout(r, 500));
    expect(await logLines('nolog')).toEqual([]);
    const files = await c.host('w1').exec('sh', ['-c', `ls ${HOST_STATE_MOUNT}/exec/logs/ | grep -c ${t.id} || true`]);
    expect(files.stdout.trim()).toBe('0');
    await c.ok('m1', 'service', 'rm', 'nolog');
  }, 60_000);

  it('gives a --tty container a terminal as its standard input and output', async () => {
    await c.ok('m1', 'service', 'create', '--name', 'withtty', '--image', c.image, '--tty', '--', 'sh', '-c', 'busybox tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-terminal; exec sleep 600');
    await running('withtty');
    const lines = await until('its output', async () => {
      const l = await logLines('withtty');
      return l.some((x) => x.includes('stdio-is-a-terminal')) ? l : undefined;
    }, 20_000);
    expect(lines.join('\n')).toMatch(/\/dev\/pts\/\d+/);
    await c.ok('m1', 'service', 'rm', 'withtty');
  }, 60_000);

  it('refuses an option it cannot apply, naming it, and creates nothing', async () => {
    for (const [flags, rule] of [
      [['--isolation', 'hyperv'], /--isolation: "hyperv" is not supported/],
      [['--sysctl', 'vm.swappiness=10'], /--sysctl: "vm.swappiness" is not namespaced/],
      [['--credential-spec', 'file://x'], /Unknown argument: credential-spec/],
    ] as const) {
      const r = await c.ctl('m1', 'service', 'create', '--name', 'refused', '--image', c.image, ...flags, '--', 'sleep', '1');
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(rule);
    }
    // Refused by the manager (exit 1), naming the field: an alias that is not a DNS name; a network that does not exist.
    for (const [flags, rule] of [
      [['--network', 'name=nope,alias=-db'], /spec\.task\.networks\[0\]\.aliases\[0\]: "-db" is not a DNS name/],
      [['--network', 'nope'], /spec\.task\.networks\[0\]\.target: network "nope" not found/],
    ] as const) {
      const r = await c.ctl('m1', 'service', 'create', '--name', 'refused', '--image', c.image, ...flags, '--', 'sleep', '1');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(rule);
    }
    expect((await c.ctl('m1', 'service', 'inspect', 'refused')).code).toBe(1);
  });

  it('keeps running tasks of the probe services (nothing failed on the way)', async () => {
    for (const s of SERVICES) expect((await c.tasks(`opt-${s}`)).filter(isRunning).length).toBe(1);
  });
});

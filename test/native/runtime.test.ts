// swarm-runtime (native/) against runc: the same bundles under both, probes inside report what the
// container sees, and the reports must match. Plus the lifecycle (create → start → kill → delete,
// run's exit codes and stdio), errors, and that nothing is left behind.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisites, Workspace, type Config, type Runtime } from './bundle.js';

const missing = missingPrerequisites();
if (missing.length > 0) console.warn(`native runtime tests skipped; missing: ${missing.join(', ')}`);

// Everything the container sees that both runtimes must agree on. Namespace inodes differ between
// containers, so the probe prints them and the test compares them with the host's.
const PROBE = [
  'echo "hostname $(hostname)"',
  'echo "id $(id)"',
  'echo "pid $$"',
  'for n in mnt uts ipc pid net cgroup; do echo "ns $n $(readlink /proc/self/ns/$n)"; done',
  "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs)' /proc/self/status",
  "sed -n 's/^Max /limit /p' /proc/self/limits",
  // mount point, fstype, ro/rw
  "awk '{ for (i = 7; i <= NF; i++) if ($i == \"-\") { split($6, o, \",\"); print \"mount\", $5, $(i+1), o[1]; break } }' /proc/self/mountinfo",
  'echo "oom $(cat /proc/self/oom_score_adj)"',
  'ls -l /dev | awk \'{ print "dev", $1, $NF }\'',
].join('; ');

interface Report {
  lines: string[];
  ns: Map<string, string>;
}

function parseReport(stdout: string): Report {
  const lines = stdout.split('\n').filter((l) => l.length > 0);
  const ns = new Map<string, string>();
  for (const l of lines) {
    const m = /^ns (\w+) (.*)$/.exec(l);
    if (m) ns.set(m[1]!, m[2]!);
  }
  return { lines: lines.filter((l) => !l.startsWith('ns ')), ns };
}

function hostNs(name: string): string {
  return readlinkSync(`/proc/self/ns/${name}`);
}

describe.skipIf(missing.length > 0)('swarm-runtime', () => {
  let ws: Workspace;

  beforeAll(() => {
    ws = new Workspace();
  });

  afterEach(() => {
    const problems = ws.cleanup();
    expect(problems).toEqual([]);
  });

  afterAll(() => {
    try {
      ws.cleanup();
      expect(ws.leftovers()).toEqual([]);
    } finally {
      ws.remove();
    }
  });

  function run(rt: Runtime, bundle: string): { status: number | null; stdout: string; stderr: string } {
    const id = ws.id(rt);
    const r = ws.exec(rt, ['run', '--bundle', bundle, id]);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** create with the container's stdio in a file; returns the id and that file. */
  function create(rt: Runtime, bundle: string, extra: string[] = []): { id: string; log: string; status: number | null } {
    const id = ws.id(rt);
    const log = join(ws.dir, `${id}.log`);
    const fd = openSync(log, 'w');
    try {
      const r = ws.exec(rt, ['create', '--bundle', bundle, ...extra, id], { outFd: fd, detached: true });
      return { id, log, status: r.status };
    } finally {
      closeSync(fd);
    }
  }

  async function waitFor(what: string, check: () => boolean, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  function probeBoth(edit: (c: Config) => void): { ours: Report; runc: Report } {
    const out: Record<string, Report> = {};
    for (const rt of [ws.ours, ws.runc]) {
      const r = run(rt, ws.bundle(['sh', '-c', PROBE], edit));
      expect(r.stderr, `${rt.name} stderr`).toBe('');
      expect(r.status, `${rt.name} exit status`).toBe(0);
      out[rt.name] = parseReport(r.stdout);
    }
    return { ours: out['swarm-runtime']!, runc: out['runc']! };
  }

  function expectOwnNamespaces(report: Report): void {
    for (const n of ['mnt', 'uts', 'ipc', 'pid', 'net', 'cgroup']) {
      expect(report.ns.get(n), `${n} namespace`).toMatch(/^\w+:\[\d+\]$/);
      expect(report.ns.get(n), `${n} namespace differs from the host's`).not.toBe(hostNs(n));
    }
  }

  it('matches runc for a non-root user: hostname, id, pid 1, caps, limits, mounts, devices, namespaces', () => {
    const { ours, runc } = probeBoth((c) => {
      c.hostname = 'probe-host';
      c.process.user = { uid: 1000, gid: 1000, additionalGids: [10, 100] };
      c.process.rlimits = [
        { type: 'RLIMIT_NOFILE', hard: 2048, soft: 1024 },
        { type: 'RLIMIT_NPROC', hard: 500, soft: 400 },
        { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
      ];
      c.process.oomScoreAdj = 100;
      c.linux.namespaces.push({ type: 'cgroup' });
    });
    expect(ours.lines).toEqual(runc.lines);
    expect(ours.lines).toContain('hostname probe-host');
    expect(ours.lines).toContain('id uid=1000(user) gid=1000(user) groups=10(wheel),100(users)');
    expect(ours.lines).toContain('pid 1');
    expect(ours.lines).toContain('NoNewPrivs:\t1');
    expect(ours.lines).toContain('oom 100');
    expect(ours.lines.some((l) => /^limit open files\s+1024\s+2048/.test(l))).toBe(true);
    expect(ours.lines).toContain('mount /sys sysfs ro');
    expect(ours.lines.find((l) => l.startsWith('mount / '))).toMatch(/ ro$/);
    expect(ours.lines).toContain('mount /dev/pts devpts rw');
    expectOwnNamespaces(ours);
    expectOwnNamespaces(runc);
  });

  it('matches runc for root with explicit capabilities and a writable root', () => {
    const { ours, runc } = probeBoth((c) => {
      c.root.readonly = false;
      c.process.noNewPrivileges = false;
      const caps = ['CAP_CHOWN', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_KILL'];
      c.process.capabilities = { bounding: caps, effective: caps.slice(0, 2), permitted: caps, inheritable: [], ambient: [] };
      c.linux.namespaces.push({ type: 'cgroup' });
    });
    expect(ours.lines).toEqual(runc.lines);
    expect(ours.lines).toContain('CapBnd:\t0000000000201021');
    expect(ours.lines).toContain('CapEff:\t0000000000201021'); // root: exec raises effective to permitted
    expect(ours.lines).toContain('NoNewPrivs:\t0');
    expect(ours.lines.find((l) => l.startsWith('mount / '))).toMatch(/ rw$/);
  });

  it("gives Docker's default capabilities when the spec has none", () => {
    const r = run(
      ws.ours,
      ws.bundle(['sh', '-c', "grep -E '^Cap(Prm|Eff|Bnd|Inh|Amb)' /proc/self/status"], (c) => {
        delete c.process.capabilities;
      }),
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      'CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n',
    );
  });

  it('passes exit codes, stdout and stderr through run, like runc', () => {
    for (const rt of [ws.ours, ws.runc]) {
      const r = run(rt, ws.bundle(['sh', '-c', 'echo out; echo err >&2; exit 7']));
      expect({ rt: rt.name, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ rt: rt.name, status: 7, stdout: 'out\n', stderr: 'err\n' });
    }
    expect(run(ws.ours, ws.bundle(['true'])).status).toBe(0);
  });

  it('goes created → running → stopped, delivers signals with kill, and delete removes the state', async () => {
    const bundle = ws.bundle(['sh', '-c', 'trap "echo got TERM; exit 3" TERM; echo ready; while :; do sleep 0.05; done']);
    const pidFile = join(ws.dir, 'lifecycle.pid');
    const c = create(ws.ours, bundle, ['--pid-file', pidFile]);
    expect(c.status, readFileSync(c.log, 'utf8')).toBe(0);
    const created = ws.state(ws.ours, c.id);
    expect(created).toMatchObject({ ociVersion: '1.0.2-dev', id: c.id, status: 'created', bundle });
    expect(created.pid).toBe(Number(readFileSync(pidFile, 'utf8')));
    expect(existsSync(`/proc/${created.pid}`)).toBe(true);
    expect(readFileSync(c.log, 'utf8')).toBe(''); // blocked before exec

    expect(ws.exec(ws.ours, ['start', c.id]).status).toBe(0);
    expect(ws.state(ws.ours, c.id).status).toBe('running');
    await waitFor('the container to print ready', () => readFileSync(c.log, 'utf8').includes('ready'));
    const again = ws.exec(ws.ours, ['start', c.id]);
    expect(again.stderr).toBe(`swarm-runtime: start ${c.id}: cannot start a container that is running\n`);

    const refused = ws.exec(ws.ours, ['delete', c.id]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(`swarm-runtime: delete ${c.id}: cannot delete a container that is running (use --force)\n`);

    expect(ws.exec(ws.ours, ['kill', c.id, 'TERM']).status).toBe(0);
    await waitFor('the container to stop', () => ws.state(ws.ours, c.id).status === 'stopped');
    expect(readFileSync(c.log, 'utf8')).toBe('ready\ngot TERM\n');
    expect(ws.state(ws.ours, c.id).pid).toBe(0);
    const late = ws.exec(ws.ours, ['kill', c.id, 'KILL']);
    expect(late.stderr).toBe(`swarm-runtime: kill ${c.id}: cannot kill a container that is stopped\n`);

    expect(ws.exec(ws.ours, ['delete', c.id]).status).toBe(0);
    expect(existsSync(join(ws.ours.root, c.id))).toBe(false);
    const gone = ws.exec(ws.ours, ['state', c.id]);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toBe(`swarm-runtime: state ${c.id}: container \`${c.id}\` does not exist\n`);
  });

  it('delete --force kills a created or running container', async () => {
    const bundle = ws.bundle(['sleep', '1000']);
    const a = create(ws.ours, bundle);
    expect(a.status, a.log ? readFileSync(a.log, 'utf8') : '').toBe(0);
    const pidA = ws.state(ws.ours, a.id).pid;
    expect(ws.exec(ws.ours, ['delete', '--force', a.id]).status).toBe(0);
    expect(existsSync(join(ws.ours.root, a.id))).toBe(false);
    await waitFor('the created container to die', () => !existsSync(`/proc/${pidA}`) || readFileSync(`/proc/${pidA}/stat`, 'utf8').includes(') Z'));

    const b = create(ws.ours, bundle);
    expect(b.status, b.log ? readFileSync(b.log, 'utf8') : '').toBe(0);
    expect(ws.exec(ws.ours, ['start', b.id]).status).toBe(0);
    expect(ws.exec(ws.ours, ['delete', '--force', b.id]).status).toBe(0);
    expect(existsSync(join(ws.ours.root, b.id))).toBe(false);
  });

  it('detects pid reuse through the start time in the state file', () => {
    const c = create(ws.ours, ws.bundle(['sleep', '1000']));
    expect(c.status, c.log ? readFileSync(c.log, 'utf8') : '').toBe(0);
    const pid = ws.state(ws.ours, c.id).pid;
    try {
      // Pretend the recorded process was another one that had this pid.
      const file = join(ws.ours.root, c.id, 'state.json');
      const st = JSON.parse(readFileSync(file, 'utf8')) as { startTime: number };
      st.startTime += 1;
      writeFileSync(file, JSON.stringify(st));
      expect(ws.state(ws.ours, c.id)).toMatchObject({ status: 'stopped', pid: 0 });
      expect(ws.exec(ws.ours, ['kill', c.id, 'KILL']).stderr).toBe(`swarm-runtime: kill ${c.id}: cannot kill a container that is stopped\n`);
      expect(existsSync(`/proc/${pid}`)).toBe(true); // the "other" process was left alone
      expect(ws.exec(ws.ours, ['delete', c.id]).stderr).toBe('');
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });

  it('run forwards SIGTERM to the container and returns its exit code', async () => {
    const bundle = ws.bundle(['sh', '-c', 'trap "echo bye; exit 5" TERM; echo up; while :; do sleep 0.05; done']);
    const id = ws.id(ws.ours);
    const child = spawn(ws.ours.bin, ['--root', ws.ours.root, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor('the container to start', () => out.includes('up'));
      child.kill('SIGTERM');
      expect(await exited).toBe(5);
      expect(out).toBe('up\nbye\n');
      expect(existsSync(join(ws.ours.root, id))).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('works without a PID namespace (the first child is the init)', () => {
    const noPidNs = (c: Config): void => {
      c.linux.namespaces = c.linux.namespaces.filter((n) => n.type !== 'pid');
    };
    const r = run(ws.ours, ws.bundle(['sh', '-c', 'test $$ -ne 1 && exit 4'], noPidNs));
    expect([r.status, r.stderr]).toEqual([4, '']);
    const c = create(ws.ours, ws.bundle(['sleep', '1000'], noPidNs));
    expect(c.status, readFileSync(c.log, 'utf8')).toBe(0);
    expect(ws.state(ws.ours, c.id).status).toBe('created');
    expect(ws.exec(ws.ours, ['start', c.id]).status).toBe(0);
    expect(ws.state(ws.ours, c.id).status).toBe('running');
    expect(ws.exec(ws.ours, ['delete', '--force', c.id]).status).toBe(0);
  });

  it('creates, starts and deletes containers concurrently', async () => {
    const bundle = ws.bundle(['sleep', '1000']);
    // Each call's stderr goes to a file: a created container keeps the runtime's stdio open.
    let calls = 0;
    const call = (args: string[]): Promise<{ code: number | null; err: string }> =>
      new Promise((resolve) => {
        const log = join(ws.dir, `concurrent-${++calls}.log`);
        const fd = openSync(log, 'w');
        const p = spawn(ws.ours.bin, ['--root', ws.ours.root, ...args], { stdio: ['ignore', 'ignore', fd] });
        closeSync(fd);
        p.on('exit', (code) => resolve({ code, err: readFileSync(log, 'utf8') }));
      });
    const ids = Array.from({ length: 8 }, () => ws.id(ws.ours));
    const created = await Promise.all(ids.map((id) => call(['create', '--bundle', bundle, id])));
    expect(created).toEqual(ids.map(() => ({ code: 0, err: '' })));
    expect(await Promise.all(ids.map((id) => call(['start', id])))).toEqual(ids.map(() => ({ code: 0, err: '' })));
    expect(ids.map((id) => ws.state(ws.ours, id).status)).toEqual(ids.map(() => 'running'));
    expect(await Promise.all(ids.map((id) => call(['delete', '--force', id])))).toEqual(ids.map(() => ({ code: 0, err: '' })));
    for (const id of ids) expect(existsSync(join(ws.ours.root, id))).toBe(false);
  });

  it('joins an existing network namespace by path', () => {
    const a = create(ws.ours, ws.bundle(['sleep', '1000']));
    expect(a.status, a.log ? readFileSync(a.log, 'utf8') : '').toBe(0);
    const pid = ws.state(ws.ours, a.id).pid;
    const netA = readlinkSync(`/proc/${pid}/ns/net`);
    expect(netA).not.toBe(hostNs('net'));
    const r = run(
      ws.ours,
      ws.bundle(['readlink', '/proc/self/ns/net'], (c) => {
        c.linux.namespaces = c.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network', path: `/proc/${pid}/ns/net` } : n));
      }),
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(netA);
  });

  it('mounts spec binds and tmpfs in order, read-only where asked, and keeps symlinks inside the rootfs', () => {
    const hostDir = join(ws.dir, 'host-data');
    mkdirSync(hostDir);
    const outside = join(ws.dir, 'outside');
    mkdirSync(outside);
    const bundle = ws.bundle(['sh', '-c', 'cat /data/f; { echo x > /data/g; } 2>/dev/null || echo ro; mount | grep -E " /(data|scratch)| /.*/in type"'], (c) => {
      c.mounts.push(
        { destination: '/data', type: 'bind', source: hostDir, options: ['rbind', 'ro'] },
        { destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'size=1m'] },
        { destination: '/escape/in', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] },
      );
    });
    // /escape is an absolute symlink to a host path: resolved inside the rootfs, never on the host.
    symlinkSync(outside, join(bundle, 'rootfs/escape'));
    writeFileSync(join(hostDir, 'f'), 'hello\n');
    const r = run(ws.ours, bundle);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('hello');
    expect(lines[1]).toBe('ro');
    expect(r.stdout).toMatch(/ on \/data type \w+ \(ro,/);
    expect(r.stdout).toMatch(/tmpfs on \/scratch type tmpfs \(rw,nosuid/);
    // The mount landed where the symlink points when resolved inside the rootfs.
    expect(r.stdout).toContain(`tmpfs on ${outside}/in type tmpfs`);
    expect(existsSync(join(outside, 'in'))).toBe(false);
    expect(existsSync(join(bundle, 'rootfs', outside, 'in'))).toBe(true);
  });

  it('reports a bad config.json in one line naming the field and the file, and leaves nothing', () => {
    const cases: [string, (c: Config) => void, string][] = [
      ['missing args', (c) => delete (c.process as Partial<Config['process']>).args, 'process.args: missing required field'],
      ['wrong type', (c) => ((c.process as Record<string, unknown>).cwd = 5), 'process.cwd: must be a string'],
      ['bad capability', (c) => (c.process.capabilities = { bounding: ['CAP_NOPE'] }), 'process.capabilities.bounding[0]: unknown capability `CAP_NOPE`'],
      ['bad namespace', (c) => c.linux.namespaces.push({ type: 'time-travel' }), 'unknown namespace type `time-travel`'],
      ['bad mount', (c) => c.mounts.push({ destination: 'relative' }), 'mounts[6].destination: must be an absolute path'],
    ];
    for (const [what, edit, message] of cases) {
      const bundle = ws.bundle(['true'], edit);
      const id = ws.id(ws.ours);
      const r = ws.exec(ws.ours, ['create', '--bundle', bundle, id]);
      expect({ what, status: r.status }).toEqual({ what, status: 1 });
      expect(r.stderr.split('\n').length, what).toBe(2);
      expect(r.stderr, what).toContain(`swarm-runtime: create ${id}: ${bundle}/config.json: `);
      expect(r.stderr, what).toContain(message);
      expect(existsSync(join(ws.ours.root, id)), what).toBe(false);
    }
    const bundle = ws.bundle(['true']);
    writeFileSync(join(bundle, 'config.json'), '{"ociVersion": "1.0.2", "process": ');
    const id = ws.id(ws.ours);
    const r = ws.exec(ws.ours, ['create', '--bundle', bundle, id]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`swarm-runtime: create ${id}: ${bundle}/config.json: malformed JSON: unexpected end of file\n`);
    writeFileSync(join(bundle, 'config.json'), '{"ociVersion": "1.0.2",, }');
    const r2 = ws.exec(ws.ours, ['create', '--bundle', bundle, id]);
    expect(r2.stderr).toMatch(new RegExp(`^swarm-runtime: create ${id}: ${bundle}/config.json: malformed JSON: [^\\n]+\\n$`));
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
  });

  it('fails create for a missing executable without leaving a process or a state directory', () => {
    const bundle = ws.bundle(['/no/such/program']);
    const id = ws.id(ws.ours);
    const r = ws.exec(ws.ours, ['create', '--bundle', bundle, id]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`swarm-runtime: create ${id}: exec /no/such/program: No such file or directory\n`);
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
    const notFound = run(ws.ours, ws.bundle(['no-such-program']));
    expect(notFound.status).toBe(1);
    expect(notFound.stderr).toMatch(/: exec no-such-program: executable file not found in \$PATH\n$/);
    expect(ws.leftovers()).toEqual([]);
  });

  it('refuses a duplicate id and bad usage', () => {
    const bundle = ws.bundle(['sleep', '1000']);
    const a = create(ws.ours, bundle);
    expect(a.status, a.log ? readFileSync(a.log, 'utf8') : '').toBe(0);
    const dup = ws.exec(ws.ours, ['create', '--bundle', bundle, a.id]);
    expect(dup.stderr).toBe(`swarm-runtime: create ${a.id}: container \`${a.id}\` already exists\n`);
    expect(ws.state(ws.ours, a.id).status).toBe('created');
    expect(ws.exec(ws.ours, ['frobnicate', 'x']).status).toBe(2);
    const noId = ws.exec(ws.ours, ['exec']);
    expect([noId.status, noId.stderr.split('\n')[0]]).toEqual([2, 'swarm-runtime: exec: missing container id']);
    expect(ws.exec(ws.ours, ['kill', a.id, 'NOPE']).stderr).toBe(`swarm-runtime: kill ${a.id}: unknown signal \`NOPE\`\n`);
  });
});


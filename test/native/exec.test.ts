// `exec` and `ps` under swarm-runtime and runc: the same running container under both, the same
// exec probes inside, and the reports must match; ps lists the container's processes as runc does.
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultSeccomp, missingPrerequisites, Workspace, type Config, type Runtime } from './bundle.js';

const missing = missingPrerequisites();
if (missing.length > 0) console.warn(`native exec tests skipped; missing: ${missing.join(', ')}`);

// What an exec'd process sees and both runtimes must agree on (pids and namespace inodes differ
// between containers; the namespaces are compared with the init's instead).
const PROBE = [
  'echo "hostname $(hostname)"',
  'echo "id $(id)"',
  'echo "cwd $(pwd)"',
  'echo "pid1 $(cat /proc/1/cmdline | tr "\\0" " ")"',
  "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters|Uid|Gid|Groups):' /proc/self/status",
  'cat /proc/self/cgroup',
  'echo "env $FOO"',
].join('; ');

const NS = ['mnt', 'uts', 'ipc', 'pid', 'net', 'cgroup'];

describe.skipIf(missing.length > 0)('swarm-runtime exec and ps', () => {
  let ws: Workspace;
  const running = new Map<string, { id: string; pid: number }>();

  /** The container every test execs into: a non-root user, groups, a hostname, a cgroup
   * namespace and the default seccomp profile. */
  const edit = (c: Config): void => {
    c.hostname = 'exec-host';
    c.process.user = { uid: 1000, gid: 1000, additionalGids: [10] };
    c.process.env = [...(c.process.env ?? []), 'FOO=from-config'];
    c.linux.namespaces.push({ type: 'cgroup' });
    c.linux.seccomp = defaultSeccomp();
  };

  beforeAll(() => {
    ws = new Workspace();
    for (const rt of [ws.ours, ws.runc]) {
      const id = ws.id(rt);
      const r = ws.exec(rt, ['run', '--detach', '--bundle', ws.bundle(['sleep', '1000'], edit), id], { detached: true });
      if (r.status !== 0) throw new Error(`${rt.name} run --detach failed`);
      running.set(rt.name, { id, pid: ws.state(rt, id).pid });
    }
  });

  afterEach(() => {
    // Only the containers made inside a test; the two running ones stay until the end.
    expect(ws.cleanup([...running.values()].map((c) => c.id))).toEqual([]);
  });

  afterAll(() => {
    try {
      ws.cleanup();
      expect(ws.leftovers()).toEqual([]);
    } finally {
      ws.remove();
    }
  });

  function target(rt: Runtime): { id: string; pid: number } {
    return running.get(rt.name)!;
  }

  function exec(rt: Runtime, args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = ws.exec(rt, ['exec', ...args]);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** The same exec under both runtimes; returns our output after checking runc printed the same. */
  function both(opts: string[], cmd: string[], status = 0): string {
    const out: string[] = [];
    for (const rt of [ws.ours, ws.runc]) {
      const r = exec(rt, [...opts, target(rt).id, ...cmd]);
      expect({ rt: rt.name, status: r.status, stderr: r.stderr }).toEqual({ rt: rt.name, status, stderr: '' });
      out.push(r.stdout);
    }
    expect(out[0], 'swarm-runtime and runc print the same').toBe(out[1]);
    return out[0]!;
  }

  it('runs a process with the container’s hostname, user, capabilities, seccomp filter, cgroups and namespaces', () => {
    const out = both([], ['sh', '-c', PROBE]);
    expect(out).toContain('hostname exec-host\n');
    expect(out).toContain('id uid=1000(user) gid=1000(user) groups=10(wheel)\n');
    expect(out).toContain('pid1 sleep 1000 \n');
    expect(out).toContain('NoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n');
    expect(out).toContain('env from-config\n');
    // cgroup namespace rooted at the container's cgroup, joined in every hierarchy
    expect(out).toMatch(/\n\d+:pids:\/\n/);
    expect(out).toMatch(/\n0::\/\n/);
    // The namespaces are the init's.
    for (const rt of [ws.ours, ws.runc]) {
      const { id, pid } = target(rt);
      const r = exec(rt, [id, 'sh', '-c', NS.map((n) => `readlink /proc/self/ns/${n}`).join('; ')]);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim().split('\n')).toEqual(NS.map((n) => readlinkSync(`/proc/${pid}/ns/${n}`)));
    }
  });

  it('passes exit codes through, 128+N for signal N, like runc', () => {
    both([], ['sh', '-c', 'echo out; exit 3'], 3);
    both([], ['sh', '-c', 'kill -9 $$'], 137);
  });

  it('takes --user, --env and --cwd like runc', () => {
    const out = both(['--user', '0:0', '--env', 'FOO=bar', '--env', 'BAZ=1', '--cwd', '/tmp'], ['sh', '-c', 'id; echo "$FOO $BAZ"; pwd; grep -E "^Cap(Eff|Bnd)" /proc/self/status']);
    expect(out.split('\n').slice(0, 3)).toEqual(['uid=0(root) gid=0(root) groups=10(wheel)', 'bar 1', '/tmp']);
  });

  it('takes the whole process from --process like runc', () => {
    const file = join(ws.dir, 'process.json');
    const caps = ['CAP_KILL', 'CAP_SETUID'];
    writeFileSync(
      file,
      JSON.stringify({
        args: ['sh', '-c', 'id; echo "$A"; pwd; grep -E "^(Cap(Eff|Prm|Bnd)|NoNewPrivs|Seccomp):" /proc/self/status'],
        env: ['PATH=/bin', 'A=from-process-json'],
        cwd: '/dev',
        user: { uid: 0, gid: 100 },
        capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
        noNewPrivileges: false,
      }),
    );
    const out = both(['--process', file], []);
    expect(out).toBe('uid=0(root) gid=100(users)\nfrom-process-json\n/dev\nCapPrm:\t00000000000000a0\nCapEff:\t00000000000000a0\nCapBnd:\t00000000000000a0\nNoNewPrivs:\t0\nSeccomp:\t2\n');
  });

  it('detaches with a pid file; ps lists the container’s processes like runc', () => {
    const found: Record<string, { json: number[]; table: string[]; header: string }> = {};
    for (const rt of [ws.ours, ws.runc]) {
      const { id, pid } = target(rt);
      const pidFile = join(ws.dir, `${rt.name}-exec.pid`);
      const r = ws.exec(rt, ['exec', '--detach', '--pid-file', pidFile, id, 'sleep', '999'], { detached: true });
      expect(r.status, rt.name).toBe(0);
      const execPid = Number(readFileSync(pidFile, 'utf8'));
      // The pid file can come before the new command line: ours is written once execve has
      // closed the sync socket, before the kernel has set up the arguments; runc's while the
      // process is still `runc init`. Give it a moment.
      const cmdline = (): string => readFileSync(`/proc/${execPid}/cmdline`, 'utf8');
      for (let i = 0; i < 200 && cmdline() !== 'sleep\x00999\x00'; i++) sleepMs(10);
      expect(cmdline(), rt.name).toBe('sleep\x00999\x00');

      const json = ws.exec(rt, ['ps', '--format', 'json', id]);
      expect(json.stderr).toBe('');
      const pids = (JSON.parse(json.stdout) as number[]).sort((a, b) => a - b);
      expect(pids, rt.name).toEqual([pid, execPid].sort((a, b) => a - b));

      const table = ws.exec(rt, ['ps', id]);
      expect(table.stderr).toBe('');
      const [header, ...lines] = table.stdout.trim().split('\n');
      const pidCol = header!.trim().split(/\s+/).indexOf('PID');
      expect(lines.map((l) => Number(l.trim().split(/\s+/)[pidCol])).sort((a, b) => a - b)).toEqual(pids);
      found[rt.name] = { json: pids, table: lines.map((l) => l.trim().split(/\s+/).slice(7).join(' ')), header: header! };
      process.kill(execPid, 'SIGKILL');
    }
    expect(found['swarm-runtime']!.header).toBe(found['runc']!.header);
    expect(found['swarm-runtime']!.table).toEqual(found['runc']!.table); // the commands
  });

  it('refuses bad usage and a stopped container in one line', () => {
    const { id } = target(ws.ours);
    expect(exec(ws.ours, [id])).toMatchObject({ status: 1, stderr: `swarm-runtime: exec ${id}: no command given (ID -- CMD [ARGS...], or --process FILE)\n` });
    expect(exec(ws.ours, ['--user', 'nobody', id, 'true'])).toMatchObject({ status: 1, stderr: `swarm-runtime: exec ${id}: --user: \`nobody\` is not UID[:GID]\n` });
    expect(exec(ws.ours, [id, 'no-such-program'])).toMatchObject({ status: 1, stderr: `swarm-runtime: exec ${id}: exec no-such-program: executable file not found in $PATH\n` });
    const bad = join(ws.dir, 'bad-process.json');
    writeFileSync(bad, JSON.stringify({ args: ['true'], cwd: '/', user: { uid: -1, gid: 0 } }));
    expect(exec(ws.ours, ['--process', bad, id])).toMatchObject({ status: 1, stderr: `swarm-runtime: exec ${id}: ${bad}: user.uid: out of range\n` });
    expect(ws.exec(ws.ours, ['ps', '--format', 'yaml', id]).stderr).toBe(`swarm-runtime: ps ${id}: --format: \`yaml\` is not table or json\n`);

    const stopped = ws.id(ws.ours);
    expect(ws.exec(ws.ours, ['run', '--detach', '--bundle', ws.bundle(['true']), stopped], { detached: true }).status).toBe(0);
    for (let i = 0; i < 200 && ws.state(ws.ours, stopped).status !== 'stopped'; i++) sleepMs(10);
    expect(exec(ws.ours, [stopped, 'true'])).toMatchObject({ status: 1, stderr: `swarm-runtime: exec ${stopped}: cannot exec in a container that is stopped\n` });
    expect(exec(ws.ours, ['nope', 'true'])).toMatchObject({ status: 1, stderr: 'swarm-runtime: exec nope: container `nope` does not exist\n' });
  });
});

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// swarm-runtime's cgroups (v1, hybrid and v2 hosts): limits written to the right files (the same
// values as runc), the init joined before its cgroup namespace, an OOM-killed memory hog, a fork
// bomb held at the pids limit, `kill --all`, `stats`, and no cgroup left after delete.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisites, Workspace, type Config, type Runtime } from './bundle.js';

const missing = missingPrerequisites();

const CG = '/sys/fs/cgroup';
const V2 = readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === CG && l.split(' ')[2] === 'cgroup2');
/** Every cgroup made here lives under this parent, so that clean-up can find it. */
const PARENT = `/swarm-rt-test-${process.pid}`;

/** The directory of cgroup PATH for a controller (v1) or the v2 tree. */
function dir(controller: string, path: string): string {
  return V2 ? join(CG, path) : join(CG, controller, path);
}
/** Every hierarchy a container may have a directory in. */
function hierarchies(): string[] {
  if (V2) return [CG];
  return readdirSync(CG)
    .map((h) => join(CG, h))
    .filter((h) => existsSync(join(h, 'cgroup.procs')));
}
function read(controller: string, path: string, file: string): string {
  return readFileSync(join(dir(controller, path), file), 'utf8').trim();
}
function keyed(text: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : -1;
}
/** Directories named after PATH that still exist, in any hierarchy. */
function existing(path: string): string[] {
  return hierarchies()
    .map((h) => join(h, path))
    .filter((d) => existsSync(d));
}

/** Kills what a (leftover) cgroup holds, then removes it; gives up quietly after ~2 s. */
function removeCgroup(d: string): void {
  for (let i = 0; i < 200 && existsSync(d); i++) {
    try {
      for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      rmdirSync(d);
    } catch {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

interface Stats {
  cgroup: string;
  cgroupMode: string;
  memory: { usage: number | null; limit: number | null; oomKill: number | null };
  cpu: { usageUsec: number | null };
  pids: { current: number | null; limit: number | null };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The unified tree of a hybrid host: the runtime enables hugetlb there for hugepage limits. */
const UNIFIED_CONTROL = join(CG, 'unified/cgroup.subtree_control');

describe.skipIf(missing.length > 0)('swarm-runtime cgroups', () => {
  let ws: Workspace;
  let hugetlbWasOn = true;

  beforeAll(() => {
    ws = new Workspace();
    if (existsSync(UNIFIED_CONTROL)) hugetlbWasOn = readFileSync(UNIFIED_CONTROL, 'utf8').split(/\s+/).includes('hugetlb');
  });

  afterEach(() => {
    expect(ws.cleanup()).toEqual([]);
  });

  afterAll(() => {
    try {
      ws.cleanup();
      expect(ws.leftovers()).toEqual([]);
      // Every container was deleted, so only the (empty) parents may remain; remove them.
      const left: string[] = [];
      for (const h of hierarchies()) {
        const p = join(h, PARENT);
        if (!existsSync(p)) continue;
        for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) left.push(join(p, e.name));
        for (const d of [...left.filter((l) => l.startsWith(p)), p]) removeCgroup(d);
      }
      expect(left).toEqual([]);
    } finally {
      ws.remove();
      // Leave the host's unified tree as the tests found it.
      if (!hugetlbWasOn && existsSync(UNIFIED_CONTROL)) spawnSync('sh', ['-c', `echo -hugetlb > ${UNIFIED_CONTROL}`]);
    }
  });

  function bundle(args: string[], edit?: (c: Config) => void): string {
    return ws.bundle(args, edit);
  }

  /** create + start with stdio in a log file; returns the id, its cgroup path and the log. */
  function start(rt: Runtime, b: string, id = ws.id(rt)): { id: string; path: string; log: string } {
    const log = join(ws.dir, `${id}.log`);
    const fd = openSync(log, 'w');
    try {
      const r = ws.exec(rt, ['create', '--bundle', b, id], { outFd: fd, detached: true });
      expect(r.status, `${rt.name} create`).toBe(0);
    } finally {
      closeSync(fd);
    }
    expect(ws.exec(rt, ['start', id]).status, `${rt.name} start`).toBe(0);
    const config = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')) as Config;
    return { id, path: (config.linux.cgroupsPath as string | undefined) ?? `/swarm-runtime/${id}`, log };
  }

  function stats(id: string): Stats {
    const r = ws.exec(ws.ours, ['stats', id]);
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Stats;
  }

  async function waitStopped(rt: Runtime, id: string, ms = 20_000): Promise<void> {
    const until = Date.now() + ms;
    while (ws.state(rt, id).status !== 'stopped') {
      if (Date.now() > until) throw new Error(`${rt.name} ${id} did not stop`);
      await sleep(50);
    }
  }

  const resources = (c: Config, id: string) => {
    c.linux.cgroupsPath = `${PARENT}/${id}`;
    c.linux.resources = {
      memory: { limit: 32 * 1024 * 1024 },
      cpu: { quota: 50_000, period: 100_000, shares: 512 },
      pids: { limit: 20 },
    };
  };

  it('writes the limits to the same files, with the same values, as runc', () => {
    const values: Record<string, string[]> = {};
    for (const rt of [ws.ours, ws.runc]) {
      const id = ws.id(rt, 'lim');
      const b = bundle(['sleep', '100'], (c) => resources(c, id));
      const { path } = start(rt, b, id);
      const files: [string, string][] = V2
        ? [['memory', 'memory.max'], ['cpu', 'cpu.max'], ['cpu', 'cpu.weight'], ['pids', 'pids.max']]
        : [['memory', 'memory.limit_in_bytes'], ['cpu', 'cpu.cfs_quota_us'], ['cpu', 'cpu.cfs_period_us'], ['cpu', 'cpu.shares'], ['pids', 'pids.max']];
      values[rt.name] = files.map(([ctl, f]) => `${f}=${read(ctl, path, f)}`);
      // The init is in the cgroup of every controller we limit.
      const pid = ws.state(rt, id).pid;
      const procs = read('pids', path, 'cgroup.procs').split('\n');
      expect(procs).toContain(String(pid));
      expect(ws.exec(rt, ['delete', '--force', id]).status).toBe(0);
      expect(existing(path), `${rt.name} left cgroups`).toEqual([]);
    }
    expect(values['swarm-runtime']).toEqual(values.runc);
    expect(values['swarm-runtime']).toEqual(
      V2
        ? ['memory.max=33554432', 'cpu.max=50000 100000', `cpu.weight=${1 + Math.floor(((512 - 2) * 9999) / 262142)}`, 'pids.max=20']
        : ['memory.limit_in_bytes=33554432', 'cpu.cfs_quota_us=50000', 'cpu.cfs_period_us=100000', 'cpu.shares=512', 'pids.max=20'],
    );
  });

  it('writes cpuset, memory reservation/swap/swappiness/OOM killer and block I/O throttles to the same files as runc', () => {
    const values: Record<string, string[]> = {};
    const inside: Record<string, string> = {};
    const resources = {
      memory: { limit: 32 * 1024 * 1024, reservation: 16 * 1024 * 1024, swap: 64 * 1024 * 1024, swappiness: 10, disableOOMKiller: true },
      cpu: { cpus: '0', mems: '0', shares: 256 },
      pids: { limit: 40 },
      blockIO: {
        throttleReadBpsDevice: [{ major: 254, minor: 0, rate: 1048576 }],
        throttleWriteIOPSDevice: [{ major: 254, minor: 0, rate: 100 }],
      },
    };
    for (const rt of [ws.ours, ws.runc]) {
      const id = ws.id(rt, 'res');
      const b = bundle(['sh', '-c', "grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status; sleep 100"], (c) => {
        c.linux.cgroupsPath = `${PARENT}/${id}`;
        c.linux.resources = resources;
      });
      const { path, log } = start(rt, b, id);
      for (let i = 0; i < 200 && !readFileSync(log, 'utf8').includes('Mems'); i++) sleepMs(10);
      inside[rt.name] = readFileSync(log, 'utf8');
      const files: [string, string][] = V2
        ? [['memory', 'memory.max'], ['memory', 'memory.low'], ['memory', 'memory.swap.max'], ['cpuset', 'cpuset.cpus'], ['cpuset', 'cpuset.mems'], ['io', 'io.max']]
        : [
            ['memory', 'memory.limit_in_bytes'],
            ['memory', 'memory.soft_limit_in_bytes'],
            ['memory', 'memory.memsw.limit_in_bytes'],
            ['memory', 'memory.swappiness'],
            ['cpuset', 'cpuset.cpus'],
            ['cpuset', 'cpuset.mems'],
            ['blkio', 'blkio.throttle.read_bps_device'],
            ['blkio', 'blkio.throttle.write_iops_device'],
          ];
      values[rt.name] = files.map(([ctl, f]) => `${f}=${read(ctl, path, f)}`);
      if (!V2) values[rt.name]!.push(read('memory', path, 'memory.oom_control').split('\n')[0]!);
      // The init is in the cpuset and blkio cgroups too.
      const pid = String(ws.state(rt, id).pid);
      if (!V2) for (const h of ['cpuset', 'blkio']) expect(read(h, path, 'cgroup.procs').split('\n'), `${rt.name} ${h}`).toContain(pid);
      expect(ws.exec(rt, ['delete', '--force', id]).status).toBe(0);
      expect(existing(path), `${rt.name} left cgroups`).toEqual([]);
    }
    expect(values['swarm-runtime']).toEqual(values.runc);
    expect(inside['swarm-runtime']).toBe(inside.runc);
    expect(inside['swarm-runtime']).toBe('Cpus_allowed_list:\t0\nMems_allowed_list:\t0\n');
    if (!V2)
      expect(values['swarm-runtime']).toEqual([
        'memory.limit_in_bytes=33554432',
        'memory.soft_limit_in_bytes=16777216',
        'memory.memsw.limit_in_bytes=67108864',
        'memory.swappiness=10',
        'cpuset.cpus=0',
        'cpuset.mems=0',
        'blkio.throttle.read_bps_device=254:0 1048576',
        'blkio.throttle.write_iops_device=254:0 100',
        'oom_kill_disable 1',
      ]);
  });

  it('applies hugepage limits, cpu.idle and cpu burst (runc 1.1.5 cannot here), and refuses what the host lacks, naming the field', () => {
    const id = ws.id(ws.ours, 'huge');
    const path = `${PARENT}/${id}`;
    const hybridHugetlb = !V2 && !existsSync(join(CG, 'hugetlb'));
    start(ws.ours, bundle(['sleep', '100'], (c) => {
      c.linux.cgroupsPath = path;
      c.linux.resources = { hugepageLimits: [{ pageSize: '2MB', limit: 4 * 1024 * 1024 }], cpu: { idle: 1, burst: 1000 } };
    }), id);
    // This host's hugetlb controller is not a v1 hierarchy: it is in the unified tree.
    const hugeFile = V2 || hybridHugetlb ? join(V2 ? CG : join(CG, 'unified'), path, 'hugetlb.2MB.max') : join(CG, 'hugetlb', path, 'hugetlb.2MB.limit_in_bytes');
    expect(readFileSync(hugeFile, 'utf8').trim()).toBe(String(4 * 1024 * 1024));
    expect(read('cpu', path, 'cpu.idle')).toBe('1');
    if (!V2) expect(read('cpu', path, 'cpu.cfs_burst_us')).toBe('1000');
    expect(ws.exec(ws.ours, ['delete', '--force', id]).status).toBe(0);
    expect(existing(path)).toEqual([]);
    if (hybridHugetlb) expect(existsSync(join(CG, 'unified', path))).toBe(false);

    const refusals: [string, Record<string, unknown>, RegExp][] = [
      // No weights under this I/O scheduler (neither blkio.weight nor blkio.bfq.weight).
      ['blkio weight', { blockIO: { weight: 500 } }, /set the blkio weight: open .*blkio\.weight: No such file or directory/],
      ['kernel memory', { memory: { kernel: 1 << 20 } }, /linux\.resources\.memory\.kernel: kernel memory limits are deprecated/],
      ['net_cls', { network: { classID: 1 } }, /linux\.resources\.network: net_cls and net_prio are not supported/],
      ['unified on v1', { unified: { 'memory.high': '1000000' } }, /linux\.resources\.unified: needs cgroup v2/],
      ['a bad page size', { hugepageLimits: [{ pageSize: '2MB/../x', limit: 1 }] }, /hugepageLimits\[0\]\.pageSize: must be a size/],
    ];
    for (const [what, res, message] of refusals) {
      if (V2 && what === 'unified on v1') continue;
      const bad = ws.id(ws.ours, 'refuse');
      const r = ws.exec(ws.ours, ['create', '--bundle', bundle(['true'], (c) => {
        c.linux.cgroupsPath = `${PARENT}/${bad}`;
        c.linux.resources = res;
      }), bad]);
      expect({ what, status: r.status }).toEqual({ what, status: 1 });
      expect(r.stderr.trim().split('\n'), what).toHaveLength(1);
      expect(r.stderr, what).toMatch(message);
      expect(existing(`${PARENT}/${bad}`), what).toEqual([]);
      expect(existsSync(join(ws.ours.root, bad)), what).toBe(false);
    }
  });

  it('joins the cgroup before unsharing the cgroup namespace: the container sees its cgroup as /, like runc', () => {
    const view = (rt: Runtime) => {
      const id = ws.id(rt, 'ns');
      const b = bundle(['cat', '/proc/self/cgroup'], (c) => {
        c.linux.cgroupsPath = `${PARENT}/${id}`;
        if (!c.linux.namespaces.some((n) => n.type === 'cgroup')) c.linux.namespaces.push({ type: 'cgroup' });
      });
      const r = ws.exec(rt, ['run', '--bundle', b, id]);
      expect(r.status, r.stderr).toBe(0);
      expect(existing(`${PARENT}/${id}`)).toEqual([]);
      return r.stdout;
    };
    const out = view(ws.ours);
    expect(out).toBe(view(ws.runc));
    const lines = out.trim().split('\n');
    const joined = V2 ? ['0::'] : lines.filter((l) => /:(pids|memory|cpu|cpuacct|):/.test(l) || l.startsWith('0::')).map((l) => l.replace(/\/.*$/, ''));
    expect(joined.length).toBeGreaterThan(0);
    for (const j of joined) expect(lines).toContain(`${j}/`);
  });

  it('OOM-kills a memory hog under a 16 MiB limit and reports it', async () => {
    const hog = 'x=a; while true; do x=$x$x; done';
    const limit = (id: string) => (c: Config) => {
      c.linux.cgroupsPath = `${PARENT}/${id}`;
      c.linux.resources = { memory: { limit: 16 * 1024 * 1024 } };
    };
    // As the init: run returns 128+SIGKILL.
    const id1 = ws.id(ws.ours, 'oom');
    const r = ws.exec(ws.ours, ['run', '--bundle', bundle(['sh', '-c', hog], limit(id1)), id1]);
    expect(r.status, r.stderr).toBe(137);
    expect(existing(`${PARENT}/${id1}`)).toEqual([]);

    // As a child of the init, so that the counters can be read before delete.
    const id2 = ws.id(ws.ours, 'oom');
    const b = bundle(['sh', '-c', `sh -c '${hog}'; echo "hog exit $?"; sleep 100`], limit(id2));
    const { path, log } = start(ws.ours, b, id2);
    const until = Date.now() + 20_000;
    while (!readFileSync(log, 'utf8').includes('hog exit')) {
      if (Date.now() > until) throw new Error(`no OOM kill: ${readFileSync(log, 'utf8')}`);
      await sleep(50);
    }
    expect(readFileSync(log, 'utf8')).toContain('hog exit 137');
    const oomKills = V2 ? keyed(read('memory', path, 'memory.events'), 'oom_kill') : keyed(read('memory', path, 'memory.oom_control'), 'oom_kill');
    expect(oomKills).toBeGreaterThanOrEqual(1);
    if (!V2) expect(Number(read('memory', path, 'memory.failcnt'))).toBeGreaterThan(0);
    const s = stats(id2);
    expect(s.memory.oomKill).toBe(oomKills);
    expect(s.memory.limit).toBe(16 * 1024 * 1024);
    expect(ws.exec(ws.ours, ['delete', '--force', id2]).status).toBe(0);
    expect(existing(path)).toEqual([]);
  });

  it('holds a fork bomb at the pids limit, and delete removes it all', async () => {
    const id = ws.id(ws.ours, 'bomb');
    const b = bundle(['sh', '-c', 'f(){ f|f& }; f; sleep 100'], (c) => {
      c.linux.cgroupsPath = `${PARENT}/${id}`;
      c.linux.resources = { pids: { limit: 20 } };
    });
    const { path } = start(ws.ours, b, id);
    const until = Date.now() + 10_000;
    // pids.events counts the forks refused at the limit.
    while (keyed(read('pids', path, 'pids.events'), 'max') < 1) {
      if (Date.now() > until) throw new Error('the fork bomb never reached the limit');
      await sleep(50);
    }
    for (let i = 0; i < 10; i++) {
      expect(Number(read('pids', path, 'pids.current'))).toBeLessThanOrEqual(20);
      await sleep(20);
    }
    if (existsSync(join(dir('pids', path), 'pids.peak'))) expect(Number(read('pids', path, 'pids.peak'))).toBeLessThanOrEqual(20);
    const s = stats(id);
    expect(s.pids.limit).toBe(20);
    expect(s.pids.current).toBeGreaterThan(0);
    expect(s.pids.current).toBeLessThanOrEqual(20);
    const r = ws.exec(ws.ours, ['delete', '--force', id]);
    expect(r.status, r.stderr).toBe(0);
    expect(existing(path)).toEqual([]);
  });

  it('kill --all signals every process in the cgroup; delete kills what a PID-namespace-less init left', async () => {
    const noPidNs = (id: string) => (c: Config) => {
      c.linux.cgroupsPath = `${PARENT}/${id}`;
      c.linux.namespaces = c.linux.namespaces.filter((n) => n.type !== 'pid');
    };
    // sh and two sleeps.
    const script = 'sleep 100 & sleep 100 & wait';
    const id1 = ws.id(ws.ours, 'all');
    const a = start(ws.ours, bundle(['sh', '-c', script], noPidNs(id1)), id1);
    const procs = () => read('pids', a.path, 'cgroup.procs').split('\n').filter(Boolean);
    let until = Date.now() + 5_000;
    while (procs().length < 3 && Date.now() < until) await sleep(20);
    expect(procs().length).toBe(3);
    expect(ws.exec(ws.ours, ['kill', '--all', id1, 'KILL']).status).toBe(0);
    until = Date.now() + 5_000;
    while (procs().length > 0 && Date.now() < until) await sleep(20);
    expect(procs()).toEqual([]);
    expect(ws.exec(ws.ours, ['delete', id1]).status).toBe(0);
    expect(existing(a.path)).toEqual([]);

    // The init dies alone; its children stay in the cgroup until delete.
    const id2 = ws.id(ws.ours, 'all');
    // A subshell with its two sleeps, and the init (sleep).
    const b = start(ws.ours, bundle(['sh', '-c', `(${script}) & exec sleep 100`], noPidNs(id2)), id2);
    const procs2 = () => read('pids', b.path, 'cgroup.procs').split('\n').filter(Boolean);
    until = Date.now() + 5_000;
    while (procs2().length < 4 && Date.now() < until) await sleep(20);
    const pids = procs2();
    expect(pids.length).toBe(4);
    expect(ws.exec(ws.ours, ['kill', id2, 'KILL']).status).toBe(0);
    await waitStopped(ws.ours, id2);
    expect(procs2().length).toBe(3);
    expect(ws.exec(ws.ours, ['delete', id2]).status).toBe(0);
    expect(existing(b.path)).toEqual([]);
    // Gone, or a zombie waiting for the host's init to reap it.
    const alive = (p: string) => {
      try {
        return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${p}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    expect(pids.filter(alive)).toEqual([]);
  });

  it('stats reports memory, cpu and pids of a running container', () => {
    const id = ws.id(ws.ours, 'st');
    const { path } = start(ws.ours, bundle(['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 100'], (c) => resources(c, id)), id);
    const s = stats(id);
    expect(s.cgroup).toBe(path);
    expect(s.cgroupMode).toBe(V2 ? 'v2' : existsSync(join(CG, 'unified')) ? 'hybrid' : 'v1');
    expect(s.memory.usage).toBeGreaterThan(0);
    expect(s.memory.limit).toBe(32 * 1024 * 1024);
    expect(s.cpu.usageUsec).toBeGreaterThan(0);
    expect(s.pids.current).toBeGreaterThanOrEqual(1);
    expect(s.pids.limit).toBe(20);
  });

  it('refuses a bad cgroupsPath in one line, leaving nothing', () => {
    const id = ws.id(ws.ours, 'bad');
    const b = bundle(['true'], (c) => {
      c.linux.cgroupsPath = `${PARENT}/../escape`;
    });
    const r = ws.exec(ws.ours, ['create', '--bundle', b, id]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/config\.json: linux\.cgroupsPath .*\.\./);
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
  });

  it('refuses a cgroupsPath that already holds processes, and leaves them alone', () => {
    const idA = ws.id(ws.ours, 'busy');
    const path = `${PARENT}/${idA}`;
    const a = start(ws.ours, bundle(['sleep', '100'], (c) => (c.linux.cgroupsPath = path)), idA);
    const idB = ws.id(ws.ours, 'busy');
    const r = ws.exec(ws.ours, ['create', '--bundle', bundle(['true'], (c) => (c.linux.cgroupsPath = path)), idB]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`cgroup.procs is not empty`);
    expect(ws.state(ws.ours, idA).status).toBe('running');
    expect(read('pids', a.path, 'cgroup.procs')).toBe(String(ws.state(ws.ours, idA).pid));
    expect(existsSync(join(ws.ours.root, idB))).toBe(false);
  });

  it('names the cgroup file when a limit cannot be written', () => {
    const id = ws.id(ws.ours, 'badlim');
    const b = bundle(['true'], (c) => {
      c.linux.cgroupsPath = `${PARENT}/${id}`;
      c.linux.resources = { cpu: { quota: 500, period: 100_000 } }; // below the kernel's 1 ms minimum
    });
    const r = ws.exec(ws.ours, ['create', '--bundle', b, id]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`set the cpu quota: write \`${V2 ? '500 100000' : '500'}\` to ${join(dir('cpu', `${PARENT}/${id}`), V2 ? 'cpu.max' : 'cpu.cfs_quota_us')}: Invalid argument`);
    expect(existing(`${PARENT}/${id}`)).toEqual([]);
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
  });
});

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

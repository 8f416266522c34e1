// Self-tests of the lab harness: hosts are isolated and reach each other, cuts stop traffic both
// ways and heal, processes can be killed and restarted with their logs kept, and nothing is left
// behind, also when the owning process is interrupted or killed.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HOST_STATE_MOUNT, isAlive, Lab, labLeftovers, sweepStaleLabs, type LabHost } from './lab.js';
import { OURS, Workspace } from '../native/bundle.js';

const here = dirname(fileURLToPath(import.meta.url));
const probe = join(here, 'probe.mjs');

async function reach(from: LabHost, to: LabHost, port = 7000): Promise<boolean> {
  const r = await from.exec(process.execPath, [probe, 'connect', to.address, String(port), '700']);
  if (r.code !== 0 && r.code !== 1) throw new Error(`probe failed: ${r.stdout} ${r.stderr}`);
  return r.code === 0;
}

describe('lab', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.create({ hosts: ['alpha', 'beta', 'gamma'] });
    for (const h of lab.hosts) {
      await h.start('echo', process.execPath, [probe, 'serve', '7000']).waitForLog(/listening/);
    }
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('gives each host its own address, hostname, /run and state directory', async () => {
    const [a, b] = [lab.host('alpha'), lab.host('beta')];
    expect(a.address).not.toBe(b.address);
    expect((await a.exec('hostname')).stdout.trim()).toBe('alpha');
    expect((await b.exec('hostname')).stdout.trim()).toBe('beta');
    const addr = await a.exec('ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    expect(addr.stdout).toContain(`${a.address}/24`);

    expect((await a.exec('sh', ['-c', 'echo mine > /run/marker && cat /run/marker'])).stdout).toBe('mine\n');
    expect((await b.exec('sh', ['-c', 'test -e /run/marker; echo $?'])).stdout).toBe('1\n');
    expect(existsSync('/run/marker')).toBe(false);

    await a.exec('sh', ['-c', `echo state > ${HOST_STATE_MOUNT}/probe-file`]);
    expect(readFileSync(join(a.stateDir, 'probe-file'), 'utf8')).toBe('state\n');
    expect(existsSync(join(b.stateDir, 'probe-file'))).toBe(false);
  });

  it('lets two hosts reach each other over the underlay', async () => {
    expect(await reach(lab.host('alpha'), lab.host('beta'))).toBe(true);
    expect(await reach(lab.host('beta'), lab.host('alpha'))).toBe(true);
  });

  it('cuts a host off from all others in both directions, and heals', async () => {
    const [a, b, c] = [lab.host('alpha'), lab.host('beta'), lab.host('gamma')];
    lab.cut('alpha');
    try {
      expect(await reach(a, b)).toBe(false);
      expect(await reach(b, a)).toBe(false);
      expect(await reach(c, a)).toBe(false);
      expect(await reach(b, c)).toBe(true);
    } finally {
      lab.heal('alpha');
    }
    expect(await reach(a, b)).toBe(true);
    expect(await reach(c, a)).toBe(true);
  });

  it('cuts one pair only, leaving the other links up', async () => {
    const [a, b, c] = [lab.host('alpha'), lab.host('beta'), lab.host('gamma')];
    lab.cut('beta', 'alpha');
    try {
      expect(await reach(a, b)).toBe(false);
      expect(await reach(b, a)).toBe(false);
      expect(await reach(a, c)).toBe(true);
      expect(await reach(b, c)).toBe(true);
      // Healing names the pair in either order.
      lab.heal('alpha', 'beta');
      expect(await reach(a, b)).toBe(true);
    } finally {
      lab.heal('alpha');
    }
  });

  it('kills -9 and restarts a process, keeping its log', async () => {
    const h = lab.host('gamma');
    const p = h.start('counter', 'sh', ['-c', 'echo "started on $(hostname)"; exec sleep 3600']);
    await p.waitForLog(/started on gamma/);
    const first = p.pid!;
    await p.kill9();
    expect(p.running).toBe(false);
    expect(isAlive(first)).toBe(false);
    await p.restart();
    await p.waitForLog(/started on gamma[\s\S]*started on gamma/);
    expect(p.pid).not.toBe(first);
    expect(p.log().match(/started on gamma/g)).toHaveLength(2);
  });

  it('rejects bad arguments with messages that name the problem', async () => {
    expect(() => lab.host('nope')).toThrow(/no host named nope/);
    expect(() => lab.cut('alpha', 'alpha')).toThrow(/cannot cut alpha from itself/);
    await expect(Lab.create({ hosts: ['Bad_Name'] })).rejects.toThrow(/host name "Bad_Name"/);
    await expect(Lab.create({ hosts: ['x', 'x'] })).rejects.toThrow(/must be unique/);
  });
});

describe('lab cleanup', () => {
  it('refuses to start where it is not root', async () => {
    const spy = vi.spyOn(process, 'getuid').mockReturnValue(1000);
    try {
      await expect(Lab.create({ hosts: 1 })).rejects.toThrow(/needs root/);
    } finally {
      spy.mockRestore();
    }
  });

  it('leaves nothing behind after destroy', async () => {
    const lab = await Lab.create({ hosts: 2 });
    const procs = lab.hosts.map((h) => h.start('sleeper', 'sleep', ['3600']));
    const pids = [...procs.map((p) => p.pid!), ...lab.hosts.map((h) => h.anchorPid)];
    expect(labLeftovers(lab.id)).toEqual(['network namespaces', 'registry record', 'state directory']);
    await lab.destroy();
    expect(labLeftovers(lab.id)).toEqual([]);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });

  it("removes the containers its hosts' runtime made, though they live in namespaces of their own", async () => {
    const ws = new Workspace();
    const lab = await Lab.create({ hosts: 1 });
    try {
      const h = lab.hosts[0]!;
      const bundle = ws.bundle(['sleep', '3600'], (c) => {
        c.linux.cgroupsPath = `/tswarm-lab-test/${lab.id}`;
      });
      // (The container would hold a pipe for stdout open: /dev/null instead.)
      const r = await h.exec('sh', ['-c', `${OURS} run --detach --bundle ${bundle} lab-c1 >/dev/null 2>&1`]);
      expect(r.code, r.stderr).toBe(0);
      const state = JSON.parse((await h.exec(OURS, ['state', 'lab-c1'])).stdout) as { pid: number };
      expect(isAlive(state.pid)).toBe(true);
      await lab.destroy();
      expect(isAlive(state.pid)).toBe(false);
      expect(existsSync(`/sys/fs/cgroup/pids/tswarm-lab-test/${lab.id}`) || existsSync(`/sys/fs/cgroup/tswarm-lab-test/${lab.id}`)).toBe(false);
    } finally {
      await lab.destroy();
      for (const d of ['/sys/fs/cgroup', ...readdirSync('/sys/fs/cgroup').map((x) => join('/sys/fs/cgroup', x))]) {
        try {
          rmdirSync(join(d, 'tswarm-lab-test'));
        } catch {
          // absent (or not a hierarchy)
        }
      }
      ws.cleanup();
      ws.remove();
    }
  });

  for (const signal of ['SIGTERM', 'SIGINT', 'SIGKILL'] as const) {
    it(`cleans up when the owning process gets ${signal}`, async () => {
      const script = join(here, 'interrupted.mjs');
      if (!existsSync(join(here, '../../dist/test/lab/lab.js'))) throw new Error('build first: npm run build');
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const info = await new Promise<{ id: string; pids: number[]; anchors: number[] }>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n').find((l) => l.startsWith('{'));
          if (line) resolve(JSON.parse(line) as { id: string; pids: number[]; anchors: number[] });
        });
        child.once('exit', (code) => reject(new Error(`lab owner exited early (${code})`)));
      });
      expect(labLeftovers(info.id)).not.toEqual([]);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
      // Processes started on hosts die with their owner even on SIGKILL (parent-death signal).
      const deadline = Date.now() + 5_000;
      while ([...info.pids, ...info.anchors].some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const pid of [...info.pids, ...info.anchors]) expect(isAlive(pid)).toBe(false);
      if (signal === 'SIGKILL') {
        // Namespaces outlive a SIGKILLed owner; the next lab (or the suite's set-up) sweeps them.
        // (Another test file's Lab.create may sweep first, hence no assertion on the return value.)
        sweepStaleLabs();
      }
      expect(labLeftovers(info.id)).toEqual([]);
    });
  }
});

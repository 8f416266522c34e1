// The executor over swarm-runtime (and runc) with the busybox image from a local registry (root):
// the lifecycle, stop with a grace period, logs, exec, mounts and volumes, two containers on one
// bridge, and re-adoption by a new executor after the driving process was killed with -9.
// Every test removes its containers, mounts, cgroups, network namespaces and monitors, also on
// failure (afterEach).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IllegalStateError, InvalidArgumentError } from '../../common/errors.js';
import { startRegistry, registryAvailable, type Registry } from '../../test/registry/registry.js';
import { busyboxAvailable, pushBusyboxImage } from '../../test/registry/image.js';
import { dist } from '../../test/util/dist.js';
import { RegistryClient } from '../image/distribution.js';
import { readMounts } from '../image/rootfs.js';
import { ImageStore, type ImageRecord } from '../image/store.js';
import { BridgeDriver } from '../network/bridge.js';
import { NoSuchContainerError, RuntimeError, type LogEntry } from './executor.js';
import { nativeBinary, RuntimeExecutor, type RuntimeExecutorOptions } from './runtime.js';

const MISSING = [
  ...(process.getuid?.() === 0 ? [] : ['root']),
  ...(registryAvailable() ? [] : ['docker-registry']),
  ...(busyboxAvailable() ? [] : ['busybox-static']),
  ...(existsSync(nativeBinary('swarm-runtime')) && existsSync(nativeBinary('swarm-monitor')) ? [] : ['native/build (make -C native)']),
];
if (MISSING.length > 0) console.warn(`executor tests skipped; missing: ${MISSING.join(', ')}`);

async function collect(it: AsyncIterable<LogEntry>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

function text(entries: LogEntry[], stream?: string): string {
  return entries
    .filter((e) => stream === undefined || e.stream === stream)
    .map((e) => e.log)
    .join('');
}

describe.skipIf(MISSING.length > 0)('RuntimeExecutor', () => {
  let registry: Registry;
  let image: ImageRecord;
  let work: string;
  let images: ImageStore;
  const cgroupParent = `/tswarm-test-${process.pid}`;
  let n = 0;
  // what each test made, for afterEach
  const executors: RuntimeExecutor[] = [];
  const namespaces: string[] = [];
  const children: number[] = [];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'tswarm-exec-'));
    images = new ImageStore(path.join(work, 'images'));
    registry = await startRegistry();
    const client = new RegistryClient({ url: registry.url });
    await pushBusyboxImage(client);
    image = (await images.pull(client, 'library/busybox', 'latest')).image;
  });

  afterEach(async () => {
    const problems: string[] = [];
    for (const pid of children.splice(0)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const ex of executors.splice(0)) {
      for (const c of await ex.list().catch(() => [])) await ex.remove(c.id, { force: true }).catch((err: Error) => problems.push(`remove ${c.id}: ${err.message}`));
      if (existsSync(ex.runtimeRoot)) for (const e of readdirSync(ex.runtimeRoot)) problems.push(`${ex.runtime} state ${e}`);
    }
    for (const ns of namespaces.splice(0)) spawnSync('ip', ['netns', 'del', ns]);
    for (const m of await readMounts()) if (m.mountPoint.startsWith(`${work}/`)) problems.push(`mount ${m.mountPoint}`);
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
        if (cmd.includes(work) || readlinkSync(`/proc/${pid}/root`).startsWith(work)) problems.push(`process ${pid}: ${cmd}`);
      } catch {
        // gone meanwhile
      }
    }
    expect(problems).toEqual([]);
  });

  afterAll(async () => {
    await registry?.stop();
    for (const h of ['', ...readdirSync('/sys/fs/cgroup')]) {
      const d = path.join('/sys/fs/cgroup', h, cgroupParent);
      if (existsSync(d)) rmdirSync(d);
    }
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  function executor(opts: Partial<RuntimeExecutorOptions> = {}): RuntimeExecutor {
    const i = ++n;
    const runtime = opts.runtime ?? 'swarm-runtime';
    const ex = new RuntimeExecutor({
      stateDir: path.join(work, `state-${i}`),
      images,
      runtimeRoot: path.join(work, `rt-${runtime}-${i}`),
      cgroupParent,
      ...opts,
    });
    executors.push(ex);
    return ex;
  }

  /** A bridge in a throwaway host namespace (deleted with everything in it by afterEach). */
  async function bridge(): Promise<BridgeDriver> {
    const r = randomBytes(3).toString('hex');
    const ns = `tswx-${r}-host`;
    spawnSync('ip', ['netns', 'add', ns]);
    namespaces.push(ns);
    const b = new BridgeDriver({ stateDir: path.join(work, `net-${r}`), name: `tsx${r}`, subnet: `10.${randomInt(100, 250)}.${randomInt(1, 250)}.0/24`, netns: ns });
    await b.create();
    return b;
  }

  for (const runtime of ['swarm-runtime', 'runc']) {
    it(`runs a container through its lifecycle (${runtime}): prepare, start, logs, exec, wait, remove`, async () => {
      const ex = executor({ runtime });
      const script = 'echo oops >&2; sleep 0.1; echo hello $GREETING from $(hostname); cat /etc/passwd | busybox head -1; sleep 0.3; exit 4';
      const info = await ex.prepare({ id: `life-${runtime}`, image, command: ['sh', '-c', script], env: ['GREETING=hi'], hostname: 'box1', limits: { memoryBytes: 64 << 20, pids: 50, nanoCpus: 500_000_000 } });
      expect(info).toMatchObject({ status: 'created', runtime, image: image.reference });
      expect(info.pid).toBeGreaterThan(0);
      const config = JSON.parse(await readFile(path.join(info.bundle, 'config.json'), 'utf8')) as {
        process: { env: string[]; capabilities: { bounding: string[] } };
        linux: { resources: unknown; seccomp?: { defaultAction: string } };
      };
      expect(config.process.env).toEqual(['HOSTNAME=box1', 'PATH=/bin', 'GREETING=hi']);
      expect(config.process.capabilities.bounding).toContain('CAP_NET_RAW');
      expect(config.linux.resources).toEqual({ memory: { limit: 64 << 20 }, cpu: { quota: 50_000, period: 100_000 }, pids: { limit: 50 }, devices: [{ allow: false, access: 'rwm' }] });
      expect(config.linux.seccomp?.defaultAction).toBe('SCMP_ACT_ALLOW');

      await ex.start(info.id);
      await expect(ex.start(info.id)).rejects.toThrow(IllegalStateError);
      expect((await ex.inspect(info.id)).status).toBe('running');
      const exec = await ex.exec(info.id, ['sh', '-c', 'echo in $(hostname); exit 5']);
      expect(exec).toEqual({ exitCode: 5, stdout: 'in box1\n', stderr: '' });
      // follow: everything, until the container has exited
      const followed = await collect(ex.logs(info.id, { follow: true }));
      expect(text(followed, 'stdout')).toBe('hello hi from box1\nroot:x:0:0:root:/root:/bin/sh\n');
      expect(text(followed, 'stderr')).toBe('oops\n');
      for (const e of followed) expect(e.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      const exit = await ex.wait(info.id);
      expect(exit).toMatchObject({ exitCode: 4, oomKilled: false });
      expect(await ex.inspect(info.id)).toMatchObject({ status: 'exited', pid: 0, exit });
      expect((await collect(ex.logs(info.id, { tail: 1 }))).map((e) => e.log)).toEqual(['root:x:0:0:root:/root:/bin/sh\n']);

      await ex.remove(info.id);
      await expect(ex.inspect(info.id)).rejects.toThrow(NoSuchContainerError);
      expect(await images.getRootfs(info.id)).toBeUndefined();
      expect(existsSync(path.join(ex.runtimeRoot, info.id))).toBe(false);
    });
  }

  it('keeps records and bundles in runDir and logs in stateDir; after a "reboot" (runDir emptied), prune removes the root filesystems and logs left', async () => {
    const runDir = path.join(work, `run-${n + 1}`);
    const ex = executor({ runDir });
    const info = await ex.prepare({ id: 'reboot-1', image, command: ['sh', '-c', 'echo before the reboot'] });
    expect(info.bundle).toBe(path.join(runDir, 'containers', 'reboot-1', 'bundle'));
    expect(info.logPath).toBe(path.join(ex.stateDir, 'logs', 'reboot-1.json'));
    expect(existsSync(path.join(runDir, 'containers', 'reboot-1', 'container.json'))).toBe(true);
    expect(existsSync(path.join(ex.stateDir, 'containers'))).toBe(false);
    await ex.start(info.id);
    await ex.wait(info.id);
    expect(text(await collect(ex.logs(info.id)))).toBe('before the reboot\n');
    const kept = await ex.prepare({ id: 'reboot-kept', image, command: ['true'] });
    expect(await ex.prune()).toEqual([]); // every container has its record
    // A mounted root filesystem without a record here (a container from before runDir) is left alone.
    const other = executor({ runDir: path.join(work, `run-other-${n}`), stateDir: ex.stateDir, runtimeRoot: ex.runtimeRoot });
    expect(await other.prune()).toEqual([]);
    expect(await images.getRootfs(kept.id)).toBeDefined();

    // The reboot: the container and its runtime state are gone, the tmpfs is empty, and so is the
    // mount table; the disk keeps the root filesystem and the log.
    await ex.remove(kept.id, { force: true });
    const rt = spawnSync(ex.runtimeBin, ['--root', ex.runtimeRoot, 'delete', '--force', info.id], { encoding: 'utf8' });
    expect(rt.status, rt.stderr).toBe(0);
    const rootfs = (await images.getRootfs(info.id))!;
    spawnSync('umount', [rootfs.target]);
    await rm(runDir, { recursive: true });
    const after = executor({ runDir, stateDir: ex.stateDir, runtimeRoot: ex.runtimeRoot });
    expect(await after.list()).toEqual([]);
    expect(await after.prune()).toEqual(['reboot-1']);
    expect(await images.getRootfs(info.id)).toBeUndefined();
    expect(existsSync(info.logPath)).toBe(false);
    // and a new container of that id starts with an empty log
    const again = await after.prepare({ id: 'reboot-1', image, command: ['sh', '-c', 'echo after'] });
    await after.start(again.id);
    await after.wait(again.id);
    expect(text(await collect(after.logs(again.id)))).toBe('after\n');
  });

  it('stops with the stop signal, and with SIGKILL after the grace period when the signal is ignored', async () => {
    const ex = executor();
    const polite = await ex.prepare({ id: 'polite', image, command: ['sh', '-c', 'trap "echo bye; exit 0" TERM; echo up; while true; do sleep 0.05; done'] });
    const stubborn = await ex.prepare({ id: 'stubborn', image, command: ['sh', '-c', 'trap "echo ignored" TERM; echo up; while true; do sleep 0.05; done'] });
    for (const c of [polite, stubborn]) await ex.start(c.id);
    for (const c of [polite, stubborn]) for (let i = 0; i < 100 && text(await collect(ex.logs(c.id))) === ''; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await ex.stop(polite.id, 5000)).toMatchObject({ exitCode: 0 });
    expect(text(await collect(ex.logs(polite.id)))).toBe('up\nbye\n');
    const t0 = Date.now();
    expect(await ex.stop(stubborn.id, 400)).toMatchObject({ exitCode: 137, signal: 'SIGKILL' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(text(await collect(ex.logs(stubborn.id)))).toMatch(/^up\n(ignored\n)?$/);
    // stop on an exited container returns its status again
    expect(await ex.stop(polite.id, 10)).toMatchObject({ exitCode: 0 });
    // a running container is removed only with force
    const running = await ex.prepare({ id: 'running', image, command: ['sleep', '1000'] });
    await ex.start(running.id);
    await expect(ex.remove(running.id)).rejects.toThrow(/is running/);
    await ex.remove(running.id, { force: true });
    expect((await ex.list()).map((c) => c.id)).toEqual(['polite', 'stubborn']);
  });

  it('reports an out-of-memory kill from the cgroup', async () => {
    const ex = executor();
    const hog = await ex.prepare({ id: 'hog', image, command: ['sh', '-c', 'x=a; while true; do x=$x$x; done'], limits: { memoryBytes: 16 << 20 } });
    await ex.start(hog.id);
    expect(await ex.wait(hog.id)).toMatchObject({ exitCode: 137, signal: 'SIGKILL', oomKilled: true });
  });

  it('wakes a wait on the exit file (not its one-second poll), and a wait aborted meanwhile rejects', async () => {
    const ex = executor();
    const quick = await ex.prepare({ id: 'quick', image, command: ['sleep', '0.2'] });
    const slow = await ex.prepare({ id: 'slow', image, command: ['sleep', '1000'] });
    await ex.start(slow.id);
    const ac = new AbortController();
    const aborted = ex.wait(slow.id, ac.signal);
    await ex.start(quick.id);
    const t0 = performance.now();
    expect(await ex.wait(quick.id)).toMatchObject({ exitCode: 0 });
    // The poll behind the watch comes every 1,000 ms; the container exits 200 ms after its start.
    expect(performance.now() - t0).toBeLessThan(950);
    ac.abort();
    await expect(aborted).rejects.toThrow(/abort/i);
    expect((await ex.inspect(slow.id)).status).toBe('running');
  });

  it('refuses bad settings and specs naming the field, and maps a failed create to a RuntimeError leaving nothing', async () => {
    expect(() => executor({ runtime: 'docker' })).toThrow(InvalidArgumentError);
    expect(() => executor({ runtime: 'docker' })).toThrow(/^runtime: must be one of swarm-runtime, runc, crun/);
    const ex = executor();
    await expect(ex.prepare({ id: 'r1', image, mounts: [{ type: 'bind', source: 'relative/dir', target: '/data' }] })).rejects.toThrow(/^mounts\[0\]\.source: must be an absolute path/);
    await expect(ex.prepare({ id: 'r2', image, mounts: [{ type: 'bind', source: path.join(work, 'nope'), target: '/data' }] })).rejects.toThrow(/^mounts\[0\]\.source: .* does not exist/);
    await expect(ex.prepare({ id: 'r3', image, mounts: [{ type: 'volume', source: '../x', target: '/data' }] })).rejects.toThrow(/^mounts\[0\]\.source: a volume name/);
    await expect(ex.prepare({ id: 'r4', image, limits: { memoryBytes: 5 } })).rejects.toThrow(/^limits\.memoryBytes: /);
    await expect(ex.prepare({ id: 'r5', image, network: 'bridge' })).rejects.toThrow(/^network: /);
    await expect(ex.prepare({ id: 'r7', image, ports: [{ protocol: 'tcp', published: 8080, target: 80 }] })).rejects.toThrow(/^ports: published ports need the bridge network; this container's network is none$/);
    await expect(ex.prepare({ id: 'bad id', image })).rejects.toThrow(/^id: /);
    await expect(ex.prepare({ id: 'r6', image, user: 'nobody-here' })).rejects.toThrow(/^user: no user "nobody-here"/);

    const err = await ex.prepare({ id: 'missing-exe', image, command: ['no-such-program'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).message).toMatch(/^swarm-runtime create missing-exe: swarm-runtime: create missing-exe: exec no-such-program: executable file not found in \$PATH$/);
    expect(await ex.list()).toEqual([]);
    expect(await images.getRootfs('missing-exe')).toBeUndefined();
    await expect(ex.inspect('missing-exe')).rejects.toThrow(NoSuchContainerError);
  });

  it('bind-mounts host directories, keeps named volumes after their containers, and mounts tmpfs', async () => {
    const ex = executor();
    const host = path.join(work, 'bind-src');
    await mkdir(host, { recursive: true });
    await writeFile(path.join(host, 'in.txt'), 'from host\n');
    const writer = await ex.prepare({
      id: 'writer',
      image,
      command: ['sh', '-c', 'cat /host/in.txt; echo from-container > /host/out.txt; echo kept > /vol/data; busybox grep " /scratch " /proc/mounts; echo no >/ro/x || echo ro-refused'],
      mounts: [
        { type: 'bind', source: host, target: '/host' },
        { type: 'bind', source: host, target: '/ro', readOnly: true },
        { type: 'volume', source: 'shared', target: '/vol' },
        { type: 'tmpfs', target: '/scratch', sizeBytes: 1 << 20 },
      ],
    });
    await ex.start(writer.id);
    expect(await ex.wait(writer.id)).toMatchObject({ exitCode: 0 });
    const out = text(await collect(ex.logs(writer.id)), 'stdout');
    expect(out).toMatch(/^from host\ntmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k(,mode=1777)? 0 0\nro-refused\n$/);
    expect(await readFile(path.join(host, 'out.txt'), 'utf8')).toBe('from-container\n');
    await ex.remove(writer.id);
    expect(await ex.volumes()).toEqual(['shared']);

    const reader = await ex.prepare({ id: 'reader', image, command: ['cat', '/v/data'], mounts: [{ type: 'volume', source: 'shared', target: '/v', readOnly: true }] });
    await expect(ex.removeVolume('shared')).rejects.toThrow(/in use by container reader/);
    await ex.start(reader.id);
    expect(await ex.wait(reader.id)).toMatchObject({ exitCode: 0 });
    expect(text(await collect(ex.logs(reader.id)))).toBe('kept\n');
    await ex.remove(reader.id);
    expect(await ex.removeVolume('shared')).toBe(true);
    expect(await ex.volumes()).toEqual([]);
  });

  it('connects two containers on one bridge: wget in one reaches httpd in the other', async () => {
    const net = await bridge();
    const ex = executor({ network: net });
    const server = await ex.prepare({
      id: 'web',
      image,
      network: 'bridge',
      ports: [{ protocol: 'tcp', published: 18080, target: 8080 }],
      command: ['sh', '-c', 'busybox mkdir -p /tmp/www && echo hello-from-web > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www'],
    });
    expect(server.network?.address).toMatch(/^10\./);
    expect(server.network?.ports).toEqual([{ protocol: 'tcp', published: 18080, target: 8080 }]);
    await ex.start(server.id);
    const url = `http://${server.network!.address}:8080/`;
    const client = await ex.prepare({
      id: 'client',
      image,
      network: 'bridge',
      command: ['sh', '-c', `for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - ${url} && exit 0; sleep 0.2; done; exit 1`],
    });
    expect(client.network?.address).not.toBe(server.network?.address);
    await ex.start(client.id);
    expect(await ex.wait(client.id)).toMatchObject({ exitCode: 0 });
    expect(text(await collect(ex.logs(client.id)), 'stdout')).toBe('hello-from-web\n');
    expect(Object.keys(await net.endpoints()).sort()).toEqual(['client', 'web']);
    // The task ended: its published ports are withdrawn, the container stays.
    expect((await net.endpoints()).web?.ports).toHaveLength(1);
    await ex.unpublish(server.id);
    expect((await net.endpoints()).web?.ports).toBeUndefined();
    expect((await ex.inspect(server.id)).network?.ports).toBeUndefined();
    await ex.remove(client.id);
    await ex.remove(server.id, { force: true });
    expect(await net.endpoints()).toEqual({});
  });

  it("bounds a container's log: its rotated files are one log (all, tail, follow), removed with it and by prune; the none driver keeps none", async () => {
    const ex = executor();
    const logs = path.join(ex.stateDir, 'logs');
    const filesOf = (id: string): string[] => readdirSync(logs).filter((f) => f === `${id}.json` || f.startsWith(`${id}.json.`)).sort();
    const bound = { driver: 'json-file' as const, maxSizeBytes: 64 * 1024, maxFiles: 3 };
    const script = ['sh', '-c', 'seq 1 5000 | sed "s/$/ some padding to make a longer line/"']; // ~600 KB of records
    const c = await ex.prepare({ id: 'rot-1', image, command: script, log: bound });
    // A follower from before the first line, of a log whose files all stay (a follower that
    // falls more than maxFiles-1 rotations behind loses lines: this writer is that fast).
    const roomy = await ex.prepare({ id: 'rot-2', image, command: script, log: { ...bound, maxFiles: 20 } });
    const following = collect(ex.logs(roomy.id, { follow: true, tail: 0 }));
    await ex.start(roomy.id);
    await ex.start(c.id);
    expect(await ex.wait(c.id)).toMatchObject({ exitCode: 0 });
    expect(filesOf(c.id)).toEqual(['rot-1.json', 'rot-1.json.1', 'rot-1.json.2']);
    const size = filesOf(c.id).reduce((sum, f) => sum + readFileSync(path.join(logs, f)).length, 0);
    expect(size).toBeLessThanOrEqual(3 * 64 * 1024);
    const nums = (es: LogEntry[]): number[] => es.map((e) => Number(e.log.split(' ')[0]));
    const all = nums(await collect(ex.logs(c.id)));
    expect(all[all.length - 1]).toBe(5000);
    expect(all).toEqual(all.map((_, i) => all[0]! + i));
    expect(nums(await collect(ex.logs(c.id, { tail: 3 })))).toEqual([4998, 4999, 5000]);
    // The follower saw every line, across the rotations.
    expect(await ex.wait(roomy.id)).toMatchObject({ exitCode: 0 });
    expect(nums(await following)).toEqual(Array.from({ length: 5000 }, (_, i) => i + 1));
    expect(filesOf(roomy.id).length).toBeGreaterThan(5);
    await ex.remove(roomy.id);
    expect(await ex.prune()).toEqual([]); // a container's rotated files are its own
    expect(filesOf(c.id)).toHaveLength(3);
    await ex.remove(c.id);
    expect(filesOf(c.id)).toEqual([]);

    const quiet = await ex.prepare({ id: 'quiet', image, command: ['sh', '-c', 'echo dropped; exit 3'], log: { driver: 'none' } });
    await ex.start(quiet.id);
    expect(await ex.wait(quiet.id)).toMatchObject({ exitCode: 3 });
    expect(await collect(ex.logs(quiet.id))).toEqual([]);
    expect(await collect(ex.logs(quiet.id, { follow: true }))).toEqual([]);
    expect(filesOf('quiet')).toEqual([]);
    await ex.remove(quiet.id);

    // The logs of a container without a record (a reboot took it): every file goes.
    for (const f of ['ghost.json', 'ghost.json.1', 'ghost.json.2']) await writeFile(path.join(logs, f), '');
    expect(await ex.prune()).toEqual(['ghost']);
    expect(readdirSync(logs)).toEqual([]);

    await expect(ex.prepare({ id: 'tiny', image, command: ['true'], log: { ...bound, maxSizeBytes: 1000 } })).rejects.toThrow(InvalidArgumentError);
    await expect(ex.prepare({ id: 'tiny', image, command: ['true'], log: { ...bound, maxFiles: 0 } })).rejects.toThrow(/^log\.maxFiles: must be a whole number from 1 to 100, got 0$/);
    expect(await ex.list()).toEqual([]);
  });

  it('adopts the containers of a driver killed with -9: running ones keep running, exited ones keep their status and logs', async () => {
    const stateDir = path.join(work, `adopt-${++n}`);
    const runtimeRoot = path.join(work, `rt-adopt-${n}`);
    const input = {
      stateDir,
      imageRoot: images.root,
      image: image.reference,
      runtime: 'swarm-runtime',
      runtimeRoot,
      cgroupParent,
      containers: [
        { id: 'long', args: ['sh', '-c', 'echo started; trap "echo stopping; exit 0" TERM; while true; do sleep 0.05; done'] },
        { id: 'short', args: ['sh', '-c', 'echo short-lived; exit 7'] },
      ],
    };
    const driver = spawn(process.execPath, [dist('test/native/exec-driver.js'), JSON.stringify(input)], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.push(driver.pid!);
    // afterEach removes what the adopting executor knows: the same state directory
    const ex = executor({ stateDir, runtimeRoot });
    let stderr = '';
    driver.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      driver.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve();
      });
      driver.once('exit', (code) => reject(new Error(`driver exited ${code}: ${stderr}`)));
    });
    const exited = new Promise((r) => driver.once('exit', r));
    process.kill(-driver.pid!, 'SIGKILL');
    await exited;

    const long = await ex.inspect('long');
    expect(long.status).toBe('running');
    expect(process.kill(long.pid, 0)).toBe(true);
    expect(process.kill(long.monitorPid, 0)).toBe(true);
    expect(await ex.wait('short')).toMatchObject({ exitCode: 7 });
    expect(text(await collect(ex.logs('short')))).toBe('short-lived\n');
    expect(await ex.stop('long', 5000)).toMatchObject({ exitCode: 0 });
    expect(text(await collect(ex.logs('long')))).toBe('started\nstopping\n');
    expect((await ex.list()).map((c) => [c.id, c.status, c.exit?.exitCode])).toEqual([
      ['long', 'exited', 0],
      ['short', 'exited', 7],
    ]);
  });
});

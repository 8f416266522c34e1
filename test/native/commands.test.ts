// swarm-runtime's commands beyond the lifecycle, against runc: list, pause/resume, update,
// features, spec, --preserve-fds, exec --cap, and process.terminal with --console-socket.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisites, removeCgroupParents, Workspace, type Config, type Runtime } from './bundle.js';

const missing = missingPrerequisites();
if (missing.length > 0) console.warn(`native commands tests skipped; missing: ${missing.join(', ')}`);

const CG = '/sys/fs/cgroup';
const V2 = readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === CG && l.split(' ')[2] === 'cgroup2');
/** Every cgroup made here lives under this parent, so that clean-up can find it. */
const PARENT = `/swarm-rt-cmd-${process.pid}`;
const RECEIVER = join(import.meta.dirname, 'helpers/console-receiver.py');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(missing.length > 0)('swarm-runtime commands', () => {
  let ws: Workspace;

  beforeAll(() => {
    ws = new Workspace();
  });

  afterEach(() => {
    expect(ws.cleanup()).toEqual([]);
  });

  afterAll(() => {
    try {
      ws.cleanup();
      expect(ws.leftovers()).toEqual([]);
      expect(removeCgroupParents(PARENT)).toEqual([]);
    } finally {
      ws.remove();
    }
  });

  /** run --detach with the container's stdio in a file. */
  function runDetached(rt: Runtime, bundle: string, id: string, extra: string[] = []): void {
    const fd = openSync(join(ws.dir, `${id}-${rt.name}.out`), 'w');
    try {
      const r = ws.exec(rt, ['run', '--detach', ...extra, '--bundle', bundle, id], { outFd: fd, detached: true });
      expect(r.status, `${rt.name} run --detach ${id}`).toBe(0);
    } finally {
      closeSync(fd);
    }
  }

  it('lists containers as a table, as JSON and quietly, like runc', () => {
    const bundle = ws.bundle(['sleep', '100']);
    const stopped = ws.bundle(['true']);
    const ids = [`lst-b-${process.pid}`, `lst-a-${process.pid}`, `lst-stopped-${process.pid}`];
    const out: Record<string, { table: string[][]; json: unknown; quiet: string; header: string }> = {};
    for (const rt of [ws.ours, ws.runc]) {
      for (const id of ids) ws.track(rt, id);
      runDetached(rt, bundle, ids[0]!);
      expect(ws.exec(rt, ['create', '--bundle', bundle, ids[1]!], { detached: true }).status).toBe(0);
      runDetached(rt, stopped, ids[2]!);
      for (let i = 0; i < 200 && ws.state(rt, ids[2]!).status !== 'stopped'; i++) sleepMs(10);
      const table = ws.exec(rt, ['list']);
      expect(table.stderr).toBe('');
      const [header, ...rows] = table.stdout.trimEnd().split('\n');
      const json = JSON.parse(ws.exec(rt, ['list', '--format', 'json']).stdout) as Record<string, unknown>[];
      out[rt.name] = {
        header: header!,
        // ID, STATUS, BUNDLE, OWNER (pids and times differ); the pid column is checked below.
        table: rows.map((r) => {
          const cells = r.split(/ {2,}/);
          const [id, pid, status] = cells;
          expect(Number(pid), r).toBe(status === 'stopped' ? 0 : ws.state(rt, id!).pid);
          expect(Number.isNaN(Date.parse(cells[4]!)), r).toBe(false);
          return [id!, status!, cells[3]!, cells[5]!];
        }),
        json: json.map((c) => ({ ...c, pid: typeof c.pid, created: typeof c.created })),
        quiet: ws.exec(rt, ['list', '-q']).stdout,
      };
    }
    expect(out['swarm-runtime']).toEqual(out.runc);
    expect(out['swarm-runtime']!.header).toMatch(/^ID {10,}PID {9}STATUS {6}BUNDLE {10,}CREATED {10,}OWNER$/);
    expect(out['swarm-runtime']!.table.map((r) => r.slice(0, 2))).toEqual([
      [ids[1], 'created'],
      [ids[0], 'running'],
      [ids[2], 'stopped'],
    ]);
    // runc prints "null" for no containers.
    const empty = join(ws.dir, 'empty-root');
    mkdirSync(empty);
    for (const rt of [ws.ours, ws.runc]) {
      const r = spawnSync(rt.bin, ['--root', empty, 'list', '--format', 'json'], { encoding: 'utf8' });
      expect([rt.name, r.status, r.stdout]).toEqual([rt.name, 0, 'null\n']);
    }
  });

  it('pauses and resumes a container with the freezer, like runc', async () => {
    for (const rt of [ws.ours, ws.runc]) {
      const data = join(ws.dir, `pause-${rt === ws.ours ? 'ours' : 'runc'}`);
      mkdirSync(data);
      const id = ws.id(rt, 'pause');
      const b = ws.bundle(['sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /data/n; sleep 0.02; done'], (c) => {
        c.mounts.push({ destination: '/data', type: 'bind', source: data, options: ['rbind', 'rw'] });
      });
      const n = () => (existsSync(join(data, 'n')) ? readFileSync(join(data, 'n'), 'utf8') : '');
      const r = ws.exec(rt, ['pause', id]);
      expect(r.status, `${rt.name} pause of an unknown container`).toBe(1);
      expect(ws.exec(rt, ['create', '--bundle', b, id], { detached: true }).status).toBe(0);
      // A created container may be paused too (its init, blocked before exec, is frozen).
      expect(ws.exec(rt, ['pause', id]).status, `${rt.name} pause of a created container`).toBe(0);
      expect(ws.state(rt, id).status, rt.name).toBe('paused');
      expect(ws.exec(rt, ['resume', id]).status).toBe(0);
      expect(ws.state(rt, id).status, rt.name).toBe('created');
      expect(ws.exec(rt, ['start', id]).status).toBe(0);
      for (let i = 0; i < 100 && n() === ''; i++) await sleep(10);
      expect(ws.exec(rt, ['pause', id]).stderr).toBe('');
      expect(ws.state(rt, id).status, rt.name).toBe('paused');
      const frozen = n();
      await sleep(300);
      expect(n(), `${rt.name}: nothing runs while paused`).toBe(frozen);
      expect(ws.exec(rt, ['pause', id]).status, `${rt.name} pause twice`).toBe(1);
      expect(ws.exec(rt, ['resume', id]).stderr).toBe('');
      expect(ws.state(rt, id).status).toBe('running');
      expect(ws.exec(rt, ['resume', id]).status, `${rt.name} resume of a running container`).toBe(1);
      for (let i = 0; i < 100 && n() === frozen; i++) await sleep(10);
      expect(n()).not.toBe(frozen);
      // A paused container can be deleted by force.
      expect(ws.exec(rt, ['pause', id]).status).toBe(0);
      expect(ws.exec(rt, ['delete', '--force', id]).stderr).toBe('');
      expect(existsSync(join(rt.root, id))).toBe(false);
    }
    const r = ws.exec(ws.ours, ['resume', 'nope']);
    expect(r.stderr).toBe('swarm-runtime: resume nope: container `nope` does not exist\n');
  });

  it('updates the limits of a running container with flags and with --resources, like runc', () => {
    const files = (path: string): string[] => {
      const f: [string, string][] = V2
        ? [['', 'memory.max'], ['', 'memory.swap.max'], ['', 'cpu.max'], ['', 'cpu.weight'], ['', 'pids.max'], ['', 'cpuset.cpus']]
        : [
            ['memory', 'memory.limit_in_bytes'],
            ['memory', 'memory.memsw.limit_in_bytes'],
            ['memory', 'memory.soft_limit_in_bytes'],
            ['cpu', 'cpu.cfs_quota_us'],
            ['cpu', 'cpu.cfs_period_us'],
            ['cpu', 'cpu.shares'],
            ['pids', 'pids.max'],
            ['cpuset', 'cpuset.cpus'],
            ['cpuset', 'cpuset.mems'],
          ];
      return f.map(([h, file]) => `${file}=${readFileSync(join(CG, h, path, file), 'utf8').trim()}`);
    };
    const res = join(ws.dir, 'resources.json');
    writeFileSync(res, JSON.stringify({ memory: { limit: 48 * 1024 * 1024, swap: 96 * 1024 * 1024 }, pids: { limit: 12 }, cpu: { shares: 1024 } }));
    const seen: Record<string, string[][]> = {};
    for (const rt of [ws.ours, ws.runc]) {
      const id = ws.id(rt, 'upd');
      const path = `${PARENT}/${id}`;
      runDetached(rt, ws.bundle(['sleep', '100'], (c) => {
        c.linux.cgroupsPath = path;
        c.linux.resources = { memory: { limit: 64 * 1024 * 1024 }, cpu: { shares: 512, cpus: '0-1' }, pids: { limit: 30 } };
      }), id);
      const pid = ws.state(rt, id).pid;
      const cpus = () => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!;
      const before = [...files(path), `init cpus=${cpus()}`];
      let r = ws.exec(rt, ['update', '--memory', '32m', '--memory-swap', '64m', '--memory-reservation', '16m', '--cpu-quota', '20000', '--cpu-period', '100000', '--cpu-share', '256', '--pids-limit', '10', '--cpuset-cpus', '0', '--cpuset-mems', '0', id]);
      expect([rt.name, r.status, r.stderr]).toEqual([rt.name, 0, '']);
      const afterFlags = [...files(path), `init cpus=${cpus()}`];
      r = ws.exec(rt, ['update', '--resources', res, id]);
      expect([rt.name, r.status, r.stderr]).toEqual([rt.name, 0, '']);
      const afterFile = files(path);
      // An exec'd process lands in the updated cgroups too.
      const e = ws.exec(rt, ['exec', id, 'sh', '-c', "grep Cpus_allowed_list /proc/self/status | tr -d '\\t'"]);
      expect([e.status, e.stdout]).toEqual([0, 'Cpus_allowed_list:0\n']);
      seen[rt.name] = [before, afterFlags, afterFile];
      expect(ws.exec(rt, ['delete', '--force', id]).status).toBe(0);
    }
    expect(seen['swarm-runtime']).toEqual(seen.runc);
    if (!V2) {
      expect(seen['swarm-runtime']![1]).toEqual([
        'memory.limit_in_bytes=33554432',
        'memory.memsw.limit_in_bytes=67108864',
        'memory.soft_limit_in_bytes=16777216',
        'cpu.cfs_quota_us=20000',
        'cpu.cfs_period_us=100000',
        'cpu.shares=256',
        'pids.max=10',
        'cpuset.cpus=0',
        'cpuset.mems=0',
        'init cpus=0',
      ]);
      expect(seen['swarm-runtime']![2]!.slice(0, 2)).toEqual(['memory.limit_in_bytes=50331648', 'memory.memsw.limit_in_bytes=100663296']);
    }
    // A stopped container, a bad value and a bad file are refused in one line.
    const id = ws.id(ws.ours, 'upd');
    runDetached(ws.ours, ws.bundle(['true']), id);
    for (let i = 0; i < 200 && ws.state(ws.ours, id).status !== 'stopped'; i++) sleepMs(10);
    expect(ws.exec(ws.ours, ['update', '--memory', '1g', id]).stderr).toBe(`swarm-runtime: update ${id}: cannot update a container that is stopped\n`);
    expect(ws.exec(ws.ours, ['update', '--memory', 'lots', id]).stderr).toBe(`swarm-runtime: update ${id}: cannot update a container that is stopped\n`);
    const running = ws.id(ws.ours, 'upd');
    runDetached(ws.ours, ws.bundle(['sleep', '100']), running);
    expect(ws.exec(ws.ours, ['update', '--memory', 'lots', running]).stderr).toBe(`swarm-runtime: update ${running}: --memory: \`lots\` is not a size\n`);
    // --resources - reads stdin.
    const fromStdin = spawnSync(ws.ours.bin, ['--root', ws.ours.root, 'update', '-r', '-', running], { input: JSON.stringify({ pids: { limit: 7 } }), encoding: 'utf8' });
    expect([fromStdin.status, fromStdin.stderr]).toEqual([0, '']);
    expect(readFileSync(join(CG, V2 ? '' : 'pids', `/swarm-runtime/${running}`, 'pids.max'), 'utf8')).toBe('7\n');
    writeFileSync(res, JSON.stringify({ memory: { limit: 'big' } }));
    expect(ws.exec(ws.ours, ['update', '-r', res, running]).stderr).toBe(`swarm-runtime: update ${running}: ${res}: memory.limit: must be an integer\n`);
  });

  it('prints its features as runc does, listing what it supports', () => {
    const ours = JSON.parse(ws.exec(ws.ours, ['features']).stdout) as Record<string, unknown> & { linux: Record<string, unknown> & { seccomp: { actions: string[] }; namespaces: string[] }; mountOptions: string[]; hooks: string[] };
    const runc = JSON.parse(ws.exec(ws.runc, ['features']).stdout) as Record<string, unknown> & { linux: Record<string, unknown> };
    for (const k of Object.keys(runc)) expect(Object.keys(ours)).toContain(k);
    for (const k of Object.keys(runc.linux)) expect(Object.keys(ours.linux)).toContain(k);
    expect(ours.hooks).toEqual(['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']);
    expect(ours.linux.namespaces).toEqual(['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts']);
    expect(ours.linux.seccomp.actions).toContain('SCMP_ACT_NOTIFY');
    for (const o of ['rbind', 'rro', 'idmap', 'tmpcopyup', 'nosymfollow', 'rprivate']) expect(ours.mountOptions).toContain(o);
    expect(ours.linux.cgroup).toEqual({ v1: true, v2: true, systemd: false, systemdUser: false, rdma: false });
    expect(ours.linux.apparmor).toEqual({ enabled: false });
  });

  it('writes a default config.json like `runc spec`, refuses to overwrite it, and runs it', () => {
    const dirs = { ours: join(ws.dir, 'spec-ours'), runc: join(ws.dir, 'spec-runc') };
    mkdirSync(dirs.ours);
    mkdirSync(dirs.runc);
    expect(ws.exec(ws.ours, ['spec', '--bundle', dirs.ours]).stderr).toBe('');
    expect(ws.exec(ws.runc, ['spec', '--bundle', dirs.runc]).status).toBe(0);
    const norm = (d: string) => {
      const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Config;
      delete c.ociVersion;
      delete c.hostname;
      return c;
    };
    expect(norm(dirs.ours)).toEqual(norm(dirs.runc));
    expect((statSync(join(dirs.ours, 'config.json')).mode & 0o777).toString(8)).toBe((statSync(join(dirs.runc, 'config.json')).mode & 0o777).toString(8));
    expect(ws.exec(ws.ours, ['spec', '--bundle', dirs.ours]).stderr).toBe(`swarm-runtime: spec : ${dirs.ours}/config.json exists: remove it first\n`);
    expect(ws.exec(ws.ours, ['spec', '--rootless', '--bundle', join(ws.dir)]).stderr).toMatch(/^swarm-runtime: spec : --rootless: rootless containers are not supported/);
    // It runs as it is, but for the command and the terminal.
    ws.makeRootfs(join(dirs.ours, 'rootfs'));
    const c = JSON.parse(readFileSync(join(dirs.ours, 'config.json'), 'utf8')) as Config;
    c.process.args = ['sh', '-c', 'hostname; ls /sys/fs/cgroup | head -1'];
    c.process.terminal = false;
    writeFileSync(join(dirs.ours, 'config.json'), JSON.stringify(c));
    const id = ws.id(ws.ours, 'spec');
    const r = ws.exec(ws.ours, ['run', '--bundle', dirs.ours, id]);
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', 'swarm\nblkio\n'.replace('blkio', V2 ? readdirSync(CG).sort()[0]! : 'blkio')]);
  });

  it('passes descriptors 3.. with --preserve-fds to run and exec, like runc', async () => {
    const outs: string[] = [];
    for (const rt of [ws.ours, ws.runc]) {
      const file = join(ws.dir, `preserved-${rt === ws.ours ? 'ours' : 'runc'}`);
      const fd3 = openSync(file, 'w');
      const id = ws.id(rt, 'fds');
      const b = ws.bundle(['sh', '-c', 'echo "from the init" >&3; ls /proc/self/fd | tr "\\n" " "; echo; sleep 100']);
      const out = join(ws.dir, `${id}.out`);
      const outFd = openSync(out, 'w');
      const child = spawn(rt.bin, ['--root', rt.root, 'run', '--detach', '--preserve-fds', '1', '--bundle', b, id], { stdio: ['ignore', outFd, outFd, fd3] });
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      ws.track(rt, id);
      expect(code, rt.name).toBe(0);
      closeSync(outFd);
      const fd3b = openSync(file, 'a');
      const e = spawnSync(rt.bin, ['--root', rt.root, 'exec', '--preserve-fds', '1', id, 'sh', '-c', 'echo "from exec" >&3; ls /proc/self/fd | tr "\\n" " "'], { stdio: ['ignore', 'pipe', 'pipe', fd3b], encoding: 'utf8' });
      closeSync(fd3);
      closeSync(fd3b);
      expect([rt.name, e.status, e.stderr]).toEqual([rt.name, 0, '']);
      for (let i = 0; i < 100 && !readFileSync(out, 'utf8').includes('\n'); i++) await sleep(10);
      outs.push(`${readFileSync(out, 'utf8')}|${e.stdout}|${readFileSync(file, 'utf8')}`);
    }
    expect(outs[0]).toBe(outs[1]);
    expect(outs[0]).toBe('0 1 2 3 4 \n|0 1 2 3 4 |from the init\nfrom exec\n');
  });

  it('adds capabilities to an exec with --cap, like runc', () => {
    const out: string[] = [];
    for (const rt of [ws.ours, ws.runc]) {
      const id = ws.id(rt, 'cap');
      runDetached(rt, ws.bundle(['sleep', '100']), id);
      const r = ws.exec(rt, ['exec', '--cap', 'CAP_SYS_ADMIN', '--cap', 'CAP_NET_ADMIN', id, 'grep', 'Cap', '/proc/self/status']);
      expect([rt.name, r.status, r.stderr]).toEqual([rt.name, 0, '']);
      out.push(r.stdout);
    }
    expect(out[0]).toBe(out[1]);
    // runc spec's three plus NET_ADMIN and SYS_ADMIN; not ambient (they are not inheritable).
    expect(out[0]).toContain('CapEff:\t0000000020201420\nCapBnd:\t0000000020201420\nCapAmb:\t0000000000000000\n');
    expect(ws.exec(ws.ours, ['exec', '--cap', 'CAP_NOPE', ws.id(ws.ours), 'true']).status).toBe(1);
  });

  /** Starts the console receiver on a fresh socket; resolves to what it got once the pty closed. */
  async function receiver(name: string, input = ''): Promise<{ socket: string; done: Promise<string> }> {
    const socket = join(ws.dir, `${name}.sock`);
    const out = join(ws.dir, `${name}.tty`);
    const child = spawn('python3', [RECEIVER, socket, out, input], { stdio: 'ignore' });
    const done = new Promise<string>((resolve) => child.on('exit', () => resolve(existsSync(out) ? readFileSync(out, 'utf8').replaceAll('\r\n', '\n') : '(nothing)')));
    for (let i = 0; i < 300 && !existsSync(socket); i++) await sleep(10);
    return { socket, done: Promise.race([done, sleep(15_000).then(() => (child.kill('SIGKILL'), '(timed out)'))]) };
  }

  it('gives the process a pty and sends its master to --console-socket (create and exec), like runc', async () => {
    const probe = 'tty; stty size; ls -l /dev/console | cut -c1; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo "stdio is the tty"; read line; echo "got $line"';
    const outs: string[] = [];
    for (const rt of [ws.ours, ws.runc]) {
      const tag = rt === ws.ours ? 'ours' : 'runc';
      const id = ws.id(rt, 'tty');
      const b = ws.bundle(['sh', '-c', `${probe}; sleep 100`], (c) => {
        c.process.terminal = true;
        (c.process as Record<string, unknown>).consoleSize = { height: 30, width: 100 };
        c.process.user = { uid: 1000, gid: 1000 };
      });
      const init = await receiver(`init-${tag}`, 'hello\n');
      let r = ws.exec(rt, ['create', '--console-socket', init.socket, '--bundle', b, id]);
      expect([rt.name, r.status, r.stderr]).toEqual([rt.name, 0, '']);
      expect(ws.exec(rt, ['start', id]).status).toBe(0);
      // The pty closes when the init exits: kill it once it has answered.
      await sleep(500);
      const execTty = await receiver(`exec-${tag}`, 'there\n');
      r = ws.exec(rt, ['exec', '--tty', '--detach', '--console-socket', execTty.socket, id, 'sh', '-c', probe], { detached: true });
      expect([rt.name, r.status]).toEqual([rt.name, 0]);
      // The terminal's echo of the input comes whenever the input arrives: for an exec it races
      // the process's first lines (the receiver writes as soon as it holds the master), so the
      // echo is taken out where it fell and checked apart.
      const execOut = await execTty.done;
      const echoed = execOut.split('\n').filter((l) => l === 'there').length;
      expect([rt.name, echoed]).toEqual([rt.name, 1]);
      ws.exec(rt, ['kill', id, 'KILL']);
      outs.push(`${await init.done}\n--- exec\n${execOut.replace(/^there\n/m, '')}`);
    }
    expect(outs[0]).toBe(outs[1]);
    const [init, exec] = outs[0]!.split('\n--- exec\n');
    expect(init).toMatch(/^\/dev\/ptmx\nhello\n\/dev\/pts\/0\n30 100\nc\nstdio is the tty\ngot hello\n$/);
    expect(exec).toMatch(/^\/dev\/ptmx\n\/dev\/pts\/1\n\d+ \d+\nc\nstdio is the tty\ngot there\n$/);
  });

  it('gives `run` a pty too, and `run` in the foreground waits for the process, like runc with --detach', async () => {
    const outs: string[] = [];
    for (const rt of [ws.ours, ws.runc]) {
      const tag = rt === ws.ours ? 'ours' : 'runc';
      const id = ws.id(rt, 'runtty');
      const b = ws.bundle(['sh', '-c', 'tty; echo done'], (c) => (c.process.terminal = true));
      const rec = await receiver(`run-${tag}`);
      const r = ws.exec(rt, ['run', '--detach', '--console-socket', rec.socket, '--bundle', b, id], { detached: true });
      expect([rt.name, r.status]).toEqual([rt.name, 0]);
      outs.push(await rec.done);
    }
    expect(outs[0]).toBe(outs[1]);
    expect(outs[0]).toBe('/dev/ptmx\n/dev/pts/0\ndone\n');
    // runc refuses a console socket in the foreground; ours hands the master over and waits.
    const id = ws.id(ws.ours, 'runtty');
    const rec = await receiver('run-fg');
    const r = ws.exec(ws.ours, ['run', '--console-socket', rec.socket, '--bundle', ws.bundle(['sh', '-c', 'tty; exit 3'], (c) => (c.process.terminal = true)), id]);
    expect([r.status, r.stderr]).toEqual([3, '']);
    expect(await rec.done).toBe('/dev/ptmx\n/dev/pts/0\n');
  });

  it('refuses a terminal without --console-socket, and a console socket without a terminal', () => {
    const id = ws.id(ws.ours, 'tty');
    let r = ws.exec(ws.ours, ['create', '--bundle', ws.bundle(['true'], (c) => (c.process.terminal = true)), id]);
    expect(r.stderr).toBe(`swarm-runtime: create ${id}: process.terminal: needs --console-socket (swarm-runtime sends the pty's master there; it does not relay a terminal itself)\n`);
    r = ws.exec(ws.ours, ['create', '--console-socket', join(ws.dir, 'nowhere.sock'), '--bundle', ws.bundle(['true']), id]);
    expect(r.stderr).toBe(`swarm-runtime: create ${id}: --console-socket: process.terminal is false\n`);
    const running = ws.id(ws.ours, 'tty');
    runDetached(ws.ours, ws.bundle(['sleep', '100']), running);
    r = ws.exec(ws.ours, ['exec', '--tty', running, 'true']);
    expect(r.stderr).toBe(`swarm-runtime: exec ${running}: --tty: needs --console-socket (swarm-runtime sends the pty's master there; it does not relay a terminal itself)\n`);
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
  });
});

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

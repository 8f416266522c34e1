// linux.seccomp under swarm-runtime and runc: our default profile (native/seccomp/default.json) and
// small profiles for each action and argument comparison; the reports inside must match, and bad
// profiles fail in one line naming the field.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultSeccomp, missingPrerequisites, Workspace, type Config, type Runtime, type SeccompProfile } from './bundle.js';

const missing = missingPrerequisites();
if (missing.length > 0) console.warn(`native seccomp tests skipped; missing: ${missing.join(', ')}`);

// The filter mode, and two syscalls the default profile denies: unshare (any namespace) and
// swapoff. With CAP_SYS_ADMIN and no filter, they would succeed or fail with ENOENT instead.
const PROBE = [
  "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status",
  'unshare -U true 2>&1; echo "unshare $?"',
  'swapoff /nonexistent 2>&1; echo "swapoff $?"',
  'linux64 true 2>&1; echo "linux64 $?"',
].join('; ');

const ALL_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SYS_ADMIN'];

describe.skipIf(missing.length > 0)('swarm-runtime seccomp', () => {
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
    } finally {
      ws.remove();
    }
  });

  function run(rt: Runtime, bundle: string): { status: number | null; stdout: string; stderr: string } {
    const id = ws.id(rt);
    const r = ws.exec(rt, ['run', '--bundle', bundle, id]);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** The same bundle under both runtimes; both must succeed and print the same. */
  function both(args: string[], edit: (c: Config) => void): string {
    const out: string[] = [];
    for (const rt of [ws.ours, ws.runc]) {
      const r = run(rt, ws.bundle(args, edit));
      expect({ rt: rt.name, status: r.status, stderr: r.stderr }).toEqual({ rt: rt.name, status: 0, stderr: '' });
      out.push(r.stdout);
    }
    expect(out[0], 'swarm-runtime and runc print the same').toBe(out[1]);
    return out[0]!;
  }

  const withCaps = (c: Config): void => {
    c.process.capabilities = { bounding: ALL_CAPS, effective: ALL_CAPS, permitted: ALL_CAPS, inheritable: [], ambient: [] };
  };

  it('without a profile: no filter, and the probe syscalls reach the kernel', () => {
    const r = run(ws.ours, ws.bundle(['sh', '-c', PROBE], withCaps));
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Seccomp:\t0\n');
    expect(r.stdout).toContain('unshare 0\n');
    expect(r.stdout).toContain('swapoff: /nonexistent: No such file or directory\n');
  });

  it('applies the default profile like runc: mode 2, one filter, unshare and swapoff fail with EPERM', () => {
    const out = both(['sh', '-c', PROBE], (c) => {
      withCaps(c);
      c.linux.seccomp = defaultSeccomp();
    });
    expect(out).toBe(
      [
        'NoNewPrivs:\t1',
        'Seccomp:\t2',
        'Seccomp_filters:\t1',
        'unshare: unshare(0x10000000): Operation not permitted',
        'unshare 1',
        'swapoff: /nonexistent: Operation not permitted',
        'swapoff 1',
        'linux64 0',
        '',
      ].join('\n'),
    );
  });

  it('loads the profile without no_new_privs for a user without CAP_SYS_ADMIN, like runc', () => {
    const out = both(['sh', '-c', PROBE], (c) => {
      c.process.noNewPrivileges = false;
      c.process.user = { uid: 1000, gid: 1000 };
      c.linux.seccomp = defaultSeccomp();
    });
    expect(out).toContain('NoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n');
    expect(out).toContain('unshare: unshare(0x10000000): Operation not permitted\n');
  });

  it('matches runc for each action, errnoRet, argument comparisons and unknown names', () => {
    const profile: SeccompProfile = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_AARCH64'],
      syscalls: [
        // personality(PER_LINUX32) only: linux32 fails, linux64 (personality(0)) works. Two
        // comparisons of the same argument mean either one (one rule each).
        {
          names: ['personality'],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: 22,
          args: [
            { index: 0, value: 8, op: 'SCMP_CMP_EQ' },
            { index: 0, value: 0x400000, op: 'SCMP_CMP_EQ' },
          ],
        },
        { names: ['sethostname', 'no_such_syscall_anywhere'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
        { names: ['swapoff'], action: 'SCMP_ACT_KILL' },
        { names: ['sync'], action: 'SCMP_ACT_TRAP' },
        // umask with the 0o001 bit set: a masked comparison
        { names: ['umask'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0o001, valueTwo: 0o001, op: 'SCMP_CMP_MASKED_EQ' }] },
        { names: ['getpid'], action: 'SCMP_ACT_LOG' },
      ],
    };
    const script = [
      'linux32 true 2>&1; echo "linux32 $?"',
      'linux64 true 2>&1; echo "linux64 $?"',
      'hostname other 2>&1; echo "hostname $?"',
      // the shell reports the signal on its stderr
      "{ sh -c 'swapoff /x'; echo \"kill $?\"; } 2>&1",
      "{ sh -c 'sync'; echo \"trap $?\"; } 2>&1",
      // busybox's umask reports nothing on failure; the value shows whether it changed
      'umask 0023; echo "umask $(umask)"',
      'echo "log $$"',
    ].join('; ');
    const out = both(['sh', '-c', script], (c) => {
      withCaps(c);
      c.linux.seccomp = profile;
    });
    expect(out).toBe(
      [
        'linux32: personality(0x8): Invalid argument',
        'linux32 1',
        'linux64 0',
        'hostname: sethostname: Function not implemented',
        'hostname 1',
        'Bad system call',
        'kill 159', // 128 + SIGSYS
        'Bad system call',
        'trap 159',
        'umask 0022',
        'log 1',
        '',
      ].join('\n'),
    );
  });

  it('sends the SCMP_ACT_NOTIFY descriptor to the agent at listenerPath (create and exec), like runc', async () => {
    const agent = join(ws.dir, 'seccomp-agent');
    const built = spawnSync('gcc', ['-O2', '-o', agent, join(import.meta.dirname, 'helpers/seccomp-agent.c')], { encoding: 'utf8' });
    expect(built.status, built.stderr).toBe(0);
    const results: Record<string, { out: string; exec: string; log: string[] }> = {};
    for (const rt of [ws.ours, ws.runc]) {
      const sock = join(ws.dir, `agent-${rt === ws.ours ? 'ours' : 'runc'}.sock`);
      const log = join(ws.dir, `agent-${rt === ws.ours ? 'ours' : 'runc'}.log`);
      const child = spawn(agent, [sock, log, '2'], { stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      try {
        for (let i = 0; i < 200 && !existsSync(sock); i++) await sleep(10);
        const id = ws.id(rt);
        const outFile = join(ws.dir, `${id}.out`);
        const bundle = ws.bundle(['sh', '-c', 'mkdir /tmp/by-init 2>&1 | sed "s/.*: //"; echo init done; sleep 100'], (c) => {
          c.root.readonly = false;
          c.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_NOTIFY' }], listenerPath: sock, listenerMetadata: 'meta-1' };
        });
        const fd = openSync(outFile, 'w');
        const r = ws.exec(rt, ['run', '--detach', '--bundle', bundle, id], { outFd: fd, detached: true });
        closeSync(fd);
        expect(r.status, rt.name).toBe(0);
        for (let i = 0; i < 300 && !readFileSync(outFile, 'utf8').includes('init done'); i++) await sleep(10);
        const e = ws.exec(rt, ['exec', id, 'sh', '-c', 'mkdir /tmp/by-exec 2>&1 | sed "s/.*: //"; ls /tmp']);
        expect([e.status, e.stderr], rt.name).toEqual([0, '']);
        expect(ws.exec(rt, ['delete', '--force', id]).status).toBe(0);
        await Promise.race([exited, sleep(10_000)]);
        const lines = readFileSync(log, 'utf8').trim().split('\n');
        results[rt.name] = {
          out: readFileSync(outFile, 'utf8'),
          exec: e.stdout,
          log: lines.map((l) => {
            if (!l.startsWith('{')) return l;
            const j = JSON.parse(l) as { fds: string[]; metadata: string; pid: number; state: { id: string; bundle: string; pid: number } };
            return `state fds=${j.fds.join(',')} metadata=${j.metadata} id=${j.state.id === id} bundle=${j.state.bundle === bundle} pid=${j.pid > 0} init=${j.state.pid > 0}`;
          }),
        };
      } finally {
        child.kill('SIGKILL');
      }
    }
    expect(results['swarm-runtime']).toEqual(results.runc);
    expect(results['swarm-runtime']!.out).toBe('Invalid cross-device link\ninit done\n');
    expect(results['swarm-runtime']!.exec).toBe('Invalid cross-device link\n');
    const log = results['swarm-runtime']!.log;
    expect(log.filter((l) => l.startsWith('state'))).toEqual([
      'state fds=seccompFd metadata=meta-1 id=true bundle=true pid=true init=true',
      'state fds=seccompFd metadata=meta-1 id=true bundle=true pid=true init=true',
    ]);
    expect(log.filter((l) => l.startsWith('syscall')).length).toBe(2);
  });

  it('applies linux.seccomp.flags: SECCOMP_FILTER_FLAG_LOG logs the errno action (runc 1.1.5 refuses flags)', () => {
    // swapon (167) is used by no other test: its audit line marks this one.
    const marker = 'syscall=167 compat=0';
    const count = () => spawnSync('dmesg', [], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(marker)).length;
    const profile = (flags?: string[]) => (c: Config) => {
      c.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['swapon'], action: 'SCMP_ACT_ERRNO', errnoRet: 77 }], ...(flags ? { flags } : {}) };
    };
    const before = count();
    let r = run(ws.ours, ws.bundle(['sh', '-c', 'swapon /dev/null; grep Seccomp: /proc/self/status'], profile()));
    expect([r.status, r.stdout]).toEqual([0, 'Seccomp:\t2\n']);
    expect(count()).toBe(before); // errno actions are not logged by default
    r = run(ws.ours, ws.bundle(['sh', '-c', 'swapon /dev/null; grep Seccomp: /proc/self/status'], profile(['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_TSYNC'])));
    expect([r.status, r.stdout]).toEqual([0, 'Seccomp:\t2\n']);
    expect(r.stderr).toMatch(/swapon: \/dev\/null: File descriptor in bad state/); // errno 77
    for (let i = 0; i < 50 && count() === before; i++) sleepMs(20);
    expect(count()).toBe(before + 1);
    const runc = run(ws.runc, ws.bundle(['true'], profile(['SECCOMP_FILTER_FLAG_LOG'])));
    expect(runc.status).toBe(1);
  });

  it('reports a bad profile in one line naming the field, and leaves nothing', () => {
    const cases: [string, (p: SeccompProfile) => void, string][] = [
      ['bad default action', (p) => (p.defaultAction = 'SCMP_ACT_MAYBE'), 'linux.seccomp.defaultAction: unknown action `SCMP_ACT_MAYBE`'],
      ['bad action', (p) => (p.syscalls![0]!.action = 'ALLOW'), 'linux.seccomp.syscalls[0].action: unknown action `ALLOW`'],
      ['errnoRet on allow', (p) => p.syscalls!.unshift({ names: ['getpid'], action: 'SCMP_ACT_ALLOW', errnoRet: 1 }), 'linux.seccomp.syscalls[0].action: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE `SCMP_ACT_ALLOW`'],
      ['bad op', (p) => (p.syscalls![7]!.args![0]!.op = 'SCMP_CMP_ALMOST'), 'linux.seccomp.syscalls[7].args[0].op: unknown operator `SCMP_CMP_ALMOST`'],
      ['bad index', (p) => (p.syscalls![7]!.args![0]!.index = 6), 'linux.seccomp.syscalls[7].args[0].index: out of range'],
      ['no names', (p) => (p.syscalls![1]!.names = []), 'linux.seccomp.syscalls[1].names: must not be empty'],
      ['notify without a listener', (p) => p.syscalls!.push({ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }), 'linux.seccomp.listenerPath: needed by SCMP_ACT_NOTIFY'],
      ['notify as the default', (p) => Object.assign(p, { defaultAction: 'SCMP_ACT_NOTIFY', listenerPath: '/x' }), 'linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action'],
      ['unknown flag', (p) => Object.assign(p, { flags: ['SECCOMP_FILTER_FLAG_FAST'] }), 'linux.seccomp.flags[0]: unknown flag `SECCOMP_FILTER_FLAG_FAST`'],
      [
        'flag libseccomp 2.5 lacks',
        (p) => Object.assign(p, { flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] }),
        'linux.seccomp.flags[0]: not supported (libseccomp 2.5 has no attribute for it) `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`',
      ],
    ];
    for (const [what, edit, message] of cases) {
      const profile = defaultSeccomp();
      edit(profile);
      const bundle = ws.bundle(['true'], (c) => (c.linux.seccomp = profile));
      const id = ws.id(ws.ours);
      const r = ws.exec(ws.ours, ['create', '--bundle', bundle, id]);
      expect({ what, status: r.status, stderr: r.stderr }).toEqual({ what, status: 1, stderr: `swarm-runtime: create ${id}: ${join(bundle, 'config.json')}: ${message}\n` });
      expect(existsSync(join(ws.ours.root, id)), what).toBe(false);
    }
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// linux.seccomp under swarm-runtime and runc: our default profile (native/seccomp/default.json) and
// small profiles for each action and argument comparison; the reports inside must match, and bad
// profiles fail in one line naming the field.
import { existsSync } from 'node:fs';
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

  it('reports a bad profile in one line naming the field, and leaves nothing', () => {
    const cases: [string, (p: SeccompProfile) => void, string][] = [
      ['bad default action', (p) => (p.defaultAction = 'SCMP_ACT_MAYBE'), 'linux.seccomp.defaultAction: unknown action `SCMP_ACT_MAYBE`'],
      ['bad action', (p) => (p.syscalls![0]!.action = 'ALLOW'), 'linux.seccomp.syscalls[0].action: unknown action `ALLOW`'],
      ['errnoRet on allow', (p) => p.syscalls!.unshift({ names: ['getpid'], action: 'SCMP_ACT_ALLOW', errnoRet: 1 }), 'linux.seccomp.syscalls[0].action: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE `SCMP_ACT_ALLOW`'],
      ['bad op', (p) => (p.syscalls![7]!.args![0]!.op = 'SCMP_CMP_ALMOST'), 'linux.seccomp.syscalls[7].args[0].op: unknown operator `SCMP_CMP_ALMOST`'],
      ['bad index', (p) => (p.syscalls![7]!.args![0]!.index = 6), 'linux.seccomp.syscalls[7].args[0].index: out of range'],
      ['no names', (p) => (p.syscalls![1]!.names = []), 'linux.seccomp.syscalls[1].names: must not be empty'],
      ['notify', (p) => (p.syscalls![1]!.action = 'SCMP_ACT_NOTIFY'), 'linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY is not supported yet `SCMP_ACT_NOTIFY`'],
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

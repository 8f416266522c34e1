// config.json fields swarm-runtime applies as runc does, each checked from inside the container:
// the same bundle under ours and under runc, a probe prints what the container sees, and the two
// reports must match (where runc 1.1.5 supports the field; otherwise the effect alone is checked).
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisites, removeCgroupParents, Workspace, type Config, type Runtime } from './bundle.js';

const missing = missingPrerequisites();
if (missing.length > 0) console.warn(`native oci-fields tests skipped; missing: ${missing.join(', ')}`);

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Every cgroup made here lives under this parent, so that clean-up can find it. */
const PARENT = `/swarm-rt-test-${process.pid}`;

describe.skipIf(missing.length > 0)('swarm-runtime applies config.json fields like runc', () => {
  let ws: Workspace;
  /** Host mounts a test made; unmounted after each test, also on failure. */
  const hostMounts: string[] = [];

  beforeAll(() => {
    ws = new Workspace();
  });

  afterEach(() => {
    for (const m of hostMounts.splice(0).reverse()) spawnSync('umount', ['-l', m]);
    expect(ws.cleanup()).toEqual([]);
  });

  afterAll(() => {
    try {
      ws.cleanup();
      expect(ws.leftovers()).toEqual([]);
      // The tests' cgroups live under PARENT in every hierarchy (runc makes them all); the
      // containers are deleted, so only the empty parents remain.
      expect(removeCgroupParents(PARENT)).toEqual([]);
    } finally {
      ws.remove();
    }
  });

  function run(rt: Runtime, bundle: string): Result {
    const id = ws.id(rt);
    const r = ws.exec(rt, ['run', '--bundle', bundle, id]);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** The same script in a fresh bundle (edited by `edit`, its rootfs by `prepare`) under both
   * runtimes; both must succeed and print the same. Returns what they printed. */
  function both(script: string, edit?: (c: Config) => void, prepare?: (rootfs: string) => void): string {
    const out: Record<string, string> = {};
    for (const rt of [ws.ours, ws.runc]) {
      const b = ws.bundle(['sh', '-c', script], edit);
      prepare?.(join(b, 'rootfs'));
      const r = run(rt, b);
      expect({ rt: rt.name, status: r.status, stderr: r.stderr }).toEqual({ rt: rt.name, status: 0, stderr: '' });
      out[rt.name] = r.stdout;
    }
    expect(out['swarm-runtime'], 'swarm-runtime and runc print the same').toBe(out.runc);
    return out['swarm-runtime']!;
  }

  it('brings lo up in a new network namespace, like runc', () => {
    const out = both('cat /sys/class/net/lo/flags /sys/class/net/lo/operstate');
    expect(out).toBe('0x9\nunknown\n'); // IFF_UP|IFF_LOOPBACK; lo's operstate is "unknown" once up
  });

  it("sets HOME from the user's /etc/passwd entry in the rootfs, else /, like runc", () => {
    const noHome = (uid: number) => (c: Config) => {
      c.process.env = (c.process.env ?? []).filter((e) => !e.startsWith('HOME='));
      c.process.user = { uid, gid: uid };
    };
    const passwd = (rootfs: string) => writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n');
    expect(both('echo "HOME=$HOME"', noHome(1000), passwd)).toBe('HOME=/home/user\n');
    expect(both('echo "HOME=$HOME"', noHome(1001), passwd)).toBe('HOME=/\n');
    expect(both('echo "HOME=$HOME"', noHome(0), passwd)).toBe('HOME=/root\n');
    // Given in process.env: kept.
    expect(both('echo "HOME=$HOME"', (c) => c.process.env!.push('HOME=/custom'))).toBe('HOME=/custom\n');
  });

  it('creates a missing cwd (root-owned, 0755), also under a read-only root, like runc', () => {
    const out = both('pwd; ls -ld /work/deep/er | tr -s " " | cut -d" " -f1,3; id -u', (c) => {
      c.process.cwd = '/work/deep/er';
      c.process.user = { uid: 1000, gid: 1000 };
      c.root.readonly = true;
    });
    expect(out).toBe('/work/deep/er\ndrwxr-xr-x root\n1000\n');
  });

  it('makes the container process a session and process group leader, like runc', () => {
    // Fields 5 and 6 of /proc/PID/stat: the process group and the session.
    const out = both('read -r pid comm state ppid pgrp sid rest < /proc/$$/stat; echo "$$ $pgrp $sid"');
    expect(out).toBe('1 1 1\n');
  });

  it('makes an exec\'d process a session and process group leader, like runc', () => {
    const out: string[] = [];
    for (const rt of [ws.ours, ws.runc]) {
      const id = ws.id(rt);
      expect(ws.exec(rt, ['run', '--detach', '--bundle', ws.bundle(['sleep', '100']), id], { detached: true }).status).toBe(0);
      const r = ws.exec(rt, ['exec', id, 'sh', '-c', 'read -r pid comm state ppid pgrp sid rest < /proc/$$/stat; [ "$pgrp" = "$$" ] && [ "$sid" = "$$" ] && echo leader; echo "pgrp $pgrp"']);
      expect([r.status, r.stderr]).toEqual([0, '']);
      out.push(r.stdout.split('\n')[0]!);
    }
    expect(out).toEqual(['leader', 'leader']);
  });

  it('gives a tmpfs the mode of the directory it covers unless mode= is given', () => {
    const prepare = (rootfs: string) => {
      for (const d of ['t710', 't750']) {
        mkdirSync(join(rootfs, d));
        chmodSync(join(rootfs, d), d === 't710' ? 0o710 : 0o750);
      }
    };
    const tmpfs = (dest: string, options: string[] = []) => ({ destination: dest, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', ...options] });
    const out = both(
      'stat -c "%n %a" /t710 /tnew',
      (c) => c.mounts.push(tmpfs('/t710'), tmpfs('/tnew')),
      prepare,
    );
    expect(out).toBe('/t710 710\n/tnew 1777\n');
    // runc 1.1.5 chmods the tmpfs to the directory's mode even over mode=; newer runc (and we)
    // let mode= win.
    const b = ws.bundle(['stat', '-c', '%n %a', '/t750'], (c) => c.mounts.push(tmpfs('/t750', ['mode=700'])));
    prepare(join(b, 'rootfs'));
    const r = run(ws.ours, b);
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', '/t750 700\n']);
  });

  it("hands the stdio pipes to the container's user, like runc", () => {
    const out = both('stat -L -c "%u %g" /proc/self/fd/1 /proc/self/fd/2', (c) => {
      c.process.user = { uid: 1000, gid: 1000 };
    });
    // Pipes: owner 1000, the group stays root's.
    expect(out).toBe('1000 0\n1000 0\n');
  });

  it('mounts rbind recursively even when bind is listed too, like runc', () => {
    const host = join(ws.dir, 'rbind-src');
    mkdirSync(join(host, 'sub'), { recursive: true });
    expect(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', join(host, 'sub')]).status).toBe(0);
    hostMounts.push(join(host, 'sub'));
    writeFileSync(join(host, 'sub/marker'), 'under the submount\n');
    for (const options of [['rbind', 'bind'], ['bind', 'rbind']]) {
      const out = both('cat /data/sub/marker', (c) => c.mounts.push({ destination: '/data', type: 'bind', source: host, options }));
      expect(out).toBe('under the submount\n');
    }
  });

  it('sets the domainname (runc 1.1.5 ignores the field), and refuses it without a uts namespace', () => {
    const r = run(ws.ours, ws.bundle(['sh', '-c', 'cat /proc/sys/kernel/domainname; hostname'], (c) => {
      c.hostname = 'h1';
      c.domainname = 'example.org';
    }));
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', 'example.org\nh1\n']);
    const refused = run(ws.ours, ws.bundle(['true'], (c) => {
      c.domainname = 'example.org';
      delete c.hostname;
      c.linux.namespaces = c.linux.namespaces.filter((n) => n.type !== 'uts');
    }));
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/: domainname: needs a uts namespace\n$/);
  });

  it('writes linux.sysctl in the container, like runc', () => {
    const sysctl = {
      'kernel.shmmax': '123456789',
      'fs.mqueue.msg_max': '42',
      'net.ipv4.ip_forward': '1',
      'net/ipv4/conf/all/accept_redirects': '0',
      'kernel.domainname': 'sysctl.example',
    };
    const out = both(
      'cat /proc/sys/kernel/shmmax /proc/sys/fs/mqueue/msg_max /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/accept_redirects /proc/sys/kernel/domainname',
      (c) => (c.linux.sysctl = sysctl),
    );
    expect(out).toBe('123456789\n42\n1\n0\nsysctl.example\n');
    // The host's own values are untouched.
    expect(readFileSync('/proc/sys/kernel/domainname', 'utf8')).not.toBe('sysctl.example\n');
  });

  it('refuses a sysctl the container has no namespace for, naming the key, like runc', () => {
    const without = (type: string) => (c: Config) => (c.linux.namespaces = c.linux.namespaces.filter((n) => n.type !== type));
    const cases: [string, Record<string, string>, (c: Config) => void, string][] = [
      ['ipc key without an ipc namespace', { 'kernel.shmmax': '1' }, without('ipc'), '`kernel.shmmax` needs an ipc namespace'],
      ['mqueue key without an ipc namespace', { 'fs.mqueue.msg_max': '1' }, without('ipc'), '`fs.mqueue.msg_max` needs an ipc namespace'],
      ['net key without a network namespace', { 'net.ipv4.ip_forward': '1' }, without('network'), '`net.ipv4.ip_forward` needs a network namespace'],
      [
        "net key in the runtime's network namespace",
        { 'net.ipv4.ip_forward': '1' },
        (c) => (c.linux.namespaces = c.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network', path: `/proc/${process.pid}/ns/net` } : n))),
        "`net.ipv4.ip_forward` is not allowed in the host's network namespace",
      ],
      ['a host-wide key', { 'vm.swappiness': '10' }, () => {}, '`vm.swappiness` is not namespaced (it would change the host)'],
      ['kernel.hostname', { 'kernel.hostname': 'x' }, () => {}, '`kernel.hostname` conflicts with the hostname field'],
      ['a key climbing out of /proc/sys', { 'net/../../../etc/x': '1' }, () => {}, '`net/../../../etc/x` is not a sysctl name'],
    ];
    for (const [what, sysctl, edit, message] of cases) {
      for (const rt of [ws.ours, ws.runc]) {
        const id = ws.id(rt);
        const b = ws.bundle(['true'], (c) => {
          c.linux.sysctl = sysctl;
          edit(c);
        });
        const r = ws.exec(rt, ['create', '--bundle', b, id]);
        expect({ what, rt: rt.name, status: r.status }).toEqual({ what, rt: rt.name, status: 1 });
        if (rt === ws.ours) {
          expect(r.stderr, what).toBe(`swarm-runtime: create ${id}: ${b}/config.json: linux.sysctl: ${message}\n`);
          expect(existsSync(join(ws.ours.root, id)), what).toBe(false);
        }
      }
    }
    expect(readFileSync('/proc/sys/vm/swappiness', 'utf8')).not.toBe('10\n');
  });

  it('names the key when the kernel refuses a sysctl value, leaving nothing', () => {
    const id = ws.id(ws.ours);
    const b = ws.bundle(['true'], (c) => (c.linux.sysctl = { 'net.ipv4.ip_forward': 'yes' }));
    const r = ws.exec(ws.ours, ['create', '--bundle', b, id]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`swarm-runtime: create ${id}: linux.sysctl: \`net.ipv4.ip_forward\`: write \`yes\` to /proc/sys/net/ipv4/ip_forward: Invalid argument\n`);
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
    expect(ws.leftovers()).toEqual([]);
  });

  it('makes linux.devices nodes with their type, numbers, mode and owner, like runc', () => {
    const out = both('stat -c "%A %u %g %t:%T %n" /dev/mydev /dev/sub/dir/blk /dev/fifo /dev/null', (c) => {
      c.linux.devices = [
        { path: '/dev/mydev', type: 'c', major: 1, minor: 5, fileMode: 0o640, uid: 1000, gid: 100 },
        { path: '/dev/sub/dir/blk', type: 'b', major: 254, minor: 0, fileMode: 0o600 },
        { path: '/dev/fifo', type: 'p', fileMode: 0o620 },
        { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o600 }, // takes over the default node
      ];
      // runc's default rules leave out /dev/null when linux.devices takes it over (and so do we):
      // the spec must allow it.
      c.linux.resources = { devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }] };
    });
    expect(out).toBe(
      ['crw-r----- 1000 100 1:5 /dev/mydev', 'brw------- 0 0 fe:0 /dev/sub/dir/blk', 'prw--w---- 0 0 0:0 /dev/fifo', 'crw------- 0 0 1:3 /dev/null', ''].join('\n'),
    );
  });

  // Opens only, of devices harmless to open (nothing is read or written): vcs (7:0) read-only
  // is allowed, read-write not; fuse (10:229) read-write is allowed; loop-control (10:237) is not.
  const DEVICE_PROBE = [
    '( : < /dev/vcs ) 2>/dev/null && echo "vcs r ok" || echo "vcs r denied"',
    '( : <> /dev/vcs ) 2>/dev/null && echo "vcs rw ok" || echo "vcs rw denied"',
    '( : <> /dev/fuse ) 2>/dev/null && echo "fuse rw ok" || echo "fuse rw denied"',
    '( : < /dev/loop-control ) 2>&1 | sed "s/.*: //"',
    'echo x > /dev/null && echo "null ok"',
  ].join('; ');
  const DEVICE_PROBE_OUT = 'vcs r ok\nvcs rw denied\nfuse rw ok\nOperation not permitted\nnull ok\n';
  const deviceRules = (path: string) => (c: Config) => {
    c.linux.cgroupsPath = path;
    c.linux.devices = [
      { path: '/dev/vcs', type: 'c', major: 7, minor: 0, fileMode: 0o600 },
      { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o600 },
      { path: '/dev/loop-control', type: 'c', major: 10, minor: 237, fileMode: 0o600 },
    ];
    c.linux.resources = {
      devices: [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 7, minor: 0, access: 'r' },
        { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' },
      ],
    };
  };

  it('enforces linux.resources.devices with the devices cgroup, the same list as runc', () => {
    const lists: Record<string, string[]> = {};
    const outs: Record<string, string> = {};
    for (const rt of [ws.ours, ws.runc]) {
      const id = ws.id(rt);
      const path = `${PARENT}/${id}`;
      const b = ws.bundle(['sh', '-c', `${DEVICE_PROBE}; cat /proc/self/cgroup > /dev/null; sleep 100`], deviceRules(path));
      const log = join(ws.dir, `${id}.log`);
      const fd = openSync(log, 'w');
      const r = ws.exec(rt, ['run', '--detach', '--bundle', b, id], { outFd: fd, detached: true });
      closeSync(fd);
      expect(r.status, rt.name).toBe(0);
      for (let i = 0; i < 200 && !readFileSync(log, 'utf8').includes('null ok'); i++) sleepMs(10);
      outs[rt.name] = readFileSync(log, 'utf8');
      lists[rt.name] = readFileSync(`/sys/fs/cgroup/devices${path}/devices.list`, 'utf8').trim().split('\n').sort();
      expect(ws.exec(rt, ['delete', '--force', id]).status).toBe(0);
      expect(existsSync(`/sys/fs/cgroup/devices${path}`), `${rt.name} removes its devices cgroup`).toBe(false);
    }
    expect(outs['swarm-runtime']).toBe(outs.runc);
    expect(outs['swarm-runtime']).toBe(DEVICE_PROBE_OUT);
    expect(lists['swarm-runtime']).toEqual(lists.runc);
    expect(lists['swarm-runtime']).toContain('c 7:0 r');
    expect(lists['swarm-runtime']).not.toContain('a *:* rwm');
  });

  it('also attaches a BPF device program on the cgroup v2 tree, which enforces the rules by itself', () => {
    const id = ws.id(ws.ours);
    const path = `${PARENT}/${id}`;
    const b = ws.bundle(['sleep', '100'], deviceRules(path));
    expect(ws.exec(ws.ours, ['run', '--detach', '--bundle', b, id], { detached: true }).status).toBe(0);
    // Lift the v1 list: only the BPF program on /sys/fs/cgroup/unified<path> is left to say no.
    writeFileSync(`/sys/fs/cgroup/devices${path}/devices.allow`, 'a');
    expect(readFileSync(`/sys/fs/cgroup/devices${path}/devices.list`, 'utf8')).toBe('a *:* rwm\n');
    const r = ws.exec(ws.ours, ['exec', id, 'sh', '-c', DEVICE_PROBE]);
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', DEVICE_PROBE_OUT]);
    expect(ws.exec(ws.ours, ['delete', '--force', id]).status).toBe(0);
  });

  it('mounts the cgroups read-only at the container\'s own cgroup (with and without a cgroup namespace), like runc', () => {
    const probe = [
      // mount point, fstype, ro/rw, and the mount's root (sed below names the container's cgroup)
      "awk '$5 ~ \"^/sys/fs/cgroup\" { for (i = 7; i <= NF; i++) if ($i == \"-\") { split($6, o, \",\"); print $5, $(i+1), o[1], $4; break } }' /proc/self/mountinfo | sort",
      'ls /sys/fs/cgroup',
      'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max',
      '{ echo 5 > /sys/fs/cgroup/pids/pids.max; } 2>&1 | sed "s/.*: //"',
    ].join('; ');
    for (const cgroupns of [true, false]) {
      const out: Record<string, string> = {};
      for (const rt of [ws.ours, ws.runc]) {
        const path = `${PARENT}/cgmount-${rt === ws.ours ? 'ours' : 'runc'}-${cgroupns}`;
        const r = run(rt, ws.bundle(['sh', '-c', probe], (c) => {
          c.linux.cgroupsPath = path;
          c.linux.resources = { memory: { limit: 64 * 1024 * 1024 }, pids: { limit: 30 } };
          c.linux.namespaces = c.linux.namespaces.filter((n) => n.type !== 'cgroup');
          if (cgroupns) c.linux.namespaces.push({ type: 'cgroup' });
          c.mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] });
        }));
        expect({ rt: rt.name, status: r.status, stderr: r.stderr }).toEqual({ rt: rt.name, status: 0, stderr: '' });
        out[rt.name] = r.stdout.replaceAll(path, '<cgroup>');
      }
      expect(out['swarm-runtime'], `cgroupns ${cgroupns}`).toBe(out.runc);
      const lines = out['swarm-runtime']!.split('\n');
      expect(lines).toContain('/sys/fs/cgroup tmpfs rw /');
      expect(lines).toContain(`/sys/fs/cgroup/memory cgroup ro ${cgroupns ? '/' : '<cgroup>'}`);
      expect(lines).toContain(`/sys/fs/cgroup/systemd cgroup ro ${cgroupns ? '/' : '<cgroup>'}`);
      expect(lines).toContain('67108864');
      expect(lines).toContain('Read-only file system');
    }
  });

  /** A user namespace mapping container ids 0-65535 to host ids 100000-165535. Its root must be
   * able to reach the bundles: the scratch directory (mkdtemp's 0700) is opened up. */
  const userns = (c: Config) => {
    chmodSync(ws.dir, 0o711);
    c.linux.namespaces.push({ type: 'user' });
    c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  };

  it('runs a container in a user namespace with explicit mappings, like runc', () => {
    const probe = [
      'cat /proc/self/uid_map /proc/self/gid_map',
      'id',
      'stat -c "%n %u %g" /bin/busybox /dev/null /proc',
      "grep -E '^Cap(Eff|Bnd)' /proc/self/status",
      "awk '{ for (i = 7; i <= NF; i++) if ($i == \"-\") { split($6, o, \",\"); print $5, $(i+1), o[1]; break } }' /proc/self/mountinfo",
      'touch /data/made-inside && stat -c "made %u %g" /data/made-inside',
      'echo x > /dev/null && echo null ok',
    ].join('; ');
    const owners: Record<string, string> = {};
    const users: [string, Config['process']['user']][] = [
      ['root', { uid: 0, gid: 0 }],
      ['user', { uid: 1000, gid: 1000, additionalGids: [10, 100] }],
    ];
    for (const [who, user] of users) {
      const outs: Record<string, string> = {};
      for (const rt of [ws.ours, ws.runc]) {
        const data = join(ws.dir, `userns-data-${rt === ws.ours ? 'ours' : 'runc'}-${who}`);
        mkdirSync(data);
        chmodSync(data, 0o777);
        const b = ws.bundle(['sh', '-c', probe], (c) => {
          userns(c);
          c.process.user = user;
          c.mounts.push({ destination: '/data', type: 'bind', source: data, options: ['rbind', 'rw'] });
        });
        // The container's root may not make /data in a rootfs the host's root owns.
        mkdirSync(join(b, 'rootfs/data'));
        const r = run(rt, b);
        expect({ rt: rt.name, who, status: r.status, stderr: r.stderr }).toEqual({ rt: rt.name, who, status: 0, stderr: '' });
        outs[rt.name] = r.stdout;
        const st = statSync(join(data, 'made-inside'));
        owners[`${rt.name} ${who}`] = `${st.uid}:${st.gid}`;
      }
      expect(outs['swarm-runtime'], who).toBe(outs.runc);
      expect(outs['swarm-runtime']).toContain('         0     100000      65536\n');
      expect(outs['swarm-runtime']).toContain('/bin/busybox 65534 65534\n'); // the host's root is not mapped
      expect(outs['swarm-runtime']).toContain('null ok\n');
    }
    expect(owners).toEqual({ 'swarm-runtime root': '100000:100000', 'runc root': '100000:100000', 'swarm-runtime user': '101000:101000', 'runc user': '101000:101000' });
  });

  it('execs into a user namespace container, like runc', () => {
    const out: string[] = [];
    for (const rt of [ws.ours, ws.runc]) {
      const id = ws.id(rt);
      expect(ws.exec(rt, ['run', '--detach', '--bundle', ws.bundle(['sleep', '100'], userns), id], { detached: true }).status).toBe(0);
      const pid = ws.state(rt, id).pid;
      const r = ws.exec(rt, ['exec', '--user', '1000:1000', id, 'sh', '-c', 'id; cat /proc/self/uid_map; readlink /proc/self/ns/user']);
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(r.stdout.trim().split('\n').pop()).toBe(readlinkSync(`/proc/${pid}/ns/user`));
      out.push(r.stdout.split('\n').slice(0, 2).join('\n'));
    }
    expect(out[0]).toBe(out[1]);
    expect(out[0]).toBe('uid=1000(user) gid=1000(user)\n         0     100000      65536');
  });

  it('refuses user namespace mappings that cannot work, naming the field', () => {
    const cases: [(c: Config) => void, string][] = [
      [(c) => (c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 10 }]), 'linux.uidMappings: given without a user namespace'],
      [(c) => c.linux.namespaces.push({ type: 'user' }), 'linux.uidMappings: a new user namespace needs uid and gid mappings'],
      [(c) => { userns(c); c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 0 }]; }, 'linux.uidMappings[0].size: must be greater than zero'],
    ];
    for (const [edit, message] of cases) {
      const id = ws.id(ws.ours);
      const b = ws.bundle(['true'], edit);
      const r = ws.exec(ws.ours, ['create', '--bundle', b, id]);
      expect([r.status, r.stderr]).toEqual([1, `swarm-runtime: create ${id}: ${b}/config.json: ${message}\n`]);
    }
    // Container uid 0 unmapped: the init cannot become root in it.
    const id = ws.id(ws.ours);
    const r = ws.exec(ws.ours, ['create', '--bundle', ws.bundle(['true'], (c) => {
      userns(c);
      c.linux.uidMappings = [{ containerID: 1, hostID: 100001, size: 65535 }];
    }), id]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/linux\.uidMappings: become uid 0 in the user namespace \(container uid 0 must be mapped\): Invalid argument\n$/);
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
    expect(ws.leftovers()).toEqual([]);
  });

  it('idmaps a bind mount with its own mappings (mount_setattr MOUNT_ATTR_IDMAP)', () => {
    const host = join(ws.dir, 'idmap-src');
    mkdirSync(host);
    writeFileSync(join(host, 'f'), 'owned by 1000\n');
    writeFileSync(join(host, 'g'), 'owned by root\n');
    chownSync(host, 1000, 1000);
    chownSync(join(host, 'f'), 1000, 1000);
    const b = ws.bundle(['sh', '-c', 'stat -c "%n %u %g" /data /data/f /data/g; touch /data/made && echo made'], (c) => {
      c.process.user = { uid: 3000, gid: 3000 };
      c.mounts.push({
        destination: '/data',
        type: 'bind',
        source: host,
        options: ['rbind', 'idmap'],
        uidMappings: [{ containerID: 1000, hostID: 3000, size: 1 }],
        gidMappings: [{ containerID: 1000, hostID: 3000, size: 1 }],
      } as Config['mounts'][number]);
    });
    const r = run(ws.ours, b);
    expect([r.status, r.stderr]).toEqual([0, '']);
    // Disk 1000 is 3000 through the mount; root is not in its map.
    expect(r.stdout).toBe('/data 3000 3000\n/data/f 3000 3000\n/data/g 65534 65534\nmade\n');
    const st = statSync(join(host, 'made'));
    expect(`${st.uid}:${st.gid}`).toBe('1000:1000'); // written back through the map
  });

  it("idmaps a bind mount with the container's user namespace mappings (idmap without its own)", () => {
    const host = join(ws.dir, 'idmap-userns-src');
    mkdirSync(host);
    writeFileSync(join(host, 'f'), 'owned by root\n');
    const probe = 'stat -c "%n %u %g" /data/f; touch /data/made && echo made';
    const withIdmap = ws.bundle(['sh', '-c', probe], (c) => {
      userns(c);
      c.mounts.push({ destination: '/data', type: 'bind', source: host, options: ['rbind', 'idmap'] });
    });
    mkdirSync(join(withIdmap, 'rootfs/data'));
    const r = run(ws.ours, withIdmap);
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', '/data/f 0 0\nmade\n']);
    const st = statSync(join(host, 'made'));
    expect(`${st.uid}:${st.gid}`).toBe('0:0'); // the container's root writes as the disk's root
    // Without a user namespace there is nothing to take the mapping from.
    const id = ws.id(ws.ours);
    const bad = ws.exec(ws.ours, ['create', '--bundle', ws.bundle(['true'], (c) => {
      c.mounts.push({ destination: '/data', type: 'bind', source: host, options: ['rbind', 'idmap'] });
    }), id]);
    expect([bad.status, bad.stderr]).toEqual([1, `swarm-runtime: create ${id}: mounts[6]: idmap without uidMappings needs the container's user namespace mappings\n`]);
    expect(ws.leftovers()).toEqual([]);
  });

  it('applies recursive mount options (rro) to the mounts below, like runc', () => {
    const host = join(ws.dir, 'rro-src');
    mkdirSync(join(host, 'sub'), { recursive: true });
    expect(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', join(host, 'sub')]).status).toBe(0);
    hostMounts.push(join(host, 'sub'));
    const out = both('{ touch /data/x; touch /data/sub/x; } 2>&1 | sed "s/.*: //"; touch /plain/sub/y && echo plain writable', (c) => {
      c.mounts.push({ destination: '/data', type: 'bind', source: host, options: ['rbind', 'rro'] });
      c.mounts.push({ destination: '/plain', type: 'bind', source: host, options: ['rbind', 'ro'] });
    });
    expect(out).toBe('Read-only file system\nRead-only file system\nplain writable\n');
  });

  it('copies the directory into a tmpfs with tmpcopyup, like runc', () => {
    const prepare = (rootfs: string) => {
      mkdirSync(join(rootfs, 'seeded/deeper'), { recursive: true });
      writeFileSync(join(rootfs, 'seeded/a'), 'a\n');
      writeFileSync(join(rootfs, 'seeded/deeper/b'), 'b\n');
      chmodSync(join(rootfs, 'seeded/deeper/b'), 0o640);
      symlinkSync('a', join(rootfs, 'seeded/link'));
    };
    const out = both(
      'cat /seeded/a /seeded/deeper/b /seeded/link; stat -c "%n %a" /seeded/deeper/b; awk \'$5 == "/seeded" { print $5, $9 }\' /proc/self/mountinfo; echo new > /seeded/c && cat /seeded/c',
      (c) => c.mounts.push({ destination: '/seeded', type: 'tmpfs', source: 'tmpfs', options: ['tmpcopyup', 'nosuid'] }),
      prepare,
    );
    expect(out).toBe('a\nb\na\n/seeded/deeper/b 640\n/seeded tmpfs\nnew\n');
  });

  it('refuses an option a bind mount would ignore', () => {
    const id = ws.id(ws.ours);
    const r = ws.exec(ws.ours, ['create', '--bundle', ws.bundle(['true'], (c) => {
      c.mounts.push({ destination: '/data', type: 'bind', source: ws.dir, options: ['rbind', 'size=1m'] });
    }), id]);
    expect([r.status, r.stderr]).toEqual([1, `swarm-runtime: create ${id}: mounts[6].options: \`size=1m\` is not an option of a bind mount\n`]);
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
  });

  it('applies linux.personality and process.ioPriority (runc 1.1.5 ignores both)', () => {
    const r = run(ws.ours, ws.bundle(['sh', '-c', 'uname -m; ionice -p $$'], (c) => {
      c.linux.personality = { domain: 'LINUX32' };
      (c.process as Record<string, unknown>).ioPriority = { class: 'IOPRIO_CLASS_IDLE', priority: 4 };
    }));
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', 'i686\nidle\n']);
  });

  it('refuses the fields it does not apply, naming them, instead of ignoring them', () => {
    const cases: [(c: Config) => void, string][] = [
      [(c) => ((c.process as Record<string, unknown>).apparmorProfile = 'docker-default'), 'process.apparmorProfile: AppArmor is not supported'],
      [(c) => ((c.process as Record<string, unknown>).selinuxLabel = 'system_u:system_r:container_t:s0'), 'process.selinuxLabel: SELinux is not supported'],
      [(c) => ((c.process as Record<string, unknown>).scheduler = { policy: 'SCHED_BATCH' }), 'process.scheduler: not supported (sched_setattr is not applied)'],
      [(c) => (c.linux.mountLabel = 'system_u:object_r:container_file_t:s0'), 'linux.mountLabel: SELinux is not supported'],
      [(c) => (c.linux.intelRdt = { closID: 'x' }), 'linux.intelRdt: Intel RDT (resctrl) is not supported'],
      [(c) => (c.linux.timeOffsets = { monotonic: { secs: 1 } }), 'linux.timeOffsets: time namespaces are not supported'],
      [(c) => (c.linux.personality = { domain: 'LINUX', flags: ['ADDR_NO_RANDOMIZE'] }), 'linux.personality.flags[0]: unknown flag `ADDR_NO_RANDOMIZE`'],
    ];
    for (const [edit, message] of cases) {
      const id = ws.id(ws.ours);
      const b = ws.bundle(['true'], edit);
      const r = ws.exec(ws.ours, ['create', '--bundle', b, id]);
      expect([r.status, r.stderr]).toEqual([1, `swarm-runtime: create ${id}: ${b}/config.json: ${message}\n`]);
    }
    // An empty label is no label.
    const r = run(ws.ours, ws.bundle(['true'], (c) => ((c.process as Record<string, unknown>).apparmorProfile = '')));
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  it('delete --force of a container that does not exist succeeds, like runc', () => {
    for (const rt of [ws.ours, ws.runc]) {
      expect(ws.exec(rt, ['delete', '--force', 'no-such-container']).status, rt.name).toBe(0);
      expect(ws.exec(rt, ['delete', 'no-such-container']).status, rt.name).toBe(1);
    }
    expect(existsSync(join(ws.ours.root, 'no-such-container'))).toBe(false);
  });
});

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

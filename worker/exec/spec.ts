// config.json for a container, from the image's config and the task's container spec. Pure: the
// caller reads the files (the seccomp profile, the image's /etc/passwd and /etc/group) and gives
// the paths (root filesystem, volume directories); nothing here touches the host.
import path from 'node:path';
import { InvalidArgumentError } from '../../common/errors.js';
import type { ImageConfig } from '../image/distribution.js';
import { capabilitySet, normalizeCapability } from '../../common/capabilities.js';
import { isSignal, sysctlProblem, ULIMIT_NAMES } from '../../common/process.js';
import { hostsLineProblem } from '../../common/dns.js';
import type { ContainerSpec, Mount } from './executor.js';

export { DEFAULT_CAPABILITIES } from '../../common/capabilities.js';

/** Docker's PATH when the image sets none. */
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];
const CFS_PERIOD = 100_000;

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** The parts of an OCI config.json this module writes. */
export interface OciConfig {
  ociVersion: string;
  root: { path: string; readonly: boolean };
  process: {
    terminal: boolean;
    args: string[];
    env: string[];
    cwd: string;
    user: { uid: number; gid: number; additionalGids?: number[] };
    capabilities: Record<'bounding' | 'effective' | 'permitted', string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
    oomScoreAdj?: number;
  };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string; path?: string }[];
    cgroupsPath: string;
    resources: { memory?: { limit: number }; cpu?: { quota: number; period: number }; pids?: { limit: number }; devices: DeviceRule[] };
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp?: unknown;
    sysctl?: Record<string, string>;
  };
  annotations: Record<string, string>;
}

/** A device cgroup rule (linux.resources.devices). */
export interface DeviceRule {
  allow: boolean;
  type?: 'a' | 'b' | 'c';
  major?: number;
  minor?: number;
  access: string;
}

/**
 * Every device denied, as `runc spec` and Docker start: the runtime then allows its default
 * nodes (null, zero, full, random, urandom, tty, ptmx, pts), so a container cannot open the
 * host's disks through a node it makes with CAP_MKNOD.
 */
const DEVICE_RULES: DeviceRule[] = [{ allow: false, access: 'rwm' }];

/** Where swarm-init is mounted in a container with `init` (Docker's path for its init). */
export const INIT_PATH = '/sbin/docker-init';
/** Docker's /dev/shm size. */
export const DEFAULT_SHM_BYTES = 64 * 1024 * 1024;

export function checkContainerId(id: string): string {
  if (!ID.test(id)) throw new InvalidArgumentError('id', `1-128 letters, digits, '_', '.' and '-', not starting with punctuation: ${JSON.stringify(id)}`);
  return id;
}

export function checkVolumeName(field: string, name: string): string {
  if (!VOLUME_NAME.test(name)) throw new InvalidArgumentError(field, `a volume name is 1-64 letters, digits, '_', '.' and '-', not starting with punctuation: ${JSON.stringify(name)}`);
  return name;
}

function checkAbsolute(field: string, p: string): string {
  if (!path.isAbsolute(p)) throw new InvalidArgumentError(field, `must be an absolute path: ${JSON.stringify(p)}`);
  if (p.includes('\0')) throw new InvalidArgumentError(field, 'must not contain a NUL byte');
  return path.normalize(p).replace(/(.)\/+$/, '$1'); // no trailing slash: /a/ and /a are one target
}

function checkEnv(field: string, env: string[]): void {
  env.forEach((e, i) => {
    if (!/^[^=]+=/.test(e) || e.includes('\0')) throw new InvalidArgumentError(`${field}[${i}]`, `must be KEY=VALUE: ${JSON.stringify(e)}`);
  });
}

function checkCount(field: string, n: number | undefined, min: number): void {
  if (n !== undefined && !(Number.isSafeInteger(n) && n >= min)) throw new InvalidArgumentError(field, `must be an integer of at least ${min}, got ${n}`);
}

/** Checks everything in a spec that can be checked without the host; the error names the field. */
export function checkSpec(spec: ContainerSpec): void {
  checkContainerId(spec.id);
  if (spec.command !== undefined && spec.command.length === 0) throw new InvalidArgumentError('command', 'must not be empty when given');
  if (spec.env !== undefined) checkEnv('env', spec.env);
  if (spec.hostname !== undefined && (spec.hostname.length > 64 || !HOSTNAME.test(spec.hostname)))
    throw new InvalidArgumentError('hostname', `not a valid host name: ${JSON.stringify(spec.hostname)}`);
  if (spec.dir !== undefined) checkAbsolute('dir', spec.dir);
  if (spec.user !== undefined && !/^[^:\s]+(:[^:\s]+)?$/.test(spec.user)) throw new InvalidArgumentError('user', `must be user, uid, user:group or uid:gid: ${JSON.stringify(spec.user)}`);
  checkCount('limits.memoryBytes', spec.limits?.memoryBytes, 4 * 1024 * 1024);
  checkCount('limits.nanoCpus', spec.limits?.nanoCpus, 10_000_000);
  checkCount('limits.pids', spec.limits?.pids, 1);
  if (spec.network !== undefined && spec.network !== 'bridge' && spec.network !== 'none')
    throw new InvalidArgumentError('network', `must be bridge or none, got ${JSON.stringify(spec.network)}`);
  for (const [which, caps] of [['capAdd', spec.capAdd], ['capDrop', spec.capDrop]] as const)
    (caps ?? []).forEach((c, i) => {
      if (normalizeCapability(c) !== c) throw new InvalidArgumentError(`${which}[${i}]`, `"${c}" is not a capability (CAP_NET_ADMIN, ... or ALL)`);
    });
  const ulimits = new Set<string>();
  (spec.ulimits ?? []).forEach((u, i) => {
    if (!ULIMIT_NAMES.includes(u.name)) throw new InvalidArgumentError(`ulimits[${i}].name`, `"${u.name}" is not a ulimit (${ULIMIT_NAMES.join(', ')})`);
    if (ulimits.has(u.name)) throw new InvalidArgumentError(`ulimits[${i}].name`, `"${u.name}" is set twice`);
    ulimits.add(u.name);
    checkCount(`ulimits[${i}].soft`, u.soft, 0);
    checkCount(`ulimits[${i}].hard`, u.hard, 0);
    if (u.soft > u.hard) throw new InvalidArgumentError(`ulimits[${i}].soft`, `${u.soft} is above the hard limit ${u.hard}`);
  });
  (spec.groups ?? []).forEach((g, i) => {
    if (!/^[^:\s]+$/.test(g)) throw new InvalidArgumentError(`groups[${i}]`, `"${g}" must be a group name or gid`);
  });
  if (spec.stopSignal !== undefined && !isSignal(spec.stopSignal)) throw new InvalidArgumentError('stopSignal', `"${spec.stopSignal}" is not a signal (e.g. SIGTERM, SIGUSR1, 15)`);
  for (const key of Object.keys(spec.sysctls ?? {})) {
    const problem = sysctlProblem(key);
    if (problem !== undefined) throw new InvalidArgumentError(`sysctls.${key}`, problem);
  }
  if (spec.oomScoreAdj !== undefined && !(Number.isInteger(spec.oomScoreAdj) && spec.oomScoreAdj >= -1000 && spec.oomScoreAdj <= 1000))
    throw new InvalidArgumentError('oomScoreAdj', `${spec.oomScoreAdj} must be an integer from -1000 to 1000`);
  checkCount('shmSizeBytes', spec.shmSizeBytes, 1);
  (spec.hosts ?? []).forEach((h, i) => {
    const problem = hostsLineProblem(h);
    if (problem !== undefined) throw new InvalidArgumentError(`hosts[${i}]`, problem);
  });
  const targets = new Set<string>();
  (spec.mounts ?? []).forEach((m, i) => {
    const f = `mounts[${i}]`;
    const target = checkAbsolute(`${f}.target`, m.target);
    if (target === '/') throw new InvalidArgumentError(`${f}.target`, 'cannot mount over /');
    if (targets.has(target)) throw new InvalidArgumentError(`${f}.target`, `${target} is mounted twice`);
    targets.add(target);
    switch (m.type) {
      case 'bind':
        checkAbsolute(`${f}.source`, m.source);
        break;
      case 'volume':
        checkVolumeName(`${f}.source`, m.source);
        break;
      case 'tmpfs':
        checkCount(`${f}.sizeBytes`, m.sizeBytes, 1);
        if (m.mode !== undefined && !(Number.isInteger(m.mode) && m.mode >= 0 && m.mode <= 0o7777)) throw new InvalidArgumentError(`${f}.mode`, `must be a file mode (0 to 07777), got ${m.mode}`);
        break;
      default:
        throw new InvalidArgumentError(`${f}.type`, `must be bind, volume or tmpfs, got ${JSON.stringify((m as { type: unknown }).type)}`);
    }
  });
}

/** The process's argv: Docker's Entrypoint/Cmd rules. */
export function processArgs(image: ImageConfig, spec: Pick<ContainerSpec, 'command' | 'args'>): string[] {
  const entrypoint = spec.command ?? image.config?.Entrypoint ?? [];
  // An overridden entrypoint drops the image's Cmd (Docker does the same).
  const cmd = spec.args ?? (spec.command !== undefined ? [] : (image.config?.Cmd ?? []));
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new InvalidArgumentError('command', `the image ${image.config === undefined ? 'has no config' : 'has no Entrypoint or Cmd'} and the spec gives no command or args`);
  return args;
}

/** The image's Env, then the spec's (same key: the later wins), PATH defaulted, HOSTNAME set. */
export function mergeEnv(imageEnv: string[], specEnv: string[], hostname: string): string[] {
  const out = new Map<string, string>();
  for (const e of [`HOSTNAME=${hostname}`, ...imageEnv, ...specEnv]) out.set(e.slice(0, e.indexOf('=')), e);
  if (!out.has('PATH')) out.set('PATH', DEFAULT_PATH);
  return [...out.values()];
}

interface Passwd {
  name: string;
  uid: number;
  gid: number;
}
interface Group {
  name: string;
  gid: number;
  members: string[];
}

function parsePasswd(text: string): Passwd[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!))
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) }));
}

function parseGroup(text: string): Group[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[2]!))
    .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter((m) => m !== '') }));
}

/**
 * Resolves `user` (user, uid, user:group, uid:gid; none: root) against the image's /etc/passwd
 * and /etc/group contents (empty strings when absent), as Docker does: a numeric uid not in passwd
 * gets gid 0; a user in passwd gets its primary group and the groups that list it; `groups` (names
 * in /etc/group or gids, Docker's --group) are added.
 */
export function resolveUser(user: string | undefined, passwd: string, group: string, extraGroups: readonly string[] = []): { uid: number; gid: number; additionalGids?: number[] } {
  const [u, g] = (user === undefined || user === '' ? '0' : user).split(':') as [string, string | undefined];
  const users = parsePasswd(passwd);
  const groups = parseGroup(group);
  const entry = /^\d+$/.test(u) ? users.find((p) => p.uid === Number(u)) : users.find((p) => p.name === u);
  if (entry === undefined && !/^\d+$/.test(u)) throw new InvalidArgumentError('user', `no user ${JSON.stringify(u)} in the image's /etc/passwd`);
  const uid = entry?.uid ?? Number(u);
  let gid = entry?.gid ?? 0;
  if (g !== undefined) {
    const ge = /^\d+$/.test(g) ? { gid: Number(g) } : groups.find((x) => x.name === g);
    if (ge === undefined) throw new InvalidArgumentError('user', `no group ${JSON.stringify(g)} in the image's /etc/group`);
    gid = ge.gid;
  }
  const extra = entry === undefined ? [] : groups.filter((x) => x.members.includes(entry.name) && x.gid !== gid).map((x) => x.gid);
  extraGroups.forEach((name, i) => {
    const ge = /^\d+$/.test(name) ? { gid: Number(name) } : groups.find((x) => x.name === name);
    if (ge === undefined) throw new InvalidArgumentError(`groups[${i}]`, `no group ${JSON.stringify(name)} in the image's /etc/group`);
    if (ge.gid > 0xfffffffe) throw new InvalidArgumentError(`groups[${i}]`, `gid out of range: ${name}`);
    if (!extra.includes(ge.gid)) extra.push(ge.gid);
  });
  if (uid > 0xfffffffe || gid > 0xfffffffe) throw new InvalidArgumentError('user', `out of range: ${JSON.stringify(user)}`);
  return extra.length > 0 ? { uid, gid, additionalGids: extra } : { uid, gid };
}

/** The standard filesystems, as `runc spec` writes them; /dev/shm of `shmBytes`. */
function standardMounts(shmBytes: number): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: [] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmBytes}`] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    // The container's own cgroups, read-only (its cgroup namespace roots them at its cgroup).
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
  ];
}

/** One spec mount in OCI form; `volumeDir(name)` gives a named volume's host directory. */
export function ociMount(m: Mount, volumeDir: (name: string) => string): OciMount {
  const ro = 'readOnly' in m && m.readOnly === true ? ['ro'] : [];
  switch (m.type) {
    case 'bind':
      return { destination: m.target, type: 'bind', source: m.source, options: ['rbind', 'rprivate', ...ro] };
    case 'volume':
      return { destination: m.target, type: 'bind', source: volumeDir(m.source), options: ['rbind', 'rprivate', ...ro] };
    case 'tmpfs': {
      const opts = ['nosuid', 'nodev', ...(m.exec === true ? [] : ['noexec'])];
      if (m.sizeBytes !== undefined) opts.push(`size=${m.sizeBytes}`);
      opts.push(`mode=${(m.mode ?? 0o1777).toString(8)}`);
      return { destination: m.target, type: 'tmpfs', source: 'tmpfs', options: opts };
    }
  }
}

export interface ConfigInput {
  spec: ContainerSpec;
  /** The merged root filesystem (absolute). */
  rootfs: string;
  /** The image's /etc/passwd and /etc/group ('' when absent). */
  passwd: string;
  group: string;
  /** linux.seccomp, e.g. native/seccomp/default.json parsed; undefined: none. */
  seccomp?: unknown;
  /** linux.cgroupsPath. */
  cgroupsPath: string;
  volumeDir: (name: string) => string;
  /** The container's /etc/hostname, /etc/hosts and /etc/resolv.conf on the host (container-files.ts). */
  etcFiles?: { hostname: string; hosts: string; resolvConf: string };
  /** swarm-init on the host, bind-mounted at INIT_PATH when the spec asks for an init. */
  initBinary?: string;
}

/** The config.json of a container. Throws an InvalidArgumentError naming the field for a bad spec. */
export function buildConfig(input: ConfigInput): OciConfig {
  const { spec } = input;
  checkSpec(spec);
  const image = spec.image.config;
  const hostname = spec.hostname ?? spec.id.slice(0, 12);
  const user = resolveUser(spec.user ?? image.config?.User, input.passwd, input.group, spec.groups);
  const cwd = spec.dir ?? (image.config?.WorkingDir ? image.config.WorkingDir : '/');
  if (!path.isAbsolute(cwd)) throw new InvalidArgumentError('dir', `the image's WorkingDir is not absolute: ${JSON.stringify(cwd)}`);
  const resources: OciConfig['linux']['resources'] = { devices: DEVICE_RULES.map((r) => ({ ...r })) };
  const l = spec.limits ?? {};
  if (l.memoryBytes !== undefined) resources.memory = { limit: l.memoryBytes };
  if (l.nanoCpus !== undefined) resources.cpu = { quota: Math.round((l.nanoCpus * CFS_PERIOD) / 1e9), period: CFS_PERIOD };
  if (l.pids !== undefined) resources.pids = { limit: l.pids };
  const given = (spec.mounts ?? []).map((m) => ociMount(m, input.volumeDir));
  const taken = (dest: string): boolean => given.some((u) => u.destination === dest);
  // Docker's container files, unless the spec mounts something of its own there.
  const etc: OciMount[] = [];
  if (input.etcFiles !== undefined) {
    for (const [dest, source] of [['/etc/hostname', input.etcFiles.hostname], ['/etc/hosts', input.etcFiles.hosts], ['/etc/resolv.conf', input.etcFiles.resolvConf]] as const)
      if (!taken(dest)) etc.push({ destination: dest, type: 'bind', source, options: ['rbind', 'rprivate'] });
  }
  let args = processArgs(image, spec);
  const init: OciMount[] = [];
  if (spec.init === true) {
    if (input.initBinary === undefined) throw new InvalidArgumentError('init', 'this node has no init binary (native/build/swarm-init)');
    init.push({ destination: INIT_PATH, type: 'bind', source: input.initBinary, options: ['rbind', 'rprivate', 'ro'] });
    args = [INIT_PATH, '--', ...args];
  }
  const mounts = [...standardMounts(spec.shmSizeBytes ?? DEFAULT_SHM_BYTES).filter((s) => !taken(s.destination)), ...etc, ...init, ...given];
  const caps = capabilitySet(spec.capAdd, spec.capDrop);
  const config: OciConfig = {
    ociVersion: '1.2.0',
    root: { path: input.rootfs, readonly: spec.readOnly === true },
    process: {
      terminal: spec.tty === true,
      args,
      env: mergeEnv(image.config?.Env ?? [], spec.env ?? [], hostname),
      cwd: path.normalize(cwd),
      user,
      // As Docker: the same set bounding, effective and permitted, none inheritable or ambient (a
      // non-root user's program so starts with no effective capability, as under Docker).
      capabilities: { bounding: caps, effective: [...caps], permitted: [...caps] },
      // Unset ones are inherited from the monitor, as Docker's containers inherit dockerd's.
      rlimits: (spec.ulimits ?? []).map((u) => ({ type: `RLIMIT_${u.name.toUpperCase()}`, soft: u.soft, hard: u.hard })),
      noNewPrivileges: spec.noNewPrivileges === true, // Docker's default is off; the seccomp profile is loaded while CAP_SYS_ADMIN is held
      ...(spec.oomScoreAdj !== undefined ? { oomScoreAdj: spec.oomScoreAdj } : {}),
    },
    hostname,
    mounts,
    linux: {
      // A cgroup namespace of its own, as Docker gives on cgroup v2 (private): the container sees
      // its own cgroup as the root of /sys/fs/cgroup.
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      cgroupsPath: input.cgroupsPath,
      resources,
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      ...(spec.sysctls !== undefined && Object.keys(spec.sysctls).length > 0 ? { sysctl: { ...spec.sysctls } } : {}),
    },
    annotations: { ...(spec.labels ?? {}), 'io.tswarm.image': spec.image.reference },
  };
  if (input.seccomp !== undefined) config.linux.seccomp = input.seccomp;
  return config;
}

// The lab: N hosts on this machine, each a network namespace with its own address, hostname (UTS
// namespace), state directory and /run (private mount namespace), joined by veth pairs to one
// underlay bridge. The bridge lives in a namespace of its own, so a lab touches nothing in the
// machine's own network namespace and several labs can run side by side with the same subnet.
//
// Contract: every resource a lab makes is listed in a registry file under /run/tswarm-lab/ before
// it is made, together with the pid (and start time) of the process that owns the lab. Teardown
// works from that record alone, so it runs on destroy(), on 'exit', on SIGINT/SIGTERM/SIGHUP, and
// in sweepStaleLabs() for labs whose owner died by SIGKILL. Processes the lab starts carry
// PR_SET_PDEATHSIG=SIGKILL, so they die with the owner even when it is killed with -9.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  isAlive,
  killAndWait,
  namespaceOf,
  pidsInNamespaces,
  processStartTime,
  run,
  sleepSync,
  tryRun,
} from './sys.js';

export const REGISTRY_DIR = '/run/tswarm-lab';
export const DEFAULT_STATE_ROOT = '/tmp/tswarm-lab';
/** Inside every host, its state directory is mounted here. */
export const HOST_STATE_MOUNT = '/var/lib/tswarm';
const NETNS_PREFIX = 'tsl-';
const NFT_TABLE = 'tswarm_lab';

export class LabError extends Error {
  constructor(message: string) {
    super(`lab: ${message}`);
    this.name = 'LabError';
  }
}

export interface LabOptions {
  /** Host names, or a count (hosts h1..hN). Names: lowercase letters, digits and '-', at most 20. */
  hosts: readonly string[] | number;
  /** The underlay subnet's first three octets; hosts get .11, .12, ... Default 10.77.0. */
  subnetPrefix?: string;
  /** Where host state directories are made; default /tmp/tswarm-lab. */
  stateRoot?: string;
}

/** What teardown needs, persisted as JSON in the registry before anything is made. */
interface LabRecord {
  id: string;
  ownerPid: number;
  ownerStart: number;
  netns: string[];
  root: string;
  /** Pids of the processes holding the hosts' mount and UTS namespaces, once started. */
  anchors?: number[];
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Working directory of the process; default the host's state directory. */
  cwd?: string;
}

const liveLabs = new Set<Lab>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const lab of liveLabs) lab.destroySync();
      process.kill(process.pid, sig);
    });
  }
}

function requireRootAndTools(): void {
  if (process.getuid?.() !== 0) {
    throw new LabError('the lab needs root (it creates network namespaces, veth pairs and nftables tables); run as root');
  }
  for (const tool of ['ip', 'nft', 'unshare', 'nsenter', 'setpriv', 'mount']) {
    if (!tryRun('sh', ['-c', `command -v ${tool}`])) {
      throw new LabError(`required tool \`${tool}\` is not installed (the test set-up installs iproute2, nftables and util-linux)`);
    }
  }
}

function readRecord(path: string): LabRecord | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LabRecord;
  } catch {
    return undefined;
  }
}

function netnsInode(name: string): string | undefined {
  try {
    return `net:[${statSync(`/run/netns/${name}`).ino}]`;
  } catch {
    return undefined;
  }
}

/** The cgroup hierarchies of this machine: the v2 root, or each v1 hierarchy (and a hybrid's unified tree). */
function cgroupHierarchies(): string[] {
  const root = '/sys/fs/cgroup';
  if (existsSync(join(root, 'cgroup.procs'))) return [root];
  return readdirSync(root)
    .map((d) => join(root, d))
    .filter((d) => existsSync(join(d, 'cgroup.procs')));
}

/**
 * The containers a host's runtime made (their state under the host's /run/swarm-runtime, read
 * through its anchor's root): every process in their cgroups killed, the cgroups removed. Their
 * processes live in namespaces of their own, which the namespace scan does not see: without this,
 * a lab torn down by a signal (a Ctrl-C of the demo) left its containers running.
 */
function removeContainers(anchorPid: number): void {
  const dir = `/proc/${anchorPid}/root/run/swarm-runtime`;
  let ids: string[];
  try {
    ids = readdirSync(dir);
  } catch {
    return;
  }
  const hierarchies = cgroupHierarchies();
  for (const id of ids) {
    let cgroupPath: unknown;
    try {
      cgroupPath = (JSON.parse(readFileSync(join(dir, id, 'state.json'), 'utf8')) as { cgroupPath?: unknown }).cgroupPath;
    } catch {
      continue;
    }
    if (typeof cgroupPath !== 'string' || !cgroupPath.startsWith('/') || cgroupPath.split('/').includes('..')) continue;
    const dirs = hierarchies.map((h) => join(h, cgroupPath)).filter((d) => existsSync(d));
    const procs = (): number[] =>
      dirs.flatMap((d) => {
        try {
          return readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
        } catch {
          return [];
        }
      });
    for (let round = 0; round < 2; round++) killAndWait(new Set(procs()));
    for (const d of dirs) {
      try {
        rmdirSync(d);
      } catch {
        // still busy or gone: the suite's teardown sweeps empty parents
      }
    }
  }
}

/**
 * Removes everything a lab record lists: the containers of its hosts, processes in its namespaces
 * (network namespaces, and the mount namespaces of host anchors), the namespaces, the state
 * directory, the record itself.
 * Idempotent, synchronous, never throws.
 */
function teardown(record: LabRecord): void {
  const anchorPids = record.anchors ?? [];
  const nets = new Set<string>();
  for (const name of record.netns) {
    const ino = netnsInode(name);
    if (ino) nets.add(ino);
  }
  // An anchor's mount namespace counts only while the anchor still sits in one of the lab's network
  // namespaces: after a reboot its pid may belong to an unrelated process.
  const mnts = new Set<string>();
  for (const pid of anchorPids) {
    const net = namespaceOf(pid, 'net');
    const mnt = namespaceOf(pid, 'mnt');
    if (net && nets.has(net) && mnt && mnt !== namespaceOf('self', 'mnt')) mnts.add(mnt);
  }
  // The containers first, while the anchors still show their hosts' /run.
  for (const pid of anchorPids) if (mnts.has(namespaceOf(pid, 'mnt') ?? '')) removeContainers(pid);
  // Twice: a process may fork between the scan and the kill.
  for (let round = 0; round < 2; round++) {
    killAndWait(new Set([...pidsInNamespaces('net', nets), ...pidsInNamespaces('mnt', mnts)]));
  }
  for (const name of record.netns) tryRun('ip', ['netns', 'delete', name]);
  rmSync(record.root, { recursive: true, force: true });
  rmSync(join(REGISTRY_DIR, `${record.id}.json`), { force: true });
}

/**
 * Tears down labs whose owning process is gone, and lab namespaces that no record claims.
 * Safe while other labs are running: a lab with a live owner is left alone.
 */
export function sweepStaleLabs(): string[] {
  const swept: string[] = [];
  const claimed = new Set<string>();
  if (existsSync(REGISTRY_DIR)) {
    for (const file of readdirSync(REGISTRY_DIR)) {
      if (!file.endsWith('.json')) continue;
      const record = readRecord(join(REGISTRY_DIR, file));
      if (!record) {
        rmSync(join(REGISTRY_DIR, file), { force: true });
        continue;
      }
      if (processStartTime(record.ownerPid) === record.ownerStart) {
        for (const n of record.netns) claimed.add(n);
        continue;
      }
      teardown(record);
      swept.push(record.id);
    }
  }
  const orphans = run('ip', ['netns', 'list'])
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(NETNS_PREFIX) && !claimed.has(name));
  if (orphans.length > 0) {
    teardown({ id: 'orphans', ownerPid: 0, ownerStart: 0, netns: orphans, root: join(DEFAULT_STATE_ROOT, '.none') });
    swept.push(...orphans);
  }
  return swept;
}

/** A process started on a host: its output goes to a log file that outlives restarts. */
export class LabProcess {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<number | null> = Promise.resolve(null);
  private exitCode: number | null | undefined;

  constructor(
    readonly host: LabHost,
    readonly name: string,
    readonly command: string,
    readonly args: readonly string[],
    private readonly options: StartOptions,
  ) {}

  /** The log file (outside path) that receives the process's stdout and stderr. */
  get logPath(): string {
    return join(this.host.stateDir, 'logs', `${this.name}.log`);
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitCode === undefined;
  }

  /** Starts the process (again); the log file is appended to. */
  start(): this {
    if (this.running) throw new LabError(`process ${this.name} on ${this.host.name} is already running`);
    mkdirSync(join(this.host.stateDir, 'logs'), { recursive: true });
    const fd = openSync(this.logPath, 'a');
    try {
      this.child = this.host.spawnInside(this.command, this.args, this.options, ['ignore', fd, fd]);
    } finally {
      closeSync(fd);
    }
    this.exitCode = undefined;
    const child = this.child;
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        resolve(code);
      });
      child.once('error', () => {
        this.exitCode = -1;
        resolve(null);
      });
    });
    return this;
  }

  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  wait(): Promise<number | null> {
    return this.exitPromise;
  }

  /** kill -9, and wait for the process to be gone. */
  async kill9(): Promise<void> {
    if (!this.running || !this.child?.pid) return;
    this.child.kill('SIGKILL');
    await this.exitPromise;
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running || !this.child?.pid) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }

  /** kill -9 if running, then start again with the same command. */
  async restart(): Promise<this> {
    await this.kill9();
    return this.start();
  }

  /** The whole log so far. */
  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Waits until the log matches `pattern`; rejects after timeoutMs or if the process exits first. */
  async waitForLog(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.log().match(pattern);
      if (m) return m;
      if (!this.running) throw new LabError(`${this.name} on ${this.host.name} exited before its log matched ${pattern}:\n${this.log()}`);
      if (Date.now() > deadline) throw new LabError(`timed out waiting for ${pattern} in the log of ${this.name} on ${this.host.name}:\n${this.log()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** One host of the lab. */
export class LabHost {
  readonly processes = new Map<string, LabProcess>();

  constructor(
    readonly lab: Lab,
    readonly name: string,
    readonly index: number,
    readonly address: string,
    readonly netns: string,
    /** The host's state directory as seen from outside; inside the host it is HOST_STATE_MOUNT. */
    readonly stateDir: string,
    /** A process that holds the host's UTS and mount namespaces; everything on the host joins it. */
    readonly anchorPid: number,
  ) {}

  /** Spawns a command inside the host's namespaces; it dies with the lab's owner (pdeathsig). */
  spawnInside(
    command: string,
    args: readonly string[],
    options: StartOptions,
    stdio: ['ignore' | 'pipe', number | 'pipe', number | 'pipe'],
  ): ChildProcess {
    const argv = ['--pdeathsig', 'KILL', '--', 'nsenter', '-t', String(this.anchorPid), '-n', '-u', '-m', '--', command, ...args];
    return spawn('setpriv', argv, {
      stdio,
      cwd: options.cwd ?? this.stateDir,
      env: { ...process.env, ...options.env },
    });
  }

  /** Starts a long-running process named `name` (unique on this host). */
  start(name: string, command: string, args: readonly string[] = [], options: StartOptions = {}): LabProcess {
    if (this.processes.get(name)?.running) throw new LabError(`a process named ${name} already runs on ${this.name}`);
    const proc = new LabProcess(this, name, command, args, options);
    this.processes.set(name, proc);
    return proc.start();
  }

  /**
   * Deletes (kill and remove) every container the OCI runtime at `runtimeBin` knows on this host:
   * they live in namespaces of their own under their monitors, which the lab's teardown does not
   * reach. Stop the host's swarmd first, or it replaces what is removed under it.
   */
  async deleteContainers(runtimeBin: string): Promise<void> {
    await this.exec('sh', ['-c', `for c in $(ls /run/swarm-runtime 2>/dev/null); do ${runtimeBin} delete --force "$c"; done`]).catch(() => undefined);
  }

  /** Runs a command on the host to completion and returns its output. */
  exec(command: string, args: readonly string[] = [], options: StartOptions & { timeoutMs?: number } = {}): Promise<ExecResult> {
    const child = this.spawnInside(command, args, options, ['ignore', 'pipe', 'pipe']);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    return new Promise((resolve, reject) => {
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }
}

/** A lab of hosts. Create with Lab.create(); always destroy() (also done on exit and on signals). */
export class Lab {
  readonly hosts: LabHost[] = [];
  private readonly cuts = new Set<string>();
  private destroyed = false;

  private constructor(
    private readonly record: LabRecord,
    readonly subnetPrefix: string,
  ) {}

  get id(): string {
    return this.record.id;
  }

  /** The directory holding every host's state directory. */
  get root(): string {
    return this.record.root;
  }

  get bridgeNetns(): string {
    return `${NETNS_PREFIX}${this.id}-br`;
  }

  static async create(options: LabOptions): Promise<Lab> {
    requireRootAndTools();
    const names = typeof options.hosts === 'number' ? Array.from({ length: options.hosts }, (_, i) => `h${i + 1}`) : [...options.hosts];
    if (names.length < 1 || names.length > 200) throw new LabError(`a lab has 1 to 200 hosts, not ${names.length}`);
    for (const n of names) {
      if (!/^[a-z][a-z0-9-]{0,19}$/.test(n)) throw new LabError(`host name "${n}" must be lowercase letters, digits and '-', starting with a letter, at most 20 characters`);
    }
    if (new Set(names).size !== names.length) throw new LabError(`host names must be unique: ${names.join(', ')}`);
    const subnetPrefix = options.subnetPrefix ?? '10.77.0';
    if (!/^10\.\d{1,3}\.\d{1,3}$/.test(subnetPrefix)) throw new LabError(`subnetPrefix "${subnetPrefix}" must be three octets in 10.0.0.0/8, like 10.77.0`);

    sweepStaleLabs();
    installExitHandlers();
    const id = randomBytes(3).toString('hex');
    const root = join(options.stateRoot ?? DEFAULT_STATE_ROOT, id);
    const ownerStart = processStartTime(process.pid);
    if (ownerStart === undefined) throw new LabError('cannot read this process start time from /proc');
    const record: LabRecord = {
      id,
      ownerPid: process.pid,
      ownerStart,
      netns: [`${NETNS_PREFIX}${id}-br`, ...names.map((n) => `${NETNS_PREFIX}${id}-${n}`)],
      root,
    };
    mkdirSync(REGISTRY_DIR, { recursive: true });
    writeFileSync(join(REGISTRY_DIR, `${id}.json`), JSON.stringify(record));
    const lab = new Lab(record, subnetPrefix);
    liveLabs.add(lab);
    try {
      lab.buildUnderlay();
      const anchors = await Promise.all(names.map((name, i) => lab.startAnchor(name, i)));
      record.anchors = anchors;
      writeFileSync(join(REGISTRY_DIR, `${id}.json`), JSON.stringify(record));
      names.forEach((name, i) => {
        lab.hosts.push(new LabHost(lab, name, i, lab.addressOf(i), `${NETNS_PREFIX}${id}-${name}`, join(root, name), anchors[i]!));
      });
    } catch (err) {
      lab.destroySync();
      throw err;
    }
    return lab;
  }

  private addressOf(index: number): string {
    return `${this.subnetPrefix}.${11 + index}`;
  }

  private buildUnderlay(): void {
    const br = this.bridgeNetns;
    run('ip', ['netns', 'add', br]);
    run('ip', ['-n', br, '-batch', '-'], 'link set lo up\nlink add br0 type bridge\nlink set br0 up\n');
    this.record.netns.slice(1).forEach((ns, i) => {
      run('ip', ['netns', 'add', ns]);
      run('ip', ['-n', br, 'link', 'add', `veth${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      run('ip', ['-n', br, 'link', 'set', `veth${i}`, 'master', 'br0', 'up']);
      run('ip', ['-n', ns, '-batch', '-'], `link set lo up\naddr add ${this.addressOf(i)}/24 dev eth0\nlink set eth0 up\n`);
      // The cut/heal table: a set of peer addresses this host drops in both directions.
      run(
        'nsenter',
        [`--net=/run/netns/${ns}`, '--', 'nft', '-f', '-'],
        `table inet ${NFT_TABLE} {
  set cut { type ipv4_addr; }
  chain input { type filter hook input priority -10; policy accept; ip saddr @cut drop; }
  chain output { type filter hook output priority -10; policy accept; ip daddr @cut drop; }
}
`,
      );
    });
  }

  /**
   * Starts the process that holds a host's UTS and mount namespaces: hostname set, /run a private
   * tmpfs, the state directory mounted on HOST_STATE_MOUNT, /sys showing the host's own network
   * (and the machine's cgroup hierarchies under /sys/fs/cgroup).
   */
  private startAnchor(name: string, index: number): Promise<number> {
    const ns = this.record.netns[index + 1]!;
    const state = join(this.root, name);
    mkdirSync(join(state, 'logs'), { recursive: true });
    mkdirSync(HOST_STATE_MOUNT, { recursive: true });
    const script = [
      'set -e',
      `hostname ${name}`,
      'mount -t tmpfs -o mode=0755,size=64m tmpfs /run',
      `mount --bind ${state} ${HOST_STATE_MOUNT}`,
      // A fresh sysfs shows the host's own network devices; the cgroup hierarchies (a sysfs of their
      // own) are carried over, so that containers can be run on a lab host.
      'mkdir -p /run/.lab-cgroup',
      'mount --rbind /sys/fs/cgroup /run/.lab-cgroup',
      'mount -t sysfs sysfs /sys',
      'mount --move /run/.lab-cgroup /sys/fs/cgroup',
      'rmdir /run/.lab-cgroup',
      'echo "anchor $$"',
      'exec sleep infinity',
    ].join('\n');
    const child = spawn(
      'setpriv',
      ['--pdeathsig', 'KILL', '--', 'nsenter', `--net=/run/netns/${ns}`, '--', 'unshare', '--uts', '--mount', '--propagation', 'private', '--kill-child', 'sh', '-c', script],
      // A process group of its own: a Ctrl-C (SIGINT to the terminal's foreground group) must not
      // end the anchor before the clean-up has used its namespaces to delete the host's
      // containers; the death signal still ends it with its parent.
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    return new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = out.match(/anchor (\d+)/);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new LabError(`host ${name}: namespace anchor exited (${code}) during set-up: ${err.trim()}`)));
      child.once('error', (e) => reject(new LabError(`host ${name}: cannot start namespace anchor: ${e.message}`)));
    });
  }

  host(name: string): LabHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new LabError(`no host named ${name} in lab ${this.id} (hosts: ${this.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }

  /** Cuts `a` off from `b`, or from every other host when b is omitted. Both directions. */
  cut(a: string, b?: string): void {
    for (const peer of this.peersOf(a, b)) this.cuts.add(pairKey(a, peer));
    this.applyCuts();
  }

  /** Heals the cut between `a` and `b`, or every cut of `a` when b is omitted. */
  heal(a: string, b?: string): void {
    for (const peer of this.peersOf(a, b)) this.cuts.delete(pairKey(a, peer));
    this.applyCuts();
  }

  private peersOf(a: string, b?: string): string[] {
    this.host(a);
    if (b !== undefined) {
      this.host(b);
      if (a === b) throw new LabError(`cannot cut ${a} from itself`);
      return [b];
    }
    return this.hosts.map((h) => h.name).filter((n) => n !== a);
  }

  /** Rewrites every host's drop set from the list of cut pairs. */
  private applyCuts(): void {
    for (const h of this.hosts) {
      const peers = this.hosts.filter((p) => p !== h && this.cuts.has(pairKey(h.name, p.name)));
      const elements = peers.length > 0 ? `add element inet ${NFT_TABLE} cut { ${peers.map((p) => p.address).join(', ')} }\n` : '';
      run('nsenter', [`--net=/run/netns/${h.netns}`, '--', 'nft', '-f', '-'], `flush set inet ${NFT_TABLE} cut\n${elements}`);
    }
  }

  /** Stops every process, removes every namespace, veth, mount, nft table and directory. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs.delete(this);
    teardown(this.record);
  }

  async destroy(): Promise<void> {
    const waits = this.hosts.flatMap((h) => [...h.processes.values()].map((p) => p.kill9()));
    await Promise.all(waits);
    this.destroySync();
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

/** For tests: true while any resource of the lab with this id exists on the machine. */
export function labLeftovers(id: string): string[] {
  const left: string[] = [];
  const netns = run('ip', ['netns', 'list']);
  if (netns.includes(`${NETNS_PREFIX}${id}-`)) left.push('network namespaces');
  if (existsSync(join(REGISTRY_DIR, `${id}.json`))) left.push('registry record');
  if (existsSync(join(DEFAULT_STATE_ROOT, id))) left.push('state directory');
  return left;
}

export { isAlive, sleepSync };

/**
 * swarm-runtime leaves its parent cgroup (/swarm-runtime, and the executor's /tswarm) in place
 * after a container's delete, as runc does; the suite and the demo made them, so they remove them
 * once they are empty (rmdir refuses a cgroup that is in use).
 */
export function removeRuntimeCgroupParents(): void {
  let controllers: string[];
  try {
    controllers = readdirSync('/sys/fs/cgroup');
  } catch {
    return;
  }
  const parents = ['swarm-runtime', 'tswarm'];
  for (const dir of parents.flatMap((p) => [join('/sys/fs/cgroup', p), ...controllers.map((c) => join('/sys/fs/cgroup', c, p))])) {
    try {
      rmdirSync(dir);
    } catch {
      // absent, or still in use: leave it
    }
  }
}

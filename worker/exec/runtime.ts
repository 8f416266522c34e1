// RuntimeExecutor: the Executor over an OCI runtime's command line (swarm-runtime, runc or crun)
// and one swarm-monitor per container (native/src/monitor.c).
//
//   <runDir>/containers/<id>/container.json     the record (below), written atomically
//   <runDir>/containers/<id>/bundle/config.json
//   <runDir>/containers/<id>/exit.json          the monitor's exit status, once the init exited
//   <runDir>/containers/<id>/init.pid           the runtime's --pid-file
//   <runDir>/containers/<id>/etc/               hostname, hosts, resolv.conf (container-files.ts), bind-mounted
//   <stateDir>/logs/<id>.json                   the monitor's JSON-lines log; .1, .2, ... rotated (logs.ts)
//   <stateDir>/volumes/<name>/_data             named local volumes, kept after their containers
//
// runDir is meant to be a tmpfs (swarmd: /run/tswarm/exec), as runc's and containerd's state
// are: a reboot ends every container and so also their records (which would otherwise outlive
// them), and each container's files cost no disk inodes (new inodes are what a file creation
// costs most on a busy disk; a container's start wrote about ten). Logs and volumes are data:
// they stay on the disk. Without runDir, everything is under stateDir.
//
// The state files are small and local: they are read and written with the synchronous calls, a
// few microseconds each, where fs/promises costs four thread-pool round trips per read (about
// 0.1 ms of CPU here); a worker starting a hundred containers made thousands of them.
//
// Everything an executor needs is in those files, so a new RuntimeExecutor on the same state
// directory (after the previous process was killed) adopts the containers: running ones are
// still running under their monitors, and exited ones have their exit status and logs.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CorruptFileError, IllegalStateError, InvalidArgumentError } from '../../common/errors.js';
import { logConfig, type LogConfig } from '../../common/log-driver.js';
import { isMountPoint } from '../image/rootfs.js';
import type { ImageStore } from '../image/store.js';
import type { Attachment, BridgeDriver } from '../network/bridge.js';
import type { OverlayAttachment, OverlayDriver } from '../network/overlay.js';
import {
  NoSuchContainerError,
  RuntimeError,
  type ContainerInfo,
  type ContainerSpec,
  type ContainerStatus,
  type ExecOptions,
  type ExecResult,
  type Executor,
  type ExitStatus,
  type LogEntry,
  type LogOptions,
  type ContainerDiscovery,
} from './executor.js';
import { checkLogConfig, isLogConfig, logFileNames, readLog } from './logs.js';
import { Spawner, type SpawnResult } from './spawner.js';
import { embeddedResolvConf, hostsFile, parseResolvConf, resolvConf } from './container-files.js';
import { buildConfig, checkContainerId, checkSpec, checkVolumeName } from './spec.js';

export const RUNTIMES = ['swarm-runtime', 'runc', 'crun'] as const;

/** wait()'s poll behind its watch of the exit file (see wait). */
const EXIT_POLL_MS = 1_000;
export type RuntimeName = (typeof RUNTIMES)[number];

export interface RuntimeExecutorOptions {
  /** Logs and named volumes, and the rest where runDir is not given (made if absent). */
  stateDir: string;
  /** Records, bundles, pid and exit files: a tmpfs such as /run (see the top of the file); default stateDir. */
  runDir?: string;
  /** Where images are pulled and container root filesystems are made. */
  images: ImageStore;
  /** 'swarm-runtime' (default), 'runc' or 'crun'. */
  runtime?: string;
  /** The runtime binary; default native/build/swarm-runtime for ours, else found in PATH. */
  runtimePath?: string;
  /** The runtime's --root; default its own default (/run/swarm-runtime, /run/runc, /run/crun). */
  runtimeRoot?: string;
  /** The swarm-monitor binary; default native/build/swarm-monitor. */
  monitorPath?: string;
  /** The bridge network for specs with network 'bridge'. */
  network?: BridgeDriver;
  /** The overlay driver for specs with overlay endpoints. */
  overlay?: OverlayDriver;
  /** Service discovery for containers on overlay networks: their resolv.conf then names 127.0.0.11. */
  discovery?: ContainerDiscovery;
  /** Parent of the containers' cgroups (linux.cgroupsPath = <parent>/<id>); default /tswarm. */
  cgroupParent?: string;
  /** A seccomp profile file for linux.seccomp; default native/seccomp/default.json; null: none. */
  seccompProfile?: string | null;
  /** The host's resolv.conf, the base of the containers' (container-files.ts); default /etc/resolv.conf. */
  resolvConf?: string;
  /** The init bind-mounted into containers that ask for one; default native/build/swarm-init. */
  initPath?: string;
  /**
   * Runs the runtime and the monitor: default a Spawner over native/build/swarm-spawn when it is
   * built, null: node's own spawn (which forks this process each time; see spawner.ts).
   */
  spawner?: Spawner | null;
}

/** What is persisted per container (container.json). */
interface ContainerRecord {
  version: 1;
  id: string;
  runtime: RuntimeName;
  runtimeBin: string;
  runtimeRoot: string;
  image: string;
  bundle: string;
  createdAt: string;
  /** 0 until the monitor reported ready. */
  monitorPid: number;
  monitorStartTime: string;
  pid: number;
  pidStartTime: string;
  startedAt?: string;
  stopSignal: string;
  network: 'bridge' | 'none';
  attachment?: Attachment;
  /** The overlay endpoints made so far (detached by cleanup). */
  overlays?: OverlayAttachment[];
  /** Attached to service discovery (detached by cleanup). */
  discovery?: boolean;
  /** The monitor's log driver and bound; absent in records from before rotation (one unbounded file). */
  log?: LogConfig;
}

/** How many files a container's log has at most (its live one included). */
const logFileCount = (r: ContainerRecord): number => (r.log?.driver === 'json-file' ? r.log.maxFiles : 1);

interface Exited {
  exitCode: number;
  signal?: string;
  oomKilled: boolean;
  finishedAt: string;
  createError?: string;
  monitorError?: string;
}

/** The checkout's native/build/<name> (from the sources or from dist/). */
export function nativeBinary(name: string): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'tswarm') return path.join(dir, 'native', 'build', name);
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve('native', 'build', name);
    dir = parent;
  }
}

/** A fork server over the checkout's native/build/swarm-spawn; null when it is not built. */
export function defaultSpawner(): Spawner | null {
  const bin = nativeBinary('swarm-spawn');
  return existsSync(bin) ? new Spawner(bin) : null;
}

function findInPath(name: string): string {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(d || '.', name);
    if (existsSync(p)) return path.resolve(p);
  }
  return path.join('/usr/bin', name);
}

function defaultRoot(rt: RuntimeName): string {
  return rt === 'swarm-runtime' ? '/run/swarm-runtime' : `/run/${rt}`;
}

/** Field 22 of /proc/PID/stat (start time in clock ticks), or undefined when the process is gone or a zombie. */
function procStartTime(pid: number): string | undefined {
  if (pid <= 0) return undefined;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19]; // field 22 counts from 1 and starts two before state (field 3)
}

function alive(pid: number, startTime: string): boolean {
  return pid > 0 && startTime !== '' && procStartTime(pid) === startTime;
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, file);
}

/** Runs a command with node's own spawn (when swarm-spawn is not available). */
function spawnRun(argv: readonly string[]): Promise<SpawnResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal: signal === null ? 0 : (constants.signals[signal] ?? 0), stdout, stderr }));
  });
}

/** The runtime's one-line error: the last line of stderr, logfmt's msg="..." unquoted (runc, crun). */
export function oneLine(stderr: string, fallback: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  const last = lines[lines.length - 1]?.trim();
  if (last === undefined) return fallback;
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(last);
  return m ? m[1]!.replace(/\\(.)/g, '$1') : last;
}

/** A state file's JSON; text that is not JSON is a CorruptFileError naming the file. */
function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CorruptFileError(file, `not JSON: ${(err as Error).message}`);
  }
}

function parseRecord(file: string, text: string): ContainerRecord {
  const v = parseJson(file, text);
  const r = v as Partial<ContainerRecord> | null;
  if (r === null || typeof r !== 'object' || r.version !== 1) throw new CorruptFileError(file, 'not a container record (version 1)');
  for (const k of ['id', 'runtimeBin', 'runtimeRoot', 'image', 'bundle', 'createdAt', 'monitorStartTime', 'pidStartTime', 'stopSignal'] as const)
    if (typeof r[k] !== 'string') throw new CorruptFileError(file, `${k}: missing or not a string`);
  for (const k of ['monitorPid', 'pid'] as const) if (typeof r[k] !== 'number') throw new CorruptFileError(file, `${k}: missing or not a number`);
  if (!RUNTIMES.includes(r.runtime as RuntimeName)) throw new CorruptFileError(file, `runtime: unknown ${JSON.stringify(r.runtime)}`);
  if (r.network !== 'bridge' && r.network !== 'none') throw new CorruptFileError(file, `network: unknown ${JSON.stringify(r.network)}`);
  if (r.log !== undefined && !isLogConfig(r.log)) throw new CorruptFileError(file, `log: not a log configuration: ${JSON.stringify(r.log)}`);
  if (r.overlays !== undefined && (!Array.isArray(r.overlays) || r.overlays.some((o) => typeof o?.networkId !== 'string' || typeof o.address !== 'string' || typeof o.ifname !== 'string'))) {
    throw new CorruptFileError(file, `overlays: not a list of overlay endpoints: ${JSON.stringify(r.overlays)}`);
  }
  return r as ContainerRecord;
}

function parseExit(file: string, text: string): Exited {
  const v = parseJson(file, text);
  const e = v as Partial<Exited> | null;
  if (e === null || typeof e !== 'object' || typeof e.exitCode !== 'number' || typeof e.finishedAt !== 'string') throw new CorruptFileError(file, 'not an exit status (exitCode, finishedAt)');
  return { exitCode: e.exitCode, signal: e.signal, oomKilled: e.oomKilled === true, finishedAt: e.finishedAt, createError: e.createError, monitorError: e.monitorError };
}

function exitStatus(e: Exited): ExitStatus {
  const s: ExitStatus = { exitCode: e.exitCode, oomKilled: e.oomKilled, finishedAt: e.finishedAt };
  if (e.signal !== undefined) s.signal = e.signal;
  const error = e.createError ?? e.monitorError;
  if (error !== undefined) s.error = error;
  return s;
}

export class RuntimeExecutor implements Executor {
  readonly stateDir: string;
  readonly runDir: string;
  readonly runtime: RuntimeName;
  readonly runtimeBin: string;
  readonly runtimeRoot: string;
  readonly monitorBin: string;
  private readonly images: ImageStore;
  private readonly network: BridgeDriver | undefined;
  private readonly overlay: OverlayDriver | undefined;
  private readonly discovery: ContainerDiscovery | undefined;
  private bridgeReady: Promise<void> | undefined;
  private readonly cgroupParent: string;
  private readonly seccompPath: string | null;
  private seccomp: unknown;
  private readonly spawner: Spawner | null;
  private readonly resolvConfPath: string;
  private readonly initPath: string;

  constructor(opts: RuntimeExecutorOptions) {
    const rt = opts.runtime ?? 'swarm-runtime';
    if (!RUNTIMES.includes(rt as RuntimeName)) throw new InvalidArgumentError('runtime', `must be one of ${RUNTIMES.join(', ')}, got ${JSON.stringify(rt)}`);
    this.runtime = rt as RuntimeName;
    this.stateDir = path.resolve(opts.stateDir);
    this.runDir = path.resolve(opts.runDir ?? opts.stateDir);
    this.images = opts.images;
    this.network = opts.network;
    this.overlay = opts.overlay;
    this.discovery = opts.discovery;
    this.runtimeBin = opts.runtimePath ?? (this.runtime === 'swarm-runtime' ? nativeBinary('swarm-runtime') : findInPath(this.runtime));
    this.runtimeRoot = opts.runtimeRoot ?? defaultRoot(this.runtime);
    this.monitorBin = opts.monitorPath ?? nativeBinary('swarm-monitor');
    const parent = opts.cgroupParent ?? '/tswarm';
    if (!/^(\/[A-Za-z0-9_.-]+)+$/.test(parent) || parent.split('/').some((c) => c === '.' || c === '..'))
      throw new InvalidArgumentError('cgroupParent', `must be an absolute cgroup path of plain components: ${JSON.stringify(parent)}`);
    this.cgroupParent = parent;
    this.spawner = opts.spawner !== undefined ? opts.spawner : defaultSpawner();
    this.seccompPath = opts.seccompProfile === undefined ? path.join(path.dirname(path.dirname(this.monitorBin)), 'seccomp', 'default.json') : opts.seccompProfile;
    this.resolvConfPath = opts.resolvConf ?? '/etc/resolv.conf';
    this.initPath = opts.initPath ?? nativeBinary('swarm-init');
  }

  private dir(id: string): string {
    return path.join(this.runDir, 'containers', checkContainerId(id));
  }

  /** A named volume's host directory. */
  volumeDir(name: string): string {
    return path.join(this.stateDir, 'volumes', checkVolumeName('volume', name), '_data');
  }

  private paths(id: string): { record: string; bundle: string; log: string; exit: string; pid: string; etc: string } {
    const d = this.dir(id);
    return {
      record: path.join(d, 'container.json'),
      bundle: path.join(d, 'bundle'),
      log: path.join(this.stateDir, 'logs', `${id}.json`),
      exit: path.join(d, 'exit.json'),
      pid: path.join(d, 'init.pid'),
      etc: path.join(d, 'etc'),
    };
  }

  /**
   * The container's /etc/hostname, /etc/hosts (without its own address: that comes with the
   * network, see prepare) and /etc/resolv.conf, written into its directory; their host paths.
   */
  private writeEtcFiles(spec: ContainerSpec, hostname: string): { hostname: string; hosts: string; resolvConf: string } {
    const dir = this.paths(spec.id).etc;
    mkdirSync(dir, { recursive: true });
    const files = { hostname: path.join(dir, 'hostname'), hosts: path.join(dir, 'hosts'), resolvConf: path.join(dir, 'resolv.conf') };
    let host = '';
    try {
      host = readFileSync(this.resolvConfPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    writeFileSync(files.hostname, `${hostname}\n`, { mode: 0o644 });
    writeFileSync(files.hosts, hostsFile(hostname, spec.hosts ?? []), { mode: 0o644 });
    const embedded = this.discovery !== undefined && (spec.overlays ?? []).length > 0;
    writeFileSync(files.resolvConf, (embedded ? embeddedResolvConf : resolvConf)(parseResolvConf(host), spec.dns), { mode: 0o644 });
    return files;
  }

  private loadRecord(id: string): ContainerRecord {
    const file = this.paths(id).record;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NoSuchContainerError(id);
      throw err;
    }
    return parseRecord(file, text);
  }

  private saveRecord(r: ContainerRecord): void {
    writeJsonAtomic(this.paths(r.id).record, r);
  }

  private readExit(id: string): Exited | undefined {
    const file = this.paths(id).exit;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
    return parseExit(file, text);
  }

  private async loadSeccomp(): Promise<unknown> {
    if (this.seccompPath === null) return undefined;
    if (this.seccomp === undefined) {
      const text = await readFile(this.seccompPath, 'utf8');
      try {
        this.seccomp = JSON.parse(text);
      } catch (err) {
        throw new CorruptFileError(this.seccompPath, `not JSON: ${(err as Error).message}`);
      }
    }
    return this.seccomp;
  }

  /** Runs a command through the fork server (or node's spawn without one). */
  private run(argv: readonly string[]): Promise<SpawnResult> {
    return this.spawner === null ? spawnRun(argv) : this.spawner.run(argv);
  }

  private async runtimeOp(r: ContainerRecord, op: string, args: string[]): Promise<SpawnResult> {
    const res = await this.run([r.runtimeBin, '--root', r.runtimeRoot, ...args]).catch((err: Error) => {
      throw new RuntimeError(r.runtime, op, r.id, err.message, { cause: err });
    });
    if (res.code !== 0) throw new RuntimeError(r.runtime, op, r.id, oneLine(res.stderr, `exited with ${res.code ?? `signal ${res.signal}`}`));
    return res;
  }

  async prepare(spec: ContainerSpec): Promise<ContainerInfo> {
    checkSpec(spec);
    const log = spec.log ?? logConfig('', {}); // always bounded
    checkLogConfig(log);
    if (spec.network === 'bridge' && this.network === undefined) throw new InvalidArgumentError('network', 'bridge networking needs an executor with a bridge driver');
    if ((spec.ports ?? []).length > 0 && spec.network !== 'bridge') {
      throw new InvalidArgumentError('ports', `published ports need the bridge network; this container's network is ${spec.network ?? 'none'}`);
    }
    const overlays = spec.overlays ?? [];
    if (overlays.length > 0 && this.overlay === undefined) throw new InvalidArgumentError('overlays', 'overlay networks need an executor with the overlay driver');
    for (const [i, m] of (spec.mounts ?? []).entries()) {
      if (m.type !== 'bind') continue;
      try {
        await stat(m.source);
      } catch {
        throw new InvalidArgumentError(`mounts[${i}].source`, `${m.source} does not exist on the host`);
      }
    }
    const p = this.paths(spec.id);
    mkdirSync(path.dirname(this.dir(spec.id)), { recursive: true });
    mkdirSync(path.dirname(p.log), { recursive: true });
    try {
      mkdirSync(this.dir(spec.id)); // claims the id atomically
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new IllegalStateError(`container ${spec.id} exists`);
      throw err;
    }
    // Left by a container of this id whose record a reboot took (see prune).
    for (const f of logFileNames(p.log, log.driver === 'json-file' ? log.maxFiles : 1)) rmSync(f, { force: true });
    const record: ContainerRecord = {
      version: 1,
      id: spec.id,
      runtime: this.runtime,
      runtimeBin: this.runtimeBin,
      runtimeRoot: this.runtimeRoot,
      image: spec.image.reference,
      bundle: p.bundle,
      createdAt: new Date().toISOString(),
      monitorPid: 0,
      monitorStartTime: '',
      pid: 0,
      pidStartTime: '',
      stopSignal: spec.stopSignal ?? spec.image.config.config?.StopSignal ?? 'SIGTERM',
      network: spec.network ?? 'none',
      log,
    };
    try {
      // The record first: a crash from here on leaves something remove() can clean up.
      this.saveRecord(record);
      const rootfs = await this.images.createRootfs(spec.id, spec.image);
      const etc = (f: string): string => {
        try {
          return readFileSync(path.join(rootfs.target, 'etc', f), 'utf8');
        } catch {
          return '';
        }
      };
      for (const m of spec.mounts ?? []) if (m.type === 'volume') await mkdir(this.volumeDir(m.source), { recursive: true });
      const hostname = spec.hostname ?? spec.id.slice(0, 12);
      const etcFiles = this.writeEtcFiles(spec, hostname);
      const config = buildConfig({
        spec,
        rootfs: rootfs.target,
        passwd: etc('passwd'),
        group: etc('group'),
        seccomp: await this.loadSeccomp(),
        cgroupsPath: `${this.cgroupParent}/${spec.id}`,
        volumeDir: (n) => this.volumeDir(n),
        etcFiles,
        initBinary: this.initPath,
      });
      mkdirSync(p.bundle);
      writeFileSync(path.join(p.bundle, 'config.json'), JSON.stringify(config));
      const ready = await this.startMonitor(record, spec.tty === true);
      record.monitorPid = ready.monitorPid;
      record.monitorStartTime = procStartTime(ready.monitorPid) ?? '';
      record.pid = ready.pid;
      record.pidStartTime = procStartTime(ready.pid) ?? '';
      // (A crash before this save leaves a record without the monitor: remove() still finds the
      // runtime's container by its id, and the endpoint by the container's id.)
      const netns = `/proc/${ready.pid}/ns/net`;
      // The overlay endpoints first (eth0, ...), each network's sandbox made if missing; the record
      // lists each as soon as it exists, so that cleanup detaches what a failure left.
      for (const [i, ep] of overlays.entries()) {
        await this.overlay!.ensure(ep.network);
        record.overlays ??= [];
        const made = await this.overlay!.attach(ep.network, spec.id, netns, { address: ep.address, ifname: `eth${i}` });
        record.overlays.push(made);
      }
      // Its names and VIPs, before its process runs (the record says so, for cleanup).
      if (overlays.length > 0 && this.discovery !== undefined) {
        record.discovery = true;
        const interfaces = Object.fromEntries(overlays.map((o, i) => [o.network.id, `eth${i}`]));
        await this.discovery.attach({ id: spec.id, netns, networks: overlays.map((o) => o.network.id), upstream: spec.dns?.nameservers ?? [], interfaces });
      }
      if (record.network === 'bridge') {
        // Made once, when first needed (idempotent: a bridge the daemon made already is kept).
        this.bridgeReady ??= this.network!.create().catch((err: unknown) => {
          this.bridgeReady = undefined;
          throw err;
        });
        await this.bridgeReady;
        record.attachment = await this.network!.attach(spec.id, netns, { ports: spec.ports ?? [], ifname: `eth${overlays.length}` });
      }
      // The container's own line, now that it has an address (its first network's): written in
      // place (the same inode), since the file is already bind-mounted into the created container.
      const own = record.overlays?.[0]?.address.split('/')[0] ?? record.attachment?.address;
      if (own !== undefined) writeFileSync(etcFiles.hosts, hostsFile(hostname, spec.hosts ?? [], own));
      this.saveRecord(record);
    } catch (err) {
      await this.cleanup(record).catch(() => undefined);
      throw err;
    }
    const info: ContainerInfo = { ...this.baseInfo(record), status: 'created', pid: record.pid };
    if (record.attachment !== undefined) info.network = record.attachment;
    if (record.overlays !== undefined) info.overlays = record.overlays;
    return info;
  }

  private baseInfo(r: ContainerRecord): Pick<ContainerInfo, 'id' | 'image' | 'runtime' | 'monitorPid' | 'createdAt' | 'bundle' | 'logPath'> {
    return { id: r.id, image: r.image, runtime: r.runtime, monitorPid: r.monitorPid, createdAt: r.createdAt, bundle: r.bundle, logPath: this.paths(r.id).log };
  }

  // Runs swarm-monitor, which runs `<runtime> create`; resolves with the pids once created. With
  // a terminal, the monitor receives its master on a socket in the container's directory.
  private async startMonitor(r: ContainerRecord, tty: boolean): Promise<{ monitorPid: number; pid: number }> {
    const p = this.paths(r.id);
    const log = r.log?.driver === 'json-file' ? ['--log', p.log, '--log-max-size', String(r.log.maxSizeBytes), '--log-max-files', String(r.log.maxFiles)] : ['--log-driver', 'none'];
    const argv = [this.monitorBin, '--runtime', r.runtimeBin, '--runtime-root', r.runtimeRoot, '--bundle', p.bundle, '--id', r.id, ...log, '--exit-file', p.exit, '--pid-file', p.pid];
    if (tty) argv.push('--console-socket', path.join(this.dir(r.id), 'console.sock'));
    const res = await this.run(argv).catch((err: Error) => {
      throw new RuntimeError(r.runtime, 'create', r.id, `cannot run ${this.monitorBin}: ${err.message}`, { cause: err });
    });
    const line = (res.code === 0 ? res.stdout : res.stderr).trim().split('\n').pop() ?? '';
    let parsed: { monitorPid?: number; pid?: number; error?: string } = {};
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      parsed = { error: line || `swarm-monitor exited with ${res.code ?? `signal ${res.signal}`}` };
    }
    if (res.code !== 0 || typeof parsed.pid !== 'number' || typeof parsed.monitorPid !== 'number')
      throw new RuntimeError(r.runtime, 'create', r.id, parsed.error ?? `swarm-monitor: unexpected answer ${JSON.stringify(line)}`);
    return { monitorPid: parsed.monitorPid, pid: parsed.pid };
  }

  async start(id: string): Promise<void> {
    const r = this.loadRecord(id);
    // Not inspectRecord(): it may ask the runtime, and this is the hot path of every start.
    if (r.startedAt !== undefined) throw new IllegalStateError(`container ${id} was started at ${r.startedAt}`);
    if (r.monitorPid === 0) throw new IllegalStateError(`container ${id} is not created (its prepare did not finish)`);
    if (existsSync(this.paths(id).exit)) throw new IllegalStateError(`container ${id} has exited`);
    await this.runtimeOp(r, 'start', ['start', id]);
    r.startedAt = new Date().toISOString();
    this.saveRecord(r);
  }

  /**
   * Woken by the monitor's exit file appearing (inotify on the container's directory), with a
   * slow poll behind it for what makes no event (a monitor killed before it wrote one). Polling
   * every container every 100 ms was most of an idle worker's CPU with a hundred containers.
   * Without a watch (e.g. out of inotify watches) it polls as before, 10 ms doubling to 100 ms.
   */
  async wait(id: string, signal?: AbortSignal): Promise<ExitStatus> {
    let kick: (() => void) | undefined;
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(this.dir(id), { persistent: false }, (_event, name) => {
        if (name === null || name === 'exit.json') kick?.();
      });
      watcher.on('error', () => {
        watcher?.close();
        watcher = undefined;
        kick?.();
      });
    } catch {
      watcher = undefined;
    }
    try {
      let delay = 10;
      for (;;) {
        const changed = new Promise<void>((resolve) => (kick = resolve));
        const info = await this.inspect(id);
        if (info.exit !== undefined) return info.exit;
        signal?.throwIfAborted();
        const ac = new AbortController();
        const abort = (): void => ac.abort();
        signal?.addEventListener('abort', abort, { once: true });
        try {
          await Promise.race([changed, sleep(watcher !== undefined ? EXIT_POLL_MS : delay, undefined, { signal: ac.signal })]);
        } catch (err) {
          if (!ac.signal.aborted) throw err;
        } finally {
          signal?.removeEventListener('abort', abort);
          ac.abort();
        }
        signal?.throwIfAborted();
        delay = Math.min(delay * 2, 100);
      }
    } finally {
      watcher?.close();
    }
  }

  private async signal(r: ContainerRecord, sig: string): Promise<void> {
    try {
      await this.runtimeOp(r, 'kill', ['kill', r.id, sig]);
    } catch (err) {
      // Exited meanwhile: nothing to signal.
      if ((await this.inspectRecord(r)).status !== 'exited') throw err;
    }
  }

  async stop(id: string, graceMs: number): Promise<ExitStatus> {
    const r = this.loadRecord(id);
    const first = await this.inspectRecord(r);
    if (first.exit !== undefined) return first.exit;
    if (graceMs > 0) {
      await this.signal(r, r.stopSignal);
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), graceMs);
      try {
        return await this.wait(id, ac.signal);
      } catch (err) {
        if (!ac.signal.aborted) throw err;
      } finally {
        clearTimeout(timer);
      }
    }
    await this.signal(r, 'SIGKILL');
    return this.wait(id);
  }

  async remove(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const r = this.loadRecord(id);
    const info = await this.inspectRecord(r);
    if (info.status === 'running' && opts.force !== true) throw new IllegalStateError(`container ${id} is running: stop it first or remove with force`);
    if (info.status !== 'exited') await this.stop(id, 0);
    await this.cleanup(r);
  }

  // Undoes everything prepare made, whatever got made: the runtime's container (and cgroup), the
  // monitor (it exits once the init is reaped), the network endpoint, the root filesystem, the
  // container's directory.
  private async cleanup(r: ContainerRecord): Promise<void> {
    if (r.monitorPid > 0 || existsSync(path.join(r.runtimeRoot, r.id))) {
      const res = await this.run([r.runtimeBin, '--root', r.runtimeRoot, 'delete', '--force', r.id]);
      if (res.code !== 0 && existsSync(path.join(r.runtimeRoot, r.id))) throw new RuntimeError(r.runtime, 'delete', r.id, oneLine(res.stderr, `exited with ${res.code ?? `signal ${res.signal}`}`));
    }
    for (let i = 0; i < 500 && alive(r.monitorPid, r.monitorStartTime); i++) await sleep(10);
    if (r.network === 'bridge' && this.network !== undefined) await this.network.detach(r.id);
    if (r.discovery) await this.discovery?.detach(r.id);
    for (const o of r.overlays ?? []) await this.overlay?.detach(o.networkId, r.id);
    await this.images.removeRootfs(r.id);
    for (const f of logFileNames(this.paths(r.id).log, logFileCount(r))) await rm(f, { force: true });
    await rm(this.dir(r.id), { recursive: true, force: true });
  }

  async unpublish(id: string): Promise<void> {
    const r = this.loadRecord(id);
    if (r.network !== 'bridge' || this.network === undefined || r.attachment?.ports === undefined) return;
    await this.network.unpublish(id);
    const rest = { ...r.attachment };
    delete rest.ports;
    r.attachment = rest;
    this.saveRecord(r);
  }

  async inspect(id: string): Promise<ContainerInfo> {
    return this.inspectRecord(this.loadRecord(id));
  }

  private async inspectRecord(r: ContainerRecord): Promise<ContainerInfo> {
    const base = this.baseInfo(r);
    const extra: Partial<ContainerInfo> = {};
    if (r.startedAt !== undefined) extra.startedAt = r.startedAt;
    if (r.attachment !== undefined) extra.network = r.attachment;
    if (r.overlays !== undefined) extra.overlays = r.overlays;
    const exited = this.readExit(r.id);
    if (exited !== undefined) return { ...base, ...extra, status: 'exited', pid: 0, exit: exitStatus(exited) };
    let status: ContainerStatus;
    if (alive(r.pid, r.pidStartTime)) {
      status = r.startedAt !== undefined ? 'running' : await this.runtimeStatus(r);
    } else if (alive(r.monitorPid, r.monitorStartTime)) {
      status = 'running'; // the init is gone; its monitor is writing the exit file
    } else if (r.monitorPid === 0) {
      status = 'created'; // being prepared (or the preparing process died: remove cleans up)
    } else {
      // The monitor died without an exit status (killed): the exit code is lost.
      const exit = this.readExit(r.id);
      if (exit !== undefined) return { ...base, ...extra, status: 'exited', pid: 0, exit: exitStatus(exit) };
      return { ...base, ...extra, status: 'exited', pid: 0, exit: { exitCode: -1, oomKilled: false, finishedAt: new Date().toISOString(), error: 'the monitor exited without writing an exit status' } };
    }
    return { ...base, ...extra, status, pid: r.pid };
  }

  // created or running, from the runtime, for a container whose start may not have been recorded
  // (the previous executor died between `start` and saving the record).
  private async runtimeStatus(r: ContainerRecord): Promise<ContainerStatus> {
    const res = await this.run([r.runtimeBin, '--root', r.runtimeRoot, 'state', r.id]);
    if (res.code !== 0) return 'created';
    const s = (JSON.parse(res.stdout) as { status?: string }).status;
    return s === 'running' ? 'running' : 'created';
  }

  async list(): Promise<ContainerInfo[]> {
    let ids: string[];
    try {
      ids = await readdir(path.join(this.runDir, 'containers'));
    } catch {
      return [];
    }
    const out: ContainerInfo[] = [];
    for (const id of ids.sort()) {
      try {
        out.push(await this.inspect(id));
      } catch (err) {
        if (!(err instanceof NoSuchContainerError)) throw err;
      }
    }
    return out;
  }

  async *logs(id: string, opts: LogOptions = {}): AsyncGenerator<LogEntry> {
    const r = this.loadRecord(id);
    // The none driver: no file, an empty log.
    yield* readLog(this.paths(id).log, {
      ...opts,
      maxFiles: logFileCount(r),
      // done once exited (or removed meanwhile); a created container has yet to write anything
      finished: async () => ((await this.inspect(id).catch(() => undefined))?.status ?? 'exited') === 'exited',
    });
  }

  async exec(id: string, command: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = this.loadRecord(id);
    if (command.length === 0) throw new InvalidArgumentError('command', 'must not be empty');
    const args = ['exec'];
    for (const e of opts.env ?? []) args.push('--env', e);
    if (opts.user !== undefined) args.push('--user', opts.user);
    if (opts.cwd !== undefined) args.push('--cwd', opts.cwd);
    const res = await this.run([r.runtimeBin, '--root', r.runtimeRoot, ...args, id, ...command]);
    if (res.code === null) return { exitCode: 128 + res.signal, stdout: res.stdout, stderr: res.stderr };
    return { exitCode: res.code, stdout: res.stdout, stderr: res.stderr };
  }

  /**
   * Removes what containers without a record left behind: their root filesystems and logs. With
   * runDir on a tmpfs, a reboot takes every record (and every container); the rest is on the
   * disk. To be called when the executor starts, before any prepare (a prepare in flight has a
   * record before it has a root filesystem, but prune reads the records first). A root filesystem
   * that is mounted is left alone: a reboot unmounts them all, so a mounted one may belong to a
   * live container whose record is elsewhere (one made before runDir existed), and so is its
   * log. Returns the ids.
   */
  async prune(): Promise<string[]> {
    const known = new Set(await readdir(path.join(this.runDir, 'containers')).catch(() => [] as string[]));
    const gone = new Set<string>();
    for (const r of await this.images.listRootfs()) {
      if (known.has(r.id)) continue;
      if (await isMountPoint(r.target)) {
        known.add(r.id); // and its log stays too
        continue;
      }
      await this.images.removeRootfs(r.id);
      gone.add(r.id);
    }
    for (const f of await readdir(path.join(this.stateDir, 'logs')).catch(() => [] as string[])) {
      const id = f.replace(/\.json(\.[0-9]+)?$/, ''); // the live file and the rotated ones
      if (known.has(id)) continue;
      await rm(path.join(this.stateDir, 'logs', f), { force: true });
      gone.add(id);
    }
    return [...gone].sort();
  }

  /** Named volumes under the state directory. */
  async volumes(): Promise<string[]> {
    return readdir(path.join(this.stateDir, 'volumes')).catch(() => []);
  }

  /** Removes a named volume; one that a container of this executor mounts is refused. */
  async removeVolume(name: string): Promise<boolean> {
    const dir = path.dirname(this.volumeDir(name));
    for (const c of await this.list()) {
      const config = await readFile(path.join(c.bundle, 'config.json'), 'utf8').catch(() => '');
      if (config.includes(JSON.stringify(this.volumeDir(name)))) throw new IllegalStateError(`volume ${name} is in use by container ${c.id}`);
    }
    if (!existsSync(dir)) return false;
    await rm(dir, { recursive: true, force: true });
    return true;
  }
}

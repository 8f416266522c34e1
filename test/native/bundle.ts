// Helpers for the runtime tests: OCI bundles made from Debian's busybox-static with `runc spec`,
// the two runtimes under test (ours and runc) with their own state roots, and clean-up that
// leaves no container, process, state directory or mount behind.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../util/dist.js';

export const OURS = join(REPO, 'native/build/swarm-runtime');
export const BUSYBOX = '/bin/busybox';
/** Our default seccomp profile (native/seccomp/default.json), for `linux.seccomp`. */
export const SECCOMP_DEFAULT = join(REPO, 'native/seccomp/default.json');

/** A seccomp profile as config.json's `linux.seccomp` holds it. */
export interface SeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  syscalls?: { names: string[]; action: string; errnoRet?: number; args?: { index: number; value: number; valueTwo?: number; op: string }[] }[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
}

/** A fresh copy of the default profile. */
export function defaultSeccomp(): SeccompProfile {
  return JSON.parse(readFileSync(SECCOMP_DEFAULT, 'utf8')) as SeccompProfile;
}

/** What the tests need on the machine; a missing piece is reported by name. */
export function missingPrerequisites(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  if (!existsSync(OURS)) missing.push(`${OURS} (make -C native)`);
  if (!existsSync(BUSYBOX)) missing.push('busybox-static (/bin/busybox)');
  if (spawnSync('runc', ['--version']).status !== 0) missing.push('runc');
  return missing;
}

/** The parts of config.json the tests touch (`runc spec` fills in the rest). */
export interface Config {
  ociVersion?: unknown;
  root: { path: string; readonly?: boolean };
  process: {
    args: string[];
    terminal?: boolean;
    env?: string[];
    cwd: string;
    user: { uid: number; gid: number; additionalGids?: number[] };
    capabilities?: Record<string, string[]>;
    rlimits?: { type: string; hard: number; soft: number }[];
    noNewPrivileges?: boolean;
    oomScoreAdj?: number;
  };
  hostname?: string;
  mounts: { destination: string; type?: string; source?: string; options?: string[] }[];
  linux: { namespaces: { type: string; path?: string }[]; maskedPaths?: string[]; readonlyPaths?: string[]; [k: string]: unknown };
  [k: string]: unknown;
}

/**
 * Removes the tests' cgroup parent `parent` (a path below each hierarchy) from every hierarchy
 * under /sys/fs/cgroup, and returns the cgroups still inside it: containers a test failed to delete.
 */
export function removeCgroupParents(parent: string): string[] {
  const root = '/sys/fs/cgroup';
  const left: string[] = [];
  for (const h of readdirSync(root)) {
    const p = join(root, h, parent);
    if (!existsSync(p)) continue;
    for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) left.push(join(p, e.name));
    spawnSync('rmdir', [p]);
  }
  return left;
}

export interface Runtime {
  name: string;
  bin: string;
  root: string;
}

/** One scratch directory per test file: bundles, state roots, and everything to remove. */
export class Workspace {
  readonly dir = mkdtempSync(join(tmpdir(), 'swarm-rt-test-'));
  readonly ours: Runtime = { name: 'swarm-runtime', bin: OURS, root: join(this.dir, 'state-ours') };
  readonly runc: Runtime = { name: 'runc', bin: 'runc', root: join(this.dir, 'state-runc') };
  private readonly containers: { rt: Runtime; id: string }[] = [];
  private n = 0;

  /** A rootfs with busybox and its applets as symlinks in /bin. */
  makeRootfs(path: string): void {
    mkdirSync(join(path, 'bin'), { recursive: true });
    copyFileSync(BUSYBOX, join(path, 'bin/busybox'));
    chmodSync(join(path, 'bin/busybox'), 0o755);
    const applets = spawnSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter((a) => a && a !== 'busybox');
    for (const a of applets) symlinkSync('busybox', join(path, 'bin', a));
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc']) mkdirSync(join(path, d), { recursive: true });
    writeFileSync(join(path, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\nuser:x:1000:1000:user:/:/bin/sh\n');
    writeFileSync(join(path, 'etc/group'), 'root:x:0:\nwheel:x:10:\nusers:x:100:\nuser:x:1000:\n');
  }

  /** A bundle from `runc spec`, adjusted for tests (no terminal, no cgroup mount), then `edit`. */
  bundle(args: string[], edit?: (c: Config) => void): string {
    const dir = join(this.dir, `bundle-${++this.n}`);
    mkdirSync(dir);
    this.makeRootfs(join(dir, 'rootfs'));
    const r = spawnSync('runc', ['spec', '--bundle', dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`runc spec: ${r.stderr}`);
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Config;
    c.process.terminal = false;
    c.process.args = args;
    c.mounts = c.mounts.filter((m) => m.type !== 'cgroup');
    edit?.(c);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(c, null, 2));
    return dir;
  }

  /** Remembers ID (made by the caller) for clean-up. */
  track(rt: Runtime, id: string): string {
    this.containers.push({ rt, id });
    return id;
  }

  /** A fresh container id, remembered for clean-up. */
  id(rt: Runtime, prefix = 'c'): string {
    const id = `${prefix}-${process.pid}-${++this.n}`;
    this.containers.push({ rt, id });
    return id;
  }

  /** Runs a runtime command. `detached`: the container keeps the stdio, so give it a file or
   * nothing (a pipe would keep spawnSync waiting until the container exits). */
  exec(rt: Runtime, args: string[], opts: { outFd?: number; detached?: boolean } = {}): SpawnSyncReturns<string> {
    const out = opts.outFd ?? (opts.detached ? 'ignore' : 'pipe');
    const err = opts.detached ? (opts.outFd ?? 'ignore') : 'pipe';
    return spawnSync(rt.bin, ['--root', rt.root, ...args], { encoding: 'utf8', stdio: ['ignore', out, err], timeout: 30_000 });
  }

  state(rt: Runtime, id: string): { status: string; pid: number; id: string; bundle: string; ociVersion: string } {
    const r = this.exec(rt, ['state', id]);
    if (r.status !== 0) throw new Error(`${rt.name} state ${id}: ${r.stderr}`);
    return JSON.parse(r.stdout) as { status: string; pid: number; id: string; bundle: string; ociVersion: string };
  }

  /** Removes every container still known to either runtime, except those in `keep` (they stay
   * remembered for a later clean-up). */
  cleanup(keep: string[] = []): string[] {
    const problems: string[] = [];
    for (const { rt, id } of this.containers.splice(0)) {
      if (keep.includes(id)) {
        this.containers.push({ rt, id });
        continue;
      }
      if (!existsSync(join(rt.root, id))) continue;
      const r = this.exec(rt, ['delete', '--force', id]);
      if (r.status !== 0) problems.push(`${rt.name} delete --force ${id}: ${r.stderr.trim()}`);
    }
    return problems;
  }

  /** Leftovers after clean-up: state directories, processes running from our bundles, mounts. */
  leftovers(): string[] {
    const found: string[] = [];
    for (const rt of [this.ours, this.runc]) {
      if (existsSync(rt.root)) for (const e of readdirSync(rt.root)) found.push(`${rt.name} state ${e}`);
    }
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) if (line.includes(this.dir)) found.push(`mount ${line}`);
    // Our runtime's default cgroups (/swarm-runtime/<id>) for this process's container ids.
    const cg = '/sys/fs/cgroup';
    for (const h of ['', ...readdirSync(cg)]) {
      const parent = join(cg, h, 'swarm-runtime');
      if (!existsSync(parent)) continue;
      for (const e of readdirSync(parent)) if (e.includes(`-${process.pid}-`)) found.push(`cgroup ${join(parent, e)}`);
    }
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      // A container process is rooted in a bundle; one that has not exec'd yet (blocked on its
      // exec fifo) still carries the runtime's command line, which names the state root.
      let root: string, cmdline: string;
      try {
        root = readlinkSync(`/proc/${pid}/root`);
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        continue; // gone meanwhile
      }
      if (root.startsWith(this.dir) || cmdline.includes(this.dir)) found.push(`process ${pid}: ${cmdline} (root ${root})`);
    }
    return found;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// Docker Swarm mode as a benchmark anchor: Debian's dockerd (docker.io) in a lab host of its own,
// a one-node swarm (or a manager and workers, one dockerd per lab host), and the set-up's busybox
// image loaded with `docker import`.
//
// Contract: `DockerSwarm.create` installs docker.io with apt-get when `dockerd` is missing (one
// `apt-get update` if the install fails), then starts dockerd inside each host of a lab (its own
// network, mount and UTS namespaces: docker0, docker_gwbridge, the ingress sandbox, veths and
// every iptables/nft rule dockerd adds live in that network namespace; its mounts in that mount
// namespace; its data-root in the host's state directory), `swarm init` on the first host and
// `swarm join` on the others (`workers`), and returns once every node is Ready. `destroy` removes
// everything, also after a failure half-way: services and containers (`rm -f`), `swarm leave
// --force` (workers first), every dockerd (SIGTERM, then SIGKILL), every process left in the
// dockerds' cgroup parent, the lab (which kills containerd and the shims and deletes the
// namespaces and the state directory), then the cgroup parent in every hierarchy. It checks that
// the machine's own nft ruleset and network devices are what they were before, and says so when
// not. On SIGINT, SIGTERM or SIGHUP the lab tears itself down (test/lab/lab.ts), and the
// containers, which live in namespaces of their own out of its reach, are killed by cgroup.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HOST_STATE_MOUNT, Lab, sleepSync, type ExecResult, type LabHost, type LabProcess } from '../../test/lab/lab.js';

export const DOCKERD = '/usr/sbin/dockerd';
/** Debian's client, named by path: another `docker` may come first in PATH. */
export const DOCKER = '/usr/bin/docker';
const CGROUP_ROOT = '/sys/fs/cgroup';

/** Installs Debian's docker.io unless dockerd is there; apt-get update once if the first try fails. */
export function ensureDocker(log: (s: string) => void = console.log): void {
  if (existsSync(DOCKERD) && existsSync(DOCKER)) return;
  log('dockerd is missing: installing docker.io with apt-get');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): boolean => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'docker.io'], { stdio: 'ignore', env }).status === 0;
  if (install()) return;
  spawnSync('apt-get', ['update'], { stdio: 'ignore', env });
  if (!install() || !existsSync(DOCKERD)) throw new Error('could not install docker.io with apt-get (see `apt-get install docker.io`)');
}

/** The machine's own network state, to check that the anchor left nothing behind. */
function machineNetState(): { ruleset: string; links: string[] } {
  const ruleset = spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout ?? '';
  const links = (spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '')
    .filter(Boolean);
  return { ruleset, links };
}

/** Cgroup directories under `rel` in every hierarchy, deepest first. */
function cgroupDirs(rel: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(d).filter((e) => statSync(join(d, e)).isDirectory());
    } catch {
      return;
    }
    for (const e of entries) walk(join(d, e));
    out.push(d);
  };
  for (const h of ['', ...readdirSync(CGROUP_ROOT)]) {
    const d = join(CGROUP_ROOT, h, rel);
    if (existsSync(d) && existsSync(join(d, 'cgroup.procs'))) walk(d);
  }
  return out;
}

function pidsIn(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return [...pids];
}

export interface DockerSwarmOptions {
  /** Hosts that join the swarm as workers (docker-w1, ...), each with a dockerd of its own; default 0. */
  workers?: number;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** SIGKILL to every process in the cgroups under `rel`; how many there were. */
function killCgroup(rel: string): number {
  const pids = pidsIn(cgroupDirs(rel));
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
  return pids.length;
}

export class DockerSwarm {
  /** The dockerd of each host, by host name. */
  private readonly dockerds = new Map<string, LabProcess>();
  private readonly before = machineNetState();
  /** What `destroy` found wrong (left-overs it could not remove); empty when clean. */
  readonly leftovers: string[] = [];

  private constructor(
    readonly lab: Lab,
    /** dockerd's cgroup parent (a path under each hierarchy), removed by destroy. */
    readonly cgroupParent: string,
  ) {}

  /** The manager's host (the only one of a one-node swarm). */
  get host(): LabHost {
    return this.lab.host('docker');
  }

  /** The workers' hosts, in order. */
  get workers(): LabHost[] {
    return this.lab.hosts.filter((h) => h.name !== 'docker');
  }

  get sock(): string {
    return '/run/dk/docker.sock';
  }

  /** Kills the containers by cgroup when a signal ends this process before `destroy` (the lab tears down the rest). */
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    for (let round = 0; round < 3 && killCgroup(this.cgroupParent) > 0; round++) sleepSync(200);
    for (const d of cgroupDirs(this.cgroupParent)) {
      try {
        rmdirSync(d);
      } catch {
        // still busy; a signal leaves no time to wait
      }
    }
    // The lab's handler raised the signal again while this listener still held it; the last
    // listener gone, raising it once more ends the process by its default action.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };

  /** dockerd's version (from `dockerd --version`). */
  static version(): string {
    return (spawnSync(DOCKERD, ['--version'], { encoding: 'utf8' }).stdout ?? '').trim();
  }

  static async create(options: DockerSwarmOptions = {}): Promise<DockerSwarm> {
    ensureDocker();
    const workers = Array.from({ length: options.workers ?? 0 }, (_, i) => `docker-w${i + 1}`);
    const lab = await Lab.create({ hosts: ['docker', ...workers], subnetPrefix: '10.79.0' });
    const d = new DockerSwarm(lab, `/tswarm-bench-docker-${process.pid}`);
    for (const sig of SIGNALS) process.once(sig, d.onSignal);
    try {
      await Promise.all(lab.hosts.map((h) => d.startDockerd(h)));
      await d.ok('swarm', 'init', '--advertise-addr', d.host.address);
      if (workers.length > 0) {
        const token = (await d.ok('swarm', 'join-token', 'worker', '-q')).trim();
        for (const w of d.workers) await d.okOn(w, 'swarm', 'join', '--token', token, '--advertise-addr', w.address, `${d.host.address}:2377`);
        const end = Date.now() + 60_000;
        for (;;) {
          const states = (await d.ok('node', 'ls', '--format', '{{.Status}}')).split('\n').filter(Boolean);
          if (states.length === lab.hosts.length && states.every((s) => s === 'Ready')) break;
          if (Date.now() > end) throw new Error(`the docker nodes are not all Ready after 60 s: ${states.join(', ')}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      return d;
    } catch (err) {
      await d.destroy();
      throw err;
    }
  }

  /** Starts a host's dockerd and waits until it answers. */
  private async startDockerd(h: LabHost): Promise<void> {
    // Short paths under the host's private /run (unix socket paths are limited to 108 bytes).
    const p = h.start('dockerd', DOCKERD, [
      '--data-root', `${HOST_STATE_MOUNT}/docker`,
      '--exec-root', '/run/dk/x',
      '--pidfile', '/run/dk/dockerd.pid',
      '-H', `unix://${this.sock}`,
      '--exec-opt', 'native.cgroupdriver=cgroupfs',
      '--cgroup-parent', this.cgroupParent,
      '--storage-driver', 'overlay2',
      '--log-level', 'warn',
    ]);
    this.dockerds.set(h.name, p);
    const end = Date.now() + 60_000;
    while ((await this.dockerOn(h, 'version')).code !== 0) {
      if (!p.running || Date.now() > end) throw new Error(`dockerd on ${h.name} did not start:\n${p.log().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The docker client against the manager's dockerd. */
  docker(...args: string[]): Promise<ExecResult> {
    return this.dockerOn(this.host, ...args);
  }

  /** The docker client against the dockerd of `h`. */
  dockerOn(h: LabHost, ...args: string[]): Promise<ExecResult> {
    return h.exec(DOCKER, ['-H', `unix://${this.sock}`, ...args], { timeoutMs: 300_000 });
  }

  async ok(...args: string[]): Promise<string> {
    return this.okOn(this.host, ...args);
  }

  async okOn(h: LabHost, ...args: string[]): Promise<string> {
    const r = await this.dockerOn(h, ...args);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} on ${h.name} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /**
   * `docker import` of an OCI image layout's root filesystem as `tag` on every host: the layers'
   * tars in order, unpacked into one directory (whiteouts dropped) unless there is just one, which
   * goes as is.
   */
  async importLayout(layout: string, tag: string): Promise<void> {
    for (const h of this.lab.hosts) await this.importLayoutOn(h, layout, tag);
  }

  private async importLayoutOn(h: LabHost, layout: string, tag: string): Promise<void> {
    const blob = (digest: string): string => join(layout, 'blobs', ...digest.split(':'));
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), 'utf8')) as { layers: { digest: string }[] };
    const inside = `${HOST_STATE_MOUNT}/import`;
    const outside = join(h.stateDir, 'import');
    let script: string;
    if (manifest.layers.length === 1) {
      script = `cp ${blob(manifest.layers[0]!.digest)} ${outside}.tgz`;
    } else {
      script = [`mkdir -p ${outside}`, ...manifest.layers.map((l) => `tar -xzf ${blob(l.digest)} -C ${outside}`), `find ${outside} -name '.wh.*' -delete`, `tar -czf ${outside}.tgz -C ${outside} .`].join(' && ');
    }
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`unpacking ${layout}: ${r.stderr}`);
    await this.okOn(h, 'import', '--change', 'ENV PATH=/bin', `${inside}.tgz`, tag);
  }

  /** Removes everything (see the contract above); never throws, records what it could not remove in `leftovers`. */
  async destroy(): Promise<void> {
    const quiet = async (h: LabHost, ...args: string[]): Promise<string> => (await this.dockerOn(h, ...args).catch(() => undefined))?.stdout ?? '';
    const up = (h: LabHost): boolean => this.dockerds.get(h.name)?.running ?? false;
    if (up(this.host)) {
      const services = (await quiet(this.host, 'service', 'ls', '-q')).split('\n').filter(Boolean);
      if (services.length > 0) await quiet(this.host, 'service', 'rm', ...services);
    }
    // Workers first: the manager leaving first would leave them waiting for it.
    for (const h of [...this.workers, this.host].filter(up)) {
      const containers = (await quiet(h, 'ps', '-aq')).split('\n').filter(Boolean);
      if (containers.length > 0) await quiet(h, 'rm', '-f', ...containers);
      await quiet(h, 'swarm', 'leave', '--force');
    }
    await Promise.all([...this.dockerds.values()].map((p) => p.stop(30_000).catch(() => undefined)));
    // Containers run in namespaces of their own, out of the lab's reach: kill them by cgroup.
    for (let round = 0; round < 3 && killCgroup(this.cgroupParent) > 0; round++) await new Promise((r) => setTimeout(r, 200));
    for (const sig of SIGNALS) process.removeListener(sig, this.onSignal);
    await this.lab.destroy().catch((err: Error) => this.leftovers.push(`lab: ${err.message}`));
    for (const d of cgroupDirs(this.cgroupParent)) {
      try {
        rmdirSync(d);
      } catch (err) {
        this.leftovers.push(`cgroup ${d}: ${(err as Error).message}`);
      }
    }
    const after = machineNetState();
    if (after.ruleset !== this.before.ruleset && /DOCKER/.test(after.ruleset)) this.leftovers.push('the machine nft ruleset has DOCKER chains it did not have before');
    const newLinks = after.links.filter((l) => !this.before.links.includes(l) && /^(docker|veth|br-)/.test(l));
    if (newLinks.length > 0) this.leftovers.push(`new network devices in the machine's namespace: ${newLinks.join(', ')}`);
  }
}

/**
 * A two-node swarm (a manager and a worker on two lab hosts, the benchmarks' anchor) with its
 * version said, and its clean-up, which says what it could not remove.
 */
export async function twoNodeSwarm(): Promise<{ d: DockerSwarm; destroy: () => Promise<void> }> {
  const d = await DockerSwarm.create({ workers: 1 });
  const destroy = async (): Promise<void> => {
    await d.destroy();
    for (const l of d.leftovers) console.log(`docker clean-up: ${l}`);
  };
  console.log(`docker: ${DockerSwarm.version()}, a manager and a worker on two lab hosts`);
  return { d, destroy };
}

// Docker Swarm mode as a benchmark anchor: Debian's dockerd (docker.io) in a lab host of its own,
// a one-node swarm, and the set-up's busybox image loaded with `docker import`.
//
// Contract: `DockerSwarm.create` installs docker.io with apt-get when `dockerd` is missing (one
// `apt-get update` if the install fails), then starts dockerd inside a one-host lab (its own
// network, mount and UTS namespaces: docker0, docker_gwbridge, the ingress sandbox, veths and
// every iptables/nft rule dockerd adds live in that network namespace; its mounts in that mount
// namespace; its data-root in the host's state directory). `destroy` removes everything, also
// after a failure half-way: services and containers (`rm -f`), `swarm leave --force`, dockerd
// (SIGTERM, then SIGKILL), every process left in dockerd's cgroup parent, the lab (which kills
// containerd and the shims and deletes the namespaces and the state directory), then the cgroup
// parent in every hierarchy. It checks that the machine's own nft ruleset and network devices are
// what they were before, and says so when not.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HOST_STATE_MOUNT, Lab, type ExecResult, type LabHost, type LabProcess } from '../../test/lab/lab.js';

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

export class DockerSwarm {
  private dockerd: LabProcess | undefined;
  private readonly before = machineNetState();
  /** What `destroy` found wrong (left-overs it could not remove); empty when clean. */
  readonly leftovers: string[] = [];

  private constructor(
    readonly lab: Lab,
    /** dockerd's cgroup parent (a path under each hierarchy), removed by destroy. */
    readonly cgroupParent: string,
  ) {}

  get host(): LabHost {
    return this.lab.host('docker');
  }

  get sock(): string {
    return '/run/dk/docker.sock';
  }

  /** dockerd's version (from `dockerd --version`). */
  static version(): string {
    return (spawnSync(DOCKERD, ['--version'], { encoding: 'utf8' }).stdout ?? '').trim();
  }

  static async create(): Promise<DockerSwarm> {
    ensureDocker();
    const lab = await Lab.create({ hosts: ['docker'], subnetPrefix: '10.79.0' });
    const d = new DockerSwarm(lab, `/tswarm-bench-docker-${process.pid}`);
    try {
      const h = d.host;
      // Short paths under the host's private /run (unix socket paths are limited to 108 bytes).
      d.dockerd = h.start('dockerd', DOCKERD, [
        '--data-root', `${HOST_STATE_MOUNT}/docker`,
        '--exec-root', '/run/dk/x',
        '--pidfile', '/run/dk/dockerd.pid',
        '-H', `unix://${d.sock}`,
        '--exec-opt', 'native.cgroupdriver=cgroupfs',
        '--cgroup-parent', d.cgroupParent,
        '--storage-driver', 'overlay2',
        '--log-level', 'warn',
      ]);
      const end = Date.now() + 60_000;
      while ((await d.docker('version')).code !== 0) {
        if (!d.dockerd.running || Date.now() > end) throw new Error(`dockerd did not start:\n${d.dockerd.log().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      await d.ok('swarm', 'init', '--advertise-addr', h.address);
      return d;
    } catch (err) {
      await d.destroy();
      throw err;
    }
  }

  docker(...args: string[]): Promise<ExecResult> {
    return this.host.exec(DOCKER, ['-H', `unix://${this.sock}`, ...args], { timeoutMs: 300_000 });
  }

  async ok(...args: string[]): Promise<string> {
    const r = await this.docker(...args);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /**
   * `docker import` of an OCI image layout's root filesystem as `tag`: the layers' tars in order,
   * unpacked into one directory (whiteouts dropped) unless there is just one, which goes as is.
   */
  async importLayout(layout: string, tag: string): Promise<void> {
    const blob = (digest: string): string => join(layout, 'blobs', ...digest.split(':'));
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), 'utf8')) as { layers: { digest: string }[] };
    const inside = `${HOST_STATE_MOUNT}/import`;
    const outside = join(this.host.stateDir, 'import');
    let script: string;
    if (manifest.layers.length === 1) {
      script = `cp ${blob(manifest.layers[0]!.digest)} ${outside}.tgz`;
    } else {
      script = [`mkdir -p ${outside}`, ...manifest.layers.map((l) => `tar -xzf ${blob(l.digest)} -C ${outside}`), `find ${outside} -name '.wh.*' -delete`, `tar -czf ${outside}.tgz -C ${outside} .`].join(' && ');
    }
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`unpacking ${layout}: ${r.stderr}`);
    await this.ok('import', '--change', 'ENV PATH=/bin', `${inside}.tgz`, tag);
  }

  /** Removes everything (see the contract above); never throws, records what it could not remove in `leftovers`. */
  async destroy(): Promise<void> {
    const quiet = async (...args: string[]): Promise<string> => (await this.docker(...args).catch(() => undefined))?.stdout ?? '';
    if (this.dockerd?.running) {
      const services = (await quiet('service', 'ls', '-q')).split('\n').filter(Boolean);
      if (services.length > 0) await quiet('service', 'rm', ...services);
      const containers = (await quiet('ps', '-aq')).split('\n').filter(Boolean);
      if (containers.length > 0) await quiet('rm', '-f', ...containers);
      await quiet('swarm', 'leave', '--force');
      await this.dockerd.stop(30_000).catch(() => undefined);
    }
    // Containers run in namespaces of their own, out of the lab's reach: kill them by cgroup.
    for (let round = 0; round < 3; round++) {
      const pids = pidsIn(cgroupDirs(this.cgroupParent));
      if (pids.length === 0) break;
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
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

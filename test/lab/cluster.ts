// A tswarm cluster on lab hosts, for lab tests, benchmarks and the demo: managers m1..mN and
// workers w1..wN (plus spare hosts that join later), the busybox image in a docker-registry on m1
// (pushed from the set-up's image layout), `swarmd init` on m1 and `swarmd join` on the others.
//
// Contract: `create` returns once every manager is a Raft voter and every worker's agent holds a
// session; `destroy` removes the containers the runtime still knows on every host, then the lab
// (processes, namespaces, state). swarmd runs from dist/ (build first).
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HOST_STATE_MOUNT, Lab, type ExecResult, type LabHost, type LabProcess } from './lab.js';
import { BUSYBOX_LAYOUT } from '../registry/image.js';
import { REGISTRY_BINARY, registryConfig } from '../registry/registry.js';
import { dist, REPO } from '../util/dist.js';

export const RUNTIME = join(REPO, 'native/build/swarm-runtime');

export interface LabClusterOptions {
  managers?: number; // default 1
  workers?: number; // default 2
  /** Hosts created but not joined (join them with `join`). */
  spares?: string[];
  /** Managers only manage (drained), as in Docker's advice; default true. */
  drainManagers?: boolean;
  /** `cluster update --heartbeat-period` right after init (e.g. '1s'); default: the cluster's. */
  heartbeatPeriod?: string;
  /** Extra swarmd flags for every host (a function: made from the lab, e.g. to name a lab host's address). */
  swarmdArgs?: string[] | ((lab: Lab) => string[]);
  /** Node flags for every swarmd (e.g. --cpu-prof --cpu-prof-dir=DIR, for a post-mortem). */
  nodeArgs?: string[];
}

/** A task as `swarmctl service ps --format json` prints it. */
export interface TaskJson {
  id: string;
  serviceId: string;
  slot: number;
  nodeId: string;
  desiredState: string;
  spec?: { container?: { image?: string; env?: string[] } };
  status?: { state: string; err?: string; message?: string; pendingReason?: string };
}

export interface NodeJson {
  id: string;
  role: string;
  description?: { hostname: string };
  status?: { state: string };
  spec?: { availability?: string };
  managerStatus?: { leader?: boolean; reachability?: string; addr?: string };
}

/** Polls `fn` every 250 ms until it returns a value; the error names `what` and the last failure. */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000, seen: () => string = () => ''): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > end) {
      const s = seen();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}${s ? `\nlast seen:\n${s}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const isRunning = (t: TaskJson): boolean => t.desiredState === 'TASK_STATE_RUNNING' && t.status?.state === 'TASK_STATE_RUNNING';

export class LabCluster {
  readonly image: string;
  readonly managers: string[];
  readonly workers: string[];
  /** The swarmd process of each host (the latest one started). */
  readonly swarmds = new Map<string, LabProcess>();
  /** Node ids by hostname (filled by `refreshNodes`). */
  readonly nodeIds = new Map<string, string>();
  /** The last task list `tasks` saw, for failure messages. */
  lastSeen = '';
  private runs = 0;

  private constructor(
    readonly lab: Lab,
    managers: string[],
    workers: string[],
    private readonly swarmdArgs: string[],
    private readonly nodeArgs: string[] = [],
  ) {
    this.managers = managers;
    this.workers = workers;
    this.image = `${lab.host('m1').address}:5000/library/busybox:latest`;
  }

  static async create(options: LabClusterOptions = {}): Promise<LabCluster> {
    const managers = Array.from({ length: options.managers ?? 1 }, (_, i) => `m${i + 1}`);
    const workers = Array.from({ length: options.workers ?? 2 }, (_, i) => `w${i + 1}`);
    const lab = await Lab.create({ hosts: [...managers, ...workers, ...(options.spares ?? [])] });
    const extra = typeof options.swarmdArgs === 'function' ? options.swarmdArgs(lab) : (options.swarmdArgs ?? []);
    const c = new LabCluster(lab, managers, workers, extra, options.nodeArgs ?? []);
    try {
      await c.startRegistry();
      await c.swarmd('m1', ['init', '--advertise-addr', c.addr('m1')]).waitForLog(/swarmd started/, 20_000);
      if (options.heartbeatPeriod) await c.ok('m1', 'cluster', 'update', '--heartbeat-period', options.heartbeatPeriod);
      await Promise.all([...managers.slice(1).map((m) => c.join(m, 'manager')), ...workers.map((w) => c.join(w, 'worker'))]);
      await until(`${managers.length} managers reachable`, async () => {
        const ms = (await c.nodes()).filter((n) => n.managerStatus);
        return ms.length === managers.length && ms.every((n) => n.managerStatus?.reachability === 'REACHABILITY_REACHABLE') ? true : undefined;
      }, 60_000);
      if (options.drainManagers ?? true) for (const m of managers) await c.ok('m1', 'node', 'update', m, '--availability', 'drain');
      await c.allReady(managers.length + workers.length);
      await c.refreshNodes();
      return c;
    } catch (err) {
      await c.destroy();
      throw err;
    }
  }

  host(name: string): LabHost {
    return this.lab.host(name);
  }

  addr(name: string): string {
    return `${this.host(name).address}:4242`;
  }

  /** Starts swarmd on a host with `args` (none: resume from its state directory). */
  swarmd(name: string, args: string[]): LabProcess {
    const p = this.host(name).start(`swarmd-${++this.runs}`, process.execPath, [
      ...this.nodeArgs,
      dist('cli/swarmd.js'),
      '--log-format',
      'json',
      '--default-registry',
      `http://${this.host('m1').address}:5000`,
      ...this.swarmdArgs,
      ...args,
    ], { env: { GRPC_NODE_DEBUG_SEND_ERROR_DETAILS: 'true' } }); // a message grpc-js cannot encode is named in the error
    this.swarmds.set(name, p);
    return p;
  }

  /** Joins a host with the current token for `role`, through a manager that answers. */
  async join(name: string, role: 'worker' | 'manager', via = 'm1'): Promise<void> {
    const token = (await this.ok(via, 'cluster', 'join-token', role, '-q')).trim();
    const p = this.swarmd(name, ['join', '--token', token, '--advertise-addr', this.addr(name), this.addr(via)]);
    await p.waitForLog(role === 'worker' ? /agent: session established/ : /swarmd started/, 60_000);
  }

  /**
   * Waits until the leader's store has `n` nodes, every one READY: a session established on a
   * worker is not yet its node READY in the store, and a service created before that is placed
   * on the nodes that are (Swarm does not rebalance afterwards).
   */
  async allReady(n: number): Promise<void> {
    await until(`${n} nodes ready`, async () => {
      const ns = await this.nodes(this.managers.find((m) => this.swarmds.get(m)?.running) ?? 'm1');
      return ns.length === n && ns.every((x) => x.status?.state === 'NODE_STATE_READY') ? true : undefined;
    }, 60_000);
  }

  /** kill -9 of a host's swarmd (its containers keep running under their monitors). */
  async kill9(name: string): Promise<void> {
    await this.swarmds.get(name)?.kill9();
  }

  /** Starts a host's swarmd again from its state directory; resolves once it has started. */
  async restart(name: string): Promise<void> {
    await this.kill9(name);
    await this.swarmd(name, []).waitForLog(/swarmd started/, 30_000);
  }

  ctl(name: string, ...args: string[]): Promise<ExecResult> {
    return this.host(name).exec(process.execPath, [dist('cli/swarmctl.js'), ...args], { timeoutMs: 120_000 });
  }

  /** swarmctl on a host; its stdout, or an error with the exit code and stderr. */
  async ok(name: string, ...args: string[]): Promise<string> {
    const r = await this.ctl(name, ...args);
    if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')} on ${name} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async nodes(on = 'm1'): Promise<NodeJson[]> {
    return JSON.parse(await this.ok(on, 'node', 'ls', '--format', 'json')) as NodeJson[];
  }

  async refreshNodes(on = 'm1'): Promise<void> {
    for (const n of await this.nodes(on)) this.nodeIds.set(n.description?.hostname ?? '', n.id);
  }

  /** The hostname of a node id (refreshing the map once if unknown). */
  async hostOf(nodeId: string): Promise<string | undefined> {
    const find = (): string | undefined => [...this.nodeIds].find(([, id]) => id === nodeId)?.[0];
    if (!find()) await this.refreshNodes(this.managers.find((m) => this.swarmds.get(m)?.running) ?? 'm1');
    return find();
  }

  /** The hostname of the leader, as a manager that answers sees it. */
  async leader(): Promise<string> {
    for (const m of this.managers) {
      if (!this.swarmds.get(m)?.running) continue;
      try {
        const l = (await this.nodes(m)).find((n) => n.managerStatus?.leader);
        if (l?.description?.hostname) return l.description.hostname;
      } catch {
        // not answering: ask the next
      }
    }
    throw new Error('no manager knows a leader');
  }

  /** The tasks of a service, as a manager sees them (remembered in lastSeen). */
  async tasks(service: string, on = 'm1'): Promise<TaskJson[]> {
    const ts = JSON.parse(await this.ok(on, 'service', 'ps', service, '--format', 'json')) as TaskJson[];
    this.lastSeen = ts
      .map((t) => `${t.id} slot ${t.slot} node ${t.nodeId} desired ${t.desiredState} state ${t.status?.state} ${t.status?.err ?? ''} ${t.status?.pendingReason ?? ''}`)
      .join('\n');
    return ts;
  }

  /** Waits until `service` has exactly `n` running tasks (desired and observed), with no task being stopped. */
  async converged(service: string, n: number, timeoutMs = 60_000, on = 'm1'): Promise<TaskJson[]> {
    return until(
      `${service}: ${n} running`,
      async () => {
        const ts = await this.tasks(service, on);
        const up = ts.filter(isRunning);
        const stopping = ts.filter((t) => t.desiredState !== 'TASK_STATE_RUNNING' && ['TASK_STATE_ASSIGNED', 'TASK_STATE_ACCEPTED', 'TASK_STATE_PREPARING', 'TASK_STATE_READY', 'TASK_STATE_STARTING', 'TASK_STATE_RUNNING'].includes(t.status?.state ?? ''));
        return up.length === n && stopping.length === 0 ? up : undefined;
      },
      timeoutMs,
      () => this.lastSeen,
    );
  }

  /** The containers the runtime knows on a host (their ids are task ids). */
  async containersOn(name: string): Promise<string[]> {
    const r = await this.host(name).exec('sh', ['-c', 'ls /run/swarm-runtime 2>/dev/null || true']);
    return r.stdout.split('\n').filter(Boolean);
  }

  /** A container's runtime status on a host ('running', 'stopped', ...), or 'gone'. */
  async stateOf(name: string, id: string): Promise<string> {
    const r = await this.host(name).exec(RUNTIME, ['state', id]);
    return r.code === 0 ? (JSON.parse(r.stdout) as { status: string }).status : 'gone';
  }

  private async startRegistry(): Promise<void> {
    const m1 = this.host('m1');
    writeFileSync(join(m1.stateDir, 'registry.yml'), registryConfig(`${HOST_STATE_MOUNT}/registry`, `${m1.address}:5000`));
    m1.start('registry', REGISTRY_BINARY, ['serve', `${HOST_STATE_MOUNT}/registry.yml`]);
    const push = [dist('scripts/push-image.js'), BUSYBOX_LAYOUT, `http://${m1.address}:5000`, 'library/busybox:latest'];
    await until('the registry to take the busybox image', async () => ((await m1.exec(process.execPath, push)).code === 0 ? true : undefined), 20_000);
  }

  /** Stops every swarmd, removes the containers left on every host, then the lab. */
  async destroy(): Promise<void> {
    for (const p of this.swarmds.values()) await p.kill9().catch(() => undefined);
    // TSWARM_LAB_LOGS=DIR keeps every host's logs (swarmd, registry) for a post-mortem.
    const keep = process.env.TSWARM_LAB_LOGS;
    if (keep) for (const h of this.lab.hosts) cpSync(join(h.stateDir, 'logs'), join(keep, h.name), { recursive: true, force: true });
    for (const h of this.lab.hosts) await h.deleteContainers(RUNTIME);
    await this.lab.destroy();
  }
}

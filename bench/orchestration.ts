// Orchestration benchmarks against Docker Swarm (issue 6):
//
// 1. Scale a busybox `sleep 3600` service 0 → N (default 100) and back to 0. Ours: the lab cluster
//    (one drained manager, three workers, the busybox image in a registry on the manager). Docker:
//    Debian's dockerd in a lab host of its own, a one-node swarm, the same busybox root filesystem
//    loaded with `docker import` (bench/lib/docker.ts). Each trial on each side: a new service
//    with 0 replicas, then `service scale --detach NAME=N`, polled until N tasks report RUNNING
//    (ours: ListTasks on the leader's control socket; Docker: GET /tasks on dockerd's API socket;
//    every 100 ms, from this process, so polling costs neither side a process per poll); then
//    scale to 0, timed until no task is observed RUNNING (every container stopped; both sides
//    wait out the 10 s stop grace period, as `sleep` as PID 1 ignores SIGTERM) and, on Docker,
//    until every container is removed (Docker desires REMOVE when scaling down; ours desires
//    SHUTDOWN and keeps the stopped containers with the task history, so "gone" does not apply);
//    then `service rm` and a wait (untimed) until no container is left. Before each trial, a wait
//    (untimed) until the machine is quiet (the kernel tears network namespaces down after their
//    processes), and before the first, a warm-up (three replicas, run and removed), so that
//    trials start alike. Our workers give containers a bridge network, as Docker's tasks get
//    docker0 (`--no-bridge`: only lo).
//    Then once the waiting form (`swarmctl service scale NAME=N`, `docker service scale NAME=N`,
//    no --detach): the time a user waits, as the command decides it is done.
// 2. Lost worker: a 60-replica service spread over the three workers (20 each); kill -9 of the
//    swarmd of the worker with the most tasks (its containers keep running under their monitors,
//    as after a crash of the daemon alone; the manager must not wait for them); time from the kill
//    until the node is DOWN and until the replacements of its tasks all report RUNNING elsewhere.
//    Between trials the victim's containers are deleted, its swarmd restarted, the service removed.
//    Anchor: SwarmKit's published figure (about 15 s only to notice a lost node); a one-node Docker
//    Swarm has no worker to lose, so Docker is not run for this one.
//
//   node dist/bench/orchestration.js [--replicas 100] [--trials 3] [--skip-docker] [--skip-ours] [--lost-worker-trials 5] [--logs DIR]
import * as grpc from '@grpc/grpc-js';
import { cpSync, readdirSync } from 'node:fs';
import http from 'node:http';
import { loadavg } from 'node:os';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ControlClient, type ListTasksResponse, type ListNodesResponse } from '../proto/gen/tswarm/control.js';
import type { Task } from '../proto/gen/tswarm/objects.js';
import { NodeState, TaskState } from '../proto/gen/tswarm/types.js';
import { LabCluster, RUNTIME } from '../test/lab/cluster.js';
import { BUSYBOX_LAYOUT } from '../test/registry/image.js';
import { DockerSwarm } from './lib/docker.js';
import { cpuCounters, cpuSince } from './lib/load.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('replicas', { type: 'number', default: 100 })
  .option('trials', { type: 'number', default: 3 })
  .option('skip-docker', { type: 'boolean', default: false })
  .option('skip-ours', { type: 'boolean', default: false, describe: 'Docker only (to check the anchor alone)' })
  .option('lost-worker-trials', { type: 'number', default: 5 })
  .option('bridge', { type: 'boolean', default: true, describe: "our containers on a bridge network of their worker (Docker's are on docker0); --no-bridge: only lo" })
  .option('logs', { type: 'string', describe: "Copy the lab hosts' logs (swarmd's, with timestamps) to this directory before the clean-up, for profiling" })
  .parseSync();
const N = argv.replicas;
const POLL_MS = 100;
const COMMAND = ['sleep', '3600'];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

/** Polls `fn` every POLL_MS until true; the elapsed ms since `t0`. */
async function until(what: string, t0: number, fn: () => Promise<boolean>, timeoutMs = 300_000): Promise<number> {
  for (;;) {
    if (await fn()) return now() - t0;
    if (now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

interface ScaleResult {
  upMs: number;
  stoppedMs: number;
  /** Until every container is removed; undefined where scaling down keeps them (ours, see below). */
  goneMs: number | undefined;
}
interface WaitResult {
  upMs: number;
  downMs: number;
}

/** One side of the scale benchmark: makes services. */
interface Side {
  name: string;
  /** Scaling down removes the containers (Docker: desired REMOVE) rather than keeping them stopped. */
  removesOnScaleDown: boolean;
  create(service: string): Promise<Service>;
  /** Containers on the nodes, running or not. */
  containers(): Promise<number>;
}
interface Service {
  scale(n: number, detach: boolean): Promise<void>;
  /** Tasks desired and observed running. */
  running(): Promise<number>;
  /** Tasks observed running, whatever their desired state. */
  alive(): Promise<number>;
  remove(): Promise<void>;
}

/**
 * Waits (untimed, up to 30 s) until the machine is quiet: less than a quarter of its CPU busy over
 * half a second. Removing 100 containers leaves the kernel work behind (network namespaces and
 * their devices are torn down in a work queue, after the processes are gone), which would
 * otherwise land on the next trial of whichever side comes next.
 */
async function settle(): Promise<void> {
  const t0 = now();
  while (now() - t0 < 30_000) {
    const before = cpuCounters();
    await sleep(500);
    const cpu = cpuSince(before);
    if (cpu.busy + cpu.steal < 0.25) return; // steal counts: the machine is not ours then either
  }
}

/** Removes the service and waits (untimed) until its containers are gone, so that trials start alike. */
async function clean(side: Side, svc: Service): Promise<void> {
  await svc.remove();
  await until(`${side.name}: every container gone after service rm`, now(), async () => (await side.containers()) === 0);
}

async function scaleTrial(side: Side, trial: number): Promise<ScaleResult> {
  await settle();
  const svc = await side.create(`bench${trial}`);
  let t0 = now();
  if (argv.logs) console.log(`${side.name} trial ${trial}: scale to ${N} issued at ${new Date().toISOString()}`);
  await svc.scale(N, true);
  const cmdMs = now() - t0;
  const upMs = await until(`${side.name}: ${N} running`, t0, async () => (await svc.running()) === N);
  t0 = now();
  await svc.scale(0, true);
  const stoppedMs = await until(`${side.name}: none running`, t0, async () => (await svc.alive()) === 0);
  const goneMs = side.removesOnScaleDown ? await until(`${side.name}: every container gone`, t0, async () => (await side.containers()) === 0) : undefined;
  await clean(side, svc);
  const r = { upMs, stoppedMs, goneMs };
  console.log(`${side.name} trial ${trial}: 0 → ${N} running ${s(upMs)} (the scale command itself ${s(cmdMs)}); ${N} → 0 none running ${s(stoppedMs)}, containers gone ${goneMs === undefined ? 'n/a (kept, stopped)' : s(goneMs)} (load ${load()})`);
  return r;
}

/**
 * Untimed: a service of three replicas runs and is removed before the trials, so that the first
 * trial does not pay first-use costs the others do not (ours: each worker pulls the image from the
 * registry on first use, where Docker's is imported beforehand; both: code paths run once).
 */
async function warmUp(side: Side): Promise<void> {
  const svc = await side.create('benchwarm');
  await svc.scale(3, true);
  await until(`${side.name}: warm-up running`, now(), async () => (await svc.running()) === 3);
  await clean(side, svc);
}

async function waitTrial(side: Side): Promise<WaitResult> {
  await settle();
  const svc = await side.create('benchwait');
  let t0 = now();
  await svc.scale(N, false);
  const upMs = now() - t0;
  const up = await svc.running();
  if (up !== N) throw new Error(`${side.name}: the waiting scale returned with ${up} of ${N} running`);
  t0 = now();
  await svc.scale(0, false);
  const downMs = now() - t0;
  await clean(side, svc);
  console.log(`${side.name} waiting form: \`service scale benchwait=${N}\` ${s(upMs)}; \`service scale benchwait=0\` ${s(downMs)} (load ${load()})`);
  return { upMs, downMs };
}

// ---- ours ----

function controlClient(c: LabCluster): ControlClient {
  // The leader's local control socket, reached through its mount namespace (a unix socket is not
  // bound to a network namespace).
  return new ControlClient(`unix:/proc/${c.host('m1').anchorPid}/root/run/tswarm/swarmd.sock`, grpc.credentials.createInsecure());
}

function call<Req, Res>(fn: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

async function tasksOf(client: ControlClient, serviceId: string): Promise<Task[]> {
  const r = await call<object, ListTasksResponse>(client.listTasks.bind(client), { filters: { names: [], namePrefixes: [], idPrefixes: [], labels: {}, serviceIds: [serviceId], nodeIds: [], desiredStates: [] } });
  return r.tasks;
}

const isUp = (t: Task): boolean => t.desiredState === TaskState.TASK_STATE_RUNNING && t.status?.state === TaskState.TASK_STATE_RUNNING;

/** Containers the runtime knows on a lab host, read through its mount namespace. */
function containersOn(c: LabCluster, host: string): string[] {
  try {
    return readdirSync(`/proc/${c.host(host).anchorPid}/root/run/swarm-runtime`);
  } catch {
    return [];
  }
}

function ourSide(c: LabCluster, client: ControlClient): Side {
  return {
    name: 'tswarm',
    // Scaling down desires SHUTDOWN: the stopped containers stay with the task history (docs/orchestrator.md).
    removesOnScaleDown: false,
    containers: () => Promise.resolve(c.workers.reduce((sum, w) => sum + containersOn(c, w).length, 0)),
    create: async (name) => {
      const id = (await c.ok('m1', 'service', 'create', '--name', name, '--image', c.image, '--replicas', '0', '--detach', '--', ...COMMAND)).trim();
      return {
        scale: async (n, detach) => void (await c.ok('m1', 'service', 'scale', `${name}=${n}`, ...(detach ? ['--detach'] : ['--timeout', '600']))),
        running: async () => (await tasksOf(client, id)).filter(isUp).length,
        alive: async () => (await tasksOf(client, id)).filter((t) => t.status?.state === TaskState.TASK_STATE_RUNNING).length,
        remove: async () => void (await c.ok('m1', 'service', 'rm', name)),
      };
    },
  };
}

interface LostResult {
  tasks: number;
  downMs: number;
  replacedMs: number;
}

async function lostWorkerTrial(c: LabCluster, client: ControlClient, trial: number): Promise<LostResult> {
  const name = `lost${trial}`;
  const replicas = 20 * c.workers.length;
  const id = (await c.ok('m1', 'service', 'create', '--name', name, '--image', c.image, '--replicas', String(replicas), '--timeout', '300', '--', ...COMMAND)).trim().split('\n')[0]!;
  await until(`${name}: ${replicas} running`, now(), async () => (await tasksOf(client, id)).filter(isUp).length === replicas);
  await c.refreshNodes();
  const tasks = (await tasksOf(client, id)).filter(isUp);
  const perNode = new Map<string, number>();
  for (const t of tasks) perNode.set(t.nodeId, (perNode.get(t.nodeId) ?? 0) + 1);
  const [victimId, count] = [...perNode].sort((a, b) => b[1] - a[1])[0]!;
  const victim = (await c.hostOf(victimId))!;
  const t0 = now();
  await c.kill9(victim);
  const [downMs, replacedMs] = await Promise.all([
    until(`${victim} DOWN`, t0, async () => {
      const r = await call<object, ListNodesResponse>(client.listNodes.bind(client), { filters: undefined });
      return r.nodes.find((n) => n.id === victimId)?.status?.state === NodeState.NODE_STATE_DOWN;
    }, 120_000),
    until(`${name}: ${replicas} running off ${victim}`, t0, async () => (await tasksOf(client, id)).filter((t) => isUp(t) && t.nodeId !== victimId).length === replicas, 120_000),
  ]);
  // Put the victim back, empty, and remove the service.
  await c.host(victim).exec('sh', ['-c', `for x in $(ls /run/swarm-runtime 2>/dev/null); do ${RUNTIME} delete --force "$x"; done`]);
  await c.swarmd(victim, []).waitForLog(/agent: session established/, 60_000);
  await c.ok('m1', 'service', 'rm', name);
  await until('every container gone', now(), () => Promise.resolve(c.workers.every((w) => containersOn(c, w).length === 0)), 120_000);
  await until(`${victim} READY`, now(), async () => {
    const r = await call<object, ListNodesResponse>(client.listNodes.bind(client), { filters: undefined });
    return r.nodes.find((n) => n.id === victimId)?.status?.state === NodeState.NODE_STATE_READY;
  }, 60_000);
  return { tasks: count, downMs, replacedMs };
}

// ---- Docker ----

/** One call to dockerd's API over its unix socket, reached through the lab host's mount namespace. */
function dockerApi<T>(d: DockerSwarm, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: `/proc/${d.host.anchorPid}/root${d.sock}`, path, method: 'GET', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as T) : reject(new Error(`GET ${path}: ${res.statusCode} ${body}`))));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.end();
  });
}

function dockerSide(d: DockerSwarm): Side {
  return {
    name: 'docker',
    removesOnScaleDown: true,
    containers: async () => (await dockerApi<unknown[]>(d, '/containers/json?all=1')).length,
    create: async (name) => {
      await d.ok('service', 'create', '--detach', '--name', name, '--replicas', '0', 'tswarm-busybox:latest', ...COMMAND);
      const desired = encodeURIComponent(JSON.stringify({ service: [name], 'desired-state': ['running'] }));
      const all = encodeURIComponent(JSON.stringify({ service: [name] }));
      const observed = async (f: string): Promise<number> => (await dockerApi<{ Status: { State: string } }[]>(d, `/tasks?filters=${f}`)).filter((t) => t.Status.State === 'running').length;
      return {
        scale: async (n, detach) => void (await d.ok('service', 'scale', ...(detach ? ['--detach'] : []), `${name}=${n}`)),
        running: () => observed(desired),
        alive: () => observed(all),
        remove: async () => void (await d.ok('service', 'rm', name)),
      };
    },
  };
}

// ---- report ----

async function main(): Promise<void> {
  console.log(`Orchestration benchmark: busybox \`${COMMAND.join(' ')}\`, ${N} replicas, ${argv.trials} trials per side; load average at start ${load()}`);
  const ours: ScaleResult[] = [];
  let oursWait: WaitResult | undefined;
  const lost: LostResult[] = [];
  if (!argv['skip-ours']) {
    // Each worker gives its containers a bridge network (as Docker gives its tasks docker0).
    const cluster = await LabCluster.create({ managers: 1, workers: 3, swarmdArgs: argv.bridge ? ['--bridge', 'tsw0:172.31.0.0/16'] : [] });
    const client = controlClient(cluster);
    try {
      const side = ourSide(cluster, client);
      await warmUp(side);
      for (let i = 0; i < argv.trials; i++) ours.push(await scaleTrial(side, i + 1));
      oursWait = await waitTrial(side);
      for (let i = 0; i < argv['lost-worker-trials']; i++) {
        const r = await lostWorkerTrial(cluster, client, i + 1);
        lost.push(r);
        console.log(`tswarm lost worker trial ${i + 1}: ${r.tasks} tasks on the killed worker; node DOWN after ${s(r.downMs)}, all replaced and RUNNING after ${s(r.replacedMs)} (load ${load()})`);
      }
    } finally {
      client.close();
      if (argv.logs) cpSync(cluster.lab.root, argv.logs, { recursive: true, filter: (f) => !f.includes('/registry') });
      await cluster.destroy();
    }
  }

  const docker: ScaleResult[] = [];
  let dockerWait: WaitResult | undefined;
  if (!argv['skip-docker']) {
    const d = await DockerSwarm.create();
    try {
      await d.importLayout(BUSYBOX_LAYOUT, 'tswarm-busybox:latest');
      const side = dockerSide(d);
      await warmUp(side);
      for (let i = 0; i < argv.trials; i++) docker.push(await scaleTrial(side, i + 1));
      dockerWait = await waitTrial(side);
    } finally {
      await d.destroy();
      for (const l of d.leftovers) console.log(`docker clean-up: ${l}`);
    }
  }

  console.log('');
  const med = (rs: ScaleResult[], k: 'upMs' | 'stoppedMs'): number => median(rs.map((r) => r[k]));
  const line = (what: string, k: 'upMs' | 'stoppedMs'): void => {
    if (ours.length === 0) return console.log(`${what}: docker ${s(med(docker, k))} (median)`);
    const o = med(ours, k);
    if (docker.length === 0) return console.log(`${what}: tswarm ${s(o)} (median)`);
    const dk = med(docker, k);
    console.log(`${what}: tswarm ${s(o)}, docker ${s(dk)} (medians); docker / tswarm = ${(dk / o).toFixed(1)}×`);
  };
  line(`0 → ${N} running`, 'upMs');
  line(`${N} → 0 none running (every container stopped)`, 'stoppedMs');
  if (docker.length > 0) console.log(`${N} → 0 containers gone: docker ${s(median(docker.map((r) => r.goneMs ?? NaN)))} (median); tswarm keeps the stopped containers of shut-down tasks with the task history`);
  if (oursWait && dockerWait) console.log(`waiting form 0 → ${N}: docker / tswarm = ${(dockerWait.upMs / oursWait.upMs).toFixed(1)}×; ${N} → 0: ${(dockerWait.downMs / oursWait.downMs).toFixed(1)}×`);
  if (docker.length > 0 && ours.length > 0) {
    const ratio = med(docker, 'upMs') / med(ours, 'upMs');
    console.log(`goal: 0 → ${N} ten times faster than Docker Swarm: ${ratio >= 10 ? 'met' : 'not met'} (${ratio.toFixed(1)}×)`);
  }
  if (lost.length > 0) {
    const rep = lost.map((r) => r.replacedMs);
    const down = lost.map((r) => r.downMs);
    console.log(`lost worker, ${lost.length} trials: node DOWN p50 ${s(median(down))} max ${s(Math.max(...down))}; all replaced and RUNNING p50 ${s(median(rep))} max ${s(Math.max(...rep))}`);
    console.log(`goal: under 7 s (SwarmKit takes about 15 s only to notice a lost node; a one-node Docker Swarm cannot lose a worker): ${Math.max(...rep) < 7000 ? 'met' : 'not met'}`);
  }
  console.log(`load average at end ${load()}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

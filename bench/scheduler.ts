// Scheduler throughput benchmark (issue 6): placements per second with 5,000 simulated nodes and
// 10,000 tasks, including the Raft commits. The leader's components are the real ones, run as a
// leader runs them: the MemoryStore as the state machine of a RaftServer (WAL with fsync in a temp
// directory), the allocator and the scheduler shell; in the end-to-end phase also the orchestrator.
// The nodes are store objects only (READY, ACTIVE, CPU/memory, zone/rack/disk labels): no workers,
// no dispatcher.
//   node dist/bench/scheduler.js [--nodes 5000] [--tasks 10000] [--managers 1|3] [--phase pending|services|both]
//                                [--trials 3] [--election-tick 25] [--tx-tasks N] [--in-flight N]
// Phases, each on a fresh cluster:
//   pending   the tasks are written PENDING (as the allocator leaves them) while the scheduler is
//             stopped; the clock starts when the scheduler starts and stops when the last task is
//             applied ASSIGNED with a node in the leader's store (seen through a store watch).
//   services  the clock starts when the services are proposed (one transaction); orchestrator →
//             allocator → scheduler; it stops when the last task is applied ASSIGNED.
// With --managers 3, two followers run as child processes (this script with --follower), each a
// RaftServer over its own MemoryStore and WAL, on loopback without TLS; the leader stays in this
// process (the followers' election timeout is long, so it wins the first election).
// There is no anchor to run: the goal is HashiCorp Nomad's C1M rate, 3,750 placements/s.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { Node, Service, Task } from '../proto/gen/tswarm/objects.js';
import { ContainerSpec, type ServiceSpec } from '../proto/gen/tswarm/specs.js';
import { NodeAvailability, NodeRole, NodeState, RestartPolicy_Condition, TaskState } from '../proto/gen/tswarm/types.js';
import { createLogger } from '../common/logger.js';
import { Allocator } from '../manager/allocator/allocator.js';
import { Orchestrator } from '../manager/orchestrator/orchestrator.js';
import { newTask } from '../manager/orchestrator/tasks.js';
import { RaftServer } from '../manager/raft/server.js';
import { Scheduler } from '../manager/scheduler/shell.js';
import { MemoryStore, type ApplyResult, type StoreEvent } from '../manager/store/memory.js';
import { RaftProposer, storeStateMachine } from '../manager/store/raft.js';

const GOAL = 3750;

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('nodes', { type: 'number', default: 5000 })
  .option('tasks', { type: 'number', default: 10000 })
  .option('managers', { type: 'number', choices: [1, 3], default: 1, describe: 'Raft members (the followers are child processes)' })
  .option('phase', { choices: ['pending', 'services', 'both'] as const, default: 'both' as const })
  .option('tx-tasks', { type: 'number', describe: 'tasks per transaction of the allocator and the scheduler (default: theirs, 1000)' })
  .option('in-flight', { type: 'number', describe: 'transactions the allocator and the scheduler propose at once (default: theirs, 8)' })
  .option('trials', { type: 'number', default: 3, describe: 'runs of each phase, each on a fresh cluster (the median is the figure)' })
  .option('election-tick', { type: 'number', default: 25, describe: "the leader's election (check-quorum) timeout in 40 ms ticks" })
  .option('follower', { type: 'number', hidden: true, describe: 'internal: run as follower N' })
  .option('dir', { type: 'string', hidden: true })
  .option('base-port', { type: 'number', hidden: true })
  .parseSync();

const writeOpts = { maxTasksPerTransaction: argv['tx-tasks'], maxTransactionsInFlight: argv['in-flight'] };
const log = createLogger({ node: argv.follower ? `follower${argv.follower}` : 'bench', component: 'bench', level: process.env.BENCH_LOG ?? 'warn', format: 'json' });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const addr = (base: number, id: number): string => `127.0.0.1:${base + id}`;
const peersOf = (base: number, n: number): Map<number, string> => new Map(Array.from({ length: n }, (_, i) => [i + 1, addr(base, i + 1)]));

function raftMember(id: number, managers: number, base: number, dir: string, store: MemoryStore, follower: boolean): RaftServer<ApplyResult> {
  const ids = Array.from({ length: managers }, (_, i) => i + 1);
  return new RaftServer<ApplyResult>({
    id,
    dataDir: join(dir, `raft${id}`),
    listenAddr: addr(base, id),
    peers: peersOf(base, managers),
    bootstrapVoters: ids,
    stateMachine: storeStateMachine(store),
    // The followers never start an election while the leader lives: it stays in this process.
    // The leader's check-quorum timeout is 1 s instead of 240 ms: three members and the load share
    // two cores here, and a follower starved of CPU for a quarter second must not end the run.
    electionTick: follower ? 500 : argv['election-tick'],
    log,
  });
}

// ------------------------------------------------------------------ follower role

if (argv.follower !== undefined) {
  const store = new MemoryStore();
  const raft = raftMember(argv.follower, argv.managers, argv['base-port']!, argv.dir!, store, true);
  store.setProposer(new RaftProposer(raft));
  await raft.start();
  process.send?.('ready');
  process.on('disconnect', () => void raft.stop().then(() => process.exit(0)));
  await new Promise(() => undefined);
}

// ------------------------------------------------------------------ the cluster

interface Cluster {
  store: MemoryStore;
  raft: RaftServer<ApplyResult>;
  close(): Promise<void>;
}

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

let clusterCount = 0;
async function startCluster(managers: number): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tswarm-bench-sched-'));
  dirs.add(dir);
  const base = 29000 + (process.pid % 200) * 10 + (clusterCount++ % 2) * 5;
  const followers: ChildProcess[] = [];
  for (let id = 2; id <= managers; id++) {
    const c = fork(fileURLToPath(import.meta.url), ['--follower', String(id), '--managers', String(managers), '--dir', dir, '--base-port', String(base)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(c);
    c.once('exit', () => children.delete(c));
    followers.push(c);
    await new Promise<void>((resolve, reject) => {
      c.once('message', () => resolve());
      c.once('exit', (code) => reject(new Error(`follower ${id} exited (${code}) before it was ready`)));
    });
  }
  const store = new MemoryStore();
  const raft = raftMember(1, managers, base, dir, store, false);
  store.setProposer(new RaftProposer(raft));
  await raft.start();
  for (let i = 0; ; i++) {
    const s = raft.status();
    if (s.role === 'leader' && s.applied >= s.lastIndex) break;
    if (i > 500) throw new Error('no Raft leader after 10 s');
    await sleep(20);
  }
  return {
    store,
    raft,
    close: async () => {
      await raft.stop();
      for (const c of followers) {
        const gone = new Promise((r) => c.once('exit', r));
        c.disconnect();
        await Promise.race([gone, sleep(3000)]);
        c.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
}

// ------------------------------------------------------------------ the simulated cluster's objects

const ZONES = 5;
const GiB = 1024 ** 3;

function simulatedNode(i: number): Node {
  const id = `node${String(i).padStart(5, '0')}`;
  const labels: Record<string, string> = { zone: `z${i % ZONES}`, rack: `r${i % 50}` };
  if (i % 3 === 0) labels.disk = 'ssd';
  return {
    attachments: [],
    peerPaths: [],
    id,
    spec: { annotations: { name: id, labels }, desiredRole: NodeRole.NODE_ROLE_WORKER, availability: NodeAvailability.NODE_AVAILABILITY_ACTIVE },
    description: {
      hostname: id,
      engineVersion: 'bench', dataPathAddr: '', hostPrefixes: [],
      platform: { os: 'linux', architecture: 'amd64' },
      resources: { nanoCpus: 4e9, memoryBytes: 8 * GiB, pids: 0 },
    },
    status: { state: NodeState.NODE_STATE_READY, message: '', addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` },
    role: NodeRole.NODE_ROLE_WORKER,
  };
}

interface Mix {
  name: string;
  share: number;
  cpu: number;
  memory: number;
  constraints: string[];
  spread: string[];
  maxPerNode: number;
}

/** The services: a plain one, one constrained to SSD nodes and spread over zones, one spread over
 * zones and racks with a per-node cap, one with large reservations off one zone. */
const MIX: Mix[] = [
  { name: 'web', share: 0.4, cpu: 0.1e9, memory: 128 << 20, constraints: [], spread: [], maxPerNode: 0 },
  { name: 'cache', share: 0.2, cpu: 0.25e9, memory: 512 << 20, constraints: ['node.labels.disk==ssd'], spread: ['node.labels.zone'], maxPerNode: 0 },
  { name: 'api', share: 0.3, cpu: 0.2e9, memory: 256 << 20, constraints: ['node.platform.os==linux'], spread: ['node.labels.zone', 'node.labels.rack'], maxPerNode: 2 },
  { name: 'batch', share: 0.1, cpu: 1e9, memory: 1 * GiB, constraints: ['node.labels.zone!=z4'], spread: [], maxPerNode: 0 },
];

function services(tasks: number): Service[] {
  let left = tasks;
  return MIX.map((m, i) => {
    const replicas = i === MIX.length - 1 ? left : Math.round(tasks * m.share);
    left -= replicas;
    const mode: ServiceSpec['mode'] = { $case: 'replicated', replicated: { replicas } };
    return {
      id: `svc-${m.name}`,
      spec: {
        annotations: { name: m.name, labels: {} },
        task: {
          container: ContainerSpec.fromPartial({ image: 'busybox' }),
          resources: { reservations: { nanoCpus: m.cpu, memoryBytes: m.memory, pids: 0 } },
          restart: { condition: RestartPolicy_Condition.CONDITION_ANY, delayMs: 5000, maxAttempts: 0, windowMs: 0 },
          placement: { constraints: m.constraints, preferences: m.spread.map((spreadDescriptor) => ({ spreadDescriptor })), platforms: [], maxReplicasPerNode: m.maxPerNode },
          networks: [],
          forceUpdate: 0,
        },
        mode,
      },
      specVersion: 1,
      pendingDelete: false,
      registryAuth: Buffer.alloc(0),
    };
  });
}

/** Set-up writes: chunks of `per` objects, 8 transactions in flight (as the allocator and scheduler do). */
async function writeInChunks<T>(items: readonly T[], per: number, write: (chunk: readonly T[]) => Promise<unknown>): Promise<void> {
  const inflight = new Set<Promise<unknown>>();
  for (let i = 0; i < items.length; i += per) {
    const p: Promise<unknown> = write(items.slice(i, i + per)).finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= 8) await Promise.race(inflight);
  }
  await Promise.all(inflight);
}

// ------------------------------------------------------------------ measuring

interface Result {
  label: string;
  seconds: number;
  placed: number;
  /** Seconds until the last task was applied PENDING (services phase). */
  pendingAt?: number;
  scheduler: Scheduler;
  cpuMs: number;
}

/** Resolves with the time (performance.now) the last of `total` tasks is applied ASSIGNED with a node. */
function assignedWatch(store: MemoryStore, total: number, onPending?: (n: number) => void): Promise<number> {
  const assigned = new Set<string>();
  const pending = new Set<string>();
  const w = store.watch({ kinds: ['task'] });
  return new Promise((resolve) => {
    void (async () => {
      for await (const e of w as AsyncIterable<StoreEvent>) {
        const t = e.object as Task;
        if (e.action === 'remove') continue;
        if (t.status?.state === TaskState.TASK_STATE_PENDING && onPending && !pending.has(t.id)) {
          pending.add(t.id);
          onPending(pending.size);
        }
        if (t.status?.state === TaskState.TASK_STATE_ASSIGNED && t.nodeId) assigned.add(t.id);
        if (assigned.size >= total) {
          const at = performance.now();
          w.close();
          resolve(at);
        }
      }
    })();
  });
}

async function addNodes(store: MemoryStore, count: number): Promise<void> {
  const nodes = Array.from({ length: count }, (_, i) => simulatedNode(i));
  await writeInChunks(nodes, 250, (chunk) => store.update((tx) => chunk.forEach((n) => tx.create('node', n))));
}

async function phasePending(managers: number): Promise<Result> {
  const c = await startCluster(managers);
  try {
    await addNodes(c.store, argv.nodes);
    const now = Date.now();
    const tasks: Task[] = [];
    for (const s of services(argv.tasks)) {
      await c.store.update((tx) => tx.create('service', s));
      const replicas = s.spec!.mode!.$case === 'replicated' ? Number(s.spec!.mode!.replicated.replicas) : 0;
      for (let slot = 1; slot <= replicas; slot++) {
        const t = newTask(s, slot, '', now);
        tasks.push({ ...t, status: { ...t.status!, state: TaskState.TASK_STATE_PENDING, message: 'pending task scheduling' } });
      }
    }
    await writeInChunks(tasks, 250, (chunk) => c.store.update((tx) => chunk.forEach((t) => tx.create('task', t))));
    const scheduler = new Scheduler(c.store, log, writeOpts);
    const done = assignedWatch(c.store, tasks.length);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    scheduler.start();
    const t1 = await done;
    const cpu = process.cpuUsage(cpu0);
    await scheduler.stop();
    return { label: 'from PENDING', seconds: (t1 - t0) / 1000, placed: tasks.length, scheduler, cpuMs: (cpu.user + cpu.system) / 1000 };
  } finally {
    await c.close();
  }
}

async function phaseServices(managers: number): Promise<Result> {
  const c = await startCluster(managers);
  try {
    await addNodes(c.store, argv.nodes);
    const orchestrator = new Orchestrator({ store: c.store, log });
    const allocator = new Allocator(c.store, log, writeOpts);
    const scheduler = new Scheduler(c.store, log, writeOpts);
    // Started in the manager's order, before the services exist, as on a leader that runs.
    for (const comp of [orchestrator, allocator, scheduler]) comp.start();
    await sleep(200);
    let pendingAt = 0;
    const svcs = services(argv.tasks);
    const total = argv.tasks;
    const done = assignedWatch(c.store, total, (n) => {
      if (n === total) pendingAt = performance.now();
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await c.store.update((tx) => svcs.forEach((s) => tx.create('service', s)));
    const t1 = await done;
    const cpu = process.cpuUsage(cpu0);
    for (const comp of [scheduler, allocator, orchestrator]) await comp.stop();
    return { label: 'from service creation', seconds: (t1 - t0) / 1000, placed: total, pendingAt: pendingAt ? (pendingAt - t0) / 1000 : undefined, scheduler, cpuMs: (cpu.user + cpu.system) / 1000 };
  } finally {
    await c.close();
  }
}

function report(r: Result): number {
  const rate = r.placed / r.seconds;
  const s = r.scheduler.stats;
  console.log(`  ${r.label}: ${r.placed} tasks on ${argv.nodes} nodes in ${r.seconds.toFixed(3)} s = ${Math.round(rate)} placements/s (${(rate / GOAL).toFixed(2)}× the goal)`);
  if (r.pendingAt !== undefined) console.log(`    all tasks PENDING (orchestrator + allocator committed) after ${r.pendingAt.toFixed(3)} s`);
  console.log(
    `    scheduler: ${s.passes} passes, read + plan ${(s.planMs / 1000).toFixed(3)} s, writing (first proposal to last apply) ${(s.writeMs / 1000).toFixed(3)} s in ${s.transactions} transactions; this process's CPU ${(r.cpuMs / 1000).toFixed(3)} s`,
  );
  return rate;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(
  `Scheduler throughput: ${argv.nodes} simulated nodes, ${argv.tasks} tasks, ${argv.managers} Raft member(s), fsync on; ${argv.trials} trial(s) per phase; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
const phases = argv.phase === 'both' ? (['pending', 'services'] as const) : [argv.phase];
const summary: string[] = [];
for (const p of phases) {
  const rates: number[] = [];
  for (let i = 0; i < argv.trials; i++) rates.push(report(p === 'pending' ? await phasePending(argv.managers) : await phaseServices(argv.managers)));
  const m = median(rates);
  summary.push(
    `${p === 'pending' ? 'from PENDING' : 'from service creation'}: median ${Math.round(m)} placements/s (runs ${rates.map((r) => Math.round(r)).join(', ')}); goal ${GOAL}/s (Nomad C1M); ratio ${(m / GOAL).toFixed(2)}×`,
  );
}
console.log('');
for (const line of summary) console.log(line);
process.exit(0);

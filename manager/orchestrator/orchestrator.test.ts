// The orchestrator over a real MemoryStore (LocalProposer), with a fake scheduler and agent that
// place new tasks, run them (or fail them, as a test says) and shut down what is desired down.
import { afterEach, describe, expect, it } from 'vitest';
import type { Node, Task } from '../../proto/gen/tswarm/objects.js';
import { NodeAvailability, NodeState, RestartPolicy_Condition, TaskState, UpdateConfig_FailureAction, UpdateConfig_Order, UpdateStatus_UpdateState } from '../../proto/gen/tswarm/types.js';
import { createLogger } from '../../common/logger.js';
import { MemoryStore, VersionConflictError } from '../store/memory.js';
import { LocalProposer } from '../store/local.js';
import { Orchestrator } from './orchestrator.js';
import { isGivenUp } from './restart.js';
import { isLive, isTerminal, } from './tasks.js';
import { stateRank } from '../../common/task-state.js';
import { node, service, type ServiceOptions } from './testutil.js';

const { TASK_STATE_RUNNING: RUNNING, TASK_STATE_SHUTDOWN: SHUTDOWN, TASK_STATE_FAILED: FAILED } = TaskState;
const log = createLogger({ node: '-', component: 'test', level: 'silent' });

/** Places tasks round-robin on ready active nodes and runs them; `outcome` decides how they end. */
class FakeCluster {
  outcome: (t: Task) => TaskState = () => RUNNING;
  /** A running task for which this says true fails after 50 ms (a healthcheck failing). */
  failsLater: (t: Task) => boolean = () => false;
  private timer: NodeJS.Timeout | undefined;
  private next = 0;
  constructor(readonly store: MemoryStore) {}

  start(): void {
    this.timer = setInterval(() => void this.step(), 5);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async step(): Promise<void> {
    const nodes = this.store.list('node');
    const usable = nodes.filter((n) => n.status?.state === NodeState.NODE_STATE_READY && n.spec?.availability === NodeAvailability.NODE_AVAILABILITY_ACTIVE);
    const writes: Task[] = [];
    for (const t of this.store.list('task')) {
      if (isTerminal(t)) continue;
      const node = nodes.find((n) => n.id === t.nodeId);
      const now = Date.now();
      const status = (state: TaskState, message: string): Task => ({ ...t, status: { ...t.status!, state, message, timestampUnixMs: now } });
      if (t.status?.state === RUNNING && t.desiredState === RUNNING && this.failsLater(t) && now - (t.status.timestampUnixMs ?? now) > 50) {
        writes.push({ ...status(FAILED, 'unhealthy'), status: { ...t.status, state: FAILED, message: 'unhealthy', err: 'healthcheck failed', timestampUnixMs: now } });
      } else if (stateRank(t.desiredState) >= stateRank(SHUTDOWN)) {
        // An agent that is down or gone reports nothing; a task never placed stays as it is.
        if (node && node.status?.state !== NodeState.NODE_STATE_DOWN && t.nodeId !== '') writes.push(status(SHUTDOWN, 'shut down'));
      } else if (t.nodeId === '') {
        if (usable.length === 0) continue;
        const n = usable[this.next++ % usable.length]!;
        writes.push({ ...status(TaskState.TASK_STATE_ASSIGNED, 'assigned'), nodeId: n.id });
      } else if (t.status?.state !== RUNNING && node?.status?.state === NodeState.NODE_STATE_READY) {
        // The agent never goes past the desired state: READY holds a task before it starts.
        if (t.desiredState === TaskState.TASK_STATE_READY) {
          if (t.status?.state !== TaskState.TASK_STATE_READY) writes.push(status(TaskState.TASK_STATE_READY, 'ready'));
          continue;
        }
        const end = this.outcome(t);
        writes.push(status(end, end === RUNNING ? 'started' : 'exited 1'));
      }
    }
    for (const w of writes) {
      try {
        await this.store.update((tx) => tx.update('task', w));
      } catch {
        // moved meanwhile: the next step sees it
      }
    }
  }
}

interface Env {
  store: MemoryStore;
  orch: Orchestrator;
  cluster: FakeCluster;
}
const envs: Env[] = [];

async function setup(nodes: Node[] = [node('n1'), node('n2')]): Promise<Env> {
  const store = new MemoryStore();
  store.setProposer(new LocalProposer(store));
  await store.update((tx) => nodes.forEach((n) => tx.create('node', n)));
  const orch = new Orchestrator({ store, log, coalesceMs: 10 });
  const cluster = new FakeCluster(store);
  const env = { store, orch, cluster };
  envs.push(env);
  orch.start();
  cluster.start();
  return env;
}

afterEach(async () => {
  for (const e of envs.splice(0)) {
    e.cluster.stop();
    await e.orch.stop();
  }
});

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function createService(store: MemoryStore, o: ServiceOptions): Promise<string> {
  const s = service(o);
  await store.update((tx) => tx.create('service', s));
  return s.id;
}

async function patchService(store: MemoryStore, id: string, f: (s: ReturnType<typeof service>) => void): Promise<void> {
  await store.update((tx) => {
    const s = structuredClone(tx.get('service', id)!);
    f(s);
    s.specVersion++;
    tx.update('service', s);
  });
}

function liveTasks(store: MemoryStore, serviceId: string): Task[] {
  return store.findTasks({ serviceId }).filter(isLive);
}

function runningSlots(store: MemoryStore, serviceId: string): number[] {
  return liveTasks(store, serviceId)
    .filter((t) => t.status?.state === RUNNING)
    .map((t) => t.slot)
    .sort((a, b) => a - b);
}

async function patchNode(store: MemoryStore, id: string, f: (n: Node) => void): Promise<void> {
  await store.update((tx) => {
    const n = structuredClone(tx.get('node', id)!);
    f(n);
    tx.update('node', n);
  });
}

describe('Orchestrator over a store', () => {
  it('runs, scales down and up again reusing slots', async () => {
    const { store } = await setup();
    const id = await createService(store, { replicas: 3 });
    await until('3 running', () => runningSlots(store, id).join() === '1,2,3');
    await patchService(store, id, (s) => {
      if (s.spec!.mode!.$case === 'replicated') s.spec!.mode!.replicated.replicas = 1;
    });
    await until('1 running', () => liveTasks(store, id).length === 1 && runningSlots(store, id).length === 1);
    await until('2 shut down', () => store.findTasks({ serviceId: id }).filter((t) => t.status?.state === SHUTDOWN).length === 2);
    const kept = runningSlots(store, id)[0]!;
    await patchService(store, id, (s) => {
      if (s.spec!.mode!.$case === 'replicated') s.spec!.mode!.replicated.replicas = 3;
    });
    await until('3 running again', () => runningSlots(store, id).join() === '1,2,3');
    expect(runningSlots(store, id)).toContain(kept);
  });

  it('restarts a failed task in its slot after the delay', async () => {
    const { store, cluster } = await setup();
    let failures = 0;
    cluster.outcome = (t) => (t.slot === 1 && failures++ === 0 ? FAILED : RUNNING);
    const id = await createService(store, { replicas: 2, restart: { delayMs: 200 } });
    await until('2 running', () => runningSlots(store, id).join() === '1,2');
    const slot1 = store.findTasks({ serviceId: id }).filter((t) => t.slot === 1);
    expect(slot1).toHaveLength(2);
    const failed = slot1.find((t) => t.status?.state === FAILED)!;
    const replacement = slot1.find((t) => t.id !== failed.id)!;
    expect(failed.desiredState).toBe(SHUTDOWN);
    expect(replacement.meta!.createdAtUnixMs - failed.status!.timestampUnixMs).toBeGreaterThanOrEqual(190);
  });

  it('gives up after max attempts and keeps the slot held', async () => {
    const { store, orch, cluster } = await setup();
    cluster.outcome = () => FAILED;
    const id = await createService(store, { replicas: 1, restart: { maxAttempts: 2, delayMs: 0 } });
    await until('given up', () => store.findTasks({ serviceId: id }).some(isGivenUp));
    await new Promise((r) => setTimeout(r, 200));
    await orch.settled();
    const tasks = store.findTasks({ serviceId: id });
    expect(tasks).toHaveLength(3); // the first and 2 restarts
    expect(liveTasks(store, id)).toHaveLength(1);
    // Condition none: one task, no restart.
    const none = await createService(store, { name: 'once', replicas: 1, restart: { condition: RestartPolicy_Condition.CONDITION_NONE } });
    await until('none given up', () => store.findTasks({ serviceId: none }).some(isGivenUp));
    expect(store.findTasks({ serviceId: none })).toHaveLength(1);
  });

  it('replaces the tasks of a node that goes down', async () => {
    const { store } = await setup();
    const id = await createService(store, { replicas: 4 });
    await until('4 running', () => runningSlots(store, id).length === 4);
    await patchNode(store, 'n1', (n) => (n.status!.state = NodeState.NODE_STATE_DOWN));
    await until('4 running on n2', () => runningSlots(store, id).length === 4 && liveTasks(store, id).every((t) => t.nodeId === 'n2'));
    expect(runningSlots(store, id)).toEqual([1, 2, 3, 4]);
  });

  it('global: follows nodes that join and drain', async () => {
    const { store } = await setup();
    const id = await createService(store, { name: 'agent', mode: { $case: 'global', global: {} } });
    const nodesRunning = (): string => liveTasks(store, id).filter((t) => t.status?.state === RUNNING).map((t) => t.nodeId).sort().join();
    await until('on n1,n2', () => nodesRunning() === 'n1,n2');
    await store.update((tx) => tx.create('node', node('n3')));
    await until('on n1,n2,n3', () => nodesRunning() === 'n1,n2,n3');
    await patchNode(store, 'n2', (n) => (n.spec!.availability = NodeAvailability.NODE_AVAILABILITY_DRAIN));
    await until('off n2', () => nodesRunning() === 'n1,n3' && liveTasks(store, id).length === 2);
    await until('n2 task shut down', () => store.findTasks({ serviceId: id, nodeId: 'n2' }).every((t) => t.status?.state === SHUTDOWN));
  });

  it('deletes the tasks of a removed service once they stopped', async () => {
    const { store } = await setup();
    const id = await createService(store, { replicas: 3 });
    await until('3 running', () => runningSlots(store, id).length === 3);
    await store.update((tx) => tx.remove('service', id));
    await until('no tasks', () => store.findTasks({ serviceId: id }).length === 0);
  });

  it('a refused write is retried on the next pass, never lost', async () => {
    const { store, orch } = await setup();
    const realBatch = store.batch.bind(store);
    let refusals = 2;
    store.batch = (fns, max) => (refusals-- > 0 ? Promise.resolve([new VersionConflictError('task', 'x', 1, 2)]) : realBatch(fns, max));
    const id = await createService(store, { replicas: 2 });
    await until('2 running', () => runningSlots(store, id).length === 2);
    expect(refusals).toBeLessThan(0);
    expect(orch.passes).toBeGreaterThanOrEqual(3);
    expect(store.findTasks({ serviceId: id })).toHaveLength(2);
  });

  it('started again, re-lists and catches up with what changed meanwhile', async () => {
    const { store, orch, cluster } = await setup();
    const id = await createService(store, { replicas: 2 });
    await until('2 running', () => runningSlots(store, id).length === 2);
    await orch.stop();
    await patchService(store, id, (s) => {
      if (s.spec!.mode!.$case === 'replicated') s.spec!.mode!.replicated.replicas = 3;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(liveTasks(store, id)).toHaveLength(2);
    cluster.stop();
    const again = new Orchestrator({ store, log, coalesceMs: 10 });
    envs.push({ store, orch: again, cluster });
    again.start();
    cluster.start();
    await until('3 running', () => runningSlots(store, id).join() === '1,2,3');
  });

  it('runs a replicated job to its total completions, at most max_concurrent at a time', async () => {
    const { store, cluster } = await setup();
    cluster.outcome = (t) => (t.slot === 2 && store.findTasks({ serviceId: t.serviceId }).filter((x) => x.slot === 2).length === 1 ? FAILED : TaskState.TASK_STATE_COMPLETE);
    let most = 0;
    const watch = store.watch({ kinds: ['task'] });
    const id = await createService(store, { mode: { $case: 'replicatedJob', replicatedJob: { maxConcurrent: 2, totalCompletions: 5 } }, restart: { condition: RestartPolicy_Condition.CONDITION_ON_FAILURE } });
    const completed = (): number => store.findTasks({ serviceId: id }).filter((t) => t.status?.state === TaskState.TASK_STATE_COMPLETE).length;
    await until('5 completions', () => {
      watch.take();
      most = Math.max(most, store.findTasks({ serviceId: id }).filter((t) => isLive(t) && !isTerminal(t)).length);
      return completed() === 5;
    });
    watch.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(completed()).toBe(5);
    expect(most).toBeLessThanOrEqual(2);
    const tasks = store.findTasks({ serviceId: id });
    expect(tasks).toHaveLength(6); // slot 2 failed once and was restarted
    expect(tasks.every((t) => t.slot >= 1 && t.slot <= 5)).toBe(true);
  });

  it('rolls an update out one task at a time, and rolls back a failing one', async () => {
    const { store, cluster } = await setup();
    cluster.outcome = (t) => (t.spec?.container?.image === 'broken' ? FAILED : RUNNING);
    const id = await createService(store, { replicas: 3 });
    await until('3 running', () => runningSlots(store, id).length === 3);
    const cfg = { parallelism: 1, delayMs: 0, failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK, monitorMs: 30, maxFailureRatio: 0, order: UpdateConfig_Order.ORDER_STOP_FIRST };
    let most = 0;
    const newImage = (image: string): number => liveTasks(store, id).filter((t) => t.spec?.container?.image === image).length;
    const updateTo = (image: string): Promise<void> =>
      patchService(store, id, (s) => {
        s.previousSpec = structuredClone(s.spec);
        s.spec!.task!.container!.image = image;
        s.spec!.update = cfg;
        s.spec!.rollback = { ...cfg, parallelism: 0 };
      });
    await updateTo('nginx');
    await until('all on nginx', () => {
      most = Math.max(most, liveTasks(store, id).filter((t) => t.status?.state !== RUNNING).length);
      return newImage('nginx') === 3 && runningSlots(store, id).length === 3 && store.get('service', id)!.updateStatus?.state === UpdateStatus_UpdateState.UPDATE_STATE_COMPLETED;
    });
    expect(most).toBeLessThanOrEqual(1);
    expect(store.get('service', id)!.updateStatus!.message).toBe('update completed (spec version 2)');

    await updateTo('broken');
    await until('rolled back', () => store.get('service', id)!.updateStatus?.state === UpdateStatus_UpdateState.UPDATE_STATE_ROLLBACK_COMPLETED && newImage('nginx') === 3 && runningSlots(store, id).length === 3);
    const s = store.get('service', id)!;
    expect(s.spec!.task!.container!.image).toBe('nginx');
    expect(s.specVersion).toBe(4);
  });

  it('rolls back an update whose new tasks run, then fail (a healthcheck), with the default restart policy', async () => {
    const { store, cluster } = await setup([node('n1'), node('n2'), node('n3'), node('n4')]);
    cluster.failsLater = (t) => t.spec?.container?.image === 'broken';
    const id = await createService(store, { replicas: 4 });
    await until('4 running', () => runningSlots(store, id).length === 4);
    const cfg = { parallelism: 1, delayMs: 20, failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK, monitorMs: 500, maxFailureRatio: 0, order: UpdateConfig_Order.ORDER_STOP_FIRST };
    await patchService(store, id, (s) => {
      s.previousSpec = structuredClone(s.spec);
      s.spec!.task!.container!.image = 'broken';
      s.spec!.task!.restart = undefined;
      s.spec!.update = cfg;
    });
    await until('rolled back', () => store.get('service', id)!.updateStatus?.state === UpdateStatus_UpdateState.UPDATE_STATE_ROLLBACK_COMPLETED, 10_000);
    const tried = store.findTasks({ serviceId: id }).filter((t) => t.spec?.container?.image === 'broken');
    expect(tried.length).toBe(1);
    expect(store.get('service', id)!.updateStatus!.message).toMatch(/update failed: 1 of 4 new tasks failed .*healthcheck failed/);
  });

  it('keeps the cluster history limit per slot', async () => {
    const { store, cluster } = await setup();
    await store.update((tx) =>
      tx.create('cluster', {
        id: 'c1',
        spec: { annotations: { name: 'default', labels: {} }, heartbeatPeriodMs: 5000, taskHistoryRetentionLimit: 2, nodeCertExpiryMs: 0, snapshotIntervalEntries: 0, defaultAddressPool: [], subnetSize: 0, vxlanUdpPort: 0 },
        nextRaftId: 1,
      }),
    );
    let fails = 6;
    cluster.outcome = () => (fails-- > 0 ? FAILED : RUNNING);
    const id = await createService(store, { replicas: 1 });
    await until('running after 6 failures', () => fails < 0 && runningSlots(store, id).length === 1);
    await until('history trimmed', () => store.findTasks({ serviceId: id }).length === 3);
    const tasks = store.findTasks({ serviceId: id });
    expect(tasks.filter((t) => t.status?.state === FAILED)).toHaveLength(2);
  });
});

// The allocator and the scheduler together over a MemoryStore: NEW → PENDING → ASSIGNED; a task
// that fits nowhere gets its reason, and is assigned once a node becomes READY and ACTIVE.
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Node, Task } from '../../proto/gen/tswarm/objects.js';
import { NodeAvailability, NodeRole, NodeState, TaskState } from '../../proto/gen/tswarm/types.js';
import { MemoryStore, type ApplyResult } from '../store/memory.js';
import { LocalProposer } from '../store/local.js';
import { Allocator } from '../allocator/allocator.js';
import { Scheduler } from './shell.js';

const log = pino({ level: 'silent' });
const GB = 1024 ** 3;

function node(id: string, state = NodeState.NODE_STATE_READY, availability = NodeAvailability.NODE_AVAILABILITY_ACTIVE, memory = 8 * GB): Node {
  return {
    attachments: [],
    peerPaths: [],
    id,
    spec: { annotations: { name: '', labels: {} }, desiredRole: NodeRole.NODE_ROLE_WORKER, availability },
    description: { hostname: id, platform: { os: 'linux', architecture: 'amd64' }, resources: { nanoCpus: 4e9, memoryBytes: memory, pids: 0 }, engineVersion: '', dataPathAddr: '', hostPrefixes: [] },
    status: { state, message: '', addr: '' },
    role: NodeRole.NODE_ROLE_WORKER,
  };
}

let seq = 0;
function newTask(o: { memory?: number; service?: string } = {}): Task {
  return {
    id: `task${++seq}`,
    serviceId: o.service ?? 'svc',
    specVersion: 1,
    slot: seq,
    nodeId: '',
    spec: { resources: { reservations: { nanoCpus: 0, memoryBytes: o.memory ?? 0, pids: 0 } }, networks: [], forceUpdate: 0 },
    status: { state: TaskState.TASK_STATE_NEW, timestampUnixMs: 0, message: 'created', err: '', pendingReason: '' },
    desiredState: TaskState.TASK_STATE_RUNNING,
    networks: [],
    jobIteration: 0,
  };
}

function newStore(onPropose?: () => void): MemoryStore {
  const store = new MemoryStore();
  const local = new LocalProposer(store);
  store.setProposer({
    propose: (data: Uint8Array): Promise<ApplyResult> => {
      onPropose?.();
      return local.propose(data);
    },
  });
  return store;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const get = (store: MemoryStore, id: string): Task => store.get('task', id)!;

describe('Allocator and Scheduler', () => {
  let parts: { stop(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const p of parts) await p.stop();
    parts = [];
  });

  function run(store: MemoryStore, now = (): number => 1000): { allocator: Allocator; scheduler: Scheduler } {
    const allocator = new Allocator(store, log, { now });
    const scheduler = new Scheduler(store, log, { now, debounceMs: 10 });
    allocator.start();
    scheduler.start();
    parts.push(allocator, scheduler);
    return { allocator, scheduler };
  }

  it('takes NEW tasks through PENDING to ASSIGNED, spread over the nodes', async () => {
    const store = newStore();
    await store.update((tx) => ['a', 'b', 'c'].forEach((id) => tx.create('node', node(id))));
    const states = new Map<string, TaskState[]>();
    const watch = store.watch({ kinds: ['task'] });
    run(store, () => 4242);
    const ts = Array.from({ length: 9 }, () => newTask());
    await store.update((tx) => ts.forEach((t) => tx.create('task', t)));
    await until(() => ts.every((t) => get(store, t.id).status?.state === TaskState.TASK_STATE_ASSIGNED));
    for (const e of watch.take()) {
      const t = e.object as Task;
      states.set(t.id, [...(states.get(t.id) ?? []), t.status!.state]);
    }
    watch.close();
    expect(states.get(ts[0]!.id)).toEqual([TaskState.TASK_STATE_NEW, TaskState.TASK_STATE_PENDING, TaskState.TASK_STATE_ASSIGNED]);
    const perNode = new Map<string, number>();
    for (const t of ts) perNode.set(get(store, t.id).nodeId, (perNode.get(get(store, t.id).nodeId) ?? 0) + 1);
    expect(Object.fromEntries(perNode)).toEqual({ a: 3, b: 3, c: 3 });
    expect(get(store, ts[0]!.id).status).toMatchObject({ state: TaskState.TASK_STATE_ASSIGNED, message: 'assigned', timestampUnixMs: 4242, pendingReason: '' });
  });

  it('gives an unplaceable task its reason once, and assigns it when a node becomes READY and ACTIVE', async () => {
    let proposals = 0;
    const store = newStore(() => proposals++);
    await store.update((tx) => {
      tx.create('node', node('small', NodeState.NODE_STATE_READY, NodeAvailability.NODE_AVAILABILITY_ACTIVE, 1 * GB));
      tx.create('node', node('down', NodeState.NODE_STATE_DOWN));
      tx.create('node', node('drained', NodeState.NODE_STATE_READY, NodeAvailability.NODE_AVAILABILITY_DRAIN));
    });
    run(store);
    const t = newTask({ memory: 2 * GB });
    await store.update((tx) => tx.create('task', t));
    const reason = 'no suitable node (1 node is down, 1 node is drained, 1 node lacks memory)';
    await until(() => get(store, t.id).status?.pendingReason === reason);
    expect(get(store, t.id).status?.state).toBe(TaskState.TASK_STATE_PENDING);

    // Unrelated events cause passes, but the same reason is not written again.
    const settled = proposals;
    await store.update((tx) => tx.create('task', { ...newTask({ service: 'other' }), desiredState: TaskState.TASK_STATE_SHUTDOWN }));
    await new Promise((r) => setTimeout(r, 60));
    expect(proposals).toBe(settled + 1);

    // The drained node is activated: the task goes there.
    await store.update((tx) => {
      const n = tx.get('node', 'drained')!;
      tx.update('node', { ...n, spec: { ...n.spec!, availability: NodeAvailability.NODE_AVAILABILITY_ACTIVE } });
    });
    await until(() => get(store, t.id).status?.state === TaskState.TASK_STATE_ASSIGNED);
    expect(get(store, t.id).nodeId).toBe('drained');
    expect(get(store, t.id).status?.pendingReason).toBe('');
  });

  it('plans again when a task changed between the transaction and its apply (a version conflict)', async () => {
    // A proposer that lets another write in before the next proposal: the scheduler's
    // transaction was checked against the old version and fails at apply.
    let interfere: (() => Promise<void>) | undefined;
    const store = new MemoryStore();
    const local = new LocalProposer(store);
    store.setProposer({
      propose: async (data: Uint8Array): Promise<ApplyResult> => {
        const f = interfere;
        interfere = undefined;
        if (f) await f();
        return local.propose(data);
      },
    });
    await store.update((tx) => tx.create('node', node('a')));
    const t = { ...newTask(), status: { ...newTask().status!, state: TaskState.TASK_STATE_PENDING } };
    await store.update((tx) => tx.create('task', t));
    let interfered = false;
    interfere = async (): Promise<void> => {
      interfered = true;
      await store.update((tx) => {
        const cur = tx.get('task', t.id)!;
        tx.update('task', { ...cur, annotations: { name: 'renamed', labels: {} } });
      });
    };
    const scheduler = new Scheduler(store, log, { debounceMs: 10 });
    scheduler.start();
    parts.push(scheduler);
    await until(() => get(store, t.id).status?.state === TaskState.TASK_STATE_ASSIGNED);
    expect(interfered).toBe(true);
    expect(get(store, t.id).annotations?.name).toBe('renamed');
    expect(get(store, t.id).nodeId).toBe('a');
  });

  it('re-lists on start: tasks left PENDING while no leader ran are assigned', async () => {
    const store = newStore();
    const t = { ...newTask(), status: { ...newTask().status!, state: TaskState.TASK_STATE_PENDING } };
    await store.update((tx) => {
      tx.create('node', node('a'));
      tx.create('task', t);
    });
    const scheduler = new Scheduler(store, log);
    scheduler.start();
    parts.push(scheduler);
    await until(() => get(store, t.id).status?.state === TaskState.TASK_STATE_ASSIGNED);
    await scheduler.stop();
    const u = { ...newTask(), status: { ...newTask().status!, state: TaskState.TASK_STATE_PENDING } };
    await store.update((tx) => tx.create('task', u));
    await new Promise((r) => setTimeout(r, 30));
    expect(get(store, u.id).status?.state).toBe(TaskState.TASK_STATE_PENDING);
    scheduler.start();
    await until(() => get(store, u.id).status?.state === TaskState.TASK_STATE_ASSIGNED);
  });

  it('proposes up to maxTransactionsInFlight transactions at once; a failed one is planned again', async () => {
    // A proposer that applies after a delay, counts proposals in flight, and fails the second
    // proposal of the scheduler once (a write error that is not a version conflict).
    const store = new MemoryStore();
    const local = new LocalProposer(store);
    let inFlight = 0;
    let maxInFlight = 0;
    let proposals = 0;
    let armed = false;
    store.setProposer({
      propose: async (data: Uint8Array): Promise<ApplyResult> => {
        const n = ++proposals;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        if (armed && n === 2) throw new Error('disk full');
        return local.propose(data);
      },
    });
    await store.update((tx) => ['a', 'b', 'c'].forEach((id) => tx.create('node', node(id))));
    const ts = Array.from({ length: 45 }, () => ({ ...newTask(), status: { ...newTask().status!, state: TaskState.TASK_STATE_PENDING } }));
    await store.update((tx) => ts.forEach((t) => tx.create('task', t)));
    proposals = 0;
    maxInFlight = 0;
    armed = true;
    const scheduler = new Scheduler(store, log, { debounceMs: 1, retryMs: 20, maxTasksPerTransaction: 10, maxTransactionsInFlight: 3 });
    scheduler.start();
    parts.push(scheduler);
    await until(() => ts.every((t) => get(store, t.id).status?.state === TaskState.TASK_STATE_ASSIGNED));
    expect(maxInFlight).toBe(3);
    // Five transactions in the first pass (one failed), then one for the failed chunk's ten tasks.
    expect(scheduler.stats.transactions).toBe(5);
    expect(scheduler.stats.placed).toBe(45);
    expect(scheduler.stats.passes).toBe(2);
    const perNode = new Map<string, number>();
    for (const t of ts) perNode.set(get(store, t.id).nodeId, (perNode.get(get(store, t.id).nodeId) ?? 0) + 1);
    expect(Object.fromEntries(perNode)).toEqual({ a: 15, b: 15, c: 15 });
  });

  it('makes one pass of a burst of events, and at least one per maxLatencyMs of a steady stream', async () => {
    const store = newStore();
    await store.update((tx) => ['a', 'b'].forEach((id) => tx.create('node', node(id))));
    const scheduler = new Scheduler(store, log, { debounceMs: 50, maxLatencyMs: 150 });
    scheduler.start();
    parts.push(scheduler);
    const pendingTask = (): Task => ({ ...newTask(), status: { ...newTask().status!, state: TaskState.TASK_STATE_PENDING } });

    // A burst: 20 transactions back to back, one pass.
    const burst = Array.from({ length: 20 }, pendingTask);
    for (const t of burst) await store.update((tx) => tx.create('task', t));
    await until(() => burst.every((t) => get(store, t.id).status?.state === TaskState.TASK_STATE_ASSIGNED));
    expect(scheduler.stats.passes).toBe(1);

    // A stream with an event every 10 ms never goes quiet for 50 ms: the latency bound places
    // tasks while it lasts, in a few passes rather than one per event.
    const stream: Task[] = [];
    let assignedDuringStream = false;
    for (let i = 0; i < 50; i++) {
      const t = pendingTask();
      stream.push(t);
      await store.update((tx) => tx.create('task', t));
      await new Promise((r) => setTimeout(r, 10));
      if (get(store, stream[0]!.id).status?.state === TaskState.TASK_STATE_ASSIGNED) assignedDuringStream = true;
    }
    await until(() => stream.every((t) => get(store, t.id).status?.state === TaskState.TASK_STATE_ASSIGNED));
    expect(assignedDuringStream).toBe(true);
    expect(scheduler.stats.passes - 1).toBeGreaterThanOrEqual(2);
    expect(scheduler.stats.passes - 1).toBeLessThanOrEqual(10);
  });

  it('ignores task events that cannot change a plan (a running task reporting its status)', async () => {
    const store = newStore();
    await store.update((tx) => tx.create('node', node('small', NodeState.NODE_STATE_READY, NodeAvailability.NODE_AVAILABILITY_ACTIVE, 1 * GB)));
    const runningTask = { ...newTask({ memory: 0.5 * GB }), nodeId: 'small', status: { ...newTask().status!, state: TaskState.TASK_STATE_RUNNING } };
    const stuck = { ...newTask({ memory: 1 * GB, service: 'big' }), status: { ...newTask().status!, state: TaskState.TASK_STATE_PENDING } };
    await store.update((tx) => {
      tx.create('task', runningTask);
      tx.create('task', stuck);
    });
    const scheduler = new Scheduler(store, log, { debounceMs: 5 });
    scheduler.start();
    parts.push(scheduler);
    await until(() => get(store, stuck.id).status?.pendingReason === 'no suitable node (1 node lacks memory)');
    await new Promise((r) => setTimeout(r, 30));
    const passes = scheduler.stats.passes;
    // Status reports of the running task: no pass (each would plan the stuck task again).
    for (let i = 0; i < 5; i++) {
      await store.update((tx) => {
        const t = tx.get('task', runningTask.id)!;
        tx.update('task', { ...t, status: { ...t.status!, message: `report ${i}` } });
      });
      await new Promise((r) => setTimeout(r, 15));
    }
    expect(scheduler.stats.passes).toBe(passes);
    // The running task ends: its memory is free, a pass places the stuck task.
    await store.update((tx) => {
      const t = tx.get('task', runningTask.id)!;
      tx.update('task', { ...t, status: { ...t.status!, state: TaskState.TASK_STATE_COMPLETE } });
    });
    await until(() => get(store, stuck.id).status?.state === TaskState.TASK_STATE_ASSIGNED);
    expect(get(store, stuck.id).nodeId).toBe('small');
  });
});

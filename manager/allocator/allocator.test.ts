// The allocator over a MemoryStore: NEW tasks become PENDING, a burst in one transaction, and
// tasks created while it was stopped are picked up when it starts again.
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import { MemoryStore, type ApplyResult } from '../store/memory.js';
import { LocalProposer } from '../store/local.js';
import { Allocator } from './allocator.js';

const log = pino({ level: 'silent' });

/** A store whose proposals are counted. */
function countingStore(): { store: MemoryStore; proposals: () => number } {
  const store = new MemoryStore();
  const local = new LocalProposer(store);
  let n = 0;
  store.setProposer({
    propose: (data: Uint8Array): Promise<ApplyResult> => {
      n++;
      return local.propose(data);
    },
  });
  return { store, proposals: () => n };
}

let seq = 0;
function newTask(desired = TaskState.TASK_STATE_RUNNING): Task {
  return {
    id: `task${++seq}`,
    serviceId: 'svc',
    specVersion: 1,
    slot: seq,
    nodeId: '',
    status: { state: TaskState.TASK_STATE_NEW, timestampUnixMs: 0, message: 'created', err: '', pendingReason: '' },
    desiredState: desired,
    networks: [],
    jobIteration: 0,
  };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const stateOf = (store: MemoryStore, id: string): TaskState | undefined => store.get('task', id)?.status?.state;

describe('Allocator', () => {
  let allocator: Allocator | undefined;
  afterEach(async () => {
    await allocator?.stop();
    allocator = undefined;
  });

  it('moves a burst of NEW tasks to PENDING in one transaction', async () => {
    const { store, proposals } = countingStore();
    allocator = new Allocator(store, log, { now: () => 1234 });
    allocator.start();
    const ts = Array.from({ length: 50 }, () => newTask());
    for (const t of ts) await store.update((tx) => tx.create('task', t));
    const before = proposals();
    await until(() => ts.every((t) => stateOf(store, t.id) === TaskState.TASK_STATE_PENDING));
    expect(proposals() - before).toBe(1);
    const t = store.get('task', ts[0]!.id)!;
    expect(t.status).toMatchObject({ state: TaskState.TASK_STATE_PENDING, message: 'pending task scheduling', timestampUnixMs: 1234 });
  });

  it('re-lists on start and leaves tasks that are no longer wanted', async () => {
    const { store } = countingStore();
    const wanted = newTask();
    const stopping = newTask(TaskState.TASK_STATE_SHUTDOWN);
    await store.update((tx) => {
      tx.create('task', wanted);
      tx.create('task', stopping);
    });
    allocator = new Allocator(store, log);
    allocator.start();
    await until(() => stateOf(store, wanted.id) === TaskState.TASK_STATE_PENDING);
    expect(stateOf(store, stopping.id)).toBe(TaskState.TASK_STATE_NEW);
    // Stopped, then started again on a store that moved on.
    await allocator.stop();
    const later = newTask();
    await store.update((tx) => tx.create('task', later));
    allocator.start();
    await until(() => stateOf(store, later.id) === TaskState.TASK_STATE_PENDING);
  });

  it('proposes up to maxTransactionsInFlight transactions at once; the tasks of a failed one are queued again', async () => {
    const store = new MemoryStore();
    const local = new LocalProposer(store);
    let inFlight = 0;
    let maxInFlight = 0;
    let proposals = 0;
    store.setProposer({
      propose: async (data: Uint8Array): Promise<ApplyResult> => {
        const n = ++proposals;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        if (n === 3) throw new Error('disk full');
        return local.propose(data);
      },
    });
    const ts = Array.from({ length: 40 }, () => newTask());
    await store.update((tx) => ts.forEach((t) => tx.create('task', t)));
    allocator = new Allocator(store, log, { retryMs: 20, maxTasksPerTransaction: 10, maxTransactionsInFlight: 2 });
    allocator.start();
    await until(() => ts.every((t) => stateOf(store, t.id) === TaskState.TASK_STATE_PENDING));
    expect(maxInFlight).toBe(2);
    // The task creation, four chunks (the second failed), and the failed chunk again.
    expect(proposals).toBe(6);
  });
});

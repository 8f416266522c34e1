// writeChunked over a MemoryStore: chunks in flight together, a transaction too large for one log
// entry split until it fits, and what is left after a failure.
import { describe, expect, it } from 'vitest';
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import { MemoryStore, VersionConflictError, type ApplyResult, type StoreOptions } from '../store/memory.js';
import { LocalProposer } from '../store/local.js';
import { writeChunked } from './chunked.js';

function task(i: number): Task {
  return {
    id: `t${String(i).padStart(3, '0')}`,
    serviceId: 'svc',
    specVersion: 1,
    slot: i,
    nodeId: '',
    status: { state: TaskState.TASK_STATE_NEW, timestampUnixMs: 0, message: 'x'.repeat(200), err: '', pendingReason: '' },
    desiredState: TaskState.TASK_STATE_RUNNING,
    networks: [],
    jobIteration: 0,
  };
}

/** A store whose log applies 2 ms after a proposal, counting proposals and the most in flight. */
function slowStore(opts: StoreOptions = {}): { store: MemoryStore; proposals: () => number; maxInFlight: () => number } {
  const store = new MemoryStore(opts);
  const local = new LocalProposer(store);
  let n = 0;
  let inFlight = 0;
  let max = 0;
  store.setProposer({
    propose: async (data: Uint8Array): Promise<ApplyResult> => {
      n++;
      max = Math.max(max, ++inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
      return local.propose(data);
    },
  });
  return { store, proposals: () => n, maxInFlight: () => max };
}

const assign = (tx: Parameters<Parameters<typeof writeChunked>[3]>[0], chunk: readonly string[]): number => {
  for (const id of chunk) {
    const t = tx.get('task', id)!;
    tx.update('task', { ...t, nodeId: 'n1' });
  }
  return chunk.length;
};

describe('writeChunked', () => {
  it('writes chunks with up to maxInFlight transactions proposed at once', async () => {
    const { store, proposals, maxInFlight } = slowStore();
    const ts = Array.from({ length: 95 }, (_, i) => task(i));
    await store.update((tx) => ts.forEach((t) => tx.create('task', t)));
    const before = proposals();
    const r = await writeChunked(store, ts.map((t) => t.id), { maxPerTx: 10, maxInFlight: 3, stopped: () => false }, assign);
    expect(r).toEqual({ failed: [], transactions: 10, counted: 95 });
    expect(proposals() - before).toBe(10);
    expect(maxInFlight()).toBe(3);
    expect(store.list('task').every((t) => t.nodeId === 'n1')).toBe(true);
  });

  it('splits a transaction whose request exceeds one log entry until it fits', async () => {
    // About 300 bytes per task: 12 KiB holds a few dozen, not 100.
    const { store } = slowStore({ maxRequestBytes: 12 << 10 });
    const ts = Array.from({ length: 100 }, (_, i) => task(i));
    for (let i = 0; i < ts.length; i += 20) await store.update((tx) => ts.slice(i, i + 20).forEach((t) => tx.create('task', t)));
    const r = await writeChunked(store, ts.map((t) => t.id), { maxPerTx: 100, maxInFlight: 2, stopped: () => false }, assign);
    expect(r.failed).toEqual([]);
    expect(r.counted).toBe(100);
    expect(r.transactions).toBeGreaterThan(2);
    expect(store.list('task').every((t) => t.nodeId === 'n1')).toBe(true);
  });

  it('stops proposing after a failure and returns the ids left unwritten with the error', async () => {
    const { store } = slowStore();
    const ts = Array.from({ length: 50 }, (_, i) => task(i));
    await store.update((tx) => ts.forEach((t) => tx.create('task', t)));
    // The third chunk's first task changes between its transaction and the apply.
    const stale = store.get('task', ts[20]!.id)!;
    await store.update((tx) => tx.update('task', { ...stale, slot: 999 }));
    const r = await writeChunked(store, ts.map((t) => t.id), { maxPerTx: 10, maxInFlight: 1, stopped: () => false }, (tx, chunk) => {
      for (const id of chunk) tx.update('task', { ...(id === stale.id ? stale : tx.get('task', id)!), nodeId: 'n1' });
      return chunk.length;
    });
    expect(r.failure?.err).toBeInstanceOf(VersionConflictError);
    expect(r.transactions).toBe(2);
    expect(r.failed).toEqual(ts.slice(20).map((t) => t.id));
    expect(store.list('task').filter((t) => t.nodeId === 'n1')).toHaveLength(20);
  });
});

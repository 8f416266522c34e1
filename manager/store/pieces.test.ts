// Objects not in use are held as their snapshot pieces only (pieces.ts); the store must answer
// exactly as before: reads, indexes, transactions against demoted objects, lists, snapshots
// (byte for byte) and restores.
import { describe, expect, it } from 'vitest';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import type { Secret, Task } from '../../proto/gen/tswarm/objects.js';
import { LocalProposer } from './local.js';
import { MemoryStore } from './memory.js';

const secret = (i: number): Secret => ({ id: `sec${String(i).padStart(22, '0')}`, spec: { annotations: { name: `s${i}`, labels: { half: String(i % 2) } }, data: Buffer.alloc(100 + (i % 2000), i % 251) } });
const task = (i: number): Task => ({ id: `tsk${String(i).padStart(22, '0')}`, serviceId: `svc${i % 3}`, nodeId: `node${i % 5}`, slot: i, specVersion: 1, desiredState: TaskState.TASK_STATE_RUNNING, networks: [], jobIteration: 0 });

async function filled(n: number): Promise<MemoryStore> {
  // A fixed clock: two stores filled alike hold the same bytes.
  const store = new MemoryStore({ now: () => 1_800_000_000_000 });
  store.setProposer(new LocalProposer(store));
  await store.batch(Array.from({ length: n }, (_, i) => (tx) => tx.create('secret', secret(i))), 500);
  await store.batch(Array.from({ length: n }, (_, i) => (tx) => tx.create('task', task(i))), 500);
  return store;
}

/** Two full passes of the clock: the first clears the marks of the reads, the second demotes. */
function demoteAll(store: MemoryStore): void {
  store.sweep(Infinity);
  store.sweep(Infinity);
}

describe('objects held as pieces', () => {
  it('holds writes as pieces, keeps what is read decoded until the clock passes it twice unread, and answers as before', async () => {
    const store = await filled(300);
    // A write is held as its piece; a read of all keeps all decoded.
    expect(store.residency('secret')).toMatchObject({ objects: 300, decoded: 0 });
    const before = { secrets: store.list('secret'), tasks: store.list('task'), snapshot: Buffer.from(store.snapshot()) };
    expect(store.residency('secret')).toMatchObject({ objects: 300, decoded: 300 });
    demoteAll(store);
    expect(store.residency('secret')).toMatchObject({ objects: 300, decoded: 0 });
    expect(store.residency('task')).toMatchObject({ objects: 300, decoded: 0 });

    expect(Buffer.from(store.snapshot()).equals(before.snapshot)).toBe(true);
    const scan = store.scan('secret');
    expect(Array.from({ length: scan.length }, (_, i) => scan.at(i))).toEqual(before.secrets);
    expect(Array.from({ length: scan.length }, (_, i) => scan.idAt(i))).toEqual(before.secrets.map((s) => s.id));
    // A scan decodes what it is asked for, and keeps none of it decoded.
    expect(store.residency('secret').decoded).toBe(0);
    expect(store.byName('secret', 's7')).toEqual(before.secrets[7]);
    expect(store.byLabel('secret', 'half', '1').map((s) => s.id).sort()).toEqual(before.secrets.filter((_, i) => i % 2 === 1).map((s) => s.id));
    expect(store.findTasks({ serviceId: 'svc1', nodeId: 'node2' }).map((t) => t.slot).sort((a, b) => a - b)).toEqual(before.tasks.filter((t) => t.serviceId === 'svc1' && t.nodeId === 'node2').map((t) => t.slot));
    // A read keeps the object decoded again (byLabel read the odd ones), until two passes go by without another.
    expect(store.residency('secret').decoded).toBe(150);
    demoteAll(store);
    expect(store.get('secret', secret(3).id)).toEqual(before.secrets[3]);
    expect(store.residency('secret').decoded).toBe(1);
    store.sweep(Infinity);
    expect(store.residency('secret').decoded).toBe(1);
    store.sweep(Infinity);
    expect(store.residency('secret').decoded).toBe(0);
  });

  it('takes updates and removes of demoted objects, with the version check, and their snapshot is what a never-demoted store makes', async () => {
    const [store, twin] = [await filled(50), await filled(50)];
    demoteAll(store);
    const change = async (s: MemoryStore): Promise<void> => {
      await s.update((tx) => {
        const cur = tx.get('secret', secret(4).id)!;
        tx.update('secret', { ...cur, spec: { ...cur.spec!, annotations: { name: 's4', labels: { half: 'changed' } } } });
        tx.remove('task', task(9).id);
      });
      // A write based on a version that moved is refused, as for a decoded object.
      await expect(s.update((tx) => tx.update('secret', { ...secret(4), meta: { version: 1, createdAtUnixMs: 0, updatedAtUnixMs: 0 } }))).rejects.toThrow(/out of sequence/);
    };
    await change(store);
    await change(twin);
    expect(store.get('secret', secret(4).id)?.spec?.annotations?.labels).toEqual({ half: 'changed' });
    expect(store.byLabel('secret', 'half', 'changed')).toHaveLength(1);
    expect(store.get('task', task(9).id)).toBeUndefined();
    demoteAll(store);
    expect(Buffer.from(store.snapshot()).equals(Buffer.from(twin.snapshot()))).toBe(true);
  });

  it('restores a snapshot as pieces, with every index, and snapshots it again byte for byte', async () => {
    const src = await filled(120);
    const data = Buffer.from(src.snapshot());
    const copy = new MemoryStore();
    copy.restore(data);
    expect(copy.residency('secret')).toMatchObject({ objects: 120, decoded: 0 });
    expect(copy.version).toBe(src.version);
    expect(copy.byName('secret', 's119')).toEqual(src.byName('secret', 's119'));
    expect(copy.findTasks({ nodeId: 'node3' }).length).toBe(src.findTasks({ nodeId: 'node3' }).length);
    expect(Buffer.from(copy.snapshot()).equals(data)).toBe(true);
    // The pieces kept are copies: the snapshot's buffer can go.
    data.fill(0);
    expect(copy.get('secret', secret(5).id)).toEqual(src.get('secret', secret(5).id));
  });

  it('sweeps a large store a bounded turn at a time, and moves the pieces out of mostly dead slabs', async () => {
    const store = await filled(30_000);
    const kept = store.list('secret').filter((_, i) => i % 4 === 0);
    store.list('task');
    // Three in four secrets go: their slabs are mostly dead, and the live pieces in them must move.
    await store.batch(store.list('secret').filter((_, i) => i % 4 !== 0).map((s) => (tx) => tx.remove('secret', s.id)), 500);
    expect(store.residency('secret').inSparseSlabs).toBeGreaterThan(7_000);
    const turns: number[] = [];
    for (let passes = 0; passes < 2 && turns.length < 10_000; ) {
      const t = performance.now();
      if (store.sweep(2)) passes++;
      turns.push(performance.now() - t);
    }
    expect(store.residency('secret')).toEqual({ objects: 7_500, decoded: 0, inSparseSlabs: 0 });
    expect(store.residency('task')).toMatchObject({ objects: 30_000, decoded: 0 });
    // The work went in many turns of about the budget (2 ms); a GC step may fall inside one, so
    // the median is what is bounded, generously for a loaded machine.
    expect(turns.length).toBeGreaterThan(3);
    expect(turns.sort((a, b) => a - b)[turns.length >> 1]).toBeLessThan(10);
    // Moved, the pieces read back as they were.
    expect(store.list('secret')).toEqual(kept);
  });
});

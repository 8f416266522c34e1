// The store suite, run on each backend: transactions, version conflicts, unique names, indexes,
// watches resuming from a version, batching (store.batch, and transactions proposed together
// sharing a log entry), snapshot and restore. Every backend proposes through a BatchingProposer,
// as the manager does. The Raft backend is three in-process managers with real disks and gRPC on
// loopback; every manager's store must agree.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service, Task } from '../../proto/gen/tswarm/objects.js';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import { newId } from '../../common/identity.js';
import { RaftServer } from '../raft/server.js';
import { LocalProposer } from './local.js';
import { MemoryStore, NameConflictError, VersionConflictError, WatchCompactedError, type ApplyResult } from './memory.js';
import { RaftProposer, storeStateMachine } from './raft.js';
import { BatchingProposer } from './batching.js';
import { EtcdLog } from './etcd.js';
import { startEtcd, type EtcdServer } from '../../test/etcd/etcd.js';

interface Backend {
  name: string;
  /** The store writes go to. */
  store: () => MemoryStore;
  /** Every replica's store (for agreement checks). */
  replicas: () => MemoryStore[];
  setup: () => Promise<void>;
  teardown: () => Promise<void>;
  /** Waits until every replica has applied the writer's version. */
  settle: () => Promise<void>;
}

function service(name: string, labels: Record<string, string> = {}): Service {
  return {
    id: newId(),
    spec: { annotations: { name, labels }, mode: { $case: 'replicated', replicated: { replicas: 1 } } },
    specVersion: 1,
    pendingDelete: false,
    registryAuth: Buffer.alloc(0),
  };
}

function task(serviceId: string, nodeId: string, slot: number): Task {
  return { id: newId(), serviceId, nodeId, slot, specVersion: 1, desiredState: TaskState.TASK_STATE_RUNNING, networks: [], jobIteration: 0 };
}

function localBackend(): Backend {
  let store: MemoryStore;
  return {
    name: 'local',
    store: () => store,
    replicas: () => [store],
    setup: () => {
      store = new MemoryStore({ eventHistory: 50 });
      store.setProposer(new BatchingProposer(new LocalProposer(store)));
      return Promise.resolve();
    },
    teardown: () => Promise.resolve(),
    settle: () => Promise.resolve(),
  };
}

function raftBackend(): Backend {
  const stores: MemoryStore[] = [];
  const servers: RaftServer<ApplyResult>[] = [];
  let root = '';
  let leader = 0;
  const base = 43000 + (process.pid % 300) * 10;
  return {
    name: 'raft (3 managers)',
    store: () => stores[leader]!,
    replicas: () => stores,
    setup: async () => {
      root = mkdtempSync(join(tmpdir(), 'store-raft-'));
      const peers = new Map([1, 2, 3].map((id) => [id, `127.0.0.1:${base + id}`]));
      for (const id of [1, 2, 3]) {
        const store = new MemoryStore({ eventHistory: 50 });
        const raft = new RaftServer<ApplyResult>({ id, dataDir: join(root, `m${id}`), listenAddr: peers.get(id)!, peers, bootstrapVoters: [1, 2, 3], stateMachine: storeStateMachine(store), tickMs: 10 });
        store.setProposer(new BatchingProposer(new RaftProposer(raft)));
        stores.push(store);
        servers.push(raft);
      }
      await Promise.all(servers.map((s) => s.start()));
      for (let i = 0; i < 500; i++) {
        const l = servers.findIndex((s) => s.status().role === 'leader' && s.status().commit > 3);
        if (l >= 0) {
          leader = l;
          return;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error('no leader');
    },
    teardown: async () => {
      await Promise.all(servers.map((s) => s.stop()));
      rmSync(root, { recursive: true, force: true });
    },
    settle: async () => {
      const v = stores[leader]!.version;
      for (let i = 0; i < 500 && stores.some((s) => s.version < v); i++) await new Promise((r) => setTimeout(r, 10));
    },
  };
}

function etcdBackend(): Backend {
  let etcd: EtcdServer;
  const logs: EtcdLog[] = [];
  const stores: MemoryStore[] = [];
  return {
    name: 'etcd (2 managers, one etcd member)',
    store: () => stores[0]!,
    replicas: () => stores,
    setup: async () => {
      etcd = await startEtcd();
      for (let i = 0; i < 2; i++) {
        const store = new MemoryStore({ eventHistory: 50 });
        const log = new EtcdLog(etcd.client(), store);
        store.setProposer(new BatchingProposer(log));
        await log.start();
        stores.push(store);
        logs.push(log);
      }
    },
    teardown: async () => {
      await Promise.all(logs.map((l) => l.stop()));
      await etcd?.stop();
    },
    settle: async () => {
      const v = stores[0]!.version;
      for (let i = 0; i < 500 && stores.some((s) => s.version < v); i++) await new Promise((r) => setTimeout(r, 10));
    },
  };
}

describe.each([localBackend(), raftBackend(), etcdBackend()])('store on $name', (b) => {
  beforeAll(() => b.setup());
  afterAll(() => b.teardown());

  it('creates, reads and indexes objects in one transaction, with versions from the log', async () => {
    const s = service('web', { tier: 'front' });
    const t1 = task(s.id, 'node-a', 1);
    const t2 = task(s.id, 'node-b', 2);
    const v = await b.store().update((tx) => {
      tx.create('service', s);
      tx.create('task', t1);
      tx.create('task', t2);
    });
    const st = b.store();
    expect(st.get('service', s.id)?.meta?.version).toBe(v);
    expect(st.byName('service', 'web')?.id).toBe(s.id);
    expect(st.byLabel('service', 'tier', 'front').map((x) => x.id)).toEqual([s.id]);
    expect(st.findTasks({ serviceId: s.id }).map((t) => t.slot).sort()).toEqual([1, 2]);
    expect(st.findTasks({ serviceId: s.id, nodeId: 'node-b' }).map((t) => t.id)).toEqual([t2.id]);
    expect(st.findTasks({ desiredState: TaskState.TASK_STATE_RUNNING }).length).toBeGreaterThanOrEqual(2);
    await b.settle();
    for (const r of b.replicas()) expect(r.get('task', t2.id)).toEqual(st.get('task', t2.id));
  });

  it('refuses an update based on an old version, and a duplicate name, leaving nothing half-written', async () => {
    const s = service('api');
    await b.store().update((tx) => tx.create('service', s));
    const read = b.store().get('service', s.id)!;
    await b.store().update((tx) => tx.update('service', { ...read, specVersion: 2 }));
    await expect(b.store().update((tx) => tx.update('service', { ...read, specVersion: 3 }))).rejects.toBeInstanceOf(VersionConflictError);
    const other = service('api');
    const t = task(other.id, 'n', 1);
    await expect(
      b.store().update((tx) => {
        tx.create('task', t);
        tx.create('service', other);
      }),
    ).rejects.toBeInstanceOf(NameConflictError);
    expect(b.store().get('task', t.id)).toBeUndefined();
    expect(b.store().get('service', s.id)?.specVersion).toBe(2);
  });

  it('detects a conflict that arises between the transaction and its apply', async () => {
    const s = service('race');
    await b.store().update((tx) => tx.create('service', s));
    const read = b.store().get('service', s.id)!;
    // Two writers read the same version; the first to apply wins, the second gets a conflict.
    const results = await Promise.allSettled([
      b.store().update((tx) => tx.update('service', { ...read, specVersion: 10 })),
      b.store().update((tx) => tx.update('service', { ...read, specVersion: 11 })),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const rejected = results.find((r) => r.status === 'rejected')!;
    expect(rejected.reason).toBeInstanceOf(VersionConflictError);
    expect((rejected.reason as Error).message).toMatch(/out of sequence/);
  });

  it('applies transactions proposed together as one entry, each to its own verdict, identically on every replica', async () => {
    const s = service('together');
    await b.store().update((tx) => tx.create('service', s));
    const read = b.store().get('service', s.id)!;
    const before = b.store().version;
    const results = await Promise.allSettled([
      // The log is idle: this one goes at once, alone; the rest, proposed in the same turn, share the next entry.
      b.store().update((tx) => tx.create('service', service('alone'))),
      b.store().update((tx) => tx.update('service', { ...read, specVersion: 2 })),
      b.store().update((tx) => tx.update('service', { ...read, specVersion: 3 })), // based on the version the one before replaced
      b.store().update((tx) => tx.create('service', service('twin'))),
      b.store().update((tx) => tx.create('service', service('twin'))), // the name the one before took
      b.store().update((tx) => tx.create('task', task(s.id, 'n', 1))),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(VersionConflictError);
    expect((results[4] as PromiseRejectedResult).reason).toBeInstanceOf(NameConflictError);
    const versions = results.map((r) => (r.status === 'fulfilled' ? r.value : 0));
    expect(versions[0]).toBeGreaterThan(before);
    // The four that applied in the second entry share its index.
    expect(new Set([versions[1], versions[3], versions[5]]).size).toBe(1);
    // Two entries: in the order proposed on our own log; etcd may commit two puts in flight either way round.
    if (b.name.startsWith('etcd')) expect(versions[1]).not.toBe(versions[0]);
    else expect(versions[1]).toBeGreaterThan(versions[0]!);
    expect(b.store().get('service', s.id)?.specVersion).toBe(2);
    expect(b.store().get('service', s.id)?.meta?.version).toBe(versions[1]);
    await b.settle();
    for (const r of b.replicas()) {
      expect(r.byName('service', 'twin')?.id).toBe(b.store().byName('service', 'twin')?.id);
      expect(r.get('service', s.id)).toEqual(b.store().get('service', s.id));
      expect(Buffer.from(r.snapshot()).equals(Buffer.from(b.store().snapshot()))).toBe(true);
    }
  });

  it('streams changes to watches and resumes from a version', async () => {
    const from = b.store().version;
    const live = b.store().watch({ kinds: ['service'] });
    const s1 = service('w1');
    const s2 = service('w2');
    await b.store().update((tx) => tx.create('service', s1));
    await b.store().update((tx) => tx.create('task', task(s1.id, 'x', 1)));
    await b.store().update((tx) => tx.remove('service', s1.id));
    await b.store().update((tx) => tx.create('service', s2));
    expect(live.take().map((e) => `${e.action}:${e.object.id}`)).toEqual([`create:${s1.id}`, `remove:${s1.id}`, `create:${s2.id}`]);
    live.close();
    const resumed = b.store().watch({ fromVersion: from, kinds: ['service', 'task'] });
    expect(resumed.take().map((e) => e.action)).toEqual(['create', 'create', 'remove', 'create']);
    resumed.close();
    // Far in the past: those events are no longer kept.
    for (let i = 0; i < 60; i++) await b.store().update((tx) => tx.create('task', task(s2.id, 'y', i)));
    expect(() => b.store().watch({ fromVersion: from })).toThrow(WatchCompactedError);
  });

  it('batches many changes into few log entries', async () => {
    const s = service('batch');
    await b.store().update((tx) => tx.create('service', s));
    const before = b.store().version;
    const errors = await b.store().batch(Array.from({ length: 450 }, (_, i) => (tx) => tx.create('task', task(s.id, 'n', i))));
    expect(errors).toEqual([]);
    expect(b.store().findTasks({ serviceId: s.id })).toHaveLength(450);
    // 200 actions per entry at most: 3 entries (the log adds none of its own in between).
    expect(b.store().version - before).toBeLessThanOrEqual(3 + 2);
  });

  it('snapshots and restores everything, indexes included', async () => {
    await b.settle();
    const src = b.store();
    const copy = new MemoryStore();
    copy.restore(src.snapshot());
    expect(copy.version).toBe(src.version);
    for (const kind of ['service', 'task'] as const) {
      expect(copy.list(kind).map((o) => o.id).sort()).toEqual(src.list(kind).map((o) => o.id).sort());
    }
    const svc = src.byName('service', 'web')!;
    expect(copy.byName('service', 'web')?.id).toBe(svc.id);
    expect(copy.findTasks({ serviceId: svc.id })).toHaveLength(2);
    for (const r of b.replicas()) expect(Buffer.from(r.snapshot()).equals(Buffer.from(src.snapshot()))).toBe(true);
  });
});

describe('batch over a slow log', () => {
  /** A log that applies each request 5 ms after it is proposed, counting requests in flight. */
  function slowStore(fail?: (n: number) => Error | undefined): { store: MemoryStore; maxInFlight: () => number } {
    const store = new MemoryStore();
    const local = new LocalProposer(store);
    let inFlight = 0;
    let max = 0;
    let n = 0;
    store.setProposer({
      propose: async (data: Uint8Array): Promise<ApplyResult> => {
        const k = ++n;
        max = Math.max(max, ++inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        const err = fail?.(k);
        if (err) throw err;
        return local.propose(data);
      },
    });
    return { store, maxInFlight: () => max };
  }

  it('proposes up to maxInFlight requests at once and reports each refused one', async () => {
    const { store, maxInFlight } = slowStore();
    const s = service('slow');
    await store.update((tx) => tx.create('service', s));
    const taken = task(s.id, 'n', 0);
    await store.update((tx) => tx.create('task', taken));
    const fns = Array.from({ length: 100 }, (_, i) => (tx: Parameters<Parameters<MemoryStore['batch']>[0][number]>[0]) => tx.create('task', task(s.id, 'n', i + 1)));
    // Entry 50 creates a task that exists: refused at once, the rest of its request goes on.
    fns[50] = (tx) => tx.create('task', taken);
    const errors = await store.batch(fns, 10, 4);
    expect(maxInFlight()).toBe(4);
    expect(errors.map((e) => e.constructor.name)).toEqual(['ExistsError']);
    expect(store.findTasks({ serviceId: s.id })).toHaveLength(100);
  });

  it('cuts requests by their encoded size as well as by their number of actions', async () => {
    const store = new MemoryStore({ maxRequestBytes: 16 << 10 });
    const local = new LocalProposer(store);
    const sizes: number[] = [];
    store.setProposer({
      propose: (data: Uint8Array): Promise<ApplyResult> => {
        sizes.push(data.length);
        return local.propose(data);
      },
    });
    const s = service('sized');
    await store.update((tx) => tx.create('service', s));
    sizes.length = 0;
    const big = (i: number): Task => ({ ...task(s.id, 'n', i), annotations: { name: 'x'.repeat(500), labels: {} } });
    const errors = await store.batch(Array.from({ length: 100 }, (_, i) => (tx: Parameters<Parameters<MemoryStore['batch']>[0][number]>[0]) => tx.create('task', big(i))), 1000);
    expect(errors).toEqual([]);
    expect(store.findTasks({ serviceId: s.id })).toHaveLength(100);
    // About 600 bytes a task: a request is cut once it passes half the limit (8 KiB), so it ends
    // a little above that, far below the limit: about 7 requests, not one.
    expect(sizes.length).toBeGreaterThanOrEqual(6);
    for (const n of sizes.slice(0, -1)) {
      expect(n).toBeGreaterThan(8 << 10);
      expect(n).toBeLessThan(9 << 10);
    }
  });

  it('stops proposing when the log refuses a request, and rejects with its error', async () => {
    const { store } = slowStore((k) => (k === 3 ? new Error('not the leader') : undefined));
    const s = service('refused');
    await store.update((tx) => tx.create('service', s));
    const fns = Array.from({ length: 100 }, (_, i) => (tx: Parameters<Parameters<MemoryStore['batch']>[0][number]>[0]) => tx.create('task', task(s.id, 'n', i)));
    await expect(store.batch(fns, 10, 2)).rejects.toThrow('not the leader');
    // Requests 2 and 4 applied (proposed before the refusal of 3 was known), none after.
    expect(store.findTasks({ serviceId: s.id })).toHaveLength(20);
  });
});

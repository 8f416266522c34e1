// The allocator over a MemoryStore: NEW tasks become PENDING, a burst in one transaction, and
// tasks created while it was stopped are picked up when it starts again; tasks get an address on
// each of their overlay networks, nodes one of their own on the networks of their tasks.
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Network, Node, Service, type Task } from '../../proto/gen/tswarm/objects.js';
import { EndpointSpec_ResolutionMode, TaskState } from '../../proto/gen/tswarm/types.js';
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

describe('Allocator, overlay addresses', () => {
  let allocator: Allocator | undefined;
  afterEach(async () => {
    await allocator?.stop();
    allocator = undefined;
  });

  const net = (id: string, subnet: string): Network => Network.fromPartial({ id, vni: 4096, spec: { annotations: { name: id, labels: {} }, driver: 'overlay' }, ipam: [{ subnet, gateway: subnet.replace(/0\/\d+$/, '1'), range: '' }] });
  const on = (t: Task, ...networks: string[]): Task => ({ ...t, spec: { networks: networks.map((target) => ({ target, aliases: [] })), forceUpdate: 0 } });
  const addresses = (store: MemoryStore, id: string): string[] => store.get('task', id)!.networks.map((a) => `${a.networkId}:${a.addresses.join(',')}`);

  it('gives each task an address on each of its networks, in order; a full network leaves the task NEW with the reason, until an address is freed', async () => {
    const { store } = countingStore();
    await store.update((tx) => {
      tx.create('network', net('front', '10.1.0.0/29')); // 5 addresses: .2 to .6
      tx.create('network', net('back', '10.2.0.0/24'));
    });
    allocator = new Allocator(store, log);
    allocator.start();
    const ts = Array.from({ length: 6 }, () => on(newTask(), 'front', 'back'));
    await store.update((tx) => ts.forEach((t) => tx.create('task', t)));
    await until(() => ts.slice(0, 5).every((t) => stateOf(store, t.id) === TaskState.TASK_STATE_PENDING) && store.get('task', ts[5]!.id)!.status!.pendingReason !== '');
    expect(addresses(store, ts[0]!.id)).toEqual(['front:10.1.0.2/29', 'back:10.2.0.2/24']);
    expect(new Set(ts.slice(0, 5).map((t) => addresses(store, t.id)[0])).size).toBe(5);
    const blocked = store.get('task', ts[5]!.id)!;
    expect(blocked.status).toMatchObject({ state: TaskState.TASK_STATE_NEW, pendingReason: 'no free address on network front (10.1.0.0/29: all 5 held)' });
    expect(blocked.networks).toEqual([]);
    // One ends: its address is free, and the waiting task takes it.
    const done = store.get('task', ts[2]!.id)!;
    await store.update((tx) => tx.update('task', { ...done, status: { ...done.status!, state: TaskState.TASK_STATE_COMPLETE } }));
    await until(() => stateOf(store, ts[5]!.id) === TaskState.TASK_STATE_PENDING);
    expect(addresses(store, ts[5]!.id)[0]).toBe(`front:${done.networks[0]!.addresses[0]}`);
  });

  it('leaves a task whose network does not exist NEW, saying so, and places it once the network is made', async () => {
    const { store } = countingStore();
    allocator = new Allocator(store, log);
    allocator.start();
    const t = on(newTask(), 'later');
    await store.update((tx) => tx.create('task', t));
    await until(() => store.get('task', t.id)!.status!.pendingReason === 'network "later" not found');
    await store.update((tx) => tx.create('network', net('later', '10.3.0.0/24')));
    await until(() => stateOf(store, t.id) === TaskState.TASK_STATE_PENDING);
  });

  it('gives a node an address on the networks of its placed tasks and takes it back when the last one ends; a new leader hands out nothing twice', async () => {
    const { store } = countingStore();
    await store.update((tx) => {
      tx.create('network', net('front', '10.1.0.0/24'));
      tx.create('node', Node.fromPartial({ id: 'w1', attachments: [] }));
    });
    allocator = new Allocator(store, log);
    allocator.start();
    const a = on(newTask(), 'front');
    const b = on(newTask(), 'front');
    await store.update((tx) => [a, b].forEach((t) => tx.create('task', t)));
    await until(() => [a, b].every((t) => stateOf(store, t.id) === TaskState.TASK_STATE_PENDING));
    const place = async (id: string, state: TaskState): Promise<void> => {
      const t = store.get('task', id)!;
      await store.update((tx) => tx.update('task', { ...t, nodeId: 'w1', status: { ...t.status!, state } }));
    };
    await place(a.id, TaskState.TASK_STATE_ASSIGNED);
    await place(b.id, TaskState.TASK_STATE_ASSIGNED);
    await until(() => store.get('node', 'w1')!.attachments.length === 1);
    const nodeAddress = store.get('node', 'w1')!.attachments[0]!.addresses[0]!;
    const taken = [a, b].map((t) => store.get('task', t.id)!.networks[0]!.addresses[0]);
    expect(taken).not.toContain(nodeAddress);
    // Another leader: the pools come back from the store.
    await allocator.stop();
    allocator = new Allocator(store, log);
    allocator.start();
    const c = on(newTask(), 'front');
    await store.update((tx) => tx.create('task', c));
    await until(() => stateOf(store, c.id) === TaskState.TASK_STATE_PENDING);
    expect([...taken, nodeAddress]).not.toContain(store.get('task', c.id)!.networks[0]!.addresses[0]);
    // The node's tasks end: its address goes too.
    await place(a.id, TaskState.TASK_STATE_SHUTDOWN);
    expect(store.get('node', 'w1')!.attachments.length).toBe(1);
    await place(b.id, TaskState.TASK_STATE_FAILED);
    await until(() => store.get('node', 'w1')!.attachments.length === 0);
  });

  it('gives a service in vip mode a VIP on each of its networks, keeps it across changes and a new leader, and frees it when the service leaves the network, turns dnsrr or goes', async () => {
    const { store } = countingStore();
    await store.update((tx) => {
      tx.create('network', net('front', '10.1.0.0/24'));
      tx.create('network', net('back', '10.2.0.0/29')); // 5 addresses: .2 to .6
    });
    const svc = (networks: string[], mode = EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP): Service =>
      Service.fromPartial({ id: 'web', spec: { annotations: { name: 'web', labels: {} }, task: { networks: networks.map((target) => ({ target, aliases: [] })) }, endpoint: { mode, ports: [] } } });
    const vips = (): string[] => (store.get('service', 'web')?.endpoint?.virtualIps ?? []).map((v) => `${v.networkId}:${v.addr}`);
    allocator = new Allocator(store, log);
    allocator.start();
    await store.update((tx) => tx.create('service', svc(['front', 'back'])));
    await until(() => vips().length === 2);
    expect(vips()).toEqual(['front:10.1.0.2/24', 'back:10.2.0.2/29']);
    // A task on front does not get the VIP's address; a new leader (a fresh allocator) neither.
    await allocator.stop();
    allocator = new Allocator(store, log);
    allocator.start();
    const t = on(newTask(), 'front');
    await store.update((tx) => tx.create('task', t));
    await until(() => stateOf(store, t.id) === TaskState.TASK_STATE_PENDING);
    expect(addresses(store, t.id)).toEqual(['front:10.1.0.3/24']);
    // An update that keeps front keeps its VIP and frees back's; dnsrr frees all; vip again takes anew.
    const update = async (next: Service): Promise<void> => {
      await store.update((tx) => tx.update('service', { ...tx.get('service', 'web')!, spec: next.spec }));
    };
    await update(svc(['front']));
    await until(() => vips().length === 1);
    expect(vips()).toEqual(['front:10.1.0.2/24']);
    await update(svc(['front'], EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR));
    await until(() => vips().length === 0);
    expect(store.get('service', 'web')?.endpoint?.spec?.mode).toBe(EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR);
    await update(svc(['back']));
    await until(() => vips().length === 1);
    expect(vips()[0]).toMatch(/^back:10\.2\.0\.[2-6]\/29$/);
    // Removed: its address is free again; the network's five addresses go to five tasks.
    await store.update((tx) => tx.remove('service', 'web'));
    const us = Array.from({ length: 5 }, () => on(newTask(), 'back'));
    await store.update((tx) => us.forEach((u) => tx.create('task', u)));
    await until(() => us.every((u) => stateOf(store, u.id) === TaskState.TASK_STATE_PENDING));
  });
});

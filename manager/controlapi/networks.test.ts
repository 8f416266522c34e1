// The control API's networks on a store with the local proposer: create allocates the subnet and
// VNI in its transaction; bad specs are refused naming the field; services name networks by id;
// a network in use cannot be removed.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../common/errors.js';
import { Task } from '../../proto/gen/tswarm/objects.js';
import { ContainerSpec, NetworkSpec, type ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import { LocalProposer } from '../store/local.js';
import { MemoryStore } from '../store/memory.js';
import { ControlApi } from './control.js';

function api(): { store: MemoryStore; control: ControlApi } {
  const store = new MemoryStore();
  store.setProposer(new LocalProposer(store));
  return { store, control: new ControlApi(store) };
}

const netSpec = (name: string, over: Partial<NetworkSpec> = {}): NetworkSpec => NetworkSpec.fromPartial({ annotations: { name, labels: {} }, driver: 'overlay', ...over });
const svc = (name: string, networks: string[]): ServiceSpec => ({
  annotations: { name, labels: {} },
  mode: { $case: 'replicated', replicated: { replicas: 1 } },
  task: { container: ContainerSpec.fromPartial({ image: 'busybox' }), networks: networks.map((target) => ({ target, aliases: [] })), forceUpdate: 0 },
});

async function refusal(p: Promise<unknown>): Promise<InvalidArgumentError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('not refused');
}

describe('control API networks', () => {
  it('allocates each network a subnet of the pool and a VNI, in order, and keeps a given subnet', async () => {
    const { control } = api();
    const a = await control.createNetwork(netSpec('a'));
    const b = await control.createNetwork(netSpec('b', { ipam: [{ subnet: '172.20.0.0/16', gateway: '', range: '172.20.5.0/24' }], internal: true, attachable: true }));
    const c = await control.createNetwork(netSpec('c'));
    expect([a.ipam, a.vni]).toEqual([[{ subnet: '10.0.0.0/24', gateway: '10.0.0.1', range: '' }], 4096]);
    expect([b.ipam, b.vni, b.spec?.internal, b.spec?.attachable]).toEqual([[{ subnet: '172.20.0.0/16', gateway: '172.20.0.1', range: '172.20.5.0/24' }], 4097, true, true]);
    expect([c.ipam[0]?.subnet, c.vni]).toEqual(['10.0.1.0/24', 4098]);
  });

  it.each([
    ['an overlapping subnet', netSpec('y', { ipam: [{ subnet: '10.0.0.0/16', gateway: '', range: '' }] }), 'spec.ipam[0].subnet', /overlaps network x's 10\.0\.0\.0\/24/],
    ['a gateway outside the subnet', netSpec('y', { ipam: [{ subnet: '10.5.0.0/24', gateway: '10.6.0.1', range: '' }] }), 'spec.ipam[0].gateway', /outside the subnet/],
    ['an MTU below 1280', netSpec('y', { driverOptions: { 'com.docker.network.driver.mtu': '1000' } }), 'spec.mtu', /between 1280 and/],
    ['an MTU that is not a number', netSpec('y', { driverOptions: { 'com.docker.network.driver.mtu': 'big' } }), 'spec.driverOptions["com.docker.network.driver.mtu"]', /whole number/],
    ['encryption', netSpec('y', { driverOptions: { encrypted: '' } }), 'spec.driverOptions["encrypted"]', /IPsec .* WireGuard/],
    ['an unknown driver option', netSpec('y', { driverOptions: { 'com.docker.network.bridge.name': 'x' } }), 'spec.driverOptions["com.docker.network.bridge.name"]', /not an option of the overlay driver/],
    ['the bridge driver', netSpec('y', { driver: 'bridge' }), 'spec.driver', /local to a node/],
    ['a second network of a name', netSpec('x'), 'spec.annotations.name', /a network named "x" exists/],
  ])('refuses %s, naming the field, and makes nothing', async (_what, spec, field, rule) => {
    const { store, control } = api();
    await control.createNetwork(netSpec('x'));
    const e = await refusal(control.createNetwork(spec));
    expect(e.field).toBe(field);
    expect(e.rule).toMatch(rule);
    expect(store.list('network').map((n) => n.spec?.annotations?.name)).toEqual(['x']);
  });

  it('stores a service\'s networks by id, refuses one that does not exist, and keeps a network in use', async () => {
    const { store, control } = api();
    const front = await control.createNetwork(netSpec('front'));
    const { service } = await control.createService(svc('web', ['front']));
    expect(service.spec?.task?.networks).toEqual([{ target: front.id, aliases: [] }]);
    const e = await refusal(control.createService(svc('api', ['nope'])));
    expect([e.field, e.rule]).toEqual(['spec.task.networks[0].target', 'network "nope" not found']);
    expect((await refusal(control.createService(svc('two', ['front', front.id])))).rule).toMatch(/same network as another entry/);
    expect((await refusal(control.removeNetwork('front'))).rule).toBe('front is in use by service web');
    await control.removeService('web');
    // A task of the removed service that has not ended still holds its address.
    const t = Task.fromPartial({ id: 't1', serviceId: service.id, desiredState: TaskState.TASK_STATE_SHUTDOWN, status: { state: TaskState.TASK_STATE_RUNNING }, networks: [{ networkId: front.id, addresses: ['10.0.0.2/24'], aliases: [] }] });
    await store.update((tx) => tx.create('task', t));
    expect((await refusal(control.removeNetwork('front'))).rule).toBe('front is in use by task t1 (they are stopping)');
    await store.update((tx) => tx.update('task', { ...store.get('task', 't1')!, status: { ...t.status!, state: TaskState.TASK_STATE_SHUTDOWN } }));
    await control.removeNetwork('front');
    expect(store.list('network')).toEqual([]);
  });
});

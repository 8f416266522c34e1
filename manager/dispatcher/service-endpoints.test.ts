// The index of services and their serving tasks per network, from the store's objects.
import { describe, expect, it } from 'vitest';
import { Service, Task } from '../../proto/gen/tswarm/objects.js';
import { EndpointSpec_ResolutionMode, TaskState } from '../../proto/gen/tswarm/types.js';
import { serves, ServiceDirectory, taskName } from './service-endpoints.js';

const service = (id: string, networks: { target: string; aliases?: string[] }[], mode = EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, vips: { networkId: string; addr: string }[] = []): Service =>
  Service.fromPartial({ id, spec: { annotations: { name: id, labels: {} }, task: { networks: networks.map((n) => ({ target: n.target, aliases: n.aliases ?? [] })) }, endpoint: { mode, ports: [] } }, endpoint: { virtualIps: vips, ports: [] } });
const task = (id: string, serviceId: string, slot: number, addrs: Record<string, string>, state = TaskState.TASK_STATE_RUNNING, desired = TaskState.TASK_STATE_RUNNING): Task =>
  Task.fromPartial({ id, serviceId, slot, nodeId: 'n1', desiredState: desired, status: { state }, networks: Object.entries(addrs).map(([networkId, a]) => ({ networkId, addresses: [a], aliases: [] })) });

describe('ServiceDirectory', () => {
  it('serves only RUNNING tasks not told to stop, with an address', () => {
    expect(serves(task('t', 's', 1, { n: '10.0.0.3/24' }))).toBe(true);
    expect(serves(task('t', 's', 1, { n: '10.0.0.3/24' }, TaskState.TASK_STATE_STARTING))).toBe(false);
    expect(serves(task('t', 's', 1, { n: '10.0.0.3/24' }, TaskState.TASK_STATE_RUNNING, TaskState.TASK_STATE_SHUTDOWN))).toBe(false);
    expect(serves(task('t', 's', 1, {}))).toBe(false);
    expect(taskName('web', task('abc', 's', 3, {}))).toBe('web.3.abc');
    expect(taskName('web', { ...task('abc', 's', 0, {}), nodeId: 'node9' })).toBe('web.node9.abc');
  });

  it('lists each network\'s services with their VIP there, aliases and serving tasks by slot; says which networks changed', () => {
    const d = new ServiceDirectory();
    expect(d.setService('web', service('web', [{ target: 'front', aliases: ['www'] }, { target: 'back' }], EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, [{ networkId: 'front', addr: '10.0.0.2/24' }]))).toEqual(['front', 'back']);
    expect(d.setTask('t2', task('t2', 'web', 2, { front: '10.0.0.6/24', back: '10.1.0.6/24' }))).toEqual(['front', 'back']);
    expect(d.setTask('t1', task('t1', 'web', 1, { front: '10.0.0.5/24', back: '10.1.0.5/24' }, TaskState.TASK_STATE_STARTING))).toEqual([]);
    expect(d.setTask('t1', task('t1', 'web', 1, { front: '10.0.0.5/24', back: '10.1.0.5/24' }))).toEqual(['front', 'back']);
    // A version of a serving task that changes nothing the nodes see changes nothing.
    expect(d.setTask('t1', { ...task('t1', 'web', 1, { front: '10.0.0.5/24', back: '10.1.0.5/24' }), meta: { version: 9, createdAtUnixMs: 0, updatedAtUnixMs: 0 } })).toEqual([]);
    const [front] = d.of('front');
    expect(front).toMatchObject({ id: 'front:web', name: 'web', vip: '10.0.0.2', aliases: ['www'], mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP });
    expect(front!.backends.map((b) => [b.address, b.name])).toEqual([['10.0.0.5', 'web.1.t1'], ['10.0.0.6', 'web.2.t2']]);
    expect(d.of('back')[0]!.vip).toBe('');
    // Told to stop: out at once.
    expect(d.setTask('t1', task('t1', 'web', 1, { front: '10.0.0.5/24', back: '10.1.0.5/24' }, TaskState.TASK_STATE_RUNNING, TaskState.TASK_STATE_SHUTDOWN))).toEqual(['front', 'back']);
    expect(d.of('front')[0]!.backends.map((b) => b.taskId)).toEqual(['t2']);
    // The service leaves back; then goes.
    expect(d.setService('web', service('web', [{ target: 'front' }]))).toEqual(['front', 'back']);
    expect(d.of('back')).toEqual([]);
    expect(d.setService('web', undefined)).toEqual(['front']);
    expect(d.of('front')).toEqual([]);
  });

  it('answers a dnsrr service with no VIP', () => {
    const d = new ServiceDirectory();
    d.setService('rr', service('rr', [{ target: 'front' }], EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR, [{ networkId: 'front', addr: '10.0.0.2/24' }]));
    expect(d.of('front')[0]).toMatchObject({ vip: '', mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR });
  });
});

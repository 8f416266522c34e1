// TaskSpec → the executor's ContainerSpec, a pure function: every container field carried over,
// Docker's swarm labels added, the log driver mapped, what the node cannot do refused naming the
// field.
import { describe, expect, it } from 'vitest';
import { Network, Task } from '../../proto/gen/tswarm/objects.js';
import type { NetworkAssignment } from '../../proto/gen/tswarm/dispatcher.js';
import { Mount_Type, PortConfig_Protocol, PortConfig_PublishMode } from '../../proto/gen/tswarm/types.js';
import type { ImageRecord } from '../image/store.js';
import { DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES } from '../../common/log-driver.js';
import { containerSpec, hostPorts, TaskSpecError } from './container-spec.js';

const image = { reference: 'busybox', config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } } } as unknown as ImageRecord;

function task(container: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Task {
  return Task.fromPartial({
    id: 'abcdefghijklmnopqrstuvwxy',
    serviceId: 'svc1',
    slot: 2,
    nodeId: 'node1',
    serviceAnnotations: { name: 'web', labels: {} },
    spec: { container: { image: 'busybox', ...container }, ...extra },
  });
}

describe('containerSpec', () => {
  it('carries every container field over', () => {
    const spec = containerSpec(
      task({
        command: ['/bin/app'], args: ['--serve'], env: ['A=1'], hostname: 'h', dir: '/srv', user: 'app', groups: ['audio', '44'],
        mounts: [{ type: Mount_Type.TYPE_TMPFS, target: '/t', tmpfsSizeBytes: 1024, tmpfsMode: 0o700 }, { type: Mount_Type.TYPE_BIND, source: '/srv', target: '/b', readOnly: true }],
        readOnly: true, capabilityAdd: ['CAP_NET_ADMIN'], capabilityDrop: ['ALL'], ulimits: [{ name: 'nofile', soft: 10, hard: 20 }], init: true, stopSignal: 'SIGUSR1',
        sysctls: { 'net.ipv4.ip_forward': '1' }, tty: true, noNewPrivileges: true, oomScoreAdj: -5, shmSizeBytes: 1 << 20,
        dnsConfig: { nameservers: ['10.0.0.2'], search: ['x.example'], options: ['ndots:2'] }, hosts: ['10.0.0.5 db'], labels: { tier: 'web' },
      }, { resources: { limits: { memoryBytes: 1 << 26, nanoCpus: 5e8, pids: 9 } } }),
      image,
      { network: 'bridge', fileMounts: [{ type: 'bind', source: '/run/tswarm/secrets/x', target: '/run/secrets', readOnly: true }] },
    );
    expect(spec).toEqual({
      id: 'abcdefghijklmnopqrstuvwxy', image, command: ['/bin/app'], args: ['--serve'], env: ['A=1'], hostname: 'h', dir: '/srv', user: 'app', groups: ['audio', '44'],
      limits: { memoryBytes: 1 << 26, nanoCpus: 5e8, pids: 9 },
      network: 'bridge',
      mounts: [
        { type: 'tmpfs', target: '/t', sizeBytes: 1024, mode: 0o700 },
        { type: 'bind', source: '/srv', target: '/b', readOnly: true },
        { type: 'bind', source: '/run/tswarm/secrets/x', target: '/run/secrets', readOnly: true },
      ],
      readOnly: true, capAdd: ['CAP_NET_ADMIN'], capDrop: ['ALL'], ulimits: [{ name: 'nofile', soft: 10, hard: 20 }], init: true, stopSignal: 'SIGUSR1',
      sysctls: { 'net.ipv4.ip_forward': '1' }, tty: true, noNewPrivileges: true, oomScoreAdj: -5, shmSizeBytes: 1 << 20,
      dns: { nameservers: ['10.0.0.2'], search: ['x.example'], options: ['ndots:2'] }, hosts: ['10.0.0.5 db'],
      log: { driver: 'json-file', maxSizeBytes: DEFAULT_LOG_MAX_BYTES, maxFiles: DEFAULT_LOG_MAX_FILES },
      labels: {
        tier: 'web',
        'com.docker.swarm.service.id': 'svc1', 'com.docker.swarm.service.name': 'web', 'com.docker.swarm.task.id': 'abcdefghijklmnopqrstuvwxy',
        'com.docker.swarm.task.name': 'web.2.abcdefghijklmnopqrstuvwxy', 'com.docker.swarm.node.id': 'node1',
      },
    });
  });

  it('leaves out what the spec does not set, with Docker’s defaults for the rest', () => {
    const spec = containerSpec(task(), image, { network: 'none', fileMounts: [] });
    expect(spec).toMatchObject({ hostname: 'abcdefghijkl', env: [], limits: {}, readOnly: false, init: false, tty: false, noNewPrivileges: false, oomScoreAdj: 0, mounts: [] });
    for (const k of ['command', 'args', 'dir', 'user', 'groups', 'capAdd', 'capDrop', 'ulimits', 'stopSignal', 'sysctls', 'shmSizeBytes', 'dns', 'hosts', 'ports']) expect(spec, k).not.toHaveProperty(k);
  });

  it('puts the task on its overlay networks in order; the first decides the way out; refuses what the node lacks, naming the field', () => {
    const net = (id: string, vni: number, subnet: string, internal = false): NetworkAssignment => ({
      network: Network.fromPartial({ id, vni, spec: { annotations: { name: id, labels: {} }, driver: 'overlay', driverOptions: { 'com.docker.network.driver.mtu': '1400' }, internal }, ipam: [{ subnet, gateway: subnet.replace(/0\/24$/, '1'), range: '' }] }),
      nodeAddress: subnet.replace(/0\/24$/, '200/24'),
      dataPathPort: 4790,
    });
    const overlays = new Map([['front', net('front', 4096, '10.0.1.0/24')], ['back', net('back', 4097, '10.0.2.0/24', true)]]);
    const addressOn: Record<string, string> = { front: '10.0.1.5/24', back: '10.0.2.5/24', other: '10.0.3.5/24' };
    const on = (...ids: string[]): Task => Task.fromPartial({ ...task(), networks: ids.map((id) => ({ networkId: id, addresses: [addressOn[id]!], aliases: [] })) });
    const spec = containerSpec(on('front', 'back'), image, { network: 'none', overlays, egress: true, fileMounts: [] });
    expect(spec.overlays).toEqual([
      { network: { id: 'front', vni: 4096, subnet: '10.0.1.0/24', gateway: '10.0.1.1', mtu: 1400, nodeAddress: '10.0.1.200/24', dataPathPort: 4790 }, address: '10.0.1.5/24' },
      { network: { id: 'back', vni: 4097, subnet: '10.0.2.0/24', gateway: '10.0.2.1', mtu: 1400, nodeAddress: '10.0.2.200/24', dataPathPort: 4790 }, address: '10.0.2.5/24' },
    ]);
    expect(spec.network).toBe('bridge'); // front is not internal: out through the egress bridge
    expect(containerSpec(on('back', 'front'), image, { network: 'bridge', overlays, egress: true, fileMounts: [] }).network).toBe('none');
    expect(containerSpec(on('front'), image, { network: 'bridge', overlays, egress: false, fileMounts: [] }).network).toBe('none');
    expect(() => containerSpec(on('front'), image, { network: 'bridge', fileMounts: [] })).toThrow(/^networks\[0\]: overlay networks need swarmd's overlay driver/);
    expect(() => containerSpec(on('other'), image, { network: 'bridge', overlays, fileMounts: [] })).toThrow(TaskSpecError);
  });

  it('refuses host ports without the bridge, naming the field', () => {
    const port = { name: '', protocol: PortConfig_Protocol.PROTOCOL_TCP, targetPort: 80, publishedPort: 8080, publishMode: PortConfig_PublishMode.PUBLISH_MODE_HOST };
    const published = Task.fromPartial({ ...task(), endpoint: { spec: { ports: [port] }, ports: [] } });
    expect(hostPorts(published).map((p) => p.port)).toEqual([{ protocol: 'tcp', published: 8080, target: 80 }]);
    expect(() => containerSpec(published, image, { network: 'none', fileMounts: [] })).toThrow(/published port 8080\/tcp \(host mode\) needs the bridge network/);
    expect(containerSpec(published, image, { network: 'bridge', fileMounts: [] }).ports).toEqual([{ protocol: 'tcp', published: 8080, target: 80 }]);
  });
});

const logImage: ImageRecord = {
  reference: 'reg:5000/library/busybox:latest',
  manifestDigest: 'sha256:m',
  manifestMediaType: 'application/vnd.oci.image.manifest.v1+json',
  configDigest: 'sha256:c',
  config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [] } },
  layers: [],
};

const logTask = (logDriver?: { name: string; options: Record<string, string> }): Task =>
  Task.fromPartial({ id: 'k3v8ex0q1l7mabcdefghijklm', serviceId: 's1', slot: 1, nodeId: 'n1', spec: { container: { image: logImage.reference }, ...(logDriver ? { logDriver } : {}) } });

const logSpec = (t: Task): ReturnType<typeof containerSpec> => containerSpec(t, logImage, { network: 'none', fileMounts: [] });

describe('containerSpec: the log driver', () => {
  it('gives a task without a log driver the default bound (json-file, 3 × 10 MiB)', () => {
    expect(logSpec(logTask()).log).toEqual({ driver: 'json-file', maxSizeBytes: DEFAULT_LOG_MAX_BYTES, maxFiles: DEFAULT_LOG_MAX_FILES });
    expect(logSpec(logTask({ name: '', options: {} })).log).toEqual({ driver: 'json-file', maxSizeBytes: 10 * 1024 * 1024, maxFiles: 3 });
  });

  it("maps json-file's max-size and max-file, and none", () => {
    expect(logSpec(logTask({ name: 'json-file', options: { 'max-size': '1m', 'max-file': '5' } })).log).toEqual({ driver: 'json-file', maxSizeBytes: 1024 * 1024, maxFiles: 5 });
    expect(logSpec(logTask({ name: '', options: { 'max-size': '512k' } })).log).toEqual({ driver: 'json-file', maxSizeBytes: 512 * 1024, maxFiles: 3 });
    expect(logSpec(logTask({ name: 'none', options: {} })).log).toEqual({ driver: 'none' });
  });

  it('refuses a driver or an option the node cannot honour, naming the spec field', () => {
    const refusal = (d: { name: string; options: Record<string, string> }): { field: string; problem: string } => {
      try {
        logSpec(logTask(d));
      } catch (err) {
        expect(err).toBeInstanceOf(TaskSpecError);
        return { field: (err as TaskSpecError).field, problem: (err as TaskSpecError).problem };
      }
      throw new Error('not refused');
    };
    expect(refusal({ name: 'syslog', options: {} })).toEqual({ field: 'spec.task.logDriver.name', problem: expect.stringMatching(/not a log driver tswarm has/) as unknown });
    expect(refusal({ name: '', options: { 'max-size': '-1' } }).field).toBe('spec.task.logDriver.options.max-size');
    expect(refusal({ name: 'json-file', options: { 'max-file': '0' } }).field).toBe('spec.task.logDriver.options.max-file');
    expect(refusal({ name: 'none', options: { 'max-size': '1m' } }).field).toBe('spec.task.logDriver.options.max-size');
  });
});

// Bad specs are refused with one error naming the field and the rule.
import { describe, expect, it } from 'vitest';
import type { ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { EndpointSpec_ResolutionMode, Mount_Type, PortConfig_Protocol, PortConfig_PublishMode } from '../../proto/gen/tswarm/types.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { validateClusterSpec, validateConfigSpec, validateNetworkSpec, validateSecretSpec, validateServiceSpec } from './validate.js';

function svc(patch: (s: ServiceSpec) => void = () => {}): ServiceSpec {
  const s: ServiceSpec = {
    annotations: { name: 'web', labels: {} },
    mode: { $case: 'replicated', replicated: { replicas: 3 } },
    task: {
      container: {
        image: 'busybox:latest', labels: {}, command: [], args: ['sleep', '1d'], hostname: '', env: ['A=1'], dir: '', user: '', groups: [], mounts: [],
        stopGracePeriodMs: 10_000, stopSignal: '', secrets: [], configs: [], capabilityAdd: [], capabilityDrop: [], ulimits: [], readOnly: false, tty: false, init: false, oomScoreAdj: 0,
      },
      networks: [],
      forceUpdate: 0,
    },
  };
  patch(s);
  return s;
}

function errorOf(fn: () => void): InvalidArgumentError {
  try {
    fn();
  } catch (e) {
    if (e instanceof InvalidArgumentError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('validateServiceSpec', () => {
  it('accepts a sensible spec', () => {
    expect(() => validateServiceSpec(svc())).not.toThrow();
  });

  it.each<[string, (s: ServiceSpec) => void, string, RegExp]>([
    ['no name', (s) => (s.annotations!.name = ''), 'spec.annotations.name', /is required/],
    ['a bad name', (s) => (s.annotations!.name = '-web'), 'spec.annotations.name', /must start with a letter or digit/],
    ['no mode', (s) => (s.mode = undefined), 'spec.mode', /replicated, global/],
    ['too many replicas', (s) => (s.mode = { $case: 'replicated', replicated: { replicas: 1e6 } }), 'spec.mode.replicated.replicas', /more than 100000/],
    ['a job with an update config', (s) => ((s.mode = { $case: 'globalJob', globalJob: {} }), (s.update = { parallelism: 1, delayMs: 0, failureAction: 0 as never, monitorMs: 0, maxFailureRatio: 0, order: 0 as never })), 'spec.update', /jobs run to completion/],
    ['no image', (s) => (s.task!.container!.image = ''), 'spec.task.container.image', /is required/],
    ['bad constraint syntax', (s) => (s.task!.placement = { constraints: ['node.role=manager'], preferences: [], platforms: [], maxReplicasPerNode: 0 }), 'spec.task.placement.constraints[0]', /not a constraint/],
    ['an unknown constraint key', (s) => (s.task!.placement = { constraints: ['node.color==red'], preferences: [], platforms: [], maxReplicasPerNode: 0 }), 'spec.task.placement.constraints[0]', /unknown key/],
    ['a bad spread', (s) => (s.task!.placement = { constraints: [], preferences: [{ spreadDescriptor: 'zone' }], platforms: [], maxReplicasPerNode: 0 }), 'spec.task.placement.preferences[0].spreadDescriptor', /node\.labels\.NAME/],
    ['a tiny memory limit', (s) => (s.task!.resources = { limits: { nanoCpus: 0, memoryBytes: 1000, pids: 0 } }), 'spec.task.resources.limits.memoryBytes', /minimum of 4 MiB/],
    ['a negative cpu reservation', (s) => (s.task!.resources = { reservations: { nanoCpus: -1, memoryBytes: 0, pids: 0 } }), 'spec.task.resources.reservations.nanoCpus', /negative/],
    ['a relative mount target', (s) => s.task!.container!.mounts.push({ type: Mount_Type.TYPE_TMPFS, source: '', target: 'data', readOnly: false, tmpfsSizeBytes: 0, tmpfsMode: 0 }), 'spec.task.container.mounts[0].target', /absolute path/],
    ['a port published twice', (s) => (s.endpoint = { mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, ports: [1, 2].map((i) => ({ name: '', protocol: PortConfig_Protocol.PROTOCOL_TCP, targetPort: 80 + i, publishedPort: 8080, publishMode: PortConfig_PublishMode.PUBLISH_MODE_HOST })) }), 'spec.endpoint.ports[1].publishedPort', /published twice/],
    ['a secret with a .. path', (s) => s.task!.container!.secrets.push({ secretId: 'x', secretName: 's', file: { name: '../etc/passwd', uid: 0, gid: 0, mode: 0o444 } }), 'spec.task.container.secrets[0].file.name', /must not contain '\.\.'/],
    ['an oversize spec', (s) => (s.task!.container!.env = Array.from({ length: 20_000 }, (_, i) => `K${i}=${'x'.repeat(30)}`)), 'spec', /exceed the maximum/],
  ])('refuses %s, naming the field', (_what, patch, field, rule) => {
    const e = errorOf(() => validateServiceSpec(svc(patch)));
    expect(e.field).toBe(field);
    expect(e.rule).toMatch(rule);
    expect(e.message.startsWith(`${field}: `)).toBe(true);
  });
});

describe('other specs', () => {
  it('refuses a malformed secret: empty, too large, badly named', () => {
    expect(errorOf(() => validateSecretSpec({ annotations: { name: 'db-pass', labels: {} }, data: Buffer.alloc(0) })).field).toBe('spec.data');
    expect(errorOf(() => validateSecretSpec({ annotations: { name: 'db-pass', labels: {} }, data: Buffer.alloc(600 << 10) })).rule).toMatch(/exceed/);
    expect(errorOf(() => validateConfigSpec({ annotations: { name: 'a b', labels: {} }, data: Buffer.from('x') })).field).toBe('spec.annotations.name');
    expect(() => validateSecretSpec({ annotations: { name: 'db-pass', labels: {} }, data: Buffer.from('s3cret') })).not.toThrow();
  });

  it('checks networks: driver, subnet, gateway, mtu', () => {
    const net = (ipam: { subnet: string; gateway: string; range: string }[], driver = 'overlay', mtu = 0) => ({ annotations: { name: 'backend', labels: {} }, driver, driverOptions: {}, ipam, attachable: false, internal: false, ingress: false, mtu });
    expect(() => validateNetworkSpec(net([{ subnet: '10.0.9.0/24', gateway: '10.0.9.1', range: '' }]))).not.toThrow();
    expect(errorOf(() => validateNetworkSpec(net([{ subnet: '10.0.9.0/33', gateway: '', range: '' }]))).field).toBe('spec.ipam[0].subnet');
    expect(errorOf(() => validateNetworkSpec(net([{ subnet: '10.0.9.1/24', gateway: '', range: '' }]))).rule).toMatch(/host bits/);
    expect(errorOf(() => validateNetworkSpec(net([{ subnet: '10.0.9.0/24', gateway: '10.0.10.1', range: '' }]))).field).toBe('spec.ipam[0].gateway');
    expect(errorOf(() => validateNetworkSpec(net([], 'macvlan'))).field).toBe('spec.driver');
    expect(errorOf(() => validateNetworkSpec(net([], 'overlay', 20))).field).toBe('spec.mtu');
  });

  it('checks the cluster spec', () => {
    const spec = { annotations: { name: 'default', labels: {} }, heartbeatPeriodMs: 50, taskHistoryRetentionLimit: 5, nodeCertExpiryMs: 0, snapshotIntervalEntries: 0, defaultAddressPool: [], subnetSize: 0, vxlanUdpPort: 0 };
    expect(errorOf(() => validateClusterSpec(spec)).field).toBe('spec.heartbeatPeriodMs');
  });
});

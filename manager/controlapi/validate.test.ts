// Bad specs are refused with one error naming the field and the rule.
import { describe, expect, it } from 'vitest';
import { SecretSpec, type ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import {
  EndpointSpec_ResolutionMode, Mount_Type, PortConfig_Protocol, PortConfig_PublishMode, RestartPolicy_Condition, UpdateConfig_FailureAction, UpdateConfig_Order,
  type Mount, type PortConfig, type UpdateConfig,
} from '../../proto/gen/tswarm/types.js';
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
        sysctls: {}, noNewPrivileges: false, shmSizeBytes: 0, hosts: [],
      },
      networks: [],
      forceUpdate: 0,
    },
  };
  patch(s);
  return s;
}

const upd = (): UpdateConfig => ({ parallelism: 1, delayMs: 0, failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_PAUSE, monitorMs: 0, maxFailureRatio: 0, order: UpdateConfig_Order.ORDER_STOP_FIRST });
const res = (nanoCpus: number, memoryBytes: number) => ({ nanoCpus, memoryBytes, pids: 0 });
const mnt = (type: Mount_Type, source: string, target: string): Mount => ({ type, source, target, readOnly: false, tmpfsSizeBytes: 0, tmpfsMode: 0 });
const port = (targetPort: number, publishedPort: number): PortConfig => ({ name: '', protocol: PortConfig_Protocol.PROTOCOL_TCP, targetPort, publishedPort, publishMode: PortConfig_PublishMode.PUBLISH_MODE_HOST });
const ep = (ports: PortConfig[]) => ({ mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, ports });
const sec = (id: string, name: string) => ({ secretId: id, secretName: id, file: { name, uid: 0, gid: 0, mode: 0o444 } });
const cfg = (id: string, name: string) => ({ configId: id, configName: id, file: { name, uid: 0, gid: 0, mode: 0o444 } });

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

  it('accepts a spec that uses every field within its rules', () => {
    const full = svc((s) => {
      const c = s.task!.container!;
      Object.assign(c, { user: 'www-data:33', stopSignal: 'SIGRTMIN+3', capabilityAdd: ['CAP_NET_ADMIN'], capabilityDrop: ['ALL'], ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }], oomScoreAdj: -500, labels: { a: 'b' } });
      c.mounts.push(mnt(Mount_Type.TYPE_BIND, '/srv', '/srv'), mnt(Mount_Type.TYPE_VOLUME, 'data', '/data'), { ...mnt(Mount_Type.TYPE_TMPFS, '', '/tmp'), tmpfsSizeBytes: 1 << 20, tmpfsMode: 0o1777 });
      c.secrets.push(sec('a', 'pw'));
      c.configs.push(cfg('b', '/etc/app.conf'));
      s.task!.resources = { limits: res(1e9, 256 << 20), reservations: res(5e8, 128 << 20) };
      s.task!.restart = { condition: RestartPolicy_Condition.CONDITION_ON_FAILURE, delayMs: 1000, maxAttempts: 3, windowMs: 60_000 };
      s.task!.placement = { constraints: ['node.role==worker'], preferences: [{ spreadDescriptor: 'node.labels.zone' }], platforms: [], maxReplicasPerNode: 2 };
      Object.assign(c, { sysctls: { 'net.ipv4.ip_forward': '1', 'fs.mqueue.msg_max': '20' }, noNewPrivileges: true, shmSizeBytes: 128 << 20, tty: true, init: true, readOnly: true });
      c.dnsConfig = { nameservers: ['10.0.0.2', 'fd00::53'], search: ['example.org'], options: ['ndots:2', 'rotate'] };
      c.hosts.push('10.0.0.5 db db.local');
      s.task!.logDriver = { name: 'json-file', options: { 'max-size': '1m', 'max-file': '2' } };
      s.update = { ...upd(), parallelism: 0, failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK, maxFailureRatio: 0.5, order: UpdateConfig_Order.ORDER_START_FIRST };
      s.rollback = { ...upd(), failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_CONTINUE };
      s.endpoint = ep([port(80, 8080), { ...port(53, 53), protocol: PortConfig_Protocol.PROTOCOL_UDP }]);
    });
    expect(() => validateServiceSpec(full)).not.toThrow();
  });

  it.each<[string, (s: ServiceSpec) => void, string, RegExp]>([
    ['no name', (s) => (s.annotations!.name = ''), 'spec.annotations.name', /is required/],
    ['a bad name', (s) => (s.annotations!.name = '-web'), 'spec.annotations.name', /must start with a letter or digit/],
    ['no mode', (s) => (s.mode = undefined), 'spec.mode', /replicated, global/],
    ['too many replicas', (s) => (s.mode = { $case: 'replicated', replicated: { replicas: 1e6 } }), 'spec.mode.replicated.replicas', /more than 100000/],
    ['a job with an update config', (s) => ((s.mode = { $case: 'globalJob', globalJob: {} }), (s.update = { parallelism: 1, delayMs: 0, failureAction: 0 as never, monitorMs: 0, maxFailureRatio: 0, order: 0 as never })), 'spec.update', /jobs run to completion/],
    ['no image', (s) => (s.task!.container!.image = ''), 'spec.task.container.image', /is required/],
    ['a malformed image', (s) => (s.task!.container!.image = 'web app'), 'spec.task.container.image', /"web app" is not an image reference/],
    ['an image with a bad digest', (s) => (s.task!.container!.image = 'busybox@sha256:abc'), 'spec.task.container.image', /the digest must be sha256:<64 hex digits>/],
    ['bad constraint syntax', (s) => (s.task!.placement = { constraints: ['node.role=manager'], preferences: [], platforms: [], maxReplicasPerNode: 0 }), 'spec.task.placement.constraints[0]', /not a constraint/],
    ['an unknown constraint key', (s) => (s.task!.placement = { constraints: ['node.color==red'], preferences: [], platforms: [], maxReplicasPerNode: 0 }), 'spec.task.placement.constraints[0]', /unknown key/],
    ['a bad spread', (s) => (s.task!.placement = { constraints: [], preferences: [{ spreadDescriptor: 'zone' }], platforms: [], maxReplicasPerNode: 0 }), 'spec.task.placement.preferences[0].spreadDescriptor', /node\.labels\.NAME/],
    ['a tiny memory limit', (s) => (s.task!.resources = { limits: { nanoCpus: 0, memoryBytes: 1000, pids: 0 } }), 'spec.task.resources.limits.memoryBytes', /minimum of 4 MiB/],
    ['a negative cpu reservation', (s) => (s.task!.resources = { reservations: { nanoCpus: -1, memoryBytes: 0, pids: 0 } }), 'spec.task.resources.reservations.nanoCpus', /negative/],
    ['a relative mount target', (s) => s.task!.container!.mounts.push({ type: Mount_Type.TYPE_TMPFS, source: '', target: 'data', readOnly: false, tmpfsSizeBytes: 0, tmpfsMode: 0 }), 'spec.task.container.mounts[0].target', /absolute path/],
    ['a port published twice', (s) => (s.endpoint = { mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, ports: [1, 2].map((i) => ({ name: '', protocol: PortConfig_Protocol.PROTOCOL_TCP, targetPort: 80 + i, publishedPort: 8080, publishMode: PortConfig_PublishMode.PUBLISH_MODE_HOST })) }), 'spec.endpoint.ports[1].publishedPort', /published twice/],
    ['a secret with a .. path', (s) => s.task!.container!.secrets.push({ secretId: 'x', secretName: 's', file: { name: '../etc/passwd', uid: 0, gid: 0, mode: 0o444 } }), 'spec.task.container.secrets[0].file.name', /must not contain '\.\.'/],
    ['an update parallelism above 100000', (s) => (s.update = { ...upd(), parallelism: 200_000 }), 'spec.update.parallelism', /more than 100000/],
    ['a failure ratio above 1', (s) => (s.update = { ...upd(), maxFailureRatio: 1.5 }), 'spec.update.maxFailureRatio', /between 0 and 1/],
    ['an unknown failure action', (s) => (s.update = { ...upd(), failureAction: 'FAILURE_ACTION_RETRY' as never }), 'spec.update.failureAction', /pause, continue, rollback/],
    ['a rollback that would roll back', (s) => (s.rollback = { ...upd(), failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK }), 'spec.rollback.failureAction', /only pause or continue/],
    ['an unknown update order', (s) => (s.update = { ...upd(), order: 'ORDER_RANDOM' as never }), 'spec.update.order', /stop-first, start-first/],
    ['a negative memory limit', (s) => (s.task!.resources = { limits: { nanoCpus: 0, memoryBytes: -1, pids: 0 } }), 'spec.task.resources.limits.memoryBytes', /negative/],
    ['a negative pids limit', (s) => (s.task!.resources = { limits: { nanoCpus: 0, memoryBytes: 0, pids: -5 } }), 'spec.task.resources.limits.pids', /negative/],
    ['a tiny CPU limit', (s) => (s.task!.resources = { limits: { nanoCpus: 1000, memoryBytes: 0, pids: 0 } }), 'spec.task.resources.limits.nanoCpus', /minimum of 0\.01 CPU/],
    ['a memory reservation above the limit', (s) => (s.task!.resources = { limits: res(0, 64 << 20), reservations: res(0, 128 << 20) }), 'spec.task.resources.reservations.memoryBytes', /must not exceed the memory limit/],
    ['a CPU reservation above the limit', (s) => (s.task!.resources = { limits: res(1e9, 0), reservations: res(2e9, 0) }), 'spec.task.resources.reservations.nanoCpus', /must not exceed the CPU limit/],
    ['an unknown restart condition', (s) => (s.task!.restart = { condition: 'CONDITION_ALWAYS' as never, delayMs: 0, maxAttempts: 0, windowMs: 0 }), 'spec.task.restart.condition', /any, on-failure, none/],
    ['a restart window above 30 days', (s) => (s.task!.restart = { condition: RestartPolicy_Condition.CONDITION_ANY, delayMs: 0, maxAttempts: 0, windowMs: 31 * 24 * 3600_000 }), 'spec.task.restart.windowMs', /more than the maximum/],
    ['max replicas per node on a global service', (s) => ((s.mode = { $case: 'global', global: {} }), (s.task!.placement = { constraints: [], preferences: [], platforms: [], maxReplicasPerNode: 2 })), 'spec.task.placement.maxReplicasPerNode', /global service/],
    ['a mount at /', (s) => s.task!.container!.mounts.push(mnt(Mount_Type.TYPE_TMPFS, '', '/')), 'spec.task.container.mounts[0].target', /root directory/],
    ['an anonymous volume', (s) => s.task!.container!.mounts.push(mnt(Mount_Type.TYPE_VOLUME, '', '/data')), 'spec.task.container.mounts[0].source', /needs a source/],
    ['a tmpfs size on a bind mount', (s) => s.task!.container!.mounts.push({ ...mnt(Mount_Type.TYPE_BIND, '/srv', '/data'), tmpfsSizeBytes: 1 << 20 }), 'spec.task.container.mounts[0].type', /tmpfs mounts only/],
    ['a negative tmpfs size', (s) => s.task!.container!.mounts.push({ ...mnt(Mount_Type.TYPE_TMPFS, '', '/t'), tmpfsSizeBytes: -1 }), 'spec.task.container.mounts[0].tmpfsSizeBytes', /negative/],
    ['an unknown mount type', (s) => s.task!.container!.mounts.push(mnt('TYPE_NPIPE' as never, '', '/t')), 'spec.task.container.mounts[0].type', /bind, volume, tmpfs/],
    ['a target port out of range', (s) => (s.endpoint = ep([port(0, 8080)])), 'spec.endpoint.ports[0].targetPort', /not a port/],
    ['a published port out of range', (s) => (s.endpoint = ep([port(80, 70000)])), 'spec.endpoint.ports[0].publishedPort', /not a port/],
    ['an ingress port with dnsrr', (s) => (s.endpoint = { ...ep([{ ...port(80, 8080), publishMode: PortConfig_PublishMode.PUBLISH_MODE_INGRESS }]), mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR }), 'spec.endpoint.ports[0].publishMode', /cannot be used with endpoint mode dnsrr/],
    ['a network attached twice', (s) => s.task!.networks.push({ target: 'backend', aliases: [] }, { target: 'backend', aliases: ['x'] }), 'spec.task.networks[1].target', /attached twice/],
    ['a network alias that is not a DNS name', (s) => s.task!.networks.push({ target: 'backend', aliases: ['db', 'no space'] }), 'spec.task.networks[0].aliases[1]', /"no space" is not a DNS name/],
    ['a host-wide sysctl', (s) => (s.task!.container!.sysctls = { 'vm.swappiness': '10' }), 'spec.task.container.sysctls', /"vm.swappiness" is not namespaced/],
    ['a sysctl without a value', (s) => (s.task!.container!.sysctls = { 'net.ipv4.ip_forward': '' }), 'spec.task.container.sysctls', /must be one line, not empty/],
    ['a negative shm size', (s) => (s.task!.container!.shmSizeBytes = -1), 'spec.task.container.shmSizeBytes', /must not be negative/],
    ['a hosts line without a name', (s) => s.task!.container!.hosts.push('10.0.0.5'), 'spec.task.container.hosts[0]', /names no host/],
    ['a hosts line without an address', (s) => s.task!.container!.hosts.push('db 10.0.0.5'), 'spec.task.container.hosts[0]', /must start with an IP address/],
    ['a nameserver that is a name', (s) => (s.task!.container!.dnsConfig = { nameservers: ['dns.local'], search: [], options: [] }), 'spec.task.container.dnsConfig.nameservers[0]', /not an IP address/],
    ['a bad search domain', (s) => (s.task!.container!.dnsConfig = { nameservers: [], search: ['a b'], options: [] }), 'spec.task.container.dnsConfig.search[0]', /not a domain name/],
    ['a bad resolver option', (s) => (s.task!.container!.dnsConfig = { nameservers: [], search: [], options: ['ndots 2'] }), 'spec.task.container.dnsConfig.options[0]', /not a resolver option/],
    ['an unknown log driver', (s) => (s.task!.logDriver = { name: 'syslog', options: {} }), 'spec.task.logDriver.name', /not a log driver tswarm has/],
    ['an unbounded log', (s) => (s.task!.logDriver = { name: 'json-file', options: { 'max-size': '-1' } }), 'spec.task.logDriver.options.max-size', /logs are always bounded/],
    ['a log option of another driver', (s) => (s.task!.logDriver = { name: '', options: { 'syslog-address': 'udp://x' } }), 'spec.task.logDriver.options.syslog-address', /not an option of json-file/],
    ['an unknown protocol', (s) => (s.endpoint = ep([{ ...port(80, 8080), protocol: 'PROTOCOL_ICMP' as never }])), 'spec.endpoint.ports[0].protocol', /tcp, udp, sctp/],
    ['two secrets at one file', (s) => s.task!.container!.secrets.push(sec('a', 'pw'), sec('b', 'pw')), 'spec.task.container.secrets[1].file.name', /target of two secrets/],
    ['two configs at one file, one relative', (s) => s.task!.container!.configs.push(cfg('a', '/app.conf'), cfg('b', 'app.conf')), 'spec.task.container.configs[1].file.name', /target of two configs/],
    ['a bad user', (s) => (s.task!.container!.user = 'a b'), 'spec.task.container.user', /USER, UID/],
    ['a bad stop signal', (s) => (s.task!.container!.stopSignal = 'SIGNOPE'), 'spec.task.container.stopSignal', /not a signal/],
    ['an unknown capability', (s) => s.task!.container!.capabilityAdd.push('CAP_FLY'), 'spec.task.container.capabilityAdd[0]', /not a capability/],
    ['an unknown ulimit', (s) => s.task!.container!.ulimits.push({ name: 'files', soft: 1, hard: 1 }), 'spec.task.container.ulimits[0].name', /not a ulimit/],
    ['a ulimit set twice', (s) => s.task!.container!.ulimits.push({ name: 'nofile', soft: 1, hard: 1 }, { name: 'nofile', soft: 2, hard: 2 }), 'spec.task.container.ulimits[1].name', /set twice/],
    ['a soft ulimit above the hard one', (s) => s.task!.container!.ulimits.push({ name: 'nofile', soft: 10, hard: 5 }), 'spec.task.container.ulimits[0].soft', /above the hard limit/],
    ['an oom score out of range', (s) => (s.task!.container!.oomScoreAdj = 2000), 'spec.task.container.oomScoreAdj', /between -1000 and 1000/],
    ['a container label key with a space', (s) => (s.task!.container!.labels = { 'a b': '1' }), 'spec.task.container.labels', /label key/],
    ['a network attached twice', (s) => s.task!.networks.push({ target: 'n', aliases: [] }, { target: 'n', aliases: [] }), 'spec.task.networks[1].target', /attached twice/],
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

  it("measures a secret's whole encoded size exactly, labels included, without encoding its data", () => {
    const labels = Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`k${i}`, 'v'.repeat(60)]));
    for (const data of [Buffer.alloc(500 << 10), Buffer.alloc(100)]) {
      const spec = { annotations: { name: 'big', labels }, data };
      const size = SecretSpec.encode(spec).finish().length;
      if (size <= (500 << 10) + 4096) expect(() => validateSecretSpec(spec)).not.toThrow();
      else expect(errorOf(() => validateSecretSpec(spec)).message).toBe(`spec: ${size} bytes exceed the maximum of ${(500 << 10) + 4096} bytes`);
    }
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

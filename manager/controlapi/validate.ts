// Validation of specs arriving at the control API. Each function throws the first problem as an
// InvalidArgumentError naming the field (as a path, e.g. "spec.task.resources.limits.memoryBytes")
// and the rule; nothing is written before a spec passes.
import type { ClusterSpec, ConfigSpec, NetworkSpec, NodeSpec, SecretSpec, ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { NetworkSpec as NetworkSpecCodec, SecretSpec as SecretSpecCodec, ServiceSpec as ServiceSpecCodec } from '../../proto/gen/tswarm/specs.js';
import {
  Mount_Type, PortConfig_Protocol, PortConfig_PublishMode, EndpointSpec_ResolutionMode, RestartPolicy_Condition, UpdateConfig_FailureAction, UpdateConfig_Order,
  type Annotations, type FileTarget, type UpdateConfig,
} from '../../proto/gen/tswarm/types.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { parseImageReference } from '../../common/image-reference.js';
import { CAPABILITIES } from '../../common/capabilities.js';
import { isSignal, sysctlProblem, ULIMIT_NAMES } from '../../common/process.js';
import { dnsOptionProblem, hostsLineProblem, isHostName } from '../../common/dns.js';
import { isIP } from 'node:net';
import { logConfig, LogDriverError } from '../../common/log-driver.js';
import { parseConstraints } from '../constraint/constraint.js';
import { varintSize } from '../../common/varint.js';
import { checkIpam } from '../allocator/networks.js';
import { MIN_MTU, MTU_OPTION, specMtu, VXLAN_OVERHEAD } from '../../common/network.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const LABEL_KEY_RE = /^[^\s=]+$/;
const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
export const MAX_SPEC_BYTES = 512 << 10;
export const MAX_SECRET_BYTES = 500 << 10;
const DAY_MS = 24 * 3600 * 1000;
const USER_RE = /^[^:\s]+(:[^:\s]+)?$/;

function fail(field: string, rule: string): never {
  throw new InvalidArgumentError(field, rule);
}

function checkName(a: Annotations | undefined, field: string, maxLength: number): void {
  const name = a?.name ?? '';
  if (name === '') fail(`${field}.name`, 'is required');
  if (name.length > maxLength) fail(`${field}.name`, `"${name}" is longer than ${maxLength} characters`);
  if (!NAME_RE.test(name)) fail(`${field}.name`, `"${name}" must start with a letter or digit and hold only letters, digits, '_', '.' and '-'`);
  checkLabels(a?.labels ?? {}, `${field}.labels`);
}

function checkLabels(labels: Record<string, string>, field: string): void {
  for (const k of Object.keys(labels)) if (!LABEL_KEY_RE.test(k)) fail(field, `label key "${k}" must be non-empty, without spaces or '='`);
}

function checkDuration(ms: number, field: string, max = DAY_MS): void {
  if (!Number.isFinite(ms) || ms < 0) fail(field, 'must not be negative');
  if (ms > max) fail(field, `${ms} ms is more than the maximum of ${max} ms`);
}

function checkSize(bytes: number, max: number, field: string): void {
  if (bytes > max) fail(field, `${bytes} bytes exceed the maximum of ${max} bytes`);
}

function checkCount(n: number, field: string, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(n) || n < 0) fail(field, `${n} must be a whole number, 0 or more`);
  if (n > max) fail(field, `${n} is more than ${max}`);
}

/** An enum field holds one of its values (a raw API client can send any number). */
function checkEnum<T extends string>(value: T, values: readonly T[], names: string, field: string): void {
  if (!values.includes(value)) fail(field, `"${value}" is not one of ${names}`);
}

function checkUpdateConfig(u: UpdateConfig | undefined, field: string, rollback: boolean): void {
  if (!u) return;
  checkCount(u.parallelism, `${field}.parallelism`, 100_000);
  checkDuration(u.delayMs, `${field}.delayMs`);
  checkDuration(u.monitorMs, `${field}.monitorMs`);
  if (!(u.maxFailureRatio >= 0 && u.maxFailureRatio <= 1)) fail(`${field}.maxFailureRatio`, `${u.maxFailureRatio} must be between 0 and 1`);
  const actions = [UpdateConfig_FailureAction.FAILURE_ACTION_PAUSE, UpdateConfig_FailureAction.FAILURE_ACTION_CONTINUE, UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK];
  checkEnum(u.failureAction, actions, 'pause, continue, rollback', `${field}.failureAction`);
  // A failing rollback cannot roll back in turn (Docker refuses it too).
  if (rollback && u.failureAction === UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK) fail(`${field}.failureAction`, 'a rollback can only pause or continue on failure');
  checkEnum(u.order, [UpdateConfig_Order.ORDER_STOP_FIRST, UpdateConfig_Order.ORDER_START_FIRST], 'stop-first, start-first', `${field}.order`);
}

function checkFileTarget(f: FileTarget | undefined, field: string): asserts f is FileTarget {
  if (!f) fail(field, 'is required');
  if (!f.name) fail(`${field}.name`, 'is required');
  if (f.name.split('/').includes('..')) fail(`${field}.name`, `"${f.name}" must not contain '..'`);
  if (f.mode > 0o7777) fail(`${field}.mode`, `${f.mode.toString(8)} is not a file mode`);
}

export function validateServiceSpec(spec: ServiceSpec | undefined, field = 'spec'): void {
  if (!spec) fail(field, 'is required');
  checkSize(ServiceSpecCodec.encode(spec).finish().length, MAX_SPEC_BYTES, field);
  checkName(spec.annotations, `${field}.annotations`, 63);
  const mode = spec.mode;
  if (!mode) fail(`${field}.mode`, 'must be one of replicated, global, replicatedJob or globalJob');
  if (mode.$case === 'replicated' && mode.replicated.replicas > 100_000) fail(`${field}.mode.replicated.replicas`, `${mode.replicated.replicas} is more than 100000`);
  if (mode.$case === 'replicatedJob') {
    const j = mode.replicatedJob;
    if (j.maxConcurrent > 100_000 || j.totalCompletions > 1_000_000) fail(`${field}.mode.replicatedJob`, 'maxConcurrent is at most 100000 and totalCompletions at most 1000000');
  }
  if ((mode.$case === 'replicatedJob' || mode.$case === 'globalJob') && (spec.update || spec.rollback)) {
    fail(`${field}.update`, 'jobs run to completion and take no update or rollback configuration');
  }
  checkUpdateConfig(spec.update, `${field}.update`, false);
  checkUpdateConfig(spec.rollback, `${field}.rollback`, true);

  const task = spec.task;
  if (!task) fail(`${field}.task`, 'is required');
  const c = task.container;
  if (!c) fail(`${field}.task.container`, 'is required');
  if (!c.image) fail(`${field}.task.container.image`, 'is required');
  parseImageReference(c.image, `${field}.task.container.image`); // Docker's grammar (common/image-reference.ts)
  c.env.forEach((e, i) => {
    if (e === '' || e.startsWith('=')) fail(`${field}.task.container.env[${i}]`, `"${e}" must be KEY=VALUE or KEY`);
  });
  if (c.hostname && !HOSTNAME_RE.test(c.hostname)) fail(`${field}.task.container.hostname`, `"${c.hostname}" is not a valid hostname`);
  if (c.dir && !c.dir.startsWith('/')) fail(`${field}.task.container.dir`, `"${c.dir}" must be an absolute path`);
  if (c.user && !USER_RE.test(c.user)) fail(`${field}.task.container.user`, `"${c.user}" must be USER, UID, USER:GROUP or UID:GID`);
  checkLabels(c.labels, `${field}.task.container.labels`);
  if (c.stopGracePeriodMs !== undefined) checkDuration(c.stopGracePeriodMs, `${field}.task.container.stopGracePeriodMs`);
  if (c.stopSignal && !isSignal(c.stopSignal)) fail(`${field}.task.container.stopSignal`, `"${c.stopSignal}" is not a signal (e.g. SIGTERM, SIGUSR1, 15)`);
  for (const which of ['capabilityAdd', 'capabilityDrop'] as const) {
    c[which].forEach((cap, i) => {
      if (cap !== 'ALL' && !CAPABILITIES.includes(cap)) fail(`${field}.task.container.${which}[${i}]`, `"${cap}" is not a capability (CAP_NET_ADMIN, ... or ALL)`);
    });
  }
  const ulimits = new Set<string>();
  c.ulimits.forEach((u, i) => {
    const f = `${field}.task.container.ulimits[${i}]`;
    if (!ULIMIT_NAMES.includes(u.name)) fail(`${f}.name`, `"${u.name}" is not a ulimit (${ULIMIT_NAMES.join(', ')})`);
    if (ulimits.has(u.name)) fail(`${f}.name`, `"${u.name}" is set twice`);
    ulimits.add(u.name);
    if (u.soft < 0 || u.hard < 0) fail(f, 'soft and hard must not be negative');
    if (u.soft > u.hard) fail(`${f}.soft`, `${u.soft} is above the hard limit ${u.hard}`);
  });
  if (c.oomScoreAdj < -1000 || c.oomScoreAdj > 1000) fail(`${field}.task.container.oomScoreAdj`, `${c.oomScoreAdj} must be between -1000 and 1000`);
  for (const [key, value] of Object.entries(c.sysctls)) {
    const problem = sysctlProblem(key);
    if (problem !== undefined) fail(`${field}.task.container.sysctls`, problem);
    if (value === '' || /[\n\0]/.test(value)) fail(`${field}.task.container.sysctls`, `the value of "${key}" must be one line, not empty`);
  }
  if (c.shmSizeBytes < 0) fail(`${field}.task.container.shmSizeBytes`, 'must not be negative');
  c.hosts.forEach((h, i) => {
    const problem = hostsLineProblem(h);
    if (problem !== undefined) fail(`${field}.task.container.hosts[${i}]`, problem);
  });
  const dns = c.dnsConfig;
  if (dns) {
    dns.nameservers.forEach((n, i) => {
      if (isIP(n) === 0) fail(`${field}.task.container.dnsConfig.nameservers[${i}]`, `"${n}" is not an IP address`);
    });
    dns.search.forEach((d, i) => {
      if (!isHostName(d)) fail(`${field}.task.container.dnsConfig.search[${i}]`, `"${d}" is not a domain name`);
    });
    dns.options.forEach((o, i) => {
      const problem = dnsOptionProblem(o);
      if (problem !== undefined) fail(`${field}.task.container.dnsConfig.options[${i}]`, problem);
    });
  }
  const targets = new Set<string>();
  c.mounts.forEach((m, i) => {
    const f = `${field}.task.container.mounts[${i}]`;
    checkEnum(m.type, [Mount_Type.TYPE_BIND, Mount_Type.TYPE_VOLUME, Mount_Type.TYPE_TMPFS], 'bind, volume, tmpfs', `${f}.type`);
    if (!m.target.startsWith('/')) fail(`${f}.target`, `"${m.target}" must be an absolute path`);
    if (m.target.replace(/\/+$/, '') === '') fail(`${f}.target`, 'must not be the root directory');
    if (targets.has(m.target)) fail(`${f}.target`, `"${m.target}" is mounted twice`);
    targets.add(m.target);
    if (m.type === Mount_Type.TYPE_BIND && !m.source.startsWith('/')) fail(`${f}.source`, `a bind mount's source "${m.source}" must be an absolute path on the host`);
    // Anonymous volumes would all share the volumes directory: a volume needs its name.
    if (m.type === Mount_Type.TYPE_VOLUME && !m.source) fail(`${f}.source`, 'a volume mount needs a source (the volume name); anonymous volumes are not supported');
    if (m.type === Mount_Type.TYPE_VOLUME && !NAME_RE.test(m.source)) fail(`${f}.source`, `volume name "${m.source}" must hold only letters, digits, '_', '.' and '-'`);
    if (m.type === Mount_Type.TYPE_TMPFS && m.source) fail(`${f}.source`, 'a tmpfs mount takes no source');
    if (m.type !== Mount_Type.TYPE_TMPFS && (m.tmpfsSizeBytes || m.tmpfsMode)) fail(`${f}.type`, 'tmpfsSizeBytes and tmpfsMode are for tmpfs mounts only');
    if (m.tmpfsSizeBytes < 0) fail(`${f}.tmpfsSizeBytes`, 'must not be negative');
    if (m.tmpfsMode > 0o7777) fail(`${f}.tmpfsMode`, `${m.tmpfsMode.toString(8)} is not a file mode`);
  });
  const secretFiles = new Set<string>();
  c.secrets.forEach((s, i) => {
    if (!s.secretId && !s.secretName) fail(`${field}.task.container.secrets[${i}]`, 'names no secret (secretId or secretName)');
    checkFileTarget(s.file, `${field}.task.container.secrets[${i}].file`);
    if (secretFiles.has(s.file.name)) fail(`${field}.task.container.secrets[${i}].file.name`, `"${s.file.name}" is the target of two secrets`);
    secretFiles.add(s.file.name);
  });
  const configFiles = new Set<string>();
  c.configs.forEach((s, i) => {
    if (!s.configId && !s.configName) fail(`${field}.task.container.configs[${i}]`, 'names no config (configId or configName)');
    checkFileTarget(s.file, `${field}.task.container.configs[${i}].file`);
    // Relative names are under / (Docker's default target is /NAME).
    const name = s.file.name.startsWith('/') ? s.file.name : `/${s.file.name}`;
    // The kernel's file systems are no place for a file (the worker refuses them too).
    const kernelDir = ['/proc', '/sys', '/dev'].find((d) => name.replace(/\/+/g, '/') === d || name.replace(/\/+/g, '/').startsWith(`${d}/`));
    if (kernelDir) fail(`${field}.task.container.configs[${i}].file.name`, `"${s.file.name}" must not be in ${kernelDir}`);
    if (name.replace(/\/+/g, '/') === '/' || name.endsWith('/')) fail(`${field}.task.container.configs[${i}].file.name`, `"${s.file.name}" must name a file, not a directory`);
    if (configFiles.has(name)) fail(`${field}.task.container.configs[${i}].file.name`, `"${s.file.name}" is the target of two configs`);
    configFiles.add(name);
  });
  if (c.healthcheck) {
    const h = c.healthcheck;
    const kind = h.test[0];
    if (kind !== undefined && !['CMD', 'CMD-SHELL', 'NONE'].includes(kind)) fail(`${field}.task.container.healthcheck.test[0]`, `"${kind}" must be CMD, CMD-SHELL or NONE`);
    if ((kind === 'CMD' || kind === 'CMD-SHELL') && h.test.length < 2) fail(`${field}.task.container.healthcheck.test`, `${kind} needs a command`);
    for (const k of ['intervalMs', 'timeoutMs', 'startPeriodMs', 'startIntervalMs'] as const) checkDuration(h[k], `${field}.task.container.healthcheck.${k}`);
  }

  const r = task.resources;
  for (const which of ['limits', 'reservations'] as const) {
    const res = r?.[which];
    if (!res) continue;
    if (res.nanoCpus < 0) fail(`${field}.task.resources.${which}.nanoCpus`, 'must not be negative');
    if (res.memoryBytes < 0) fail(`${field}.task.resources.${which}.memoryBytes`, 'must not be negative');
    if (res.pids < 0) fail(`${field}.task.resources.${which}.pids`, 'must not be negative');
  }
  const lim = r?.limits;
  const res = r?.reservations;
  // The scheduler reserves CPU and memory on a node; it has nothing to reserve processes from.
  if (res?.pids) fail(`${field}.task.resources.reservations.pids`, 'a node has no pids to reserve: reserve CPU and memory, and bound processes with limits.pids');
  // The runtime's smallest CFS quota is 1 ms per 100 ms period.
  if (lim?.nanoCpus && lim.nanoCpus < 10_000_000) fail(`${field}.task.resources.limits.nanoCpus`, `${lim.nanoCpus} is below the minimum of 0.01 CPU (10000000)`);
  if (lim?.memoryBytes && lim.memoryBytes < 4 << 20) fail(`${field}.task.resources.limits.memoryBytes`, `${lim.memoryBytes} is below the minimum of 4 MiB`);
  if (lim?.memoryBytes && res?.memoryBytes && res.memoryBytes > lim.memoryBytes) fail(`${field}.task.resources.reservations.memoryBytes`, 'must not exceed the memory limit');
  if (lim?.nanoCpus && res?.nanoCpus && res.nanoCpus > lim.nanoCpus) fail(`${field}.task.resources.reservations.nanoCpus`, 'must not exceed the CPU limit');

  if (task.restart) {
    const conditions = [RestartPolicy_Condition.CONDITION_ANY, RestartPolicy_Condition.CONDITION_ON_FAILURE, RestartPolicy_Condition.CONDITION_NONE];
    checkEnum(task.restart.condition, conditions, 'any, on-failure, none', `${field}.task.restart.condition`);
    checkCount(task.restart.maxAttempts, `${field}.task.restart.maxAttempts`);
    checkDuration(task.restart.delayMs, `${field}.task.restart.delayMs`);
    checkDuration(task.restart.windowMs, `${field}.task.restart.windowMs`, 30 * DAY_MS);
  }
  const p = task.placement;
  if (p) {
    parseConstraints(p.constraints, `${field}.task.placement.constraints`);
    checkCount(p.maxReplicasPerNode, `${field}.task.placement.maxReplicasPerNode`);
    if (p.maxReplicasPerNode && (mode.$case === 'global' || mode.$case === 'globalJob')) {
      fail(`${field}.task.placement.maxReplicasPerNode`, 'a global service runs one task per node; only replicated services and jobs take a maximum per node');
    }
    p.preferences.forEach((pref, i) => {
      if (!/^node\.labels\.[A-Za-z0-9_.-]+$/.test(pref.spreadDescriptor)) {
        fail(`${field}.task.placement.preferences[${i}].spreadDescriptor`, `"${pref.spreadDescriptor}" must be node.labels.NAME`);
      }
    });
  }

  const networks = new Set<string>();
  task.networks.forEach((n, i) => {
    if (!n.target) fail(`${field}.task.networks[${i}].target`, 'is required (a network name or id)');
    if (networks.has(n.target)) fail(`${field}.task.networks[${i}].target`, `"${n.target}" is attached twice`);
    networks.add(n.target);
    // An alias is a name in the embedded DNS (worker/network/dns-names.ts): a DNS name.
    n.aliases.forEach((a, j) => {
      if (!DNS_NAME.test(a) || a.length > 253) fail(`${field}.task.networks[${i}].aliases[${j}]`, `"${a}" is not a DNS name (letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 253 characters)`);
    });
  });
  if (task.logDriver) {
    try {
      logConfig(task.logDriver.name, task.logDriver.options);
    } catch (err) {
      if (err instanceof LogDriverError) fail(`${field}.task.logDriver.${err.field}`, err.rule);
      throw err;
    }
  }

  const ep = spec.endpoint;
  if (ep) {
    checkEnum(ep.mode, [EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR], 'vip, dnsrr', `${field}.endpoint.mode`);
    const published = new Set<string>();
    ep.ports.forEach((port, i) => {
      const f = `${field}.endpoint.ports[${i}]`;
      if (port.name !== '') fail(`${f}.name`, 'named ports are not supported (the name would be kept and used for nothing)');
      checkEnum(port.protocol, [PortConfig_Protocol.PROTOCOL_TCP, PortConfig_Protocol.PROTOCOL_UDP, PortConfig_Protocol.PROTOCOL_SCTP], 'tcp, udp, sctp', `${f}.protocol`);
      checkEnum(port.publishMode, [PortConfig_PublishMode.PUBLISH_MODE_INGRESS, PortConfig_PublishMode.PUBLISH_MODE_HOST], 'ingress, host', `${f}.publishMode`);
      if (port.targetPort < 1 || port.targetPort > 65535) fail(`${f}.targetPort`, `${port.targetPort} is not a port (1-65535)`);
      if (port.publishedPort > 65535) fail(`${f}.publishedPort`, `${port.publishedPort} is not a port (0-65535)`);
      // "Any free port" would have to be picked per node; not done: a host-mode port is named.
      if (port.publishMode === PortConfig_PublishMode.PUBLISH_MODE_HOST && port.publishedPort === 0) fail(`${f}.publishedPort`, 'host mode needs a published port (1-65535); picking a free one is not supported');
      if (port.publishedPort !== 0) {
        const key = `${port.protocol}/${port.publishedPort}`;
        if (published.has(key)) fail(`${f}.publishedPort`, `${port.publishedPort} is published twice`);
        published.add(key);
      }
      // The routing mesh forwards to the tasks' addresses: a service without a VIP has them too,
      // but Docker refuses the pair (its mesh balances through the VIP); so do we, alike.
      if (port.publishMode === PortConfig_PublishMode.PUBLISH_MODE_INGRESS && ep.mode === EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR) {
        fail(`${f}.publishMode`, 'ingress publishing (the routing mesh) cannot be used with endpoint mode dnsrr; publish in host mode, or use endpoint mode vip');
      }
      if (port.publishMode === PortConfig_PublishMode.PUBLISH_MODE_INGRESS && port.protocol === PortConfig_Protocol.PROTOCOL_SCTP) fail(`${f}.protocol`, 'sctp is not forwarded by the routing mesh; publish it in host mode');
    });
  }
}

const NO_DATA = Buffer.alloc(0);
const DNS_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

/** Secrets and configs share their rules: a valid name, data that is not empty and at most 500 KiB. */
function validateDataSpec(spec: SecretSpec | ConfigSpec | undefined, field: string): void {
  if (!spec) fail(field, 'is required');
  checkName(spec.annotations, `${field}.annotations`, 64);
  if (spec.data.length === 0) fail(`${field}.data`, 'is empty');
  // The two messages have the same wire shape, so one codec measures both. The data is measured,
  // not copied into an encoding: the rest's encoding, plus field 2's tag (one byte), length
  // (a varint) and bytes. Exact, and a tenth of the work for a small secret.
  const rest = SecretSpecCodec.encode({ annotations: spec.annotations, data: NO_DATA }).finish().length;
  checkSize(rest + 1 + varintSize(spec.data.length) + spec.data.length, MAX_SECRET_BYTES + 4096, field);
  checkSize(spec.data.length, MAX_SECRET_BYTES, `${field}.data`);
}

export function validateSecretSpec(spec: SecretSpec | undefined, field = 'spec'): void {
  validateDataSpec(spec, field);
}

export function validateConfigSpec(spec: ConfigSpec | undefined, field = 'spec'): void {
  validateDataSpec(spec, field);
}

/** Options of the overlay driver a network may set; anything else is refused, naming it. */
const OVERLAY_OPTIONS = new Set([MTU_OPTION]);

export function validateNetworkSpec(spec: NetworkSpec | undefined, field = 'spec'): void {
  if (!spec) fail(field, 'is required');
  checkSize(NetworkSpecCodec.encode(spec).finish().length, MAX_SPEC_BYTES, field);
  checkName(spec.annotations, `${field}.annotations`, 63);
  checkLabels(spec.annotations?.labels ?? {}, `${field}.annotations.labels`);
  if (spec.driver === 'bridge') fail(`${field}.driver`, 'bridge networks are local to a node (swarmd --bridge NAME:SUBNET sets it); a cluster network is an overlay');
  if (spec.driver && spec.driver !== 'overlay') fail(`${field}.driver`, `"${spec.driver}" is not a driver (overlay)`);
  if (spec.ingress) fail(`${field}.ingress`, 'the ingress network (routing mesh) is not supported yet');
  for (const [key, value] of Object.entries(spec.driverOptions)) {
    const f = `${field}.driverOptions[${JSON.stringify(key)}]`;
    if (key === 'encrypted') {
      fail(f, 'encrypted overlays need IPsec (the kernel\'s ESP transforms, xfrm) or WireGuard, and the kernels tswarm is tested on have neither; not supported (see docs/network.md)');
    }
    if (!OVERLAY_OPTIONS.has(key)) fail(f, `is not an option of the overlay driver (known: ${[...OVERLAY_OPTIONS].join(', ')})`);
    if (key === MTU_OPTION && !/^\d{1,5}$/.test(value)) fail(f, `must be a whole number of bytes, got ${JSON.stringify(value)}`);
  }
  const optMtu = spec.driverOptions[MTU_OPTION];
  if (spec.mtu !== 0 && optMtu !== undefined && Number(optMtu) !== spec.mtu) fail(`${field}.mtu`, `${spec.mtu} differs from the driver option ${MTU_OPTION}=${optMtu}`);
  const mtu = specMtu(spec);
  if (mtu !== 0 && (mtu < MIN_MTU || mtu > 65535 - VXLAN_OVERHEAD)) fail(`${field}.mtu`, `${mtu} must be between ${MIN_MTU} and ${65535 - VXLAN_OVERHEAD} (and at most each node's underlay MTU − ${VXLAN_OVERHEAD})`);
  if (spec.ipam.length > 1) fail(`${field}.ipam`, 'one IPv4 subnet per network');
  spec.ipam.forEach((ipam, i) => {
    const f = `${field}.ipam[${i}]`;
    if (!ipam.subnet) {
      if (ipam.gateway || ipam.range) fail(`${f}.subnet`, 'is required with a gateway or an ip-range');
      return;
    }
    checkIpam(ipam, f);
  });
}

export function validateNodeSpec(spec: NodeSpec | undefined, field = 'spec'): void {
  if (!spec) fail(field, 'is required');
  checkLabels(spec.annotations?.labels ?? {}, `${field}.annotations.labels`);
}

export function validateClusterSpec(spec: ClusterSpec | undefined, field = 'spec'): void {
  if (!spec) fail(field, 'is required');
  if (spec.heartbeatPeriodMs !== 0 && (spec.heartbeatPeriodMs < 100 || spec.heartbeatPeriodMs > 60_000)) {
    fail(`${field}.heartbeatPeriodMs`, `${spec.heartbeatPeriodMs} must be between 100 and 60000`);
  }
  if (spec.taskHistoryRetentionLimit > 10_000) fail(`${field}.taskHistoryRetentionLimit`, 'is at most 10000');
  if (spec.nodeCertExpiryMs !== 0 && spec.nodeCertExpiryMs < 3600_000) fail(`${field}.nodeCertExpiryMs`, 'is at least one hour');
  // Fewer than 100 entries between snapshots would snapshot the whole store almost every write.
  if (spec.snapshotIntervalEntries !== 0 && spec.snapshotIntervalEntries < 100) fail(`${field}.snapshotIntervalEntries`, `${spec.snapshotIntervalEntries} is below the minimum of 100`);
}

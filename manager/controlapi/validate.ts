// Validation of specs arriving at the control API. Each function throws the first problem as an
// InvalidArgumentError naming the field (as a path, e.g. "spec.task.resources.limits.memoryBytes")
// and the rule; nothing is written before a spec passes.
import type { ClusterSpec, ConfigSpec, NetworkSpec, NodeSpec, SecretSpec, ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { NetworkSpec as NetworkSpecCodec, SecretSpec as SecretSpecCodec, ServiceSpec as ServiceSpecCodec } from '../../proto/gen/tswarm/specs.js';
import { Mount_Type, PortConfig_PublishMode, EndpointSpec_ResolutionMode, type Annotations, type FileTarget, type UpdateConfig } from '../../proto/gen/tswarm/types.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { parseConstraints } from '../constraint/constraint.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const LABEL_KEY_RE = /^[^\s=]+$/;
const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
export const MAX_SPEC_BYTES = 512 << 10;
export const MAX_SECRET_BYTES = 500 << 10;
const DAY_MS = 24 * 3600 * 1000;

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

function checkUpdateConfig(u: UpdateConfig | undefined, field: string): void {
  if (!u) return;
  checkDuration(u.delayMs, `${field}.delayMs`);
  checkDuration(u.monitorMs, `${field}.monitorMs`);
  if (!(u.maxFailureRatio >= 0 && u.maxFailureRatio <= 1)) fail(`${field}.maxFailureRatio`, `${u.maxFailureRatio} must be between 0 and 1`);
}

function checkFileTarget(f: FileTarget | undefined, field: string): void {
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
  checkUpdateConfig(spec.update, `${field}.update`);
  checkUpdateConfig(spec.rollback, `${field}.rollback`);

  const task = spec.task;
  if (!task) fail(`${field}.task`, 'is required');
  const c = task.container;
  if (!c) fail(`${field}.task.container`, 'is required');
  if (!c.image || /\s/.test(c.image)) fail(`${field}.task.container.image`, c.image ? `"${c.image}" must not contain spaces` : 'is required');
  c.env.forEach((e, i) => {
    if (e === '' || e.startsWith('=')) fail(`${field}.task.container.env[${i}]`, `"${e}" must be KEY=VALUE or KEY`);
  });
  if (c.hostname && !HOSTNAME_RE.test(c.hostname)) fail(`${field}.task.container.hostname`, `"${c.hostname}" is not a valid hostname`);
  if (c.dir && !c.dir.startsWith('/')) fail(`${field}.task.container.dir`, `"${c.dir}" must be an absolute path`);
  checkDuration(c.stopGracePeriodMs, `${field}.task.container.stopGracePeriodMs`);
  const targets = new Set<string>();
  c.mounts.forEach((m, i) => {
    const f = `${field}.task.container.mounts[${i}]`;
    if (!m.target.startsWith('/')) fail(`${f}.target`, `"${m.target}" must be an absolute path`);
    if (targets.has(m.target)) fail(`${f}.target`, `"${m.target}" is mounted twice`);
    targets.add(m.target);
    if (m.type === Mount_Type.TYPE_BIND && !m.source.startsWith('/')) fail(`${f}.source`, `a bind mount's source "${m.source}" must be an absolute path on the host`);
    if (m.type === Mount_Type.TYPE_VOLUME && m.source && !NAME_RE.test(m.source)) fail(`${f}.source`, `volume name "${m.source}" must hold only letters, digits, '_', '.' and '-'`);
    if (m.type === Mount_Type.TYPE_TMPFS && m.source) fail(`${f}.source`, 'a tmpfs mount takes no source');
  });
  c.secrets.forEach((s, i) => {
    if (!s.secretId && !s.secretName) fail(`${field}.task.container.secrets[${i}]`, 'names no secret (secretId or secretName)');
    checkFileTarget(s.file, `${field}.task.container.secrets[${i}].file`);
  });
  c.configs.forEach((s, i) => {
    if (!s.configId && !s.configName) fail(`${field}.task.container.configs[${i}]`, 'names no config (configId or configName)');
    checkFileTarget(s.file, `${field}.task.container.configs[${i}].file`);
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
  if (lim?.memoryBytes && lim.memoryBytes < 4 << 20) fail(`${field}.task.resources.limits.memoryBytes`, `${lim.memoryBytes} is below the minimum of 4 MiB`);
  if (lim?.memoryBytes && res?.memoryBytes && res.memoryBytes > lim.memoryBytes) fail(`${field}.task.resources.reservations.memoryBytes`, 'must not exceed the memory limit');
  if (lim?.nanoCpus && res?.nanoCpus && res.nanoCpus > lim.nanoCpus) fail(`${field}.task.resources.reservations.nanoCpus`, 'must not exceed the CPU limit');

  if (task.restart) {
    checkDuration(task.restart.delayMs, `${field}.task.restart.delayMs`);
    checkDuration(task.restart.windowMs, `${field}.task.restart.windowMs`, 30 * DAY_MS);
  }
  const p = task.placement;
  if (p) {
    parseConstraints(p.constraints, `${field}.task.placement.constraints`);
    p.preferences.forEach((pref, i) => {
      if (!/^node\.labels\.[A-Za-z0-9_.-]+$/.test(pref.spreadDescriptor)) {
        fail(`${field}.task.placement.preferences[${i}].spreadDescriptor`, `"${pref.spreadDescriptor}" must be node.labels.NAME`);
      }
    });
  }

  const ep = spec.endpoint;
  if (ep) {
    const published = new Set<string>();
    ep.ports.forEach((port, i) => {
      const f = `${field}.endpoint.ports[${i}]`;
      if (port.targetPort < 1 || port.targetPort > 65535) fail(`${f}.targetPort`, `${port.targetPort} is not a port (1-65535)`);
      if (port.publishedPort > 65535) fail(`${f}.publishedPort`, `${port.publishedPort} is not a port (0-65535)`);
      if (port.publishedPort !== 0) {
        const key = `${port.protocol}/${port.publishedPort}`;
        if (published.has(key)) fail(`${f}.publishedPort`, `${port.publishedPort} is published twice`);
        published.add(key);
      }
      if (ep.mode === EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR && port.publishMode === PortConfig_PublishMode.PUBLISH_MODE_INGRESS) {
        fail(`${f}.publishMode`, 'ingress publishing needs the VIP endpoint mode (use host mode with dnsrr)');
      }
    });
  }
}

/** Secrets and configs share their rules: a valid name, data that is not empty and at most 500 KiB. */
function validateDataSpec(spec: SecretSpec | ConfigSpec | undefined, field: string): void {
  if (!spec) fail(field, 'is required');
  checkName(spec.annotations, `${field}.annotations`, 64);
  if (spec.data.length === 0) fail(`${field}.data`, 'is empty');
  // The two messages have the same wire shape, so one codec measures both.
  checkSize(SecretSpecCodec.encode(spec).finish().length, MAX_SECRET_BYTES + 4096, field);
  checkSize(spec.data.length, MAX_SECRET_BYTES, `${field}.data`);
}

export function validateSecretSpec(spec: SecretSpec | undefined, field = 'spec'): void {
  validateDataSpec(spec, field);
}

export function validateConfigSpec(spec: ConfigSpec | undefined, field = 'spec'): void {
  validateDataSpec(spec, field);
}

function parseCidr(text: string, field: string): { base: number; bits: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const bits = m ? Number(m[5]) : -1;
  if (!m || octets.some((o) => o > 255) || bits > 32) fail(field, `"${text}" is not an IPv4 subnet in CIDR form (like 10.0.9.0/24)`);
  const addr = octets.reduce((a, o) => a * 256 + o, 0);
  return { base: addr, bits };
}

function parseIp(text: string, field: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  if (!m || octets.some((o) => o > 255)) fail(field, `"${text}" is not an IPv4 address`);
  return octets.reduce((a, o) => a * 256 + o, 0);
}

export function validateNetworkSpec(spec: NetworkSpec | undefined, field = 'spec'): void {
  if (!spec) fail(field, 'is required');
  checkSize(NetworkSpecCodec.encode(spec).finish().length, MAX_SPEC_BYTES, field);
  checkName(spec.annotations, `${field}.annotations`, 63);
  if (spec.driver && !['overlay', 'bridge'].includes(spec.driver)) fail(`${field}.driver`, `"${spec.driver}" is not a driver (overlay or bridge)`);
  if (spec.mtu !== 0 && (spec.mtu < 68 || spec.mtu > 65535)) fail(`${field}.mtu`, `${spec.mtu} must be between 68 and 65535`);
  spec.ipam.forEach((ipam, i) => {
    const f = `${field}.ipam[${i}]`;
    const net = parseCidr(ipam.subnet, `${f}.subnet`);
    const size = 2 ** (32 - net.bits);
    if (net.base % size !== 0) fail(`${f}.subnet`, `"${ipam.subnet}" has host bits set`);
    if (ipam.gateway) {
      const gw = parseIp(ipam.gateway, `${f}.gateway`);
      if (gw < net.base || gw >= net.base + size) fail(`${f}.gateway`, `${ipam.gateway} is outside ${ipam.subnet}`);
    }
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
}

// A task's spec as the executor takes it: one pure function from the task (its TaskSpec, id,
// published ports), the pulled image and what the node made for it (the secret and config files'
// mounts) to the executor's ContainerSpec. Every field of the task's spec that concerns the
// container is carried over here or refused with an error naming it; the control API refuses
// them first, this guards the node against any other writer of the store.
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { Mount_Type, PortConfig_Protocol, PortConfig_PublishMode, type PortConfig } from '../../proto/gen/tswarm/types.js';
import { TswarmError } from '../../common/errors.js';
import { logConfig, LogDriverError, type LogConfig } from '../../common/log-driver.js';
import type { ContainerSpec, Mount, OverlayEndpointSpec } from '../exec/executor.js';
import type { OverlayNetwork } from '../network/overlay.js';
import type { NetworkAssignment } from '../../proto/gen/tswarm/dispatcher.js';
import { specMtu } from '../../common/network.js';
import type { ImageRecord } from '../image/store.js';
import type { PublishedPort } from '../network/ports.js';

/** A task the node cannot run as specified: names the spec field and the rule. */
export class TaskSpecError extends TswarmError {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

const PROTOCOLS: Record<PortConfig_Protocol, PublishedPort['protocol'] | undefined> = {
  [PortConfig_Protocol.PROTOCOL_TCP]: 'tcp',
  [PortConfig_Protocol.PROTOCOL_UDP]: 'udp',
  [PortConfig_Protocol.PROTOCOL_SCTP]: 'sctp',
  [PortConfig_Protocol.UNRECOGNIZED]: undefined,
};

/**
 * The task's host-mode published ports: from its allocated endpoint if that lists ports, else from
 * its endpoint spec (the scheduler reads both the same way). Ingress ports are not the node's
 * business; a host port of 0 (any free port) is refused by the control API and skipped here.
 */
export function hostPorts(task: Task): { config: PortConfig; port: PublishedPort }[] {
  const allocated = task.endpoint?.ports ?? [];
  const ports = allocated.length > 0 ? allocated : (task.endpoint?.spec?.ports ?? []);
  const out: { config: PortConfig; port: PublishedPort }[] = [];
  for (const c of ports) {
    const protocol = PROTOCOLS[c.protocol];
    if (c.publishMode !== PortConfig_PublishMode.PUBLISH_MODE_HOST || c.publishedPort === 0 || protocol === undefined) continue;
    out.push({ config: c, port: { protocol, published: c.publishedPort, target: c.targetPort } });
  }
  return out;
}

/** A network as the node programs it, from its assignment. */
export function overlayNetworkOf(a: NetworkAssignment): OverlayNetwork {
  const n = a.network;
  const ipam = n?.ipam[0];
  if (!n || !ipam) throw new TaskSpecError('networks', `network ${n?.spec?.annotations?.name ?? n?.id ?? '?'} came without its subnet`);
  return {
    id: n.id,
    vni: n.vni,
    subnet: ipam.subnet,
    gateway: ipam.gateway,
    mtu: specMtu(n.spec),
    ...(a.nodeAddress ? { nodeAddress: a.nodeAddress } : {}),
    ...(a.dataPathPort ? { dataPathPort: a.dataPathPort } : {}),
    ...(n.spec?.ingress ? { ingress: true } : {}),
  };
}

/** What the node contributes to a container besides the task: its networks and the task's files. */
export interface NodeContext {
  /** 'bridge' when the executor has a bridge network. */
  network: 'bridge' | 'none';
  /** The overlay networks assigned to the node (by id), when it has the overlay driver; undefined: it has none. */
  overlays?: ReadonlyMap<string, NetworkAssignment>;
  /**
   * Whether the executor's bridge can give overlay containers their way out (swarmd's --bridge,
   * or else its egress bridge, Docker's docker_gwbridge); a task on no overlay network uses the
   * bridge only when `network` says so.
   */
  egress?: boolean;
  /** The task's secrets and configs as read-only bind mounts (files.ts). */
  fileMounts: Mount[];
}

/** The task's overlay endpoints, in its spec's order: each network with the address the allocator gave. */
function overlayEndpoints(task: Task, node: NodeContext): OverlayEndpointSpec[] {
  return task.networks.map((a, i) => {
    const field = `networks[${i}]`;
    if (!node.overlays) throw new TaskSpecError(field, 'overlay networks need swarmd\'s overlay driver, which this node runs without');
    const assigned = node.overlays.get(a.networkId);
    if (!assigned) throw new TaskSpecError(field, `network ${a.networkId} was not sent to this node with the task`);
    const address = a.addresses[0];
    if (!address) throw new TaskSpecError(field, `no address was allocated on network ${assigned.network?.spec?.annotations?.name ?? a.networkId}`);
    return { network: overlayNetworkOf(assigned), address };
  });
}

export function containerSpec(task: Task, image: ImageRecord, node: NodeContext): ContainerSpec {
  const c = task.spec?.container;
  const limits = task.spec?.resources?.limits;
  const mounts: Mount[] = (c?.mounts ?? []).map((m): Mount => {
    if (m.type === Mount_Type.TYPE_TMPFS) return { type: 'tmpfs', target: m.target, ...(m.tmpfsSizeBytes ? { sizeBytes: Number(m.tmpfsSizeBytes) } : {}), ...(m.tmpfsMode ? { mode: m.tmpfsMode } : {}) };
    return { type: m.type === Mount_Type.TYPE_VOLUME ? 'volume' : 'bind', source: m.source, target: m.target, readOnly: m.readOnly };
  });
  const ports = hostPorts(task).map((p) => p.port);
  const overlays = overlayEndpoints(task, node);
  // The bridge gives the default route and the way out (Docker's docker_gwbridge), unless the
  // task's first network is internal: the first network listed decides.
  const internal = overlays.length > 0 && node.overlays?.get(overlays[0]!.network.id)?.network?.spec?.internal === true;
  const network = overlays.length === 0 ? node.network : node.egress === true && !internal ? 'bridge' : 'none';
  if (ports.length > 0 && network !== 'bridge') {
    throw new TaskSpecError(
      'spec.endpoint.ports',
      internal
        ? `published port ${ports[0]!.published}/${ports[0]!.protocol} (host mode) needs a way out of the container, and its first network is internal`
        : `published port ${ports[0]!.published}/${ports[0]!.protocol} (host mode) needs the bridge network, and this node runs containers without one (start swarmd with --bridge NAME:SUBNET)`,
    );
  }
  const dns = c?.dnsConfig;
  return {
    id: task.id,
    image,
    ...(c?.command.length ? { command: c.command } : {}),
    ...(c?.args.length ? { args: c.args } : {}),
    env: c?.env ?? [],
    hostname: c?.hostname || task.id.slice(0, 12),
    ...(c?.dir ? { dir: c.dir } : {}),
    ...(c?.user ? { user: c.user } : {}),
    ...(c?.groups.length ? { groups: c.groups } : {}),
    limits: {
      ...(limits?.memoryBytes ? { memoryBytes: Number(limits.memoryBytes) } : {}),
      ...(limits?.nanoCpus ? { nanoCpus: Number(limits.nanoCpus) } : {}),
      ...(limits?.pids ? { pids: Number(limits.pids) } : {}),
    },
    network,
    ...(overlays.length > 0 ? { overlays } : {}),
    ...(ports.length > 0 ? { ports } : {}),
    mounts: [...mounts, ...node.fileMounts],
    readOnly: c?.readOnly ?? false,
    ...(c?.capabilityAdd.length ? { capAdd: c.capabilityAdd } : {}),
    ...(c?.capabilityDrop.length ? { capDrop: c.capabilityDrop } : {}),
    ...(c?.ulimits.length ? { ulimits: c.ulimits.map((u) => ({ name: u.name, soft: Number(u.soft), hard: Number(u.hard) })) } : {}),
    init: c?.init ?? false,
    ...(c?.stopSignal ? { stopSignal: c.stopSignal } : {}),
    ...(c && Object.keys(c.sysctls).length > 0 ? { sysctls: c.sysctls } : {}),
    tty: c?.tty ?? false,
    noNewPrivileges: c?.noNewPrivileges ?? false,
    oomScoreAdj: Number(c?.oomScoreAdj ?? 0),
    ...(c?.shmSizeBytes ? { shmSizeBytes: Number(c.shmSizeBytes) } : {}),
    ...(dns ? { dns: { nameservers: dns.nameservers, search: dns.search, options: dns.options } } : {}),
    ...(c?.hosts.length ? { hosts: c.hosts } : {}),
    labels: { ...(c?.labels ?? {}), ...swarmLabels(task) },
    log: taskLog(task),
  };
}

/** The task's log driver (TaskSpec.log_driver) as the executor takes it: without one, json-file with the default bound. */
export function taskLog(task: Task): LogConfig {
  const d = task.spec?.logDriver;
  try {
    return logConfig(d?.name ?? '', d?.options ?? {});
  } catch (err) {
    if (err instanceof LogDriverError) throw new TaskSpecError(`spec.task.logDriver.${err.field}`, err.rule);
    throw err;
  }
}

/** The labels Docker puts on a swarm task's container, so that tools can find a task's container. */
export function swarmLabels(task: Task): Record<string, string> {
  const service = task.serviceAnnotations?.name ?? '';
  const taskName = task.slot ? `${service}.${task.slot}.${task.id}` : `${service}.${task.nodeId}.${task.id}`;
  return {
    'com.docker.swarm.service.id': task.serviceId,
    'com.docker.swarm.service.name': service,
    'com.docker.swarm.task.id': task.id,
    'com.docker.swarm.task.name': taskName,
    'com.docker.swarm.node.id': task.nodeId,
  };
}

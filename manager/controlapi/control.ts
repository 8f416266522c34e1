// The control API: create, read, update and remove of the cluster's objects, on top of the store.
// Every write validates first (errors name the field and the rule), then runs one store
// transaction; version conflicts come back as such. `ControlApi` holds the logic; `addControlService`
// is the thin gRPC shell that maps errors to status codes.
import * as grpc from '@grpc/grpc-js';
import { ControlService, ResolveImage, UpdateServiceRequest_Rollback, type CreateServiceRequest, type ListFilters, type ListRequest, type UpdateServiceRequest } from '../../proto/gen/tswarm/control.js';
import { Cluster, Config, Network, Node, Secret, Service, Task } from '../../proto/gen/tswarm/objects.js';
import { NodeRole, NodeState, type RegistryAuth } from '../../proto/gen/tswarm/types.js';
import type { ClusterSpec, ConfigSpec, NetworkSpec, NodeSpec, SecretSpec, ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { InvalidArgumentError, TswarmError } from '../../common/errors.js';
import { newId } from '../../common/identity.js';
import { isTerminalState } from '../../common/task-state.js';
import { allocateNetwork, DEFAULT_ADDRESS_POOL, DEFAULT_SUBNET_SIZE } from '../allocator/networks.js';
import { allocatePorts, ingressNetworkIn, ingressPorts, INGRESS_NETWORK } from '../allocator/ports.js';
import { makeJoinToken } from '../ca/ca.js';
import { leaderService, managersOnly, type LeaderLocator } from '../forward.js';
import { openRegistryAuth, sealRegistryAuth, type Sealer } from '../store/sealing.js';
import { pinImage, validateRegistryAuth, type ImageResolver } from './image-pinning.js';
import { encodeList, passEncoded, type Encoder, type Indexed } from './list.js';
import { ConfChangeError, LeadershipLostError, NotLeaderError, ProposalDroppedError, StoppedError } from '../raft/errors.js';
import { notProposed } from '../../common/leader-retry.js';
import { ExistsError, NameConflictError, NotFoundError, VersionConflictError, nameOf, type Kind, type MemoryStore, type ObjectTypes, type Tx } from '../store/memory.js';
import { validateClusterSpec, validateConfigSpec, validateNetworkSpec, validateNodeSpec, validateSecretSpec, validateServiceSpec } from './validate.js';

/** An id or unique id prefix or name matched nothing, or more than one object. */
export class AmbiguousError extends TswarmError {}

/** A request that cannot be carried out in the cluster's present state; the message says why. */
export class RefusedError extends TswarmError {}

/** What the control API asks of manager membership before it lets a manager go. */
export interface MembershipGuard {
  /** Why demoting or removing this manager would be unsafe; undefined if it is safe. */
  demoteRefusal(node: Node): string | undefined;
}

/** What a create or update asks besides the spec: a registry credential to keep with the service, and how to pin its image. */
export interface ImageOptions {
  /** Replaces the service's credential; absent: an update keeps the one the service has. */
  registryAuth?: RegistryAuth | undefined;
  /** Default ALWAYS (Docker's); see image-pinning.ts. */
  resolveImage?: ResolveImage | undefined;
}

/** The first two items that `match` accepts (enough to tell one from several). */
function firstTwo<T>(count: number, at: (i: number) => T, match: (o: T) => boolean): T[] {
  const out: T[] = [];
  for (let i = 0; i < count; i++) {
    const o = at(i);
    if (match(o) && out.push(o) === 2) break;
  }
  return out;
}


/** A network made in `tx`, its subnet and VNI allocated from the cluster's pool (networks.ts). */
function makeNetwork(tx: Tx, id: string, spec: NetworkSpec): void {
  const cluster = tx.list('cluster')[0]?.spec;
  const pool = { pools: cluster?.defaultAddressPool.length ? cluster.defaultAddressPool : DEFAULT_ADDRESS_POOL, subnetSize: cluster?.subnetSize || DEFAULT_SUBNET_SIZE };
  const a = allocateNetwork(spec, tx.list('network'), tx.list('node'), pool);
  tx.create('network', { id, spec, ipam: [a.ipam], vni: a.vni, skippedSubnets: a.skippedSubnets });
}
/** A created or updated service, and what the caller should be told (e.g. the image could not be pinned). */
export interface ServiceResult {
  service: Service;
  warnings: string[];
}

export class ControlApi {
  /**
   * With a sealer, secret data and registry credentials are stored encrypted (see
   * manager/store/sealing.ts). With a resolver, service images are pinned to the digest their
   * registry has (see image-pinning.ts); without one (unit tests) no registry is ever asked.
   */
  constructor(
    private readonly store: MemoryStore,
    private readonly sealer?: Sealer,
    private readonly membership?: MembershipGuard,
    private readonly resolver?: ImageResolver,
  ) {}

  // ---------------------------------------------------------------- lookups

  /**
   * By exact id, then exact name (a node's hostname), then unique id prefix. Names of the kinds
   * whose names are unique come from the store's name index; the scans stop at a second match
   * (a lookup must not cost a pass over a table of 100,000 secrets).
   */
  resolve<K extends Kind>(kind: K, ref: string): ObjectTypes[K] {
    if (!ref) throw new InvalidArgumentError('id', 'is required');
    const byId = this.store.get(kind, ref);
    if (byId) return byId;
    const indexed = this.store.byName(kind, ref);
    if (indexed) return indexed;
    const all = this.store.scan(kind);
    // Nodes answer to their hostname too (as in Docker), unless a name is set; tasks to their
    // name. The other kinds' names are unique, and the index above has them.
    const named = (o: ObjectTypes[K]): string | undefined => nameOf(kind, o) || (kind === 'node' ? (o as Node).description?.hostname : undefined);
    const byName = kind === 'node' || kind === 'task' ? firstTwo(all.length, all.at, (o) => named(o) === ref) : [];
    if (byName.length === 1) return byName[0]!;
    // By id prefix: ids only, nothing decoded but the match.
    const byPrefix = firstTwo(all.length, all.idAt, (id) => id.startsWith(ref));
    if (byPrefix.length === 1) return this.store.get(kind, byPrefix[0]!)!;
    if (byPrefix.length > 1 || byName.length > 1) throw new AmbiguousError(`${kind} "${ref}" is ambiguous: it matches more than one object`);
    throw new NotFoundError(kind, ref);
  }

  /**
   * The objects a list looks at, as they are now: the table's, in the order they were created
   * (the order of the log: the store's tables keep it, and a restored snapshot too), or, for tasks
   * of one service or one node, that index's, sorted by creation (an index changes order as tasks
   * move between nodes). No sort of a whole table: at 100,000 objects it alone held the loop for
   * over 100 ms.
   */
  listCandidates<K extends Kind>(kind: K, f: ListFilters | undefined): Indexed<ObjectTypes[K]> {
    if (kind === 'task' && (f?.serviceIds.length === 1 || f?.nodeIds.length === 1)) {
      const tasks = this.store.findTasks({ serviceId: f.serviceIds[0], nodeId: f.nodeIds[0] }) as ObjectTypes[K][];
      return tasks.sort((a, b) => (a.meta?.createdAtUnixMs ?? 0) - (b.meta?.createdAtUnixMs ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    }
    return this.store.scan(kind);
  }

  /** Whether an object of the kind matches the filters (all of them; each list in a filter is an "or"). */
  listFilter<K extends Kind>(kind: K, f: ListFilters | undefined): (o: ObjectTypes[K]) => boolean {
    if (!f) return () => true;
    return (o) => {
      const name = nameOf(kind, o) ?? '';
      if (f.names.length > 0 && !f.names.includes(name)) return false;
      if (f.namePrefixes.length > 0 && !f.namePrefixes.some((p) => name.startsWith(p))) return false;
      if (f.idPrefixes.length > 0 && !f.idPrefixes.some((p) => o.id.startsWith(p))) return false;
      const labels = kind === 'task' ? ((o as Task).annotations?.labels ?? {}) : ((o as { spec?: { annotations?: { labels?: Record<string, string> } } }).spec?.annotations?.labels ?? {});
      for (const [k, v] of Object.entries(f.labels)) if (labels[k] === undefined || (v !== '' && labels[k] !== v)) return false;
      if (kind === 'task') {
        const t = o as Task;
        if (f.serviceIds.length > 0 && !f.serviceIds.includes(t.serviceId)) return false;
        if (f.nodeIds.length > 0 && !f.nodeIds.includes(t.nodeId)) return false;
        if (f.desiredStates.length > 0 && !f.desiredStates.includes(t.desiredState)) return false;
      }
      return true;
    };
  }

  // ---------------------------------------------------------------- services

  /**
   * Creates a service: its image pinned (unless told not to; a failed resolution is a warning),
   * its registry credential, if given, sealed with it.
   */
  async createService(spec: ServiceSpec | undefined, opts: ImageOptions = {}): Promise<ServiceResult> {
    validateServiceSpec(spec);
    const withIds = this.withNetworkIds(spec!);
    if (opts.registryAuth) validateRegistryAuth(opts.registryAuth);
    const id = newId();
    const pinned = await pinImage(this.resolver, { mode: opts.resolveImage ?? ResolveImage.RESOLVE_IMAGE_ALWAYS, image: spec!.task!.container!.image, previous: undefined, rollback: false }, opts.registryAuth);
    const registryAuth = opts.registryAuth ? sealRegistryAuth(this.sealer, id, opts.registryAuth) : Buffer.alloc(0);
    const service: Service = { id, spec: withImage(withIds, pinned.image), specVersion: 1, pendingDelete: false, registryAuth };
    await this.store.update((tx) => tx.create('service', this.withEndpoint(tx, service)));
    return { service: this.store.get('service', service.id)!, warnings: pinned.warnings };
  }

  /**
   * `version` is the version the caller read; rollback restores the previous spec (as it was: its
   * image is not resolved again). The image is pinned as at create, with the request's credential
   * or else the service's; a credential in the request replaces the service's.
   */
  async updateService(ref: string, version: number, spec: ServiceSpec | undefined, rollback: UpdateServiceRequest_Rollback, opts: ImageOptions = {}): Promise<ServiceResult> {
    const current = this.resolve('service', ref);
    let next: ServiceSpec | undefined = spec;
    const back = rollback === UpdateServiceRequest_Rollback.ROLLBACK_PREVIOUS;
    if (back) {
      if (!current.previousSpec) throw new InvalidArgumentError('rollback', `service ${current.spec?.annotations?.name ?? current.id} has no previous spec to roll back to`);
      next = current.previousSpec;
    }
    validateServiceSpec(next);
    next = this.withNetworkIds(next!);
    if (current.spec?.mode?.$case !== next.mode?.$case) {
      throw new InvalidArgumentError('spec.mode', `a service's mode cannot change (it is ${current.spec?.mode?.$case ?? 'unset'}); create a new service`);
    }
    if (nameOf('service', current) !== next.annotations?.name) throw new InvalidArgumentError('spec.annotations.name', 'renaming a service is not supported');
    if (opts.registryAuth) validateRegistryAuth(opts.registryAuth);
    const auth = opts.registryAuth ?? openRegistryAuth(this.sealer, current);
    const pinned = await pinImage(
      this.resolver,
      { mode: opts.resolveImage ?? ResolveImage.RESOLVE_IMAGE_ALWAYS, image: next.task!.container!.image, previous: current.spec?.task?.container?.image, rollback: back },
      auth,
    );
    const updated: Service = {
      ...current,
      meta: { ...current.meta!, version },
      previousSpec: current.spec,
      spec: withImage(next, pinned.image),
      specVersion: current.specVersion + 1,
      registryAuth: opts.registryAuth ? sealRegistryAuth(this.sealer, current.id, opts.registryAuth) : current.registryAuth,
    };
    await this.store.update((tx) => tx.update('service', this.withEndpoint(tx, updated)));
    return { service: this.store.get('service', current.id)!, warnings: pinned.warnings };
  }

  /**
   * The service with its published ports allocated (ports.ts), in the transaction that writes it:
   * two services cannot take one port. The first ingress-mode port makes the `ingress` network
   * the routing mesh runs over (as Docker's, but when first needed: a cluster that publishes
   * nothing has none).
   */
  private withEndpoint(tx: Tx, s: Service): Service {
    const spec = s.spec?.endpoint;
    if (!spec && !s.endpoint) return s;
    const ports = allocatePorts(s.id, spec?.ports ?? [], s.endpoint?.ports ?? [], tx.list('service'));
    if (ingressPorts(spec).length > 0) this.ingressNetwork(tx);
    return { ...s, endpoint: { virtualIps: [], ...s.endpoint, ...(spec ? { spec } : {}), ports } };
  }

  /** The ingress network, made if missing. */
  private ingressNetwork(tx: Tx): void {
    if (ingressNetworkIn(tx.list('network'))) return;
    if (tx.byName('network', INGRESS_NETWORK)) throw new InvalidArgumentError('spec.endpoint.ports', `ingress publishing needs the network "${INGRESS_NETWORK}", and a network of that name that is not the routing mesh's exists; remove it or publish in host mode`);
    makeNetwork(tx, newId(), { annotations: { name: INGRESS_NETWORK, labels: {} }, driver: 'overlay', driverOptions: {}, ipam: [], attachable: false, internal: false, ingress: true, mtu: 0 });
  }

  async removeService(ref: string): Promise<void> {
    const s = this.resolve('service', ref);
    await this.store.update((tx) => tx.remove('service', s.id));
  }

  // ---------------------------------------------------------------- networks, secrets, configs

  /**
   * Creates an overlay network with its subnet (given, or the next free one of the cluster's pool)
   * and VNI, decided in the transaction that creates it: two creates at once cannot both take one
   * (the second's transaction sees the first's network, or fails its name check).
   */
  async createNetwork(spec: NetworkSpec | undefined): Promise<Network> {
    validateNetworkSpec(spec);
    const id = newId();
    await this.store.update((tx) => {
      const name = spec!.annotations!.name;
      if (tx.byName('network', name)) throw new InvalidArgumentError('spec.annotations.name', `a network named "${name}" exists`);
      makeNetwork(tx, id, { ...spec!, driver: spec!.driver || 'overlay' });
    });
    return this.store.get('network', id)!;
  }

  /** Refused while a service is attached to the network, or a task that has not ended holds an address on it. */
  async removeNetwork(ref: string): Promise<void> {
    const n = this.resolve('network', ref);
    const name = n.spec?.annotations?.name ?? n.id;
    const services = this.store.list('service').filter((s) => s.spec?.task?.networks.some((a) => a.target === n.id) || (n.spec?.ingress && ingressPorts(s.spec?.endpoint).length > 0));
    if (services.length > 0) throw new InvalidArgumentError('network', `${name} is in use by service ${services.map((s) => s.spec?.annotations?.name).join(', ')}`);
    const tasks = this.store.list('task').filter((t) => t.networks.some((a) => a.networkId === n.id) && !isTerminalState(t.status?.state));
    if (tasks.length > 0) throw new InvalidArgumentError('network', `${name} is in use by task ${tasks.slice(0, 5).map((t) => t.id).join(', ')}${tasks.length > 5 ? ` and ${tasks.length - 5} more` : ''} (they are stopping)`);
    await this.store.update((tx) => tx.remove('network', n.id));
  }

  /**
   * The spec with each network it attaches to named by id (as Docker stores it: a network renamed
   * or re-created under the name is another network); one that does not exist is refused.
   */
  private withNetworkIds(spec: ServiceSpec): ServiceSpec {
    const task = spec.task!;
    if (task.networks.length === 0) return spec;
    const networks = task.networks.map((a, i) => {
      try {
        return { ...a, target: this.resolve('network', a.target).id };
      } catch (err) {
        if (err instanceof NotFoundError || err instanceof AmbiguousError) throw new InvalidArgumentError(`spec.task.networks[${i}].target`, `network "${a.target}" ${err instanceof NotFoundError ? 'not found' : 'is ambiguous'}`);
        throw err;
      }
    });
    const twice = networks.findIndex((a, i) => networks.findIndex((b) => b.target === a.target) !== i);
    if (twice >= 0) throw new InvalidArgumentError(`spec.task.networks[${twice}].target`, `"${task.networks[twice]!.target}" is the same network as another entry`);
    return { ...spec, task: { ...task, networks } };
  }

  async createSecret(spec: SecretSpec | undefined): Promise<Secret> {
    validateSecretSpec(spec);
    const id = newId();
    const data = this.sealer ? this.sealer.seal(spec!.data, `secret:${id}`) : spec!.data;
    const s: Secret = { id, spec: { ...spec!, data } };
    await this.store.update((tx) => tx.create('secret', s));
    return redactSecret(this.store.get('secret', s.id)!);
  }

  async createConfig(spec: ConfigSpec | undefined): Promise<Config> {
    validateConfigSpec(spec);
    const c: Config = { id: newId(), spec };
    await this.store.update((tx) => tx.create('config', c));
    return this.store.get('config', c.id)!;
  }

  /** A secret's data in clear, for delivery to the nodes that run its tasks. */
  openSecret(ref: string): Buffer {
    const s = this.resolve('secret', ref);
    const data = s.spec?.data ?? Buffer.alloc(0);
    return this.sealer ? this.sealer.open(data, `secret:${s.id}`) : Buffer.from(data);
  }

  /** Secrets and configs in use by a service cannot be removed. */
  async removeSecretOrConfig(kind: 'secret' | 'config', ref: string): Promise<void> {
    const o = this.resolve(kind, ref);
    const users = this.store.list('service').filter((s) =>
      kind === 'secret' ? s.spec?.task?.container?.secrets.some((r) => r.secretId === o.id) : s.spec?.task?.container?.configs.some((r) => r.configId === o.id),
    );
    if (users.length > 0) throw new InvalidArgumentError(kind, `${o.spec?.annotations?.name ?? o.id} is in use by service ${users.map((s) => s.spec?.annotations?.name).join(', ')}`);
    await this.store.update((tx) => tx.remove(kind, o.id));
  }

  // ---------------------------------------------------------------- nodes, tasks, cluster

  async updateNode(ref: string, version: number, spec: NodeSpec | undefined): Promise<Node> {
    validateNodeSpec(spec);
    const n = this.resolve('node', ref);
    if (spec?.desiredRole === NodeRole.NODE_ROLE_WORKER && n.spec?.desiredRole === NodeRole.NODE_ROLE_MANAGER) {
      const refusal = this.membership?.demoteRefusal(n);
      if (refusal) throw new RefusedError(refusal);
    }
    await this.store.update((tx) => tx.update('node', { ...n, meta: { ...n.meta!, version }, spec }));
    return this.store.get('node', n.id)!;
  }

  /**
   * Removes a node from the cluster. A manager must be demoted first; a node that is not down
   * needs `force` (its certificate stops working at once: every call checks the node exists).
   */
  async removeNode(ref: string, force: boolean): Promise<void> {
    const n = this.resolve('node', ref);
    if (n.role === NodeRole.NODE_ROLE_MANAGER || n.spec?.desiredRole === NodeRole.NODE_ROLE_MANAGER) {
      throw new RefusedError(`node ${n.id} is a manager; demote it first (swarmctl node demote ${n.id})`);
    }
    if (n.status?.state !== NodeState.NODE_STATE_DOWN && !force) {
      throw new RefusedError(`node ${n.id} is not down (it is ${(n.status?.state ?? 'NODE_STATE_UNKNOWN').replace('NODE_STATE_', '').toLowerCase()}); stop it first, or use --force`);
    }
    await this.store.update((tx) => tx.remove('node', n.id));
  }

  async removeTask(ref: string): Promise<void> {
    const t = this.resolve('task', ref);
    await this.store.update((tx) => tx.remove('task', t.id));
  }

  /** Updates the cluster's settings; `rotate` replaces the worker and/or manager join token. */
  async updateCluster(ref: string, version: number, spec: ClusterSpec | undefined, rotate: { worker?: boolean; manager?: boolean } = {}): Promise<ObjectTypes['cluster']> {
    validateClusterSpec(spec);
    const c = this.resolve('cluster', ref);
    let rootCa = c.rootCa;
    if ((rotate.worker || rotate.manager) && rootCa) {
      const root = { certPem: rootCa.caCert.toString(), keyPem: '', digest: rootCa.caCertHash };
      const tokens = rootCa.joinTokens ?? { worker: '', manager: '' };
      rootCa = { ...rootCa, joinTokens: { worker: rotate.worker ? makeJoinToken(root) : tokens.worker, manager: rotate.manager ? makeJoinToken(root) : tokens.manager } };
    }
    await this.store.update((tx) => tx.update('cluster', { ...c, meta: { ...c.meta!, version }, spec, rootCa }));
    return this.store.get('cluster', c.id)!;
  }
}

/** The spec with its container's image replaced (the spec is validated: it has a container). */
function withImage(spec: ServiceSpec, image: string): ServiceSpec {
  if (spec.task?.container?.image === image) return spec;
  return { ...spec, task: { ...spec.task!, container: { ...spec.task!.container!, image } } };
}

/** The cluster object as it may leave the managers: without the root CA's private key. */
export function redactCluster(c: ObjectTypes['cluster']): ObjectTypes['cluster'] {
  return { ...c, rootCa: c.rootCa ? { ...c.rootCa, caKey: Buffer.alloc(0) } : undefined };
}

/** A service's registry credential never leaves the managers through the control API (the dispatcher sends it to the nodes that pull with it). */
export function redactService(s: Service): Service {
  return s.registryAuth.length > 0 ? { ...s, registryAuth: Buffer.alloc(0) } : s;
}

/** Secret data never leaves the managers through the control API. */
export function redactSecret(s: Secret): Secret {
  return { ...s, spec: s.spec ? { ...s.spec, data: Buffer.alloc(0) } : undefined };
}

/** Maps errors to gRPC status codes, keeping the message (which names the field or object). */
export function toGrpcError(err: unknown): Partial<grpc.StatusObject> {
  const details = err instanceof Error ? err.message : String(err);
  let code = grpc.status.INTERNAL;
  if (err instanceof InvalidArgumentError) code = grpc.status.INVALID_ARGUMENT;
  else if (err instanceof NotFoundError) code = grpc.status.NOT_FOUND;
  else if (err instanceof NameConflictError || err instanceof ExistsError) code = grpc.status.ALREADY_EXISTS;
  else if (err instanceof VersionConflictError) code = grpc.status.ABORTED;
  else if (err instanceof AmbiguousError || err instanceof RefusedError) code = grpc.status.FAILED_PRECONDITION;
  else if (err instanceof NotLeaderError || err instanceof ConfChangeError || err instanceof ProposalDroppedError) code = grpc.status.UNAVAILABLE;
  // The outcome is unknown (the write may yet be applied): unavailable, and not marked as a call
  // that may be made again.
  else if (err instanceof LeadershipLostError || err instanceof StoppedError) code = grpc.status.UNAVAILABLE;
  return { code, details };
}

/**
 * The Control service's statuses: toGrpcError's, with the not-proposed mark
 * (common/leader-retry.ts) when the log refused the call's proposal on the spot — NotLeaderError
 * (this manager no longer leads) or ProposalDroppedError (a leadership transfer is under way). Every
 * Control method proposes at most once, as its last step, so nothing of such a call was proposed,
 * and it is made again on the new leader (forward.ts, swarmctl).
 */
export function controlStatus(err: unknown): Partial<grpc.StatusObject> {
  const status = toGrpcError(err);
  return err instanceof NotLeaderError || err instanceof ProposalDroppedError ? notProposed(status) : status;
}

/** A handler of the control API: takes the request, returns the response. */
type Handler = (req: never) => unknown;

function unary<Req, Res>(fn: (req: Req) => Res | Promise<Res>): Handler {
  return fn;
}

/** The control API's methods, by their name in the generated service. */
export function controlHandlers(api: ControlApi): Record<string, Handler> {
  /** A list answered a slice at a time, already encoded (list.ts); `redact` first where the kind has secrets. */
  const encoded =
    <K extends Kind>(kind: K, type: Encoder<ObjectTypes[K]>, redact?: (o: ObjectTypes[K]) => ObjectTypes[K]) =>
    (req: ListRequest) =>
      encodeList(api.listCandidates(kind, req.filters), api.listFilter(kind, req.filters), type, redact);
  return {
    getNode: unary((r: { id: string }) => ({ node: api.resolve('node', r.id) })),
    listNodes: unary(encoded('node', Node)),
    updateNode: unary(async (r: { nodeId: string; version: number; spec?: NodeSpec }) => ({ node: await api.updateNode(r.nodeId, r.version, r.spec) })),
    removeNode: unary(async (r: { nodeId: string; force: boolean }) => {
      await api.removeNode(r.nodeId, r.force);
      return {};
    }),
    getTask: unary((r: { id: string }) => ({ task: api.resolve('task', r.id) })),
    listTasks: unary(encoded('task', Task)),
    removeTask: unary(async (r: { id: string }) => {
      await api.removeTask(r.id);
      return {};
    }),
    createService: unary(async (r: CreateServiceRequest) => {
      const { service, warnings } = await api.createService(r.spec, { registryAuth: r.registryAuth, resolveImage: r.resolveImage });
      return { service: redactService(service), warnings };
    }),
    getService: unary((r: { id: string }) => ({ service: redactService(api.resolve('service', r.id)) })),
    listServices: unary(encoded('service', Service, redactService)),
    updateService: unary(async (r: UpdateServiceRequest) => {
      const { service, warnings } = await api.updateService(r.serviceId, r.version, r.spec, r.rollback, { registryAuth: r.registryAuth, resolveImage: r.resolveImage });
      return { service: redactService(service), warnings };
    }),
    removeService: unary(async (r: { id: string }) => {
      await api.removeService(r.id);
      return {};
    }),
    createNetwork: unary(async (r: { spec?: NetworkSpec }) => ({ network: await api.createNetwork(r.spec) })),
    getNetwork: unary((r: { id: string }) => ({ network: api.resolve('network', r.id) })),
    listNetworks: unary(encoded('network', Network)),
    removeNetwork: unary(async (r: { id: string }) => {
      await api.removeNetwork(r.id);
      return {};
    }),
    createSecret: unary(async (r: { spec?: SecretSpec }) => ({ secret: await api.createSecret(r.spec) })),
    getSecret: unary((r: { id: string }) => ({ secret: redactSecret(api.resolve('secret', r.id)) })),
    listSecrets: unary(encoded('secret', Secret, redactSecret)),
    removeSecret: unary(async (r: { id: string }) => {
      await api.removeSecretOrConfig('secret', r.id);
      return {};
    }),
    createConfig: unary(async (r: { spec?: ConfigSpec }) => ({ config: await api.createConfig(r.spec) })),
    getConfig: unary((r: { id: string }) => ({ config: api.resolve('config', r.id) })),
    listConfigs: unary(encoded('config', Config)),
    removeConfig: unary(async (r: { id: string }) => {
      await api.removeSecretOrConfig('config', r.id);
      return {};
    }),
    getCluster: unary((r: { id: string }) => ({ cluster: redactCluster(api.resolve('cluster', r.id)) })),
    listClusters: unary(encoded('cluster', Cluster, redactCluster)),
    updateCluster: unary(async (r: { clusterId: string; version: number; spec?: ClusterSpec; rotateWorkerToken: boolean; rotateManagerToken: boolean }) => ({
      cluster: redactCluster(await api.updateCluster(r.clusterId, r.version, r.spec, { worker: r.rotateWorkerToken, manager: r.rotateManagerToken })),
    })),
  };
}

/**
 * Registers the Control service on a gRPC server. Only managers may call it (a manager
 * certificate, or the local socket when `local`); on a follower every call goes to the leader.
 */
export function addControlService(server: grpc.Server, api: ControlApi, locator: LeaderLocator, local: boolean): void {
  const handlers = controlHandlers(api);
  const authed = Object.fromEntries(Object.entries(handlers).map(([name, fn]) => [name, (req: unknown) => Promise.resolve().then(() => fn(req as never))]));
  server.addService(passEncoded(ControlService), leaderService(ControlService, authed, locator, { leaderOnly: () => true, authorize: managersOnly, local, toStatus: controlStatus }));
}

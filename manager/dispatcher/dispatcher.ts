// The dispatcher, on the leader: every node (workers, and managers, which run tasks too) holds a
// session with it over mutual TLS.
//
//   Session          a stream: the session id, the node as the cluster sees it, the managers
//   Heartbeat        every period (the cluster's heartbeatPeriodMs); 3 missed periods: the node
//                    is marked down (its tasks are then replaced by the orchestrators)
//   Assignments      a stream: first the complete set of the node's tasks (state ASSIGNED or
//                    later) with the secrets and configs they use, the registry credentials
//                    of their services, the overlay networks they are on (with the node's own
//                    address there) and each network's peers on other nodes (address and the
//                    node's data-path address: the static VXLAN entries) and each network's
//                    services with their serving tasks (service-endpoints.ts: the node's DNS
//                    answers and load balancers), then incremental changes, each message
//                    numbered (`sequence`)
//   UpdateTaskStatus the agent's observations, batched into one store transaction per burst;
//                    states only move forward
//
// The stop gate: a task that serves a service leaves its backends on every node before its own
// node is told to stop it. Its new desired state is held back from its node until every node that
// was sent it as a backend has acknowledged (HeartbeatRequest.appliedSequence) a message without
// it, or STOP_GATE_MS passed (a node that does not answer must not hold a rolling update).
//
// It meets the other components in the store only. On a follower every call is refused with
// UNAVAILABLE and the leader's address in the `leader` trailer, so that the agent goes there.
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { DispatcherService, type AssignmentChange, type AssignmentsMessage, type HeartbeatRequest, type HeartbeatResponse, type SessionMessage, type UpdateTaskStatusRequest } from '../../proto/gen/tswarm/dispatcher.js';
import { AssignmentChange_Action, AssignmentsMessage_Type, NetworkAssignment, NetworkPeer, RegistryCredential, ServiceEndpoints } from '../../proto/gen/tswarm/dispatcher.js';
import { Config, Network, Secret, Task, type Node, type Service } from '../../proto/gen/tswarm/objects.js';
import { NodeState, NodeRole, TaskState, type PeerPath, type RegistryAuth, type TaskStatus } from '../../proto/gen/tswarm/types.js';
import type { NodeIdentity } from '../../common/certs.js';
import { IllegalStateError } from '../../common/errors.js';
import { newId } from '../../common/identity.js';
import { isTerminalState, stateRank } from '../../common/task-state.js';
import { DEFAULT_DATA_PATH_PORT } from '../../common/network.js';
import type { Logger } from '../../common/logger.js';
import { callerOf, endStream } from '../forward.js';
import type { LeaderComponent } from '../leader.js';
import type { MemoryStore } from '../store/memory.js';
import { openRegistryAuth, type Sealer } from '../store/sealing.js';
import { NetworkEndpoints, nodeEndpointId } from './network-endpoints.js';
import { ServiceDirectory } from './service-endpoints.js';
import { ingressNetworkIn } from '../allocator/ports.js';

/** How long a task's stop waits at most for the nodes to take it out of their backends. */
export const STOP_GATE_MS = 2000;
/** A node whose services' change is unacknowledged this long is behind (Node.discovery). */
export const DISCOVERY_BEHIND_MS = 1000;

interface Sent {
  version?: number;
  /** A task's fields but its status and meta, as JSON; computed when its version moves. */
  stable?: string;
}

/** A task as the node needs it: a change of status alone (the node's own report) is not news to it. */
function stableForm(t: Task): string {
  return JSON.stringify(Task.toJSON({ ...t, status: undefined, meta: undefined }));
}

/** An item of a node's assignment set, with what tells whether the node has it already (see syncAssignments). */
interface Wanted {
  /** The object's version; undefined for items made of several objects (compared by `stable`). */
  version?: number;
  /** Made only when it is sent: a secret is opened (decrypted) for the node then, not at every sync. */
  change: () => AssignmentChange;
  /** For items whose version moves without news for the node (a task's is computed from it). */
  stable?: string;
  /** A service-endpoints item's backends (task ids): what the stop gate waits to see withdrawn. */
  backends?: readonly string[];
}

/** The removal of an assignment: the item's id, its other fields at their defaults. */
function removal(kind: string, id: string): NonNullable<NonNullable<AssignmentChange['assignment']>['item']> {
  switch (kind) {
    case 'task':
      return { $case: 'task', task: Task.fromPartial({ id }) };
    case 'secret':
      return { $case: 'secret', secret: Secret.fromPartial({ id }) };
    case 'config':
      return { $case: 'config', config: Config.fromPartial({ id }) };
    case 'registry-credential':
      return { $case: 'registryCredential', registryCredential: RegistryCredential.fromPartial({ serviceId: id }) };
    case 'network':
      return { $case: 'network', network: NetworkAssignment.fromPartial({ network: Network.fromPartial({ id }) }) };
    case 'peer':
      return { $case: 'peer', peer: NetworkPeer.fromPartial({ id }) };
    case 'service-endpoints':
      return { $case: 'serviceEndpoints', serviceEndpoints: ServiceEndpoints.fromPartial({ id }) };
    default:
      throw new IllegalStateError(`unknown assignment kind ${JSON.stringify(kind)} (key ${kind}/${id})`);
  }
}

/** Whether two reports of a node's overlay paths say the same (order aside). */
function samePaths(a: readonly PeerPath[], b: readonly PeerPath[]): boolean {
  if (a.length !== b.length) return false;
  const key = (p: PeerPath): string => JSON.stringify([p.networkId, p.nodeId, p.state, p.sinceUnixMs, p.lastError]);
  const keys = new Set(a.map(key));
  return b.every((p) => keys.has(key(p)));
}

interface Session {
  id: string;
  nodeId: string;
  lastHeartbeat: number;
  /** The open Assignments streams of this session (normally one). */
  streams: Set<grpc.ServerWritableStream<unknown, AssignmentsMessage>>;
  /** What was sent to the node: assignment key → object version, and for a task its stable form (see syncAssignments). */
  sent: Map<string, Sent>;
  /** Secrets and configs (`secret/ID`, `config/ID`) its tasks use that the store lacks: their creation is news to this node. */
  missing: Set<string>;
  sessionStream: grpc.ServerWritableStream<unknown, SessionMessage> | undefined;
  /** The sequence of the last assignments message sent, and the last the node acknowledged. */
  seq: number;
  applied: number;
  /** The tasks the node was last sent as backends of a service. */
  backendsSent: Set<string>;
  /** Tasks withdrawn from the node's backends → the message that withdrew them (until acknowledged). */
  removedAt: Map<string, number>;
  /** The messages that changed its services and are not acknowledged yet: [sequence, sent at]. */
  unacknowledged: [number, number][];
  /** Whether the store says the node is behind (as last written). */
  behind: boolean;
}

export interface DispatcherOptions {
  /** Default heartbeat period when the cluster object sets none. */
  heartbeatPeriodMs?: number;
  /** A status batch that met a version conflict is proposed again after this long (default 20 ms). Batches otherwise gather what came while the last one committed. */
  batchMs?: number;
}

export class Dispatcher implements LeaderComponent {
  readonly name = 'dispatcher';
  private running = false;
  private readonly sessions = new Map<string, Session>();
  private readonly endpoints = new NetworkEndpoints();
  private readonly directory = new ServiceDirectory();
  /** Tasks whose stop is held by the gate → since when, and their node. */
  private readonly gated = new Map<string, { nodeId: string; since: number }>();
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private behindTimer: NodeJS.Timeout | undefined;
  private watchLoop: Promise<void> | undefined;
  private stopWatch: (() => void) | undefined;
  private pendingStatus = new Map<string, TaskStatus>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: MemoryStore,
    private readonly sealer: Sealer,
    private readonly log: Logger,
    private readonly leaderAddr: () => string | undefined,
    private readonly opts: DispatcherOptions = {},
  ) {}

  get periodMs(): number {
    return this.store.list('cluster')[0]?.spec?.heartbeatPeriodMs || this.opts.heartbeatPeriodMs || 1000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.startedAt = Date.now();
    this.timer = setInterval(() => void this.checkHeartbeats(), Math.max(100, Math.floor(this.periodMs / 2)));
    this.behindTimer = setInterval(() => void this.checkDiscovery(), DISCOVERY_BEHIND_MS / 2);
    const watch = this.store.watch({ kinds: ['task', 'secret', 'config', 'service', 'network', 'node'] });
    this.stopWatch = () => watch.close();
    this.endpoints.clear();
    this.directory.clear();
    this.gated.clear();
    this.directory.setIngress(ingressNetworkIn(this.store.list('network'))?.id);
    for (const svc of this.store.list('service')) this.directory.setService(svc.id, svc);
    for (const t of this.store.list('task')) {
      if (t.networks.length === 0) continue;
      this.endpoints.setTask(t.id, t);
      this.directory.setTask(t.id, t);
    }
    for (const n of this.store.list('node')) if (n.attachments.length > 0) this.endpoints.setNode(n.id, n);
    this.watchLoop = (async () => {
      for await (const e of watch) {
        if (e.kind === 'task') {
          const t = e.object as Task;
          const old = e.old as Task | undefined;
          for (const nodeId of new Set([t.nodeId, old?.nodeId ?? ''])) this.sessionsOf(nodeId).forEach((s) => this.scheduleSync(s));
          if (e.action === 'remove') this.gated.delete(t.id);
          if (t.networks.length > 0 || (old?.networks.length ?? 0) > 0) {
            const now = e.action === 'remove' ? undefined : t;
            this.networksChanged([...this.endpoints.setTask(t.id, now), ...this.directory.setTask(t.id, now, t.serviceId)]);
          }
        } else if (e.kind === 'node') {
          const n = e.object as Node;
          const old = e.old as Node | undefined;
          const changed = this.endpoints.setNode(n.id, e.action === 'remove' ? undefined : n);
          // A node's own address on a network is in its network assignment; its data-path address
          // is in every peer of it.
          if (changed.length > 0) this.sessionsOf(n.id).forEach((s) => this.scheduleSync(s));
          if (n.description?.dataPathAddr !== old?.description?.dataPathAddr || n.status?.addr !== old?.status?.addr) {
            for (const a of [...n.attachments, ...this.store.findTasks({ nodeId: n.id }).flatMap((t) => t.networks)]) changed.push(a.networkId);
          }
          this.networksChanged(changed);
        } else if (e.kind === 'network') {
          const n = e.object as Network;
          if (n.spec?.ingress) {
            // The routing mesh's network is every node's: each syncs to take it (or leave it).
            this.directory.setIngress(e.action === 'remove' ? undefined : n.id);
            for (const s of this.sessions.values()) this.scheduleSync(s);
          }
          this.networksChanged([n.id]);
        } else if (e.kind === 'service') {
          this.networksChanged(this.directory.setService(e.object.id, e.action === 'remove' ? undefined : (e.object as Service)));
          // A credential given or replaced: news only to the nodes with tasks of the service.
          for (const nodeId of new Set(this.store.findTasks({ serviceId: e.object.id }).map((t) => t.nodeId))) this.sessionsOf(nodeId).forEach((s) => this.scheduleSync(s));
        } else {
          // A secret or config is news only to the nodes that were sent it or whose tasks wait for
          // it: not to every node at every create (thousands a second under a write load).
          const key = `${e.kind}/${e.object.id}`;
          for (const s of this.sessions.values()) if (s.sent.has(key) || s.missing.has(key)) this.scheduleSync(s);
        }
      }
    })();
    this.log.info('dispatcher: started');
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    if (this.behindTimer) clearInterval(this.behindTimer);
    this.stopWatch?.();
    await this.watchLoop;
    for (const s of this.sessions.values()) this.closeSession(s, 'the dispatcher stopped (leadership moved)');
    this.sessions.clear();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await this.flush();
  }

  /** The nodes on these networks resync (their peer tables, or the network itself, changed). */
  private networksChanged(ids: readonly string[]): void {
    if (ids.length === 0) return;
    const keys = [...new Set(ids)].map((id) => `network/${id}`);
    for (const s of this.sessions.values()) if (keys.some((k) => s.sent.has(k))) this.scheduleSync(s);
  }

  private sessionsOf(nodeId: string): Session[] {
    const s = nodeId ? this.sessions.get(nodeId) : undefined;
    return s ? [s] : [];
  }

  // ---------------------------------------------------------------- node liveness

  private async checkHeartbeats(): Promise<void> {
    const now = Date.now();
    const limit = 3 * this.periodMs;
    const down: string[] = [];
    for (const s of [...this.sessions.values()]) {
      if (now - s.lastHeartbeat > limit) {
        this.closeSession(s, 'heartbeats missed');
        this.sessions.delete(s.nodeId);
        down.push(s.nodeId);
      }
    }
    // Nodes that never came back after this dispatcher started, or never came after they joined
    // (grace: the same 3 periods from the later of the two).
    if (now - this.startedAt > limit) {
      for (const n of this.store.list('node')) {
        const since = Math.max(this.startedAt, n.meta?.createdAtUnixMs ?? 0);
        if (!this.sessions.has(n.id) && n.status?.state !== NodeState.NODE_STATE_DOWN && now - since > limit) down.push(n.id);
      }
    }
    if (down.length > 0) await this.setNodeStates(down, NodeState.NODE_STATE_DOWN, 'heartbeat failure').catch((err: Error) => this.log.warn({ err: err.message }, 'dispatcher: could not mark nodes down'));
  }

  /**
   * Node.discovery made to match each session: behind while a change of its services has gone
   * unacknowledged for DISCOVERY_BEHIND_MS (its DNS answers or VIP maps may name tasks that are
   * gone); written only when that flips.
   */
  private async checkDiscovery(): Promise<void> {
    const now = Date.now();
    const flips: { s: Session; state: NonNullable<Node['discovery']> }[] = [];
    for (const s of this.sessions.values()) {
      const oldest = s.unacknowledged[0];
      const behind = oldest !== undefined && now - oldest[1] >= DISCOVERY_BEHIND_MS;
      if (behind === s.behind) continue;
      flips.push({ s, state: { behind, sinceUnixMs: behind ? oldest[1] : 0, sentSequence: s.seq, appliedSequence: s.applied } });
    }
    if (flips.length === 0) return;
    await this.store
      .update((tx) => {
        for (const { s, state } of flips) {
          const n = tx.get('node', s.nodeId);
          if (n) tx.update('node', { ...n, discovery: state });
        }
      })
      .then(
        () => {
          for (const { s, state } of flips) s.behind = state.behind;
          for (const { s, state } of flips) if (state.behind) this.log.warn({ node: s.nodeId, sent: state.sentSequence, applied: state.appliedSequence }, 'dispatcher: a node\'s service tables are behind the store');
        },
        (err: Error) => this.log.debug({ err: err.message }, 'dispatcher: could not record a node\'s discovery state; at the next check'),
      );
  }

  private async setNodeStates(ids: string[], state: NodeState, message: string, description?: Node['description']): Promise<void> {
    await this.store.update((tx) => {
      for (const id of new Set(ids)) {
        const n = tx.get('node', id);
        if (!n) continue;
        // A session opened since the check: the node is not down (a DOWN written over its READY
        // would stay, as nothing sets READY again while the session lasts).
        if (state === NodeState.NODE_STATE_DOWN && this.sessions.has(id)) continue;
        if (n.status?.state === state && !description) continue;
        tx.update('node', { ...n, status: { state, message, addr: n.status?.addr ?? '' }, ...(description ? { description } : {}) });
      }
    });
    if (state === NodeState.NODE_STATE_DOWN) this.log.warn({ nodes: ids }, 'dispatcher: nodes marked down');
  }

  // ---------------------------------------------------------------- assignments

  private readonly syncQueued = new Set<Session>();

  private scheduleSync(s: Session): void {
    if (this.syncQueued.has(s)) return;
    this.syncQueued.add(s);
    setImmediate(() => {
      this.syncQueued.delete(s);
      this.syncAssignments(s, false);
    });
  }

  /**
   * The node's assignment set: its tasks at ASSIGNED or later; and, for those desired up to
   * RUNNING, the secrets and configs they use and the registry credentials of their services
   * (what a node no longer needs is withdrawn by the next sync, as anything absent from the set).
   */
  private assignmentSet(s: Session): Map<string, Wanted> {
    const nodeId = s.nodeId;
    const out = new Map<string, Wanted>();
    s.missing.clear();
    const secrets = new Set<string>();
    const configs = new Set<string>();
    const services = new Set<string>();
    const networks = new Set<string>();
    for (const t of this.store.findTasks({ nodeId })) {
      if (stateRank(t.status?.state ?? TaskState.TASK_STATE_NEW) < stateRank(TaskState.TASK_STATE_ASSIGNED)) continue;
      out.set(`task/${t.id}`, { version: t.meta?.version ?? 0, change: () => ({ action: AssignmentChange_Action.ACTION_UPDATE, assignment: { item: { $case: 'task', task: t } } }) });
      // Until its container is gone, a task stopping is still on its networks.
      if (!isTerminalState(t.status?.state)) for (const a of t.networks) networks.add(a.networkId);
      if (stateRank(t.desiredState) <= stateRank(TaskState.TASK_STATE_RUNNING)) {
        for (const r of t.spec?.container?.secrets ?? []) secrets.add(r.secretId);
        for (const r of t.spec?.container?.configs ?? []) configs.add(r.configId);
        services.add(t.serviceId);
      }
    }
    for (const id of services) {
      const svc = this.store.get('service', id);
      if (!svc || svc.registryAuth.length === 0) continue;
      // Sealed in the store; opened for the node that pulls with it (over mutual TLS). Its version
      // is the service's, which moves with every spec change: the stable form (a digest of the
      // sealed bytes, which change only when the credential is replaced) keeps those from being
      // sent again.
      let auth: RegistryAuth | undefined;
      try {
        auth = openRegistryAuth(this.sealer, svc);
      } catch (err) {
        this.log.error({ service: id, err: (err as Error).message }, 'dispatcher: a registry credential does not open; its tasks pull without it');
        continue;
      }
      out.set(`registry-credential/${id}`, {
        version: svc.meta?.version ?? 0,
        stable: createHash('sha256').update(svc.registryAuth).digest('hex'),
        change: () => ({ action: AssignmentChange_Action.ACTION_UPDATE, assignment: { item: { $case: 'registryCredential', registryCredential: { serviceId: id, auth } } } }),
      });
    }
    for (const id of secrets) {
      const secret = this.store.get('secret', id);
      const spec = secret?.spec;
      if (!secret || !spec) {
        s.missing.add(`secret/${id}`);
        continue;
      }
      // Sealed in the store; opened for the node that needs it (over mutual TLS), when it is sent.
      const change = (): AssignmentChange => {
        const data = this.sealer.open(spec.data, `secret:${secret.id}`);
        return { action: AssignmentChange_Action.ACTION_UPDATE, assignment: { item: { $case: 'secret', secret: { ...secret, spec: { ...spec, data } } } } };
      };
      out.set(`secret/${id}`, { version: secret.meta?.version ?? 0, change });
    }
    for (const id of configs) {
      const c = this.store.get('config', id);
      if (!c) s.missing.add(`config/${id}`);
      else out.set(`config/${id}`, { version: c.meta?.version ?? 0, change: () => ({ action: AssignmentChange_Action.ACTION_UPDATE, assignment: { item: { $case: 'config', config: c } } }) });
    }
    // Every node is on the routing mesh's network: it forwards the published ports it receives.
    const ingress = this.directory.ingressNetwork;
    if (ingress) networks.add(ingress);
    this.networkAssignments(nodeId, networks, out);
    return out;
  }

  /**
   * The networks of the node's tasks, each with the node's own address there, and their peers:
   * every endpoint of those networks on another node, with that node's data-path address. Items
   * are compared by their stable form (a peer's address and VTEP; a network's version and the
   * node's address), so only what changed is sent.
   */
  private networkAssignments(nodeId: string, networks: ReadonlySet<string>, out: Map<string, Wanted>): void {
    if (networks.size === 0) return;
    const self = this.store.get('node', nodeId);
    const dataPathPort = this.store.list('cluster')[0]?.spec?.vxlanUdpPort || DEFAULT_DATA_PATH_PORT;
    const vteps = new Map<string, string>();
    const vtepOf = (id: string): string => {
      let v = vteps.get(id);
      if (v === undefined) {
        const n = this.store.get('node', id);
        v = n?.description?.dataPathAddr || n?.status?.addr || '';
        vteps.set(id, v);
      }
      return v;
    };
    for (const id of networks) {
      const network = this.store.get('network', id);
      if (!network) continue;
      const nodeAddress = self?.attachments.find((a) => a.networkId === id)?.addresses[0] ?? '';
      out.set(`network/${id}`, {
        stable: `${network.meta?.version ?? 0} ${nodeAddress} ${dataPathPort}`,
        change: () => ({ action: AssignmentChange_Action.ACTION_UPDATE, assignment: { item: { $case: 'network', network: { network, nodeAddress, dataPathPort } } } }),
      });
      for (const [endpointId, e] of this.endpoints.of(id)) {
        if (e.nodeId === nodeId) continue;
        const vtep = vtepOf(e.nodeId);
        if (!vtep) continue;
        const peer: NetworkPeer = { id: `${id}:${endpointId}`, networkId: id, address: e.address, vtep, nodeId: e.nodeId, nodeAddress: endpointId === nodeEndpointId(e.nodeId) };
        out.set(`peer/${peer.id}`, { stable: `${e.address} ${vtep}`, change: () => ({ action: AssignmentChange_Action.ACTION_UPDATE, assignment: { item: { $case: 'peer', peer } } }) });
      }
      for (const item of this.directory.of(id)) {
        out.set(`service-endpoints/${item.id}`, {
          stable: JSON.stringify(ServiceEndpoints.toJSON(item)),
          backends: item.backends.map((b) => b.taskId),
          change: () => ({ action: AssignmentChange_Action.ACTION_UPDATE, assignment: { item: { $case: 'serviceEndpoints', serviceEndpoints: item } } }),
        });
      }
    }
  }

  /**
   * Whether the stop of this task (its desired state past RUNNING, not yet sent to its node) is
   * held: some node still has it as a backend, or has not acknowledged the message that withdrew
   * it, and STOP_GATE_MS has not passed since the hold began.
   */
  private holdStop(t: Task, before: Sent | undefined, stable: string): boolean {
    const release = (): boolean => {
      this.gated.delete(t.id);
      return false;
    };
    if (!before || before.stable === stable || stateRank(t.desiredState) <= stateRank(TaskState.TASK_STATE_RUNNING)) return release();
    if (t.status?.state !== TaskState.TASK_STATE_RUNNING || !t.serviceId || t.networks.length === 0) return release();
    const now = Date.now();
    const since = this.gated.get(t.id)?.since ?? now;
    if (now - since >= STOP_GATE_MS) {
      if (this.gated.has(t.id)) this.log.warn({ task: t.id }, 'dispatcher: a task\'s stop went ahead before every node acknowledged its removal from the service\'s backends');
      return release();
    }
    const waiting = [...this.sessions.values()].some((s) => s.backendsSent.has(t.id) || (s.removedAt.get(t.id) ?? 0) > s.applied);
    if (!waiting) return release();
    if (!this.gated.has(t.id)) {
      this.gated.set(t.id, { nodeId: t.nodeId, since });
      setTimeout(() => this.sessionsOf(t.nodeId).forEach((s) => this.scheduleSync(s)), STOP_GATE_MS).unref();
    }
    return true;
  }

  private syncAssignments(s: Session, complete: boolean): void {
    if (!this.running || s.streams.size === 0) return;
    const want = this.assignmentSet(s);
    const changes: AssignmentChange[] = [];
    const sent = new Map<string, Sent>();
    // The backends this message leaves the node with; those withdrawn are withdrawn by this message.
    const seq = s.seq + 1;
    const backends = new Set<string>();
    for (const w of want.values()) for (const id of w.backends ?? []) backends.add(id);
    for (const id of s.backendsSent) if (!backends.has(id)) s.removedAt.set(id, seq);
    s.backendsSent = backends;
    for (const [key, { version, change, stable: given }] of want) {
      const before = s.sent.get(key);
      if (version !== undefined && before?.version === version) {
        sent.set(key, before);
        if (complete) changes.push(change());
        continue;
      }
      const made = change();
      const item = made.assignment?.item;
      // Most versions of a task differ only in the status the node itself reported (five times
      // per task on its way to RUNNING): as SwarmKit's dispatcher does, those are not sent back.
      // A new session's complete set carries the statuses, for an agent to see what the manager
      // is missing.
      const stable = item?.$case === 'task' ? stableForm(item.task) : given;
      if (!complete && item?.$case === 'task' && this.holdStop(item.task, before, stable!)) {
        sent.set(key, before!);
        continue;
      }
      sent.set(key, { ...(version !== undefined ? { version } : {}), ...(stable !== undefined ? { stable } : {}) });
      if (complete || before === undefined || stable === undefined || before.stable !== stable) changes.push(made);
    }
    if (!complete) {
      for (const key of s.sent.keys()) {
        if (want.has(key)) continue;
        const slash = key.indexOf('/');
        const [kind, id] = [key.slice(0, slash), key.slice(slash + 1)];
        // Whole messages with defaults: a bare { id } has undefined numbers, which protobuf
        // encoding refuses (it failed the stream, and with it the node's session).
        const item = removal(kind, id);
        changes.push({ action: AssignmentChange_Action.ACTION_REMOVE, assignment: { item } });
      }
    }
    s.sent = sent;
    if (!complete && changes.length === 0) return;
    s.seq = seq;
    if (changes.some((c) => c.assignment?.item?.$case === 'serviceEndpoints')) s.unacknowledged.push([seq, Date.now()]);
    const msg: AssignmentsMessage = { type: complete ? AssignmentsMessage_Type.TYPE_COMPLETE : AssignmentsMessage_Type.TYPE_INCREMENTAL, appliesTo: '', resultsIn: newId(), changes, sequence: seq };
    for (const stream of s.streams) stream.write(msg);
  }

  /** The node put the service endpoints of message `seq` in force: stops held for it may go. */
  private acknowledged(s: Session, seq: number): void {
    s.applied = Math.min(seq, s.seq);
    for (const [id, at] of s.removedAt) if (at <= s.applied) s.removedAt.delete(id);
    while (s.unacknowledged.length > 0 && s.unacknowledged[0]![0] <= s.applied) s.unacknowledged.shift();
    for (const { nodeId } of this.gated.values()) this.sessionsOf(nodeId).forEach((x) => this.scheduleSync(x));
  }

  // ---------------------------------------------------------------- status updates

  private async updateStatus(nodeId: string, req: UpdateTaskStatusRequest): Promise<void> {
    for (const u of req.updates) {
      if (!u.status) continue;
      const t = this.store.get('task', u.taskId);
      if (!t || t.nodeId !== nodeId) continue; // not this node's (any more): ignore
      const prev = this.pendingStatus.get(u.taskId);
      if (!prev || stateRank(u.status.state) >= stateRank(prev.state)) this.pendingStatus.set(u.taskId, u.status);
    }
    // Answered once the batch holding these reports is committed: an agent forgets a report only
    // when it is durable (a leader that dies with reports in its batch would lose them otherwise).
    // A report that finds no batch committing goes at once (a task's RUNNING is news: its VIP's
    // backends, a rolling update's next step); reports that come while one commits are gathered
    // into the next, proposed as soon as that one is committed.
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.flushTimer && this.committing === 0) this.flushTimer = setTimeout(() => void this.flush(), 0);
    });
  }

  /** Status batches proposed and not yet committed. */
  private committing = 0;

  /** Callers whose reports are in pendingStatus, answered when the batch commits. */
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];

  private flush(): Promise<void> {
    this.flushTimer = undefined;
    const batch = this.pendingStatus;
    const waiters = this.waiters;
    this.pendingStatus = new Map();
    this.waiters = [];
    if (batch.size === 0) {
      for (const w of waiters) w.resolve();
      return this.flushing;
    }
    this.committing++;
    this.flushing = this.flushing.then(async () => {
      await this.store
        .update((tx) => {
          for (const [id, status] of batch) {
            const t = tx.get('task', id);
            if (!t) continue;
            // States only move forward; an old report of a task is dropped, a repeated one too.
            const was = t.status?.state ?? TaskState.TASK_STATE_NEW;
            if (stateRank(status.state) < stateRank(was)) continue;
            if (status.state === was && status.timestampUnixMs === t.status?.timestampUnixMs) continue;
            tx.update('task', { ...t, status: { ...status, pendingReason: '' } });
          }
        })
        .then(
          () => waiters.forEach((w) => w.resolve()),
          (err: Error) => {
            if (!this.running) {
              // Leadership moved: the agents send these reports again to the next leader.
              for (const w of waiters) w.reject(err);
              return;
            }
            // A version conflict: merge the batch back in for the next flush, with its callers.
            for (const [id, st] of batch) if (!this.pendingStatus.has(id)) this.pendingStatus.set(id, st);
            this.waiters.push(...waiters);
            if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), this.opts.batchMs ?? 20);
            this.log.debug({ err: err.message }, 'dispatcher: status batch retried');
          },
        );
    }).finally(() => {
      this.committing--;
      if (this.committing === 0 && this.pendingStatus.size > 0 && !this.flushTimer && this.running) this.flushTimer = setTimeout(() => void this.flush(), 0);
    });
    return this.flushing;
  }

  // ---------------------------------------------------------------- sessions

  private closeSession(s: Session, why: string): void {
    for (const st of s.streams) endStream(st, { code: grpc.status.UNAVAILABLE, details: why });
    s.streams.clear();
    if (s.sessionStream) endStream(s.sessionStream, { code: grpc.status.UNAVAILABLE, details: why });
    s.sessionStream = undefined;
  }

  private refuse(): Partial<grpc.StatusObject> {
    const md = new grpc.Metadata();
    const leader = this.leaderAddr();
    if (leader) md.set('leader', leader);
    return { code: grpc.status.UNAVAILABLE, details: `not the leader${leader ? `; the leader is at ${leader}` : ''}`, metadata: md };
  }

  private nodeOf(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): { who: NodeIdentity; node: Node } | string {
    const who = callerOf(call, false);
    if (!who) return 'the dispatcher needs a node certificate';
    const node = this.store.get('node', who.nodeId);
    if (!node) return `node ${who.nodeId} is not a member of the cluster (it was removed)`;
    return { who, node };
  }

  /** The grpc-js implementation; registered on every manager, serving only while this one leads. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      session: (call: grpc.ServerWritableStream<{ description?: Node['description']; sessionId: string }, SessionMessage>) => {
        if (!this.running) return endStream(call, this.refuse());
        const n = this.nodeOf(call);
        if (typeof n === 'string') return endStream(call, { code: grpc.status.PERMISSION_DENIED, details: n });
        const old = this.sessions.get(n.node.id);
        if (old) this.closeSession(old, 'replaced by a new session');
        const s: Session = {
          id: newId(),
          nodeId: n.node.id,
          lastHeartbeat: Date.now(),
          streams: new Set(),
          sent: new Map(),
          missing: new Set(),
          sessionStream: call,
          seq: 0,
          applied: 0,
          backendsSent: new Set(),
          removedAt: new Map(),
          unacknowledged: [],
          behind: n.node.discovery?.behind ?? false,
        };
        this.sessions.set(n.node.id, s);
        call.on('cancelled', () => {
          if (this.sessions.get(s.nodeId) === s) s.sessionStream = undefined;
        });
        void this.setNodeStates([n.node.id], NodeState.NODE_STATE_READY, 'session established', call.request.description ?? n.node.description).catch((err: Error) =>
          this.log.warn({ err: err.message }, 'dispatcher: could not mark a node ready'),
        );
        const managers = this.store
          .list('node')
          .filter((m) => m.role === NodeRole.NODE_ROLE_MANAGER && m.managerStatus?.addr)
          .map((m) => ({ nodeId: m.id, addr: m.managerStatus!.addr, weight: 1 }));
        call.write({ sessionId: s.id, node: n.node, managers });
        this.log.info({ node: n.node.id, session: s.id }, 'dispatcher: session established');
      },
      heartbeat: (call: grpc.ServerUnaryCall<HeartbeatRequest, HeartbeatResponse>, cb: grpc.sendUnaryData<HeartbeatResponse>) => {
        if (!this.running) return cb(this.refuse());
        const n = this.nodeOf(call);
        if (typeof n === 'string') return cb({ code: grpc.status.PERMISSION_DENIED, details: n });
        const s = this.sessions.get(n.node.id);
        if (!s || s.id !== call.request.sessionId) return cb({ code: grpc.status.NOT_FOUND, details: 'no such session; start a new one' });
        s.lastHeartbeat = Date.now();
        if (call.request.appliedSequence > s.applied) this.acknowledged(s, call.request.appliedSequence);
        // A node heard from is up, whatever an earlier check wrote.
        if (n.node.status?.state !== NodeState.NODE_STATE_READY) {
          void this.setNodeStates([n.node.id], NodeState.NODE_STATE_READY, 'heartbeat').catch((err: Error) => this.log.warn({ err: err.message }, 'dispatcher: could not mark a node ready'));
        }
        // Its overlay paths, written only when one changed (not at every heartbeat).
        if (!samePaths(n.node.peerPaths, call.request.peerPaths)) {
          const paths = call.request.peerPaths;
          void this.store
            .update((tx) => {
              const node = tx.get('node', n.node.id);
              if (node && !samePaths(node.peerPaths, paths)) tx.update('node', { ...node, peerPaths: paths });
            })
            .catch((err: Error) => this.log.debug({ err: err.message }, 'dispatcher: could not record a node\'s overlay paths; with its next heartbeat'));
        }
        cb(null, { periodMs: this.periodMs });
      },
      updateTaskStatus: (call: grpc.ServerUnaryCall<UpdateTaskStatusRequest, object>, cb: grpc.sendUnaryData<object>) => {
        if (!this.running) return cb(this.refuse());
        const n = this.nodeOf(call);
        if (typeof n === 'string') return cb({ code: grpc.status.PERMISSION_DENIED, details: n });
        const s = this.sessions.get(n.node.id);
        if (!s || s.id !== call.request.sessionId) return cb({ code: grpc.status.NOT_FOUND, details: 'no such session; start a new one' });
        this.updateStatus(n.node.id, call.request).then(
          () => cb(null, {}),
          (err: Error) => cb({ code: grpc.status.INTERNAL, details: err.message }),
        );
      },
      assignments: (call: grpc.ServerWritableStream<{ sessionId: string }, AssignmentsMessage>) => {
        if (!this.running) return endStream(call, this.refuse());
        const n = this.nodeOf(call);
        if (typeof n === 'string') return endStream(call, { code: grpc.status.PERMISSION_DENIED, details: n });
        const s = this.sessions.get(n.node.id);
        if (!s || s.id !== call.request.sessionId) return endStream(call, { code: grpc.status.NOT_FOUND, details: 'no such session; start a new one' });
        s.streams.add(call);
        call.on('cancelled', () => s.streams.delete(call));
        this.syncAssignments(s, true);
      },
    };
  }
}

export { DispatcherService };

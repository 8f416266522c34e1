// The manager role of swarmd: the store replicated by Raft, the cluster CA, membership, and the
// control API. `swarmd init` creates a new cluster (a one-voter Raft group, the root CA, the
// cluster and node objects); `swarmd join` with a manager token enters an existing one as a Raft
// learner; a later start from the same data directory resumes either.
//
// Services on the node's TCP listener (mutual TLS; see common/certs.ts):
//   Raft            manager certificates only, not forwarded (it is the replication itself)
//   RaftMembership  manager certificates; on the leader (forwarded from followers)
//   CA              root certificate for anyone; issuing on the leader
//   Control         manager certificates; on the leader (forwarded from followers)
//   Logs            manager certificates; on the leader (streams proxied by followers)
//   LogBroker       node certificates; on the leader (docs/logs.md)
// The local socket serves Control and Logs to root on this host.
import { checkAddressPoolSpec, DEFAULT_ADDRESS_POOL, DEFAULT_SUBNET_SIZE, type AddressPoolSpec } from './allocator/networks.js';
import { DEFAULT_DATA_PATH_PORT } from '../common/network.js';
import * as grpc from '@grpc/grpc-js';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CAService } from '../proto/gen/tswarm/ca.js';
import { ControlService } from '../proto/gen/tswarm/control.js';
import type { Cluster, Node } from '../proto/gen/tswarm/objects.js';
import { RaftMembershipService, type JoinResponse } from '../proto/gen/tswarm/raft.js';
import { NodeAvailability, NodeRole, NodeState, ReachabilityState } from '../proto/gen/tswarm/types.js';
import { createNodeKey, peerIdentity, TLS_CHANNEL_OPTIONS, type NodeCertProvider, type NodeCerts, type NodeIdentity } from '../common/certs.js';
import { TswarmError } from '../common/errors.js';
import { newId } from '../common/identity.js';
import type { Logger } from '../common/logger.js';
import { nodeDescription } from '../common/node.js';
import { createRootCA, issueNodeCertificate, makeJoinToken, type RootCA } from './ca/ca.js';
import { CaServer, TokenError, UnknownNodeError } from './ca/server.js';
import { addControlService, ControlApi, toGrpcError } from './controlapi/control.js';
import type { ImageResolver } from './controlapi/image-pinning.js';
import { leaderService, managersOnly, type LeaderLocator } from './forward.js';
import { Membership } from './membership.js';
import { Dispatcher, DispatcherService } from './dispatcher/dispatcher.js';
import { LogBroker, LogBrokerService, LogsService } from './logbroker/broker.js';
import type { LeaderComponent } from './leader.js';
import { Allocator } from './allocator/allocator.js';
import { Orchestrator } from './orchestrator/orchestrator.js';
import { Scheduler } from './scheduler/shell.js';
import { RaftServer } from './raft/server.js';
import { MemoryStore, type ApplyResult } from './store/memory.js';
import { RaftProposer, storeStateMachine } from './store/raft.js';
import { BatchingProposer } from './store/batching.js';
import { Sealer } from './store/sealing.js';

/** Raft snapshots every this many applied entries unless the cluster says otherwise (SwarmKit's default). */
const DEFAULT_SNAPSHOT_INTERVAL = 10_000;
import { EtcdBackend } from './store/etcd-backend.js';

export class ManagerError extends TswarmError {}

export interface ManagerOptions {
  /** The node's data directory; the manager keeps its Raft state under `<dataDir>/raft`. */
  dataDir: string;
  nodeId: string;
  /** This manager's id in the Raft group (1 for the manager that made the cluster). */
  raftId: number;
  /** host:port other nodes reach this manager at (Raft, CA, control API). */
  advertiseAddr: string;
  /** The daemon's TCP gRPC server (bound by the caller, with `certs.serverCredentials()`). */
  server: grpc.Server;
  /** This node's certificates (a manager certificate). */
  certs: NodeCertProvider;
  /** Pins service images to the digest their registry has (swarmd injects it; none: images are stored as given). */
  imageResolver?: ImageResolver | undefined;
  /** The leader's components besides the dispatcher (orchestrators, allocator, scheduler). */
  leaderComponents?: (store: MemoryStore, log: Logger) => LeaderComponent[];
  /** For a manager that joins: the cluster's data key, from the leader. */
  dataKey?: Uint8Array;
  /** Keep the store in an external etcd cluster instead of the embedded Raft (`etcd://h:p[,h:p][/prefix]`). */
  store?: string | undefined;
  log: Logger;
}

/** Whether a data directory already holds a manager's Raft state. */
export function hasManagerState(dataDir: string): boolean {
  return existsSync(join(dataDir, 'raft', 'wal'));
}

/** The cluster's PKI made by `swarmd init`, before anything else exists. */
export interface NewClusterPki {
  clusterId: string;
  ca: RootCA;
  certs: NodeCerts;
}

/** A root CA and this node's manager certificate, for a cluster that does not exist yet. */
export async function createClusterPki(nodeId: string): Promise<NewClusterPki> {
  const ca = await createRootCA();
  const clusterId = newId();
  const key = await createNodeKey();
  const certPem = await issueNodeCertificate(ca, key.csrPem, { nodeId, role: 'manager', clusterId });
  return { clusterId, ca, certs: { caPem: ca.certPem, keyPem: key.keyPem, certPem } };
}

export class Manager implements LeaderLocator {
  readonly store = new MemoryStore();
  readonly control: ControlApi;
  /** Seals secret data and the root CA key before they enter the store. */
  readonly sealer: Sealer;
  readonly membership: Membership;
  private readonly ca: CaServer;
  private raft: RaftServer<ApplyResult> | undefined;
  private etcd: EtcdBackend | undefined;
  readonly dispatcher: Dispatcher;
  readonly logBroker: LogBroker;
  /** The local socket's server, once serveControl was called. */
  private localServer: grpc.Server | undefined;
  /** What runs while this manager leads (started in order, stopped in reverse). */
  private readonly leaderComponents: LeaderComponent[] = [];
  private leading = false;
  private leaderTimer: NodeJS.Timeout | undefined;
  /** Turns of the store's sweeper (MemoryStore.sweep): objects not in use kept encoded only. */
  private sweepTimer: NodeJS.Timeout | undefined;
  private leaderSwitch: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ManagerOptions) {
    this.sealer = Sealer.loadOrCreate(join(opts.dataDir, 'keys', 'dek'), opts.dataKey);
    this.membership = new Membership(this.store, () => this.raft, opts.log.child({ component: 'membership' }), () => this.isLeader());
    this.control = new ControlApi(this.store, this.sealer, this.membership, opts.imageResolver);
    this.ca = new CaServer(this.store, this.sealer);
    this.dispatcher = new Dispatcher(this.store, this.sealer, opts.log.child({ component: 'dispatcher' }), () => this.leaderAddr());
    const log = opts.log;
    const components = opts.leaderComponents?.(this.store, log) ?? [new Orchestrator({ store: this.store, log }), new Allocator(this.store, log), new Scheduler(this.store, log)];
    this.logBroker = new LogBroker({ store: this.store, resolve: (kind, ref) => this.control.resolve(kind, ref), locator: this, log: log.child({ component: 'logbroker' }) });
    this.leaderComponents.push(...components, this.dispatcher, this.logBroker);
  }

  /**
   * Starts the leader's components once this manager leads with its store caught up, and stops
   * them when it no longer leads.
   */
  private watchLeadership(): void {
    this.leaderTimer = setInterval(() => {
      // Start once this manager leads with everything of earlier terms applied; stop only when it
      // no longer leads (entries in flight are normal while leading).
      const ready = this.isLeader() && (this.leading || this.storeCaughtUp());
      if (ready === this.leading) return;
      this.leading = ready;
      this.leaderSwitch = this.leaderSwitch.then(async () => {
        if (ready) {
          this.opts.log.info({ components: this.leaderComponents.map((c) => c.name) }, 'manager: leading; starting the leader components');
          for (const c of this.leaderComponents) c.start();
        } else {
          this.opts.log.info('manager: no longer leading; stopping the leader components');
          for (const c of [...this.leaderComponents].reverse()) await c.stop();
        }
      });
    }, 50);
  }

  // ---------------------------------------------------------------- LeaderLocator

  isLeader(): boolean {
    if (this.etcd) return this.etcd.isLeader;
    // Not status(): that copies every peer's progress and the membership, and every leader-only
    // call asks this.
    return this.raft?.node.isLeader() ?? false;
  }

  /**
   * Leading with everything of earlier terms applied (the entry of its own term committed, and
   * the store at the commit index): before that, a new leader's store may lack committed writes,
   * and the control API waits rather than answer from it (forward.ts).
   */
  caughtUp(): boolean {
    if (this.etcd) return true;
    return this.leading || this.storeCaughtUp();
  }

  private storeCaughtUp(): boolean {
    const s = this.raft?.status();
    return !s || (s.commit >= s.lastIndex && s.applied >= s.commit);
  }

  leaderAddr(): string | undefined {
    if (this.etcd) return this.etcd.leaderAddr;
    const leader = this.raft?.leader ?? 0;
    return leader ? this.raft!.node.addresses.get(leader) : undefined;
  }

  credentials(): grpc.ChannelCredentials {
    return this.opts.certs.channelCredentials();
  }

  // ---------------------------------------------------------------- lifecycle

  /** Creates a new cluster in an empty data directory and starts it. */
  /** `network`: the overlay networks' address pool and data-path port (swarmd init's flags); defaults as Docker's. */
  async init(pki: NewClusterPki, network: { addressPool?: AddressPoolSpec; dataPathPort?: number } = {}): Promise<void> {
    if (network.addressPool) checkAddressPoolSpec(network.addressPool);
    if (hasManagerState(this.opts.dataDir)) {
      throw new ManagerError(`${this.opts.dataDir} already holds a cluster's state; start swarmd without init to resume it`);
    }
    await this.start(new Map([[1, this.opts.advertiseAddr]]), true);
    if (this.etcd && this.store.list('cluster').length > 0) throw new ManagerError(`${this.opts.store}: this etcd prefix already holds a cluster; join it with swarmd join, or use another prefix`);
    await this.waitForLeader();
    const { ca, clusterId } = pki;
    const cluster: Cluster = {
      id: clusterId,
      spec: {
        annotations: { name: 'default', labels: {} },
        heartbeatPeriodMs: 1000,
        taskHistoryRetentionLimit: 5,
        nodeCertExpiryMs: 90 * 24 * 3600 * 1000,
        snapshotIntervalEntries: DEFAULT_SNAPSHOT_INTERVAL,
        defaultAddressPool: [...(network.addressPool?.pools ?? DEFAULT_ADDRESS_POOL)],
        subnetSize: network.addressPool?.subnetSize ?? DEFAULT_SUBNET_SIZE,
        vxlanUdpPort: network.dataPathPort ?? DEFAULT_DATA_PATH_PORT,
      },
      rootCa: {
        caCert: Buffer.from(ca.certPem),
        caKey: this.sealer.seal(Buffer.from(ca.keyPem), `cluster:${clusterId}:ca-key`),
        caCertHash: ca.digest,
        joinTokens: { worker: makeJoinToken(ca), manager: makeJoinToken(ca) },
      },
      nextRaftId: 2,
    };
    const node: Node = {
      attachments: [],
      peerPaths: [],
      id: this.opts.nodeId,
      role: NodeRole.NODE_ROLE_MANAGER,
      spec: { annotations: { name: '', labels: {} }, desiredRole: NodeRole.NODE_ROLE_MANAGER, availability: NodeAvailability.NODE_AVAILABILITY_ACTIVE },
      description: nodeDescription(),
      status: { state: NodeState.NODE_STATE_READY, message: '', addr: this.opts.advertiseAddr.split(':')[0] ?? '' },
      managerStatus: { raftId: this.etcd ? 0 : 1, addr: this.opts.advertiseAddr, leader: true, reachability: ReachabilityState.REACHABILITY_REACHABLE },
    };
    await this.store.update((tx) => {
      tx.create('cluster', cluster);
      tx.create('node', node);
    });
    this.opts.log.info({ cluster: cluster.id }, 'manager: new cluster created');
  }

  /**
   * Starts the Raft member and registers the manager's services. `peers`: the members known at
   * start (a joining manager gets them from the leader; a restart recovers them from its log).
   */
  async start(peers: Map<number, string> = new Map(), bootstrap = false): Promise<void> {
    // A few milliseconds every 100 ms: at 2,000 writes/s, objects are kept decoded for a second or two.
    this.sweepTimer = setInterval(() => this.store.sweep(2), 100);
    if (this.opts.store) {
      this.etcd = new EtcdBackend(this.opts.store, this.store, this.opts.advertiseAddr, this.opts.log.child({ component: 'etcd' }));
      this.store.setProposer(new BatchingProposer(this.etcd.log));
      this.registerServices();
      await this.etcd.start();
      this.membership.start();
      this.watchLeadership();
      return;
    }
    const dir = join(this.opts.dataDir, 'raft');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.raft = new RaftServer<ApplyResult>({
      id: this.opts.raftId,
      dataDir: dir,
      listenAddr: this.opts.advertiseAddr,
      peers,
      bootstrapVoters: bootstrap ? [this.opts.raftId] : undefined,
      stateMachine: storeStateMachine(this.store),
      server: this.opts.server,
      clientCredentials: this.opts.certs.channelCredentials(),
      clientChannelOptions: TLS_CHANNEL_OPTIONS,
      authorize: (call) => peerIdentity(call)?.role === 'manager',
      log: this.opts.log.child({ component: 'raft' }),
      // The cluster's setting (swarmctl cluster update --snapshot-interval), read at each check.
      snapshotEntries: () => this.store.list('cluster')[0]?.spec?.snapshotIntervalEntries || DEFAULT_SNAPSHOT_INTERVAL,
    });
    // Transactions proposed together go as one log entry (store/batching.ts).
    this.store.setProposer(new BatchingProposer(new RaftProposer(this.raft)));
    this.registerServices();
    await this.raft.start();
    this.membership.start();
    this.watchLeadership();
  }

  private registerServices(): void {
    const server = this.opts.server;
    const toStatus = (err: unknown): Partial<grpc.StatusObject> => {
      if (err instanceof TokenError) return { code: grpc.status.UNAUTHENTICATED, details: err.message };
      if (err instanceof UnknownNodeError) return { code: grpc.status.PERMISSION_DENIED, details: err.message };
      return toGrpcError(err);
    };
    server.addService(
      CAService,
      leaderService(
        CAService,
        {
          getRootCaCertificate: () => Promise.resolve(this.ca.rootCertificate()),
          issueNodeCertificate: (req) => this.ca.issue(req as never),
          renewNodeCertificate: (req, caller) => this.ca.renew(req as never, caller),
          nodeCertificateStatus: (_req, caller) => Promise.resolve(this.ca.status(caller)),
        },
        this,
        { leaderOnly: (m) => m !== 'getRootCaCertificate', authorize: () => undefined, local: false, toStatus },
      ),
    );
    server.addService(
      RaftMembershipService,
      leaderService(RaftMembershipService, { join: (req, caller) => this.joinRaft(caller, (req as { addr: string }).addr) }, this, {
        leaderOnly: () => true,
        authorize: managersOnly,
        local: false,
        toStatus,
      }),
    );
    addControlService(server, this.control, this, false);
    server.addService(DispatcherService, this.dispatcher.implementation());
    server.addService(LogsService, this.logBroker.logsService(false));
    server.addService(LogBrokerService, this.logBroker.brokerService());
  }

  /**
   * On the leader: a manager (by its certificate) enters the Raft group as a learner. With the
   * store in etcd there is no seat to give: it gets the data key and the store's address.
   */
  private async joinRaft(caller: NodeIdentity | undefined, addr: string): Promise<JoinResponse> {
    const node = caller ? this.store.get('node', caller.nodeId) : undefined;
    if (!node || node.role !== NodeRole.NODE_ROLE_MANAGER) throw new UnknownNodeError(`node ${caller?.nodeId ?? '?'} is not a manager of this cluster`);
    if (!/^[^\s:]+:\d{1,5}$/.test(addr)) throw new TswarmError(`addr: "${addr}" must be host:port`);
    if (this.etcd) {
      if (node.managerStatus?.addr !== addr) {
        await this.store.update((tx) => tx.update('node', { ...node, managerStatus: { raftId: 0, addr, leader: false, reachability: ReachabilityState.REACHABILITY_REACHABLE } }));
      }
      return { raftId: 0, members: [], dataKey: this.sealer.exportKey(), store: this.opts.store ?? '' };
    }
    const raft = this.raft!;
    let id = node.managerStatus?.raftId ?? 0;
    if (!id) {
      const cluster = this.store.list('cluster')[0]!;
      id = cluster.nextRaftId;
      await this.store.update((tx) => {
        tx.update('cluster', { ...cluster, nextRaftId: id + 1 });
        tx.update('node', { ...node, managerStatus: { raftId: id, addr, leader: false, reachability: ReachabilityState.REACHABILITY_UNKNOWN } });
      });
    }
    const cs = raft.status().confState;
    if (!cs.voters.includes(id) && !cs.learners.includes(id)) {
      this.opts.log.info({ node: node.id, raftId: id, addr }, 'manager: a manager joins the Raft group as a learner');
      await raft.addLearner(id, addr);
    }
    const now = raft.status().confState;
    const members = [...now.voters, ...now.learners].map((m) => ({
      raftId: m,
      nodeId: this.store.list('node').find((n) => n.managerStatus?.raftId === m)?.id ?? '',
      addr: raft.node.addresses.get(m) ?? '',
      learner: now.learners.includes(m),
    }));
    return { raftId: id, members, dataKey: this.sealer.exportKey(), store: '' };
  }

  async waitForLeader(timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.etcd?.isLeader) return;
      const s = this.raft?.status();
      if (s?.role === 'leader' && s.commit >= s.lastIndex) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new ManagerError(`manager: no Raft leader after ${timeoutMs} ms`);
  }

  /** Serves the control API on the local socket (root on this host). */
  serveControl(server: grpc.Server): void {
    addControlService(server, this.control, this, true);
    server.addService(LogsService, this.logBroker.logsService(true));
    this.localServer = server;
  }

  raftStatus(): ReturnType<RaftServer['status']> | undefined {
    return this.raft?.status();
  }

  async stop(): Promise<void> {
    if (this.leaderTimer) clearInterval(this.leaderTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.leaderSwitch;
    if (this.leading) for (const c of [...this.leaderComponents].reverse()) await c.stop();
    this.leading = false;
    this.membership.stop();
    await this.raft?.stop();
    await this.etcd?.stop();
    for (const def of [CAService, RaftMembershipService, ControlService, DispatcherService, LogsService, LogBrokerService]) this.opts.server.removeService(def);
    this.localServer?.removeService(LogsService);
  }

  /** Removes the manager's state from the data directory (a failed init, or a demotion). */
  removeState(): void {
    rmSync(join(this.opts.dataDir, 'raft'), { recursive: true, force: true });
    rmSync(join(this.opts.dataDir, 'keys'), { recursive: true, force: true });
  }
}

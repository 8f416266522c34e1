// The manager role of swarmd: the store replicated by Raft, the cluster CA, and the control API.
// `swarmd init` creates a new cluster (a one-voter Raft group, the root CA, the cluster and node
// objects); a later start from the same data directory resumes it.
import * as grpc from '@grpc/grpc-js';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { arch, hostname, platform } from 'node:os';
import { join } from 'node:path';
import type { Cluster, Node } from '../proto/gen/tswarm/objects.js';
import { NodeAvailability, NodeRole, NodeState, ReachabilityState } from '../proto/gen/tswarm/types.js';
import { TswarmError } from '../common/errors.js';
import { newId } from '../common/identity.js';
import type { Logger } from '../common/logger.js';
import { VERSION } from '../common/version.js';
import { createRootCA, makeJoinToken } from './ca/ca.js';
import { addControlService, ControlApi } from './controlapi/control.js';
import { RaftServer } from './raft/server.js';
import { MemoryStore, type ApplyResult } from './store/memory.js';
import { RaftProposer, storeStateMachine } from './store/raft.js';
import { Sealer } from './store/sealing.js';

export class ManagerError extends TswarmError {}

export interface ManagerOptions {
  /** The node's data directory; the manager keeps its Raft state under `<dataDir>/raft`. */
  dataDir: string;
  nodeId: string;
  /** host:port other managers reach this one at (Raft). */
  advertiseAddr: string;
  /** host:port the Raft service listens on. */
  listenAddr: string;
  /** The daemon's gRPC server, which serves Raft and the control API (the caller binds it). */
  server: grpc.Server;
  log: Logger;
}

/** Whether a data directory already holds a manager's state. */
export function hasManagerState(dataDir: string): boolean {
  return existsSync(join(dataDir, 'raft', 'wal'));
}

export class Manager {
  readonly store = new MemoryStore();
  readonly control: ControlApi;
  /** Seals secret data and the root CA key before they enter the store. */
  readonly sealer: Sealer;
  private raft: RaftServer<ApplyResult> | undefined;

  constructor(private readonly opts: ManagerOptions) {
    this.sealer = Sealer.loadOrCreate(join(opts.dataDir, 'keys', 'dek'));
    this.control = new ControlApi(this.store, this.sealer);
  }

  /** Creates a new cluster in an empty data directory and starts it. */
  async init(): Promise<void> {
    if (hasManagerState(this.opts.dataDir)) {
      throw new ManagerError(`${this.opts.dataDir} already holds a cluster's state; start swarmd without init to resume it`);
    }
    await this.start(true);
    await this.waitForLeader();
    const ca = await createRootCA();
    const clusterId = newId();
    const cluster: Cluster = {
      id: clusterId,
      spec: {
        annotations: { name: 'default', labels: {} },
        heartbeatPeriodMs: 1000,
        taskHistoryRetentionLimit: 5,
        nodeCertExpiryMs: 90 * 24 * 3600 * 1000,
        snapshotIntervalEntries: 10_000,
        defaultAddressPool: ['10.0.0.0/8'],
        subnetSize: 24,
        vxlanUdpPort: 4789,
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
      id: this.opts.nodeId,
      role: NodeRole.NODE_ROLE_MANAGER,
      spec: { annotations: { name: '', labels: {} }, desiredRole: NodeRole.NODE_ROLE_MANAGER, availability: NodeAvailability.NODE_AVAILABILITY_ACTIVE },
      description: { hostname: hostname(), platform: { os: platform(), architecture: arch() === 'x64' ? 'amd64' : arch() }, engineVersion: VERSION },
      status: { state: NodeState.NODE_STATE_READY, message: '', addr: this.opts.advertiseAddr.split(':')[0] ?? '' },
      managerStatus: { raftId: 1, addr: this.opts.advertiseAddr, leader: true, reachability: ReachabilityState.REACHABILITY_REACHABLE },
    };
    await this.store.update((tx) => {
      tx.create('cluster', cluster);
      tx.create('node', node);
    });
    this.opts.log.info({ cluster: cluster.id }, 'manager: new cluster created');
  }

  /** Starts the Raft member (bootstrapping a one-voter group when `bootstrap`). */
  async start(bootstrap = false): Promise<void> {
    const dir = join(this.opts.dataDir, 'raft');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.raft = new RaftServer<ApplyResult>({
      id: 1,
      dataDir: dir,
      listenAddr: this.opts.listenAddr,
      peers: new Map([[1, this.opts.advertiseAddr]]),
      bootstrapVoters: bootstrap ? [1] : undefined,
      stateMachine: storeStateMachine(this.store),
      server: this.opts.server,
      log: this.opts.log.child({ component: 'raft' }),
    });
    this.store.setProposer(new RaftProposer(this.raft));
    await this.raft.start();
  }

  async waitForLeader(timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const s = this.raft!.status();
      if (s.role === 'leader' && s.commit >= s.lastIndex) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new ManagerError(`manager: no Raft leader after ${timeoutMs} ms`);
  }

  /** Serves the control API on a gRPC server (the daemon's local socket). */
  serveControl(server: grpc.Server): void {
    addControlService(server, this.control);
  }

  async stop(): Promise<void> {
    await this.raft?.stop();
  }

  /** Removes the manager's state from the data directory (undoing a failed init). */
  removeState(): void {
    rmSync(join(this.opts.dataDir, 'raft'), { recursive: true, force: true });
    rmSync(join(this.opts.dataDir, 'keys'), { recursive: true, force: true });
  }
}

// The process shell around RaftNode: real ticks, the on-disk log (RaftDisk over node:fs), the gRPC
// transport, and the promise API the manager store uses. Work is coalesced: every input (a batch
// of messages, a tick, a proposal) schedules one process() at the end of the current turn of the
// event loop, so proposals and messages that arrive together share one fsync (group commit).
import * as grpc from '@grpc/grpc-js';
import { ConfChange, ConfChange_Type, type ConfState, type RaftMessage } from '../../proto/gen/tswarm/raft.js';
import type { Logger } from '../../common/logger.js';
import { bootstrapState } from './core/raft.js';
import { seededRandom } from './core/rand.js';
import { DEFAULT_CORE_CONFIG, type RaftConfig, type SoftState, type Status } from './core/types.js';
import { RaftError, StoppedError } from './errors.js';
import { RaftNode, type StateMachine } from './node.js';
import { RaftDisk } from './storage/disk.js';
import { NodeFs } from './storage/fs.js';
import { addRaftService, GrpcTransport } from './transport.js';
import { RaftService } from '../../proto/gen/tswarm/raft.js';

/**
 * Defaults for a LAN: a 40 ms tick, heartbeats every tick, elections after 25–50 ticks (1–2 s)
 * of silence, as etcd's default 1 s; but 2–8 ticks (80–320 ms) after the transport reports the
 * leader's connection broken, which is what a dead leader's process looks like (the kernel
 * closes its sockets): a kill -9 of the leader is followed by a new one in about 0.2 s.
 *
 * Why 1 s of silence and not 240 ms (6 ticks, the default until 2026-12-07): a busy leader
 * stops its event loop now and then, for V8's garbage collection above all, and with three
 * managers holding a million 1 KiB secrets on two cores those stops reached 400–800 ms; the
 * steady benchmark changed leaders 2 to 7 times in 10 minutes, each change costing the writes in
 * flight their known outcome. A real failure that closes no socket (a host frozen or cut off)
 * now takes 1–2 s to detect instead of 0.24–0.48 s (docs/raft.md, docs/benchmarks.md).
 */
export const DEFAULT_TICK_MS = 40;
export const DEFAULT_ELECTION_TICK = 25;
export const DEFAULT_REPORTED_ELECTION_TICK = 6;
export const DEFAULT_HEARTBEAT_TICK = 1;

export interface RaftServerOptions<R> {
  id: number;
  /** Directory of the write-ahead log and snapshots. */
  dataDir: string;
  /** host:port this node's Raft service listens on (ignored when `server` is given). */
  listenAddr: string;
  /**
   * A gRPC server to add the Raft service to, owned (bound and shut down) by the caller: swarmd
   * serves Raft, the control API and the dispatcher on one port. Without it, RaftServer binds its own.
   */
  server?: grpc.Server;
  /** Raft id → address of the other members known at start. */
  peers: Map<number, string>;
  /** For a brand-new cluster: its initial voters (all initial members pass the same list). Ignored when the data directory holds state. */
  bootstrapVoters?: number[];
  stateMachine: StateMachine<R>;
  tickMs?: number;
  electionTick?: number;
  reportedElectionTick?: number;
  heartbeatTick?: number;
  snapshotEntries?: number | (() => number);
  keepEntries?: number;
  serverCredentials?: grpc.ServerCredentials;
  /** Who may open a Raft stream to this node (e.g. manager certificates only); everyone if unset. */
  authorize?: (call: grpc.ServerReadableStream<unknown, unknown>) => boolean;
  clientCredentials?: grpc.ChannelCredentials;
  clientChannelOptions?: grpc.ChannelOptions;
  core?: Partial<Omit<RaftConfig, 'id' | 'random'>>;
  log?: Logger;
  onSoftState?: (s: SoftState) => void;
}

export class RaftServer<R = unknown> {
  readonly node: RaftNode<R>;
  private readonly disk: RaftDisk;
  private readonly grpcServer: grpc.Server;
  private readonly ownsServer: boolean;
  private readonly transport: GrpcTransport;
  private ticker: NodeJS.Timeout | undefined;
  private scheduled = false;
  private syncedConfState: ConfState | undefined;
  private stopped = false;
  private readonly addrs = new Map<number, string>();
  /** Resolved by the soft-state callback: who leads now. */
  leader = 0;
  boundPort = 0;

  constructor(private readonly opts: RaftServerOptions<R>) {
    this.ownsServer = opts.server === undefined;
    this.grpcServer = opts.server ?? new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20 });
    const fs = new NodeFs();
    fs.mkdirp(opts.dataDir);
    const opened = RaftDisk.open(fs, opts.dataDir, {
      onTruncate: (path, offset, bytes) => opts.log?.warn({ path, offset, bytes }, 'raft: truncated a torn write at the end of the log'),
    });
    this.disk = opened.disk;
    let state = opened.state;
    const fresh = state.entries.length === 0 && !state.snapshot && state.hardState.term === 0;
    if (fresh && opts.bootstrapVoters && opts.bootstrapVoters.length > 0) {
      state = bootstrapState(opts.bootstrapVoters, opts.peers);
      this.disk.append(state.entries, state.hardState);
      this.disk.sync();
    }
    for (const [id, addr] of opts.peers) this.addrs.set(id, addr);
    this.transport = new GrpcTransport({
      credentials: opts.clientCredentials ?? grpc.credentials.createInsecure(),
      ...(opts.clientChannelOptions ? { channelOptions: opts.clientChannelOptions } : {}),
      onUnreachable: (peer) => this.node.reportUnreachable(peer),
      onDisconnected: (peer) => this.node.reportDisconnected(peer),
      log: opts.log,
    });
    for (const [id, addr] of opts.peers) if (id !== opts.id) this.transport.setPeer(id, addr);
    this.node = new RaftNode<R>({
      config: {
        ...DEFAULT_CORE_CONFIG,
        electionTick: opts.electionTick ?? DEFAULT_ELECTION_TICK,
        reportedElectionTick: Math.min(opts.reportedElectionTick ?? DEFAULT_REPORTED_ELECTION_TICK, opts.electionTick ?? DEFAULT_ELECTION_TICK),
        heartbeatTick: opts.heartbeatTick ?? DEFAULT_HEARTBEAT_TICK,
        ...opts.core,
        id: opts.id,
        // Election jitter needs no reproducibility in production; seed from the OS.
        random: seededRandom(Number(process.hrtime.bigint() & 0xffffffffn) ^ (opts.id * 2654435761)),
      },
      storage: this.disk,
      state,
      stateMachine: opts.stateMachine,
      send: (msgs) => this.transport.send(msgs),
      asyncSync: true,
      defer: (fn) => setImmediate(fn),
      onFatal: (err) => {
        opts.log?.fatal({ err: err.message }, 'raft: storage failed; stopping (restart the process to recover from disk)');
        void this.stop();
      },
      snapshotEntries: opts.snapshotEntries ?? 10_000,
      // etcd's figure (SwarmKit keeps 500): at thousands of writes a second, 500 entries is a
      // fraction of a second, and a follower that falls that far behind needs a whole snapshot.
      keepEntries: opts.keepEntries ?? 5_000,
      onConfChange: (cc) => {
        if (cc.addr) this.addrs.set(cc.nodeId, cc.addr);
        if (cc.type === ConfChange_Type.TYPE_REMOVE) this.transport.removePeer(cc.nodeId);
      },
      onSoftState: (s) => {
        if (s.leader !== this.leader) opts.log?.info({ leader: s.leader, role: s.role, term: this.node.core.term }, 'raft: leader changed');
        this.leader = s.leader;
        opts.onSoftState?.(s);
      },
    });
  }

  /** Listens, starts ticking, and processes what recovery left to apply. */
  async start(): Promise<void> {
    addRaftService(this.grpcServer, (msgs) => this.receive(msgs), this.opts.authorize);
    if (this.ownsServer) {
      this.boundPort = await new Promise<number>((resolve, reject) => {
        this.grpcServer.bindAsync(this.opts.listenAddr, this.opts.serverCredentials ?? grpc.ServerCredentials.createInsecure(), (err, port) =>
          err ? reject(err) : resolve(port),
        );
      });
    }
    this.ticker = setInterval(() => {
      this.node.tick();
      this.schedule();
    }, this.opts.tickMs ?? DEFAULT_TICK_MS);
    this.schedule();
  }

  private receive(msgs: RaftMessage[]): void {
    for (const m of msgs) this.node.step(m);
    this.schedule();
  }

  /** One process() per turn of the event loop, whatever number of inputs arrived. */
  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.stopped) return;
      this.node.process();
      this.syncPeers();
    });
  }

  /** Keeps the transport's peers in line with the applied membership (when it has changed). */
  private syncPeers(): void {
    // The node replaces confState (and its addresses with it) on every membership change and
    // snapshot restore, so an unchanged object means nothing to do.
    if (this.node.confState === this.syncedConfState) return;
    this.syncedConfState = this.node.confState;
    const members = new Set([...this.node.confState.voters, ...this.node.confState.learners]);
    for (const id of members) {
      // The replicated record of addresses first; the start-up peers only fill gaps.
      const addr = this.node.addresses.get(id) ?? this.addrs.get(id);
      if (id !== this.opts.id && addr) this.transport.setPeer(id, addr);
    }
  }

  /** Resolves with the state machine's result once the entry is applied; rejects with a RaftError. */
  propose(data: Uint8Array): Promise<R> {
    return new Promise((resolve, reject) => {
      this.node.propose(data, (err, value) => (err ? reject(err) : resolve(value as R)));
      this.schedule();
    });
  }

  /**
   * Resolves once a linearizable read may be served from the local state machine; rejects if
   * leadership cannot be confirmed within timeoutMs (e.g. the leader is cut off from its quorum).
   */
  readBarrier(timeoutMs = 5_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new RaftError(`raft: could not confirm leadership for a read within ${timeoutMs} ms`)), timeoutMs);
      this.node.readBarrier((err, index) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(index!);
      });
      this.schedule();
    });
  }

  private confChange(type: ConfChange_Type, nodeId: number, addr = ''): Promise<ConfState> {
    if (addr) this.addrs.set(nodeId, addr);
    return new Promise((resolve, reject) => {
      this.node.proposeConfChange(ConfChange.fromPartial({ type, nodeId, addr }), (err, cs) => (err ? reject(err) : resolve(cs!)));
      this.schedule();
    });
  }

  addLearner(id: number, addr: string): Promise<ConfState> {
    return this.confChange(ConfChange_Type.TYPE_ADD_LEARNER, id, addr);
  }

  promote(id: number): Promise<ConfState> {
    return this.confChange(ConfChange_Type.TYPE_PROMOTE, id);
  }

  remove(id: number): Promise<ConfState> {
    return this.confChange(ConfChange_Type.TYPE_REMOVE, id);
  }

  transferLeadership(to: number): void {
    this.node.transferLeadership(to);
    this.schedule();
  }

  status(): Status {
    return this.node.status();
  }

  /** Stops ticking and serving; fails whatever is in flight with StoppedError. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.node.stop();
    this.transport.close();
    if (!this.ownsServer) this.grpcServer.removeService(RaftService);
    // Peers keep their streams to us open: give in-flight calls a moment, then cut them.
    if (this.ownsServer) await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.grpcServer.forceShutdown();
        resolve();
      }, 200);
      this.grpcServer.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.disk.close();
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}

export { StoppedError };

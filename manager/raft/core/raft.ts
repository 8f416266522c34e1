// The Raft core: a deterministic, synchronous state machine (no timers, sockets, files, clock or
// global randomness). Inputs: tick(), step(message), propose(), proposeConfChange(), readIndex(),
// transferLeadership(). Output: ready() — what to persist, send and apply — acknowledged with
// advance(). The shape follows etcd/raft's RawNode; the rules follow the Raft paper (cited as §)
// and Ongaro's thesis.
//
// Membership changes are one at a time (thesis §4.1) and take effect when the driver applies the
// entry (applyConfChange). Safety of one-at-a-time changes needs: at most one change in the log
// that is not yet applied (pendingConfIndex), and a new leader proposes none before it has applied
// an entry of its own term (pendingConfIndex starts at its last index; the bug Ongaro described in
// 2015 on raft-dev).
import { ConfChange, ConfChange_Type, EntryType, MessageType, type ConfState, type Entry, type HardState, type RaftMessage } from '../../../proto/gen/tswarm/raft.js';
import { ConfChangeError, NotLeaderError, ProposalDroppedError, RaftError, TooLargeError } from '../errors.js';
import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import { randomInt } from './rand.js';
import type { SnapshotBytes } from './bytes.js';
import type { LocalSnapshot, PeerStatus, PersistedState, RaftConfig, ReadState, Ready, Role, Snapshot, SoftState, Status } from './types.js';

const EMPTY = Buffer.alloc(0);
const TRANSFER_CONTEXT = Buffer.from('transfer');

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A message with every field at its default, then `fields`. */
export function message(fields: Partial<RaftMessage> & Pick<RaftMessage, 'type' | 'to' | 'from' | 'term'>): RaftMessage {
  return {
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY,
    snapshot: undefined,
    snapshotChunk: EMPTY,
    snapshotOffset: 0,
    snapshotLast: false,
    snapshotSize: 0,
    ...fields,
  };
}

interface PendingRead {
  requestId: string;
  index: number;
  acks: Set<number>;
}

interface IncomingSnapshot {
  index: number;
  term: number;
  chunks: Buffer[];
  size: number;
}

/**
 * The state a member of a new cluster starts from: the initial voters as committed membership
 * entries of term 1 (the same on every initial member), so that a node that joins later learns the
 * whole membership by replaying the log.
 */
export function bootstrapState(voters: readonly number[], addresses: ReadonlyMap<number, string> = new Map()): PersistedState {
  const entries: Entry[] = voters.map((nodeId, i) => ({
    term: 1,
    index: i + 1,
    type: EntryType.ENTRY_TYPE_CONF_CHANGE,
    data: Buffer.from(ConfChange.encode({ type: ConfChange_Type.TYPE_ADD_VOTER, nodeId, addr: addresses.get(nodeId) ?? '' }).finish()),
  }));
  return { hardState: { term: 1, vote: 0, commit: entries.length }, entries };
}

export class RaftCore {
  readonly id: number;
  private readonly cfg: RaftConfig;

  // Persistent state (§5.2, Figure 2), saved through Ready.hardState.
  term = 0;
  vote = 0;
  readonly log: RaftLog;

  role: Role = 'follower';
  leader = 0;
  readonly voters = new Set<number>();
  readonly learners = new Set<number>();

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** The shortened timeout after a report about the leader's connection (reportDisconnected), until the leader is heard from. */
  private reportedTimeout: number | undefined;
  private votes = new Map<number, boolean>();
  private readonly progress = new Map<number, Progress>();
  /** Scratch space of maybeCommit (sorted matches). */
  private readonly matchScratch: number[] = [];
  private pendingConfIndex = 0;
  private leadTransferee = 0;

  /** The latest snapshot: sent to followers that need entries already compacted. */
  private snapshot: LocalSnapshot | undefined;
  /** A snapshot installed from the leader, for the next Ready. */
  private installedSnapshot: Snapshot | undefined;
  private incoming: IncomingSnapshot | undefined;

  private readQueue: PendingRead[] = [];
  private readsAwaitingCommit: string[] = [];
  private readStates: ReadState[] = [];
  private droppedReads: string[] = [];
  private msgs: RaftMessage[] = [];
  private prevHardState: HardState;
  private prevSoftState: SoftState;

  constructor(cfg: RaftConfig, persisted: PersistedState) {
    if (cfg.id <= 0) throw new RaftError(`raft: node id must be positive, got ${cfg.id}`);
    if (cfg.heartbeatTick <= 0 || cfg.heartbeatTick >= cfg.electionTick) {
      throw new RaftError(`raft: heartbeatTick (${cfg.heartbeatTick}) must be positive and below electionTick (${cfg.electionTick})`);
    }
    if (cfg.reportedElectionTick <= 0 || cfg.reportedElectionTick > cfg.electionTick) {
      throw new RaftError(`raft: reportedElectionTick (${cfg.reportedElectionTick}) must be positive and at most electionTick (${cfg.electionTick})`);
    }
    this.id = cfg.id;
    this.cfg = cfg;
    const snap = persisted.snapshot;
    const snapIndex = snap?.metadata.index ?? 0;
    const snapTerm = snap?.metadata.term ?? 0;
    this.log = new RaftLog(snapIndex, snapTerm, [...persisted.entries], persisted.hardState.commit);
    if (snap && snap.metadata.index > 0) this.snapshot = snap;
    for (const v of snap?.metadata.confState?.voters ?? []) this.voters.add(v);
    for (const l of snap?.metadata.confState?.learners ?? []) this.learners.add(l);
    this.term = persisted.hardState.term;
    this.vote = persisted.hardState.vote;
    this.prevHardState = this.hardState();
    this.becomeFollower(this.term, 0);
    this.prevSoftState = this.softState();
  }

  // ---------------------------------------------------------------- inputs

  /** One logical clock tick. */
  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /** Appends a proposal on the leader; returns the index and term it will commit at, if it does. */
  propose(data: Uint8Array): { index: number; term: number } {
    return this.appendProposal(EntryType.ENTRY_TYPE_NORMAL, data);
  }

  /** Proposes one membership change (see the rules in ConfChangeError messages). */
  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    if (this.role !== 'leader') throw new NotLeaderError(this.id, this.leader);
    if (this.pendingConfIndex > this.log.appliedConfirmed) {
      throw new ConfChangeError('raft: a membership change is already in progress; wait until it is applied');
    }
    const id = cc.nodeId;
    if (id <= 0) throw new ConfChangeError('raft: nodeId: must be positive');
    switch (cc.type) {
      case ConfChange_Type.TYPE_ADD_LEARNER:
        if (this.voters.has(id) || this.learners.has(id)) throw new ConfChangeError(`raft: node ${id} is already a member`);
        break;
      case ConfChange_Type.TYPE_PROMOTE: {
        if (!this.learners.has(id)) throw new ConfChangeError(`raft: node ${id} is not a learner`);
        const pr = this.progress.get(id);
        if (!pr || pr.match === 0 || !pr.recentActive || pr.match + this.cfg.learnerCatchUpEntries < this.log.committed) {
          throw new ConfChangeError(`raft: learner ${id} has not caught up (match ${pr?.match ?? 0}, commit ${this.log.committed})`);
        }
        break;
      }
      case ConfChange_Type.TYPE_REMOVE:
        if (!this.voters.has(id) && !this.learners.has(id)) throw new ConfChangeError(`raft: node ${id} is not a member`);
        if (id === this.id) throw new ConfChangeError('raft: the leader cannot remove itself; transfer leadership first');
        if (this.voters.has(id) && this.voters.size === 1) throw new ConfChangeError('raft: cannot remove the last voter');
        break;
      case ConfChange_Type.TYPE_ADD_VOTER:
        throw new ConfChangeError('raft: members join as learners (TYPE_ADD_LEARNER) and are promoted once caught up');
      default:
        throw new ConfChangeError(`raft: unknown membership change type ${String(cc.type)}`);
    }
    const r = this.appendProposal(EntryType.ENTRY_TYPE_CONF_CHANGE, ConfChange.encode(cc).finish());
    this.pendingConfIndex = r.index;
    return r;
  }

  private appendProposal(type: EntryType, data: Uint8Array): { index: number; term: number } {
    if (this.role !== 'leader') throw new NotLeaderError(this.id, this.leader);
    if (this.leadTransferee !== 0) throw new ProposalDroppedError(`raft: leadership is being transferred to ${this.leadTransferee}; retry`);
    if (data.length > this.cfg.maxProposalBytes) throw new TooLargeError(data.length, this.cfg.maxProposalBytes);
    const entry: Entry = { term: this.term, index: this.log.lastIndex() + 1, type, data: asBuffer(data) };
    this.log.append([entry]);
    this.bcastAppend();
    return { index: entry.index, term: entry.term };
  }

  /**
   * Asks for a linearizable read point (§6.4, read-index). A ReadState with this id appears in a
   * later Ready once the leader has confirmed it still leads; the read may then be served after
   * applying up to its index. If leadership is lost first, the request is dropped (the driver
   * fails it when the soft state changes).
   */
  readIndex(requestId: string): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.id, this.leader);
    if (this.log.term(this.log.committed) !== this.term) {
      // §6.4 step 1: the leader must have committed an entry of its term to know the commit index.
      this.readsAwaitingCommit.push(requestId);
      return;
    }
    this.startRead(requestId);
  }

  private startRead(requestId: string): void {
    const read: PendingRead = { requestId, index: this.log.committed, acks: new Set([this.id]) };
    if (this.hasQuorum(read.acks)) {
      this.readStates.push({ requestId, index: read.index });
      return;
    }
    this.readQueue.push(read);
    this.bcastHeartbeat(Buffer.from(requestId));
  }

  /** Hands leadership to `to` (thesis §3.10): catch it up, then tell it to campaign at once. */
  transferLeadership(to: number): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.id, this.leader);
    if (to === this.id) return;
    if (!this.voters.has(to)) throw new RaftError(`raft: cannot transfer leadership to ${to}: not a voter`);
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    this.electionElapsed = 0; // the transfer must finish within one election timeout
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.send(message({ type: MessageType.MSG_TIMEOUT_NOW, to, from: this.id, term: this.term }));
    else this.sendAppend(to);
  }

  /** Starts an election now (tests and bootstrap). */
  campaign(): void {
    this.hup(false);
  }

  /** The transport could not reach the peer: a leader stops pipelining to it until it answers. */
  reportUnreachable(id: number): void {
    const pr = this.progress.get(id);
    if (this.role === 'leader' && pr?.state === 'replicate') pr.becomeProbe();
  }

  /**
   * The connection to the peer broke (the transport's stream to it failed). If the peer is this
   * follower's leader, its process has most likely died: the kernel closed its sockets. Then two
   * heartbeat intervals of silence are enough to stop honouring its lease and start the election
   * clock's last stretch, instead of a whole election timeout: the node grants pre-votes once
   * `electionTick` is reached and campaigns after a randomised rest of up to
   * `reportedElectionTick` (its randomised timeout scaled down to that range, so the members
   * keep their spread). A live leader's next heartbeat (it sends one every `heartbeatTick`) resets
   * the clock within those two intervals, and with it the shortened wait, so a report alone, or a
   * link broken in one direction only, starts no election.
   */
  reportDisconnected(id: number): void {
    if (this.role !== 'follower' || id === 0 || id !== this.leader) return;
    const { electionTick, heartbeatTick, reportedElectionTick } = this.cfg;
    this.electionElapsed = Math.max(this.electionElapsed, electionTick - 2 * heartbeatTick);
    const rest = Math.floor(((this.randomizedElectionTimeout - electionTick) * reportedElectionTick) / electionTick);
    this.reportedTimeout = Math.min(this.reportedTimeout ?? Infinity, electionTick + rest);
  }

  /**
   * Applies a committed membership change; the driver calls it when it applies the entry, in log
   * order (also when replaying after a restart, so it is idempotent). Returns the new membership.
   */
  applyConfChange(cc: ConfChange): ConfState {
    const id = cc.nodeId;
    switch (cc.type) {
      case ConfChange_Type.TYPE_ADD_LEARNER:
        if (!this.voters.has(id)) this.learners.add(id);
        break;
      case ConfChange_Type.TYPE_PROMOTE:
      case ConfChange_Type.TYPE_ADD_VOTER:
        this.learners.delete(id);
        this.voters.add(id);
        break;
      case ConfChange_Type.TYPE_REMOVE:
        this.voters.delete(id);
        this.learners.delete(id);
        break;
      default:
        break;
    }
    if (this.role === 'leader') {
      for (const member of [...this.voters, ...this.learners]) {
        const pr = this.progress.get(member);
        if (!pr) this.progress.set(member, new Progress(this.log.lastIndex() + 1, this.cfg.maxInflight, this.learners.has(member)));
        else pr.isLearner = this.learners.has(member);
      }
      for (const [member, pr] of this.progress) {
        if (this.voters.has(member) || this.learners.has(member)) continue;
        // Tell a removed member the commit index once more, so that it applies its own removal
        // and stops campaigning: with lazyCommit nothing else would (its progress goes now).
        if (member !== this.id) this.send(message({ type: MessageType.MSG_HEARTBEAT, to: member, from: this.id, term: this.term, commit: Math.min(pr.match, this.log.committed) }));
        this.progress.delete(member);
      }
      if (this.leadTransferee !== 0 && !this.voters.has(this.leadTransferee)) this.leadTransferee = 0;
      if (!this.voters.has(this.id)) {
        this.becomeFollower(this.term, 0);
      } else if (this.maybeCommit()) {
        this.bcastCommit();
      }
    }
    return this.confState();
  }

  /**
   * Records a snapshot of the state machine taken at `index` (applied by the driver, with
   * `confState` the membership after applying it). The log is not compacted: see compact().
   */
  createSnapshot(index: number, confState: ConfState, data: SnapshotBytes): LocalSnapshot {
    if (index > this.log.applied) throw new RaftError(`raft: snapshot at ${index} is beyond the applied index ${this.log.applied}`);
    if (this.snapshot && index <= this.snapshot.metadata.index) return this.snapshot;
    const term = this.log.term(index);
    if (term === undefined) throw new RaftError(`raft: snapshot at ${index}: entry is compacted or missing`);
    this.snapshot = { metadata: { index, term, confState }, data };
    return this.snapshot;
  }

  /** Drops log entries up to `index`, which must be covered by the latest snapshot and persisted. */
  compact(index: number): void {
    const snapIndex = this.snapshot?.metadata.index ?? 0;
    if (index > snapIndex) throw new RaftError(`raft: compact to ${index} beyond the snapshot at ${snapIndex}`);
    this.log.compact(index);
  }

  // ---------------------------------------------------------------- ready / advance

  hasReady(): boolean {
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.droppedReads.length > 0 ||
      this.installedSnapshot !== undefined ||
      this.log.hasUnsent() ||
      this.log.hasCommittedToApply() ||
      this.term !== this.prevHardState.term ||
      this.vote !== this.prevHardState.vote ||
      this.log.committed !== this.prevHardState.commit ||
      this.leader !== this.prevSoftState.leader ||
      this.role !== this.prevSoftState.role
    );
  }

  ready(): Ready {
    const rd: Ready = { entries: this.log.takeUnsent(), committed: [], messages: this.msgs, readStates: this.readStates, droppedReads: this.droppedReads };
    this.msgs = [];
    this.readStates = [];
    this.droppedReads = [];
    if (this.installedSnapshot) {
      rd.snapshot = this.installedSnapshot;
      this.installedSnapshot = undefined;
    }
    rd.committed = this.log.takeCommitted(this.cfg.maxApplyBytes);
    const hs = this.hardState();
    if (!sameHardState(hs, this.prevHardState)) {
      rd.hardState = hs;
      this.prevHardState = hs;
    }
    const ss = this.softState();
    if (!sameSoftState(ss, this.prevSoftState)) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    return rd;
  }

  /** The driver has done what `rd` asked. */
  advance(rd: Ready): void {
    const last = rd.entries[rd.entries.length - 1];
    if (last) this.log.stableTo(last.index, last.term);
    const lastApplied = rd.committed[rd.committed.length - 1];
    if (lastApplied) this.log.appliedConfirmed = Math.max(this.log.appliedConfirmed, lastApplied.index);
    if (this.role === 'leader') {
      const self = this.progress.get(this.id);
      if (self?.maybeUpdate(this.log.stable) && this.maybeCommit()) this.bcastCommit();
    }
  }

  // ---------------------------------------------------------------- state

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { leader: this.leader, role: this.role };
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort((a, b) => a - b), learners: [...this.learners].sort((a, b) => a - b), addresses: {} };
  }

  latestSnapshot(): LocalSnapshot | undefined {
    return this.snapshot;
  }

  status(): Status {
    let progress: Map<number, PeerStatus> | undefined;
    if (this.role === 'leader') {
      progress = new Map();
      for (const [id, pr] of this.progress) {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state, learner: pr.isLearner, recentActive: pr.recentActive });
      }
    }
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      role: this.role,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.snapshotIndex,
      confState: this.confState(),
      progress,
      leadTransferee: this.leadTransferee,
    };
  }

  private promotable(): boolean {
    return this.voters.has(this.id);
  }

  private quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  private hasQuorum(ids: Set<number>): boolean {
    let n = 0;
    for (const v of this.voters) if (ids.has(v)) n++;
    return n >= this.quorum();
  }

  // ---------------------------------------------------------------- role changes

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = 0;
    }
    this.leader = 0;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = randomInt(this.cfg.random, this.cfg.electionTick, 2 * this.cfg.electionTick);
    this.reportedTimeout = undefined;
    this.votes = new Map();
    this.leadTransferee = 0;
    this.progress.clear();
    // Pending reads die with the leadership; the next Ready lists them so the driver fails them.
    for (const r of this.readQueue) this.droppedReads.push(r.requestId);
    this.droppedReads.push(...this.readsAwaitingCommit);
    this.readQueue = [];
    this.readsAwaitingCommit = [];
  }

  private becomeFollower(term: number, leader: number): void {
    this.reset(term);
    this.role = 'follower';
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    // Pre-vote changes neither term nor vote (thesis §9.6).
    this.votes = new Map();
    this.role = 'precandidate';
    this.leader = 0;
    this.electionElapsed = 0;
    this.randomizedElectionTimeout = randomInt(this.cfg.random, this.cfg.electionTick, 2 * this.cfg.electionTick);
    this.reportedTimeout = undefined;
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.leader = this.id;
    const next = this.log.lastIndex() + 1;
    for (const id of [...this.voters, ...this.learners]) {
      this.progress.set(id, new Progress(next, this.cfg.maxInflight, this.learners.has(id)));
    }
    const self = this.progress.get(this.id)!;
    self.maybeUpdate(this.log.stable);
    self.becomeReplicate();
    // No membership change until everything up to here (including the empty entry) is applied.
    this.pendingConfIndex = this.log.lastIndex() + 1;
    // §8: commit an entry of the new term to learn the commit index (and unblock reads).
    this.log.append([{ term: this.term, index: this.log.lastIndex() + 1, type: EntryType.ENTRY_TYPE_EMPTY, data: EMPTY }]);
    this.bcastAppend();
  }

  // ---------------------------------------------------------------- ticks

  private tickElection(): void {
    // The clock went back below where a report put it: the leader was heard from since.
    if (this.reportedTimeout !== undefined && this.electionElapsed < this.cfg.electionTick - 2 * this.cfg.heartbeatTick) this.reportedTimeout = undefined;
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= (this.reportedTimeout ?? this.randomizedElectionTimeout)) {
      this.electionElapsed = 0;
      this.reportedTimeout = undefined;
      this.hup(false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        const active = new Set<number>([this.id]);
        for (const [id, pr] of this.progress) if (pr.recentActive) active.add(id);
        if (!this.hasQuorum(active)) {
          this.becomeFollower(this.term, 0);
          return;
        }
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
      }
      if (this.leadTransferee !== 0) this.leadTransferee = 0; // the transfer timed out
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      // Heartbeats carry the newest pending read: if the acknowledgements of its own round were
      // lost, these confirm it (and every earlier one) instead.
      const newest = this.readQueue[this.readQueue.length - 1];
      this.bcastHeartbeat(newest ? Buffer.from(newest.requestId) : EMPTY);
      this.resendStalledSnapshots();
      // A transfer whose timeout-now was lost: the caught-up transferee is told again.
      const target = this.leadTransferee !== 0 ? this.progress.get(this.leadTransferee) : undefined;
      if (target && target.match === this.log.lastIndex()) {
        this.send(message({ type: MessageType.MSG_TIMEOUT_NOW, to: this.leadTransferee, from: this.id, term: this.term }));
      }
    }
  }

  // ---------------------------------------------------------------- elections

  private hup(transfer: boolean): void {
    if (this.role === 'leader' || !this.promotable()) return;
    // A committed, unapplied membership change may remove this node or change the quorum.
    if (this.log.hasPendingConfChange()) return;
    if (this.cfg.preVote && !transfer) this.campaignRound('pre', false);
    else this.campaignRound('election', transfer);
  }

  private campaignRound(kind: 'pre' | 'election', transfer: boolean): void {
    let voteTerm: number;
    let type: MessageType;
    if (kind === 'pre') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
      type = MessageType.MSG_PRE_VOTE;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
      type = MessageType.MSG_VOTE;
    }
    if (this.poll(this.id, true) === 'won') {
      if (kind === 'pre') this.campaignRound('election', transfer);
      else this.becomeLeader();
      return;
    }
    for (const to of this.voters) {
      if (to === this.id) continue;
      this.send(
        message({
          type,
          to,
          from: this.id,
          term: voteTerm,
          index: this.log.lastIndex(),
          logTerm: this.log.lastTerm(),
          context: transfer ? TRANSFER_CONTEXT : EMPTY,
        }),
      );
    }
  }

  private poll(from: number, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.voters) {
      const r = this.votes.get(v);
      if (r === true) yes++;
      else if (r === false) no++;
    }
    const q = this.quorum();
    if (yes >= q) return 'won';
    if (no > this.voters.size - q) return 'lost';
    return 'pending';
  }

  // ---------------------------------------------------------------- step

  /** Processes one message from a peer. */
  step(m: RaftMessage): void {
    if (m.term > this.term) {
      if (m.type === MessageType.MSG_VOTE || m.type === MessageType.MSG_PRE_VOTE) {
        const force = m.context.equals(TRANSFER_CONTEXT);
        const inLease = this.cfg.checkQuorum && this.leader !== 0 && this.electionElapsed < this.cfg.electionTick;
        // §6 (thesis §4.2.3): while a node hears from a current leader it ignores vote requests,
        // so a removed or partitioned server cannot depose a healthy leader.
        if (!force && inLease) return;
      }
      if (m.type === MessageType.MSG_PRE_VOTE) {
        // Never change the term for a pre-vote.
      } else if (m.type === MessageType.MSG_PRE_VOTE_RESP && !m.reject) {
        // A granted pre-vote carries the future term; the term moves when the real election starts.
      } else if (m.type === MessageType.MSG_APP || m.type === MessageType.MSG_HEARTBEAT || m.type === MessageType.MSG_SNAP) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, 0);
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.MSG_HEARTBEAT || m.type === MessageType.MSG_APP)) {
        // A stale leader (or a node back from a partition with pre-vote on) learns the term
        // from this reply and steps down instead of staying stuck.
        this.send(message({ type: MessageType.MSG_APP_RESP, to: m.from, from: this.id, term: this.term }));
      } else if (m.type === MessageType.MSG_PRE_VOTE) {
        this.send(message({ type: MessageType.MSG_PRE_VOTE_RESP, to: m.from, from: this.id, term: this.term, reject: true }));
      }
      return;
    }

    if (m.type === MessageType.MSG_VOTE || m.type === MessageType.MSG_PRE_VOTE) {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'precandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  private handleVoteRequest(m: RaftMessage): void {
    const pre = m.type === MessageType.MSG_PRE_VOTE;
    const respType = pre ? MessageType.MSG_PRE_VOTE_RESP : MessageType.MSG_VOTE_RESP;
    // §5.2, §5.4.1: one vote per term, only for a candidate whose log is at least as up-to-date.
    const canVote = this.vote === m.from || (this.vote === 0 && this.leader === 0) || (pre && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send(message({ type: respType, to: m.from, from: this.id, term: m.term }));
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(message({ type: respType, to: m.from, from: this.id, term: this.term, reject: true }));
    }
  }

  private stepFollower(m: RaftMessage): void {
    switch (m.type) {
      case MessageType.MSG_APP:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppend(m);
        break;
      case MessageType.MSG_HEARTBEAT:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        break;
      case MessageType.MSG_SNAP:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapshotChunk(m);
        break;
      case MessageType.MSG_TIMEOUT_NOW:
        // Thesis §3.10: the leader handed over; campaign at once, skipping pre-vote.
        this.hup(true);
        break;
      default:
        break;
    }
  }

  private stepCandidate(m: RaftMessage): void {
    const myResp = this.role === 'precandidate' ? MessageType.MSG_PRE_VOTE_RESP : MessageType.MSG_VOTE_RESP;
    switch (m.type) {
      case MessageType.MSG_APP:
      case MessageType.MSG_HEARTBEAT:
      case MessageType.MSG_SNAP:
        // §5.2: a leader of this term exists.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        break;
      case myResp: {
        const result = this.poll(m.from, !m.reject);
        if (result === 'won') {
          if (this.role === 'precandidate') this.campaignRound('election', false);
          else this.becomeLeader();
        } else if (result === 'lost') {
          this.becomeFollower(this.term, 0);
        }
        break;
      }
      default:
        break;
    }
  }

  private stepLeader(m: RaftMessage): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.MSG_APP_RESP:
        pr.recentActive = true;
        this.handleAppendResponse(m, pr);
        break;
      case MessageType.MSG_HEARTBEAT_RESP:
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from);
        if (m.context.length > 0) this.ackRead(m.from, m.context.toString());
        break;
      case MessageType.MSG_SNAP_RESP:
        pr.recentActive = true;
        if (pr.state === 'snapshot' && m.snapshot?.index === pr.pendingSnapshot) {
          pr.snapshotAcked = m.snapshotOffset;
          if (pr.snapshotAcked < (pr.sendingSnapshot?.data.length ?? 0)) this.sendSnapshotChunk(m.from, pr);
        }
        break;
      default:
        break;
    }
  }

  private handleAppendResponse(m: RaftMessage, pr: Progress): void {
    if (m.reject) {
      // Fast backtracking (thesis §5.3 optimisation): skip whole terms the follower does not have.
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    // A probe answered at exactly the match also ends probing (the peer had everything).
    if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === 'probe')) {
      if (pr.state === 'probe') {
        pr.becomeReplicate();
      } else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === 'replicate') {
        pr.inflights.freeTo(m.index);
      }
      if (this.maybeCommit()) {
        this.bcastCommit();
      } else if (wasPaused) {
        this.sendAppend(m.from);
      }
      // Pipeline whatever else is ready for this peer.
      while (this.sendAppend(m.from, false)) {
        /* keep sending */
      }
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
        this.send(message({ type: MessageType.MSG_TIMEOUT_NOW, to: m.from, from: this.id, term: this.term }));
      }
    }
  }

  /** The largest index <= index whose term is <= term (or the snapshot point). */
  private findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.log.lastIndex());
    for (; i > this.log.snapshotIndex; i--) {
      const t = this.log.term(i);
      if (t !== undefined && t <= term) return i;
    }
    return this.log.snapshotIndex;
  }

  private handleAppend(m: RaftMessage): void {
    if (m.index < this.log.committed) {
      this.send(message({ type: MessageType.MSG_APP_RESP, to: m.from, from: this.id, term: this.term, index: this.log.committed }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(message({ type: MessageType.MSG_APP_RESP, to: m.from, from: this.id, term: this.term, index: lastNew }));
      return;
    }
    // Reject, with a hint: the largest index at or below m.index whose term is <= m.logTerm.
    let hintIndex = Math.min(m.index, this.log.lastIndex());
    while (hintIndex > this.log.snapshotIndex && (this.log.term(hintIndex) ?? 0) > m.logTerm) hintIndex--;
    const hintTerm = this.log.term(hintIndex) ?? 0;
    this.send(
      message({ type: MessageType.MSG_APP_RESP, to: m.from, from: this.id, term: this.term, index: m.index, reject: true, rejectHint: hintIndex, logTerm: hintTerm }),
    );
  }

  private handleHeartbeat(m: RaftMessage): void {
    // The leader sends min(our match, its commit), so this never commits past our matching prefix.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send(message({ type: MessageType.MSG_HEARTBEAT_RESP, to: m.from, from: this.id, term: this.term, context: m.context }));
  }

  private handleSnapshotChunk(m: RaftMessage): void {
    const meta = m.snapshot;
    if (!meta) return;
    if (meta.index <= this.log.committed) {
      // Already have everything it holds.
      this.incoming = undefined;
      this.send(message({ type: MessageType.MSG_APP_RESP, to: m.from, from: this.id, term: this.term, index: this.log.committed }));
      return;
    }
    if (!this.incoming || this.incoming.index !== meta.index || this.incoming.term !== meta.term || m.snapshotOffset === 0) {
      this.incoming = { index: meta.index, term: meta.term, chunks: [], size: 0 };
    }
    const inc = this.incoming;
    if (m.snapshotOffset !== inc.size) {
      // Out of order (a lost or duplicated chunk): tell the leader where to resume.
      this.send(message({ type: MessageType.MSG_SNAP_RESP, to: m.from, from: this.id, term: this.term, snapshot: meta, snapshotOffset: inc.size }));
      return;
    }
    inc.chunks.push(m.snapshotChunk);
    inc.size += m.snapshotChunk.length;
    if (!m.snapshotLast) {
      this.send(message({ type: MessageType.MSG_SNAP_RESP, to: m.from, from: this.id, term: this.term, snapshot: meta, snapshotOffset: inc.size }));
      return;
    }
    this.incoming = undefined;
    const data = Buffer.concat(inc.chunks, inc.size);
    if (m.snapshotSize !== data.length) {
      this.send(message({ type: MessageType.MSG_SNAP_RESP, to: m.from, from: this.id, term: this.term, snapshot: meta, snapshotOffset: 0 }));
      return;
    }
    this.installSnapshot({ metadata: meta, data });
    // Acknowledge the snapshot's index only: when the log already held that entry it was kept,
    // and whatever follows it has not been checked against the leader.
    this.send(message({ type: MessageType.MSG_APP_RESP, to: m.from, from: this.id, term: this.term, index: meta.index }));
  }

  private installSnapshot(snap: Snapshot): void {
    const { index, term } = snap.metadata;
    if (this.log.matchTerm(index, term)) {
      // Our log already holds the snapshot's last entry: keep the log, just commit up to it.
      this.log.commitTo(index);
      return;
    }
    this.log.restore(index, term);
    this.voters.clear();
    this.learners.clear();
    for (const v of snap.metadata.confState?.voters ?? []) this.voters.add(v);
    for (const l of snap.metadata.confState?.learners ?? []) this.learners.add(l);
    this.snapshot = snap;
    this.installedSnapshot = snap;
  }

  // ---------------------------------------------------------------- leader: replication

  private maybeCommit(): boolean {
    if (this.voters.size === 0) return false;
    // The quorum-th largest match: insertion into a reused array (a handful of voters), as this
    // runs on every acknowledgement and Array.prototype.sort allocates.
    const matches = this.matchScratch;
    let n = 0;
    for (const v of this.voters) {
      const m = this.progress.get(v)?.match ?? 0;
      let i = n++;
      for (; i > 0 && matches[i - 1]! < m; i--) matches[i] = matches[i - 1]!;
      matches[i] = m;
    }
    const candidate = matches[this.quorum() - 1]!;
    // §5.4.2: only entries of the current term are committed by counting replicas.
    if (candidate > this.log.committed && this.log.term(candidate) === this.term) {
      const firstInTerm = this.log.term(this.log.committed) !== this.term;
      this.log.commitTo(candidate);
      if (firstInTerm) this.releaseReadsAwaitingCommit();
      return true;
    }
    return false;
  }

  private releaseReadsAwaitingCommit(): void {
    const waiting = this.readsAwaitingCommit;
    this.readsAwaitingCommit = [];
    for (const id of waiting) this.startRead(id);
  }

  private ackRead(from: number, requestId: string): void {
    const pos = this.readQueue.findIndex((r) => r.requestId === requestId);
    if (pos < 0) return;
    const read = this.readQueue[pos]!;
    read.acks.add(from);
    if (!this.hasQuorum(read.acks)) return;
    // Confirming leadership for this request confirms it for every earlier one too.
    for (const r of this.readQueue.splice(0, pos + 1)) this.readStates.push({ requestId: r.requestId, index: r.index });
  }

  /**
   * A new commit index. Eager (etcd's way): an append to every follower, empty if it has nothing
   * new, so followers apply at once. Lazy (the Raft paper's way, §5.3): only followers with
   * entries to send get an append now; the others learn the index from the next append or
   * heartbeat. Lazy saves an empty append and its answer per follower per commit.
   */
  private bcastCommit(): void {
    if (!this.cfg.lazyCommit) return this.bcastAppend();
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id, false);
  }

  private bcastAppend(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(context: Buffer): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.send(
        message({ type: MessageType.MSG_HEARTBEAT, to: id, from: this.id, term: this.term, commit: Math.min(pr.match, this.log.committed), context }),
      );
    }
  }

  /**
   * Sends the next append to `to` if flow control allows; with sendIfEmpty false, only if there
   * are entries to send. Falls back to a snapshot when the needed entries are compacted. Returns
   * whether a message was sent.
   */
  private sendAppend(to: number, sendIfEmpty = true): boolean {
    const pr = this.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = this.log.slice(pr.next, this.log.lastIndex() + 1, this.cfg.maxMsgBytes);
    if (prevTerm === undefined || entries === undefined) {
      if (!this.snapshot) return false;
      pr.becomeSnapshot(this.snapshot.metadata.index);
      pr.sendingSnapshot = this.snapshot;
      this.sendSnapshotChunk(to, pr);
      return true;
    }
    if (!sendIfEmpty && entries.length === 0) return false;
    this.send(message({ type: MessageType.MSG_APP, to, from: this.id, term: this.term, index: prevIndex, logTerm: prevTerm, entries, commit: this.log.committed }));
    const last = entries[entries.length - 1];
    if (pr.state === 'replicate') {
      if (last) {
        pr.next = last.index + 1;
        pr.inflights.add(last.index);
      }
    } else {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshotChunk(to: number, pr: Progress): void {
    // Finish the snapshot this transfer started with, even if a newer one was taken since:
    // restarting from byte 0 at every new snapshot could starve a slow follower forever.
    if (!pr.sendingSnapshot || pr.sendingSnapshot.metadata.index !== pr.pendingSnapshot) {
      if (!this.snapshot) return;
      pr.becomeSnapshot(this.snapshot.metadata.index);
      pr.sendingSnapshot = this.snapshot;
    }
    const snap = pr.sendingSnapshot;
    const offset = Math.min(pr.snapshotAcked, snap.data.length);
    const chunk = snap.data.subarray(offset, offset + this.cfg.snapshotChunkBytes);
    pr.snapshotIdleTicks = 0;
    this.send(
      message({
        type: MessageType.MSG_SNAP,
        to,
        from: this.id,
        term: this.term,
        snapshot: snap.metadata,
        snapshotChunk: asBuffer(chunk),
        snapshotOffset: offset,
        snapshotLast: offset + chunk.length >= snap.data.length,
        snapshotSize: snap.data.length,
      }),
    );
  }

  /** A chunk (or the install reply) may be lost: resend from the acknowledged offset. */
  private resendStalledSnapshots(): void {
    for (const [id, pr] of this.progress) {
      if (pr.state !== 'snapshot') continue;
      pr.snapshotIdleTicks += this.cfg.heartbeatTick;
      if (pr.snapshotIdleTicks >= 2 * this.cfg.heartbeatTick) this.sendSnapshotChunk(id, pr);
    }
  }

  private send(m: RaftMessage): void {
    this.msgs.push(m);
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

// The core's inputs and outputs. The core is a deterministic state machine: messages, ticks and
// proposals in; a Ready out (what to persist, send and apply), acknowledged with advance().
import type { SnapshotBytes } from './bytes.js';
import type { ConfState, Entry, HardState, RaftMessage, SnapshotMetadata } from '../../../proto/gen/tswarm/raft.js';
import type { Random } from './rand.js';

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

export interface RaftConfig {
  /** This node's Raft id (non-zero, never reused). */
  id: number;
  /** Ticks without hearing from a leader before campaigning: randomised in [electionTick, 2×electionTick). */
  electionTick: number;
  /** Ticks between leader heartbeats; must be less than electionTick. */
  heartbeatTick: number;
  /**
   * After the transport reports the leader's connection broken (RaftCore.reportDisconnected),
   * the randomised part of the wait before campaigning, in [0, reportedElectionTick) ticks, after
   * two heartbeat intervals of silence: a dead leader (its sockets closed) is replaced about as
   * fast whatever electionTick is, so electionTick can be long enough to ride out a busy leader's
   * stalls. At most electionTick.
   */
  reportedElectionTick: number;
  /** Pre-vote (thesis §9.6): a partitioned node does not disrupt the cluster when it returns. */
  preVote: boolean;
  /** Check-quorum (§6.2): a leader that has not heard from a quorum for an election timeout steps down, and followers ignore vote requests while they hear from a leader. */
  checkQuorum: boolean;
  /** Unacknowledged append messages per follower in replicate state (pipelining). */
  maxInflight: number;
  /** Entry bytes per append message (flow control). */
  maxMsgBytes: number;
  /** Committed entry bytes handed out per Ready. */
  maxApplyBytes: number;
  /** Bytes per snapshot chunk message. */
  snapshotChunkBytes: number;
  /** Largest proposal accepted. */
  maxProposalBytes: number;
  /** A learner may be promoted once its log is at most this many entries behind the commit index. */
  learnerCatchUpEntries: number;
  /**
   * Followers learn a new commit index from the next append or heartbeat instead of an empty
   * append sent for it alone (see RaftCore.bcastCommit): each write costs two messages less per
   * follower, but a follower knows of a commit up to a heartbeat later. Off by default: a manager
   * that survives the loss of the quorum keeps, under --force-new-cluster, only what it knew to
   * be committed, and lazily it may not yet know of a write already acknowledged.
   */
  lazyCommit: boolean;
  /** Seeded randomness for election timeouts. */
  random: Random;
}

export const DEFAULT_CORE_CONFIG: Omit<RaftConfig, 'id' | 'random'> = {
  electionTick: 10,
  heartbeatTick: 1,
  reportedElectionTick: 10,
  preVote: true,
  checkQuorum: true,
  maxInflight: 256,
  maxMsgBytes: 1 << 20,
  maxApplyBytes: 8 << 20,
  snapshotChunkBytes: 512 << 10,
  maxProposalBytes: 1536 << 10,
  learnerCatchUpEntries: 100,
  lazyCommit: false,
};

export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

/** The leader's own latest snapshot, which it sends from (its data possibly in pieces: bytes.ts). */
export interface LocalSnapshot {
  metadata: SnapshotMetadata;
  data: SnapshotBytes;
}

/** What the driver recovered from disk (or, for a new node, its bootstrap state). */
export interface PersistedState {
  hardState: HardState;
  /** The latest snapshot; its metadata's confState is the membership at that point. A new cluster's first node may pass an index-0 snapshot carrying the initial membership. */
  snapshot?: Snapshot | undefined;
  /** Entries after the snapshot, consecutive. */
  entries: Entry[];
}

export interface SoftState {
  leader: number;
  role: Role;
}

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  requestId: string;
  index: number;
}

/**
 * One batch of work for the driver, to be done in this order:
 * 1. persist `snapshot` (if any), then `entries` and `hardState`, durably (one fsync);
 * 2. send `messages` (a leader's appends, heartbeats, snapshot chunks and timeout-now may be sent
 *    before step 1 completes, thesis §10.2.1; everything else only after);
 * 3. restore the state machine from `snapshot` (if any), then apply `committed` in order;
 * 4. call advance(ready).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
  committed: Entry[];
  messages: RaftMessage[];
  readStates: ReadState[];
  /** Read requests abandoned because leadership was lost: fail them (the client may retry). */
  droppedReads: string[];
}

export interface PeerStatus {
  match: number;
  next: number;
  state: string;
  learner: boolean;
  recentActive: boolean;
}

export interface Status {
  id: number;
  term: number;
  vote: number;
  role: Role;
  leader: number;
  commit: number;
  applied: number;
  lastIndex: number;
  snapshotIndex: number;
  confState: ConfState;
  /** Set on the leader only. */
  progress?: Map<number, PeerStatus>;
  leadTransferee: number;
}

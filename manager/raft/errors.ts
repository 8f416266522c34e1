// Errors of the Raft layer. The store branches on the class: NotLeaderError carries the leader to
// forward to; LeadershipLostError means the outcome of a proposal is unknown (it may still commit).
import { TswarmError } from '../../common/errors.js';

export class RaftError extends TswarmError {}

/** This node is not the leader; `leader` is the one it knows of (0: none known). */
export class NotLeaderError extends RaftError {
  constructor(
    readonly nodeId: number,
    readonly leader: number,
  ) {
    super(leader === 0 ? `raft: node ${nodeId} is not the leader, and no leader is known` : `raft: node ${nodeId} is not the leader; the leader is ${leader}`);
  }
}

/** Leadership was lost while the proposal was in flight: it may or may not have committed. */
export class LeadershipLostError extends RaftError {
  constructor(readonly nodeId: number) {
    super(`raft: node ${nodeId} lost leadership before the proposal was applied; its outcome is unknown`);
  }
}

/** The node was stopped. */
export class StoppedError extends RaftError {
  constructor(readonly nodeId: number) {
    super(`raft: node ${nodeId} is stopped`);
  }
}

/** A proposal larger than the configured maximum. */
export class TooLargeError extends RaftError {
  constructor(
    readonly size: number,
    readonly max: number,
  ) {
    super(`raft: proposal of ${size} bytes exceeds the maximum of ${max} bytes`);
  }
}

/** The leader refuses proposals for now (a leadership transfer is in progress). */
export class ProposalDroppedError extends RaftError {}

/** A membership change was refused; the message says which rule. */
export class ConfChangeError extends RaftError {}

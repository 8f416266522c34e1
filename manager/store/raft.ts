// The embedded-Raft backend of the store: the store is the Raft state machine, and proposals go
// through the RaftServer of this manager.
import type { StateMachine } from '../raft/node.js';
import type { RaftServer } from '../raft/server.js';
import type { ApplyResult, MemoryStore, Proposer } from './memory.js';

/** The store as a Raft state machine: apply, snapshot and restore are the store's own. */
export function storeStateMachine(store: MemoryStore): StateMachine<ApplyResult> {
  return {
    apply: (data, index) => store.apply(data, index),
    snapshot: () => store.snapshot(),
    snapshotSource: () => store.snapshotSource(),
    restore: (data) => store.restore(data),
  };
}

export class RaftProposer implements Proposer {
  constructor(private readonly raft: RaftServer<ApplyResult>) {}

  propose(data: Uint8Array): Promise<ApplyResult> {
    return this.raft.propose(data);
  }
}

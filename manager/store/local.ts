// A proposer with no replication: applies at once, with consecutive versions. For unit tests of
// components that meet in the store, and for a single process that needs no durability.
import type { ApplyResult, MemoryStore, Proposer } from './memory.js';

export class LocalProposer implements Proposer {
  private index = 0;
  constructor(private readonly store: MemoryStore) {}

  propose(data: Uint8Array): Promise<ApplyResult> {
    return Promise.resolve(this.store.apply(data, ++this.index));
  }
}

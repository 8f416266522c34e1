// The Raft log as the core sees it: a snapshot point (index and term of the last compacted entry)
// followed by the entries after it, all in memory. The driver persists what the core hands out in
// Ready and reports back with advance(); the log tracks three watermarks over the entries:
//
//   snapshotIndex <= applied <= committed <= lastIndex        and        stable <= lastIndex
//
// - committed: known to be committed (§5.3, §5.4.2).
// - applied: handed out to the state machine in a Ready.
// - stable: persisted by the driver (advance() confirmed it). `unsentFrom` is the first index not
//   yet handed out for persisting; entries at or after it are in the next Ready.
import { EntryType, type Entry } from '../../../proto/gen/tswarm/raft.js';

export class LogSafetyError extends Error {
  constructor(message: string) {
    super(`raft log: ${message}`);
    this.name = 'LogSafetyError';
  }
}

export class RaftLog {
  /** entries[i] has index snapshotIndex + 1 + i. */
  private entries: Entry[];
  committed: number;
  /** Handed out to the state machine in a Ready. */
  applied: number;
  /** Applied by the driver: it called advance() for the Ready that handed it out. */
  appliedConfirmed: number;
  stable: number;
  /** First index not yet handed out for persisting. */
  unsentFrom: number;

  constructor(
    public snapshotIndex: number,
    public snapshotTerm: number,
    entries: Entry[],
    committed: number,
  ) {
    this.entries = entries;
    for (let i = 0; i < entries.length; i++) {
      if (entries[i]!.index !== snapshotIndex + 1 + i) throw new LogSafetyError(`entry ${i} has index ${entries[i]!.index}, expected ${snapshotIndex + 1 + i}`);
    }
    this.committed = Math.max(committed, snapshotIndex);
    if (this.committed > this.lastIndex()) throw new LogSafetyError(`commit ${committed} is beyond the last index ${this.lastIndex()}`);
    this.applied = snapshotIndex;
    this.appliedConfirmed = snapshotIndex;
    this.stable = this.lastIndex();
    this.unsentFrom = this.lastIndex() + 1;
  }

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1]!.term : this.snapshotTerm;
  }

  /** The term of the entry at index i; undefined if i is compacted away or beyond the log. */
  term(i: number): number | undefined {
    if (i === this.snapshotIndex) return this.snapshotTerm;
    if (i < this.snapshotIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.snapshotIndex - 1]!.term;
  }

  entry(i: number): Entry | undefined {
    if (i <= this.snapshotIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.snapshotIndex - 1];
  }

  matchTerm(i: number, term: number): boolean {
    return this.term(i) === term;
  }

  /** §5.4.1: a candidate's log is at least as up-to-date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries in [lo, hi) (hi exclusive), at most maxBytes of data (always at least one entry);
   * undefined if lo is compacted.
   */
  slice(lo: number, hi: number, maxBytes = Infinity): Entry[] | undefined {
    if (lo <= this.snapshotIndex) return undefined;
    hi = Math.min(hi, this.lastIndex() + 1);
    if (lo >= hi) return [];
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entries[i - this.snapshotIndex - 1]!;
      size += e.data.length + 24;
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Appends entries that follow the last one (leader path). */
  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index !== this.lastIndex() + 1) throw new LogSafetyError(`append of index ${e.index} after last index ${this.lastIndex()}`);
      this.entries.push(e);
    }
  }

  /**
   * The follower's consistency check and append (§5.3): if the entry at prevIndex has prevTerm,
   * entries that conflict with `ents` are dropped and the new ones appended; the commit index moves
   * to min(leaderCommit, index of the last new entry). Returns the last index known to match the
   * leader, or undefined if the consistency check fails.
   */
  maybeAppend(prevIndex: number, prevTerm: number, leaderCommit: number, ents: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      if (conflict <= this.committed) throw new LogSafetyError(`entry ${conflict} conflicts with a committed entry (commit ${this.committed})`);
      this.truncateAndAppend(ents.slice(conflict - prevIndex - 1));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /**
   * The index of the first entry of ents that is not in the log or has another term; 0 when all are
   * present. Entries at or below the snapshot are taken as matching (they are committed).
   */
  private findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (e.index <= this.snapshotIndex) continue;
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  private truncateAndAppend(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0]!.index;
    if (first <= this.snapshotIndex) throw new LogSafetyError(`truncate at ${first}, inside the snapshot (${this.snapshotIndex})`);
    if (first <= this.lastIndex()) {
      this.entries.length = first - this.snapshotIndex - 1;
      this.unsentFrom = Math.min(this.unsentFrom, first);
      this.stable = Math.min(this.stable, first - 1);
    }
    this.append(ents);
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) throw new LogSafetyError(`commit to ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Entries to persist: everything not yet handed out. Marks them handed out. */
  takeUnsent(): Entry[] {
    const out = this.unsentFrom <= this.lastIndex() ? this.entries.slice(this.unsentFrom - this.snapshotIndex - 1) : [];
    this.unsentFrom = this.lastIndex() + 1;
    return out;
  }

  hasUnsent(): boolean {
    return this.unsentFrom <= this.lastIndex();
  }

  /** The driver persisted entries up to (index, term): stable moves there unless it was overwritten since. */
  stableTo(index: number, term: number): void {
    if (this.matchTerm(index, term) && index < this.unsentFrom) this.stable = Math.max(this.stable, index);
  }

  /**
   * Committed entries not yet applied, only among those already handed out for persisting (the
   * driver persists a Ready's entries before applying its committed ones), at most maxBytes.
   */
  takeCommitted(maxBytes: number): Entry[] {
    const hi = Math.min(this.committed, this.unsentFrom - 1);
    if (hi <= this.applied) return [];
    const out = this.slice(this.applied + 1, hi + 1, maxBytes) ?? [];
    if (out.length > 0) this.applied = out[out.length - 1]!.index;
    return out;
  }

  hasCommittedToApply(): boolean {
    return Math.min(this.committed, this.unsentFrom - 1) > this.applied;
  }

  /**
   * True if a configuration change entry lies in (appliedConfirmed, committed]: committed but not
   * yet applied by the driver, so not yet in effect.
   */
  hasPendingConfChange(): boolean {
    for (let i = this.appliedConfirmed + 1; i <= this.committed; i++) {
      if (this.entry(i)?.type === EntryType.ENTRY_TYPE_CONF_CHANGE) return true;
    }
    return false;
  }

  /** Replaces the whole log with a snapshot point (a follower installing a leader's snapshot). */
  restore(index: number, term: number): void {
    this.entries = [];
    this.snapshotIndex = index;
    this.snapshotTerm = term;
    this.committed = index;
    this.applied = index;
    this.appliedConfirmed = index;
    this.stable = index;
    this.unsentFrom = index + 1;
  }

  /** Drops entries up to and including index (which must be applied and persisted). */
  compact(index: number): void {
    if (index <= this.snapshotIndex) return;
    if (index > this.applied || index > this.stable) throw new LogSafetyError(`compact to ${index} beyond applied ${this.applied} or stable ${this.stable}`);
    const term = this.term(index)!;
    this.entries = this.entries.slice(index - this.snapshotIndex);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
  }
}

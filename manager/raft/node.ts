// RaftNode: the loop around the core, still synchronous and free of timers and sockets. It
// persists what the core asks (one fsync per Ready: group commit), sends, applies committed
// entries to the state machine, tracks proposals and reads, and takes snapshots. The process shell
// (server.ts) adds real ticks and the gRPC transport; the simulation drives this same class with a
// virtual clock, an in-memory network and an in-memory file system that can lose power.
//
// Callbacks, not promises, so the simulation stays synchronous and deterministic; the shell wraps
// them in promises.
import { ConfChange, ConfChange_Type, EntryType, MessageType, type ConfState, type Entry, type HardState, type RaftMessage, type SnapshotMetadata } from '../../proto/gen/tswarm/raft.js';
import { LeadershipLostError, RaftError, StoppedError } from './errors.js';
import { RaftCore } from './core/raft.js';
import { PieceBytes } from './core/bytes.js';
import type { PersistedState, RaftConfig, Ready, SoftState, Status } from './core/types.js';

/** What the node needs from durable storage (RaftDisk implements it). */
export interface RaftStorage {
  append(entries: readonly Entry[], hardState?: HardState): void;
  sync(): void;
  /** sync() off the event loop (see RaftNodeOptions.asyncSync). */
  syncAsync?(done: (err: Error | null) => void): void;
  saveSnapshot(metadata: SnapshotMetadata, data: Uint8Array): void;
  /**
   * saveSnapshot in two halves, for snapshots taken across turns of the event loop (see
   * RaftNodeOptions.defer): the file written off the loop, then committed; a file not committed
   * is discarded. Optional: all three or none.
   */
  writeSnapshot?(metadata: SnapshotMetadata, pieces: readonly Uint8Array[], size: number, done: (err: Error | null) => void): { abort(): void };
  commitSnapshot?(metadata: SnapshotMetadata): void;
  discardSnapshot?(metadata: SnapshotMetadata): void;
}

/**
 * A state machine's state as of one moment, handed out in pieces: each call to next() does a
 * bounded amount of work and returns the next pieces, undefined once all are out. The state may
 * change between calls; what the pieces hold does not (they are the state at the moment the
 * source was made).
 */
export interface SnapshotSource {
  next(): Uint8Array[] | undefined;
}

/** The replicated state machine. apply() must be deterministic: every replica applies the same entries in the same order. */
export interface StateMachine<R = unknown> {
  apply(data: Uint8Array, index: number): R;
  /** The whole state, for a snapshot. */
  snapshot(): Uint8Array;
  /** The whole state as of now, in pieces (snapshot() joined), taken across turns of the loop. Optional. */
  snapshotSource?(): SnapshotSource;
  /** Replaces the whole state with a snapshot's. */
  restore(data: Uint8Array): void;
}

export type Callback<T> = (err: Error | null, value?: T) => void;

export interface RaftNodeOptions<R> {
  config: RaftConfig;
  storage: RaftStorage;
  /** What was recovered from storage (or the bootstrap state). */
  state: PersistedState;
  stateMachine: StateMachine<R>;
  /** Hands messages to the transport; must not throw. */
  send: (messages: RaftMessage[]) => void;
  /** Take a snapshot after this many applied entries (0: never); a function is asked each time (the cluster's setting). */
  snapshotEntries?: number | (() => number);
  /** Entries kept behind a snapshot, so slightly slow followers catch up without one. */
  keepEntries?: number;
  onSoftState?: (s: SoftState) => void;
  /** Called when a membership change is applied (the shell learns new members' addresses). */
  onConfChange?: (cc: ConfChange, state: ConfState) => void;
  /**
   * Run fsyncs off the event loop (storage.syncAsync): while one Ready waits for its fsync the node
   * keeps taking messages and proposals, and a leader's appends really leave before its own write.
   * The simulation leaves it off to stay synchronous.
   */
  asyncSync?: boolean;
  /** The storage failed: the node has stopped; the process should restart and recover. */
  onFatal?: (err: Error) => void;
  /**
   * Runs a function on a later turn of the event loop (setImmediate). With it, and a state machine
   * and storage that support it, a snapshot is taken in pieces across turns and its file written
   * off the loop: a large store's snapshot taken in one go stopped the loop for longer than an
   * election timeout. Without it (the simulation), snapshots are taken in one go.
   */
  defer?: (fn: () => void) => void;
}

/** A snapshot being taken across turns of the event loop (see maybeSnapshot). */
interface SnapshotJob {
  metadata: SnapshotMetadata;
  source: SnapshotSource;
  pieces: Uint8Array[];
  size: number;
  /** Aborts the file being written, once the pieces are all taken. */
  write?: { abort(): void };
}

interface PendingProposal<R> {
  term: number;
  cb: Callback<R | ConfState>;
}

/** Messages only a leader sends, which may leave before its own write completes (thesis §10.2.1). */
function leaderMessage(m: RaftMessage): boolean {
  return m.type === MessageType.MSG_APP || m.type === MessageType.MSG_HEARTBEAT || m.type === MessageType.MSG_SNAP || m.type === MessageType.MSG_TIMEOUT_NOW;
}

export class RaftNode<R = unknown> {
  readonly core: RaftCore;
  private readonly storage: RaftStorage;
  private readonly sm: StateMachine<R>;
  private readonly sendOut: (messages: RaftMessage[]) => void;
  private readonly snapshotEntries: () => number;
  private readonly keepEntries: number;
  private readonly onSoftState: ((s: SoftState) => void) | undefined;
  private readonly onConfChange: ((cc: ConfChange, state: ConfState) => void) | undefined;

  private readonly proposals = new Map<number, PendingProposal<R>>();
  private readonly reads = new Map<string, Callback<number>>();
  /** Reads confirmed by the leader, waiting for the state machine to reach their index. */
  private readsAwaitingApply: { index: number; cb: Callback<number> }[] = [];
  private readSeq = 0;
  private durableTerm: number;
  private durableVote: number;
  private lastSnapshotIndex: number;
  private stopped = false;
  /** A Ready is waiting for its asynchronous fsync; no other Ready starts meanwhile. */
  private persisting = false;
  private readonly asyncSync: boolean;
  private readonly onFatal: ((err: Error) => void) | undefined;
  private readonly defer: ((fn: () => void) => void) | undefined;
  /** The snapshot being taken across turns, if any: there is one at a time. */
  private snapshotJob: SnapshotJob | undefined;

  /** The index of the last entry applied to the state machine. */
  appliedIndex: number;
  confState: ConfState;
  /** Members' Raft addresses, from applied membership changes and restored snapshots. */
  readonly addresses = new Map<number, string>();

  constructor(opts: RaftNodeOptions<R>) {
    this.core = new RaftCore(opts.config, opts.state);
    this.storage = opts.storage;
    this.sm = opts.stateMachine;
    this.sendOut = opts.send;
    const every = opts.snapshotEntries ?? 0;
    this.snapshotEntries = typeof every === 'function' ? every : () => every;
    this.keepEntries = opts.keepEntries ?? 0;
    this.onSoftState = opts.onSoftState;
    this.onConfChange = opts.onConfChange;
    this.asyncSync = opts.asyncSync === true && typeof opts.storage.syncAsync === 'function';
    this.onFatal = opts.onFatal;
    this.defer = opts.defer;
    this.durableTerm = opts.state.hardState.term;
    this.durableVote = opts.state.hardState.vote;
    const snap = opts.state.snapshot;
    this.appliedIndex = snap?.metadata.index ?? 0;
    this.lastSnapshotIndex = this.appliedIndex;
    this.confState = snap?.metadata.confState ?? { voters: [], learners: [], addresses: {} };
    this.loadAddresses(this.confState);
    if (snap && snap.metadata.index > 0) this.sm.restore(snap.data);
  }

  get id(): number {
    return this.core.id;
  }

  status(): Status {
    return this.core.status();
  }

  isLeader(): boolean {
    return this.core.role === 'leader';
  }

  // ---------------------------------------------------------------- inputs (call process() after)

  /**
   * While a Ready waits for its asynchronous fsync nothing can leave, so the clock stands still as
   * it does when a synchronous fsync blocks the event loop: otherwise a slow disk would make a
   * leader miss its own heartbeats and depose itself by check-quorum.
   */
  tick(): void {
    if (!this.stopped && !this.persisting) this.core.tick();
  }

  step(m: RaftMessage): void {
    if (!this.stopped) this.core.step(m);
  }

  /** Calls back with the state machine's result once the entry is applied, or with a RaftError. */
  propose(data: Uint8Array, cb: Callback<R>): void {
    this.track(() => this.core.propose(data), cb as Callback<R | ConfState>);
  }

  /** One membership change; calls back with the new membership once applied. */
  proposeConfChange(cc: ConfChange, cb: Callback<ConfState>): void {
    this.track(() => this.core.proposeConfChange(cc), cb as Callback<R | ConfState>);
  }

  private track(append: () => { index: number; term: number }, cb: Callback<R | ConfState>): void {
    if (this.stopped) return cb(new StoppedError(this.id));
    let at: { index: number; term: number };
    try {
      at = append();
    } catch (err) {
      return cb(err as Error);
    }
    this.proposals.set(at.index, { term: at.term, cb });
  }

  /**
   * A linearizable read point: calls back once this node is confirmed leader and its state machine
   * has applied everything committed when the read was asked (§6.4); read the state then.
   */
  readBarrier(cb: Callback<number>): void {
    if (this.stopped) return cb(new StoppedError(this.id));
    const id = `${this.id}.${++this.readSeq}`;
    try {
      this.core.readIndex(id);
    } catch (err) {
      return cb(err as Error);
    }
    this.reads.set(id, cb);
  }

  transferLeadership(to: number): void {
    this.core.transferLeadership(to);
  }

  campaign(): void {
    this.core.campaign();
  }

  reportUnreachable(id: number): void {
    this.core.reportUnreachable(id);
  }

  /** The transport's connection to the peer broke (see RaftCore.reportDisconnected). */
  reportDisconnected(id: number): void {
    this.core.reportDisconnected(id);
  }

  /** Fails everything in flight; later calls fail with StoppedError. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.snapshotJob?.write?.abort();
    this.snapshotJob = undefined;
    this.failProposals(new StoppedError(this.id));
    this.failReads(new StoppedError(this.id));
  }

  // ---------------------------------------------------------------- the loop

  /** Runs Ready cycles until the core has nothing more to do (or one waits for its fsync). */
  process(): void {
    while (!this.stopped && !this.persisting && this.core.hasReady()) this.handleReady(this.core.ready());
  }

  private handleReady(rd: Ready): void {
    // A leader's appends and heartbeats may go before its own write, provided the term and vote
    // they were sent under are already durable (otherwise a crash could let it vote twice in it).
    const termDurable = !rd.hardState || (rd.hardState.term === this.durableTerm && rd.hardState.vote === this.durableVote);
    const early = termDurable ? rd.messages.filter(leaderMessage) : [];
    const late = termDurable ? rd.messages.filter((m) => !leaderMessage(m)) : rd.messages;
    if (early.length > 0) this.sendOut(early);

    if (rd.snapshot) this.storage.saveSnapshot(rd.snapshot.metadata, rd.snapshot.data);
    let needSync = false;
    if (rd.entries.length > 0 || rd.hardState) {
      this.storage.append(rd.entries, rd.hardState);
      // The commit index is volatile state (Figure 2): a change of it alone is written with the
      // next sync, not fsynced on its own. Entries, term and vote are durable before anything that
      // depends on them is sent.
      const termOrVote = rd.hardState !== undefined && !termDurable;
      needSync = rd.entries.length > 0 || termOrVote;
    }
    // Asynchronous only when there is something to overlap with the fsync: a leader's appends on
    // their way to the followers. A follower's acknowledgement waits for its own write anyway, and
    // the synchronous call is quicker.
    if (needSync && this.asyncSync && early.length > 0) {
      this.persisting = true;
      this.storage.syncAsync!((err) => {
        this.persisting = false;
        if (this.stopped) return;
        if (err) return this.fail(err);
        this.finishReady(rd, late);
        this.process();
      });
      return;
    }
    if (needSync) this.storage.sync();
    this.finishReady(rd, late);
  }

  /** After the Ready's writes are durable: send the rest, apply, and acknowledge. */
  private finishReady(rd: Ready, late: RaftMessage[]): void {
    if (rd.hardState) {
      this.durableTerm = rd.hardState.term;
      this.durableVote = rd.hardState.vote;
    }
    if (late.length > 0) this.sendOut(late);

    if (rd.snapshot) {
      this.sm.restore(rd.snapshot.data);
      this.appliedIndex = rd.snapshot.metadata.index;
      this.lastSnapshotIndex = this.appliedIndex;
      this.confState = rd.snapshot.metadata.confState ?? { voters: [], learners: [], addresses: {} };
      this.addresses.clear();
      this.loadAddresses(this.confState);
      // Proposals this node made as leader at or below the snapshot: their fate is unknown here.
      for (const [index, p] of this.proposals) {
        if (index <= this.appliedIndex) {
          this.proposals.delete(index);
          p.cb(new LeadershipLostError(this.id));
        }
      }
    }
    for (const e of rd.committed) this.applyEntry(e);
    for (const rs of rd.readStates) {
      const cb = this.reads.get(rs.requestId);
      if (!cb) continue;
      this.reads.delete(rs.requestId);
      this.readsAwaitingApply.push({ index: rs.index, cb });
    }
    for (const id of rd.droppedReads) {
      const cb = this.reads.get(id);
      this.reads.delete(id);
      cb?.(new LeadershipLostError(this.id));
    }
    this.releaseReads();
    if (rd.softState) {
      if (rd.softState.role !== 'leader') {
        // Still in flight when leadership went: they may commit under the next leader or vanish.
        this.failProposals(new LeadershipLostError(this.id));
      }
      this.onSoftState?.(rd.softState);
    }
    this.core.advance(rd);
    this.maybeSnapshot();
  }

  private loadAddresses(cs: ConfState): void {
    for (const [id, addr] of Object.entries(cs.addresses ?? {})) this.addresses.set(Number(id), addr);
  }

  private fail(err: Error): void {
    this.stop();
    this.onFatal?.(err);
  }

  private applyEntry(e: Entry): void {
    let result: R | ConfState | undefined;
    let error: Error | null = null;
    if (e.type === EntryType.ENTRY_TYPE_NORMAL) {
      try {
        result = this.sm.apply(e.data, e.index);
      } catch (err) {
        // A state machine must not throw on committed data; report it to the proposer only.
        error = err instanceof Error ? err : new RaftError(String(err));
      }
    } else if (e.type === EntryType.ENTRY_TYPE_CONF_CHANGE) {
      const cc = ConfChange.decode(e.data);
      this.confState = this.core.applyConfChange(cc);
      if (cc.type === ConfChange_Type.TYPE_REMOVE) this.addresses.delete(cc.nodeId);
      else if (cc.addr) this.addresses.set(cc.nodeId, cc.addr);
      result = this.confState;
      this.onConfChange?.(cc, this.confState);
    }
    this.appliedIndex = e.index;
    const p = this.proposals.get(e.index);
    if (p) {
      this.proposals.delete(e.index);
      if (p.term !== e.term) p.cb(new LeadershipLostError(this.id));
      else if (error) p.cb(error);
      else p.cb(null, result);
    }
  }

  private releaseReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const ready = this.readsAwaitingApply.filter((r) => r.index <= this.appliedIndex);
    if (ready.length === 0) return;
    this.readsAwaitingApply = this.readsAwaitingApply.filter((r) => r.index > this.appliedIndex);
    for (const r of ready) r.cb(null, r.index);
  }

  private maybeSnapshot(): void {
    const every = this.snapshotEntries();
    if (every <= 0 || this.appliedIndex - this.lastSnapshotIndex < every) return;
    if (this.appliedIndex <= this.core.log.snapshotIndex) return; // a leader's snapshot was installed meanwhile
    if (this.snapshotJob) return; // one at a time; the next comes after it
    const index = this.appliedIndex;
    const confState = { ...this.confState, addresses: Object.fromEntries([...this.addresses].map(([id, a]) => [String(id), a])) };
    const st = this.storage;
    if (this.defer && this.sm.snapshotSource && st.writeSnapshot && st.commitSnapshot && st.discardSnapshot) {
      const term = this.core.log.term(index);
      if (term === undefined) return;
      this.snapshotJob = { metadata: { index, term, confState }, source: this.sm.snapshotSource(), pieces: [], size: 0 };
      this.defer(() => this.snapshotStep());
      return;
    }
    const data = this.sm.snapshot();
    const snap = this.core.createSnapshot(index, confState, data);
    this.storage.saveSnapshot(snap.metadata, data);
    this.snapshotTaken(index);
  }

  /** The log is compacted up to a snapshot now durable at `index`. */
  private snapshotTaken(index: number): void {
    this.lastSnapshotIndex = index;
    const compactTo = Math.min(index - this.keepEntries, this.core.log.stable);
    if (compactTo > this.core.log.snapshotIndex) this.core.compact(compactTo);
  }

  /**
   * One step of the snapshot job: the state machine's next pieces, one turn at a time; once all
   * are out, the file is written off the loop (storage.writeSnapshot), then committed on the loop
   * (its WAL record) and made the core's snapshot, which the leader sends from; the log is
   * compacted. A snapshot installed from the leader meanwhile makes this one moot: its file goes.
   */
  private snapshotStep(): void {
    const job = this.snapshotJob;
    if (!job || this.stopped) return;
    const pieces = job.source.next();
    if (pieces !== undefined) {
      for (const p of pieces) {
        job.pieces.push(p);
        job.size += p.length;
      }
      this.defer!(() => this.snapshotStep());
      return;
    }
    const st = this.storage;
    try {
      job.write = st.writeSnapshot!(job.metadata, job.pieces, job.size, (err) => {
        if (this.snapshotJob !== job) return; // stopped meanwhile
        this.snapshotJob = undefined;
        if (err) return this.fail(err);
        const { index } = job.metadata;
        if (index <= this.core.log.snapshotIndex || index <= this.lastSnapshotIndex) {
          st.discardSnapshot!(job.metadata);
          return;
        }
        try {
          st.commitSnapshot!(job.metadata);
        } catch (commitErr) {
          return this.fail(commitErr as Error);
        }
        this.core.createSnapshot(index, job.metadata.confState!, new PieceBytes(job.pieces));
        this.snapshotTaken(index);
        // Another snapshot may be due already.
        this.maybeSnapshot();
      });
    } catch (err) {
      this.snapshotJob = undefined;
      this.fail(err as Error);
    }
  }

  private failProposals(err: Error): void {
    const all = [...this.proposals.values()];
    this.proposals.clear();
    for (const p of all) p.cb(err);
  }

  private failReads(err: Error): void {
    const all = [...this.reads.values(), ...this.readsAwaitingApply.map((r) => r.cb)];
    this.reads.clear();
    this.readsAwaitingApply = [];
    for (const cb of all) cb(err);
  }
}

// The leader's view of one peer's log (as in etcd/raft's tracker). Flow control:
// - probe: one append at a time until the peer's match is found (after a rejection or a restart);
// - replicate: appends are pipelined, optimistically advancing `next`, at most `maxInflight`
//   unacknowledged messages;
// - snapshot: the peer needs a snapshot; chunks are sent one at a time, each acknowledged.

import type { SnapshotBytes } from './bytes.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A bounded FIFO of the last indexes of in-flight append messages. */
export class Inflights {
  private readonly buf: number[] = [];
  constructor(readonly capacity: number) {}

  full(): boolean {
    return this.buf.length >= this.capacity;
  }

  count(): number {
    return this.buf.length;
  }

  add(lastIndex: number): void {
    this.buf.push(lastIndex);
  }

  /** Frees every message whose last index is <= index (acknowledged). */
  freeTo(index: number): void {
    let n = 0;
    while (n < this.buf.length && this.buf[n]! <= index) n++;
    if (n > 0) this.buf.splice(0, n);
  }

  freeFirst(): void {
    this.buf.shift();
  }

  reset(): void {
    this.buf.length = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an append was sent and not yet answered; pause until a response or heartbeat. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  // Snapshot transfer (state 'snapshot').
  /** Index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Bytes of it the peer confirmed. */
  snapshotAcked = 0;
  /** Ticks since the last chunk was sent (resent after a heartbeat interval without an ack). */
  snapshotIdleTicks = 0;
  /** The snapshot being sent (kept even if the leader takes a newer one meanwhile). */
  sendingSnapshot: { metadata: { index: number; term: number }; data: SnapshotBytes } | undefined;

  constructor(
    next: number,
    maxInflight: number,
    public isLearner: boolean,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      // Resume right after the snapshot the peer installed (or what it matched).
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
      this.pendingSnapshot = 0;
      this.sendingSnapshot = undefined;
    } else {
      this.next = this.match + 1;
    }
    this.state = 'probe';
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.snapshotAcked = 0;
    this.snapshotIdleTicks = 0;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** An acknowledgement up to index: returns true if it moved match forward. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejection of the append after `rejected`, with the peer's hint of where its log may match.
   * Returns false if the rejection is stale (ignored).
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending an append now must wait. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}

// Proposal batching: transactions that are proposed together go to the log as one entry.
//
// Under load the leader's log sees many small independent transactions at once (the control API's
// callers, the orchestrator's and the dispatcher's writes). Each entry costs the log the same
// fixed work whatever it carries: a Raft entry to append, persist, send to every follower and
// acknowledge, a state-machine call and a proposal to track on every manager. BatchingProposer
// puts the transactions proposed in one turn of the event loop, and those proposed while the
// window of entries in flight is full, into one entry (StoreRequest.batch). Every manager applies
// the entry's transactions one after the other at the entry's index, each exactly as if it had
// been an entry of its own there (MemoryStore.apply): each is checked against the state the ones
// before it left, a conflict (a stale Meta.version, a taken name) fails that transaction alone, and
// each caller gets its own transaction's verdict. Optimistic concurrency keeps its meaning: a
// transaction based on a version that an earlier one of the same entry replaced fails, as it would
// have a moment later in an entry of its own.
//
// What the batching does not change: a lone proposal on an idle log goes at once, as it is (no
// added latency at one client, and the entry is an ordinary request); an entry is never larger
// than the log takes (maxEntryBytes) nor holds more than maxRequests transactions; the log's own
// errors (not leader, leadership lost, stopped) reach every caller of the entry, each meaning for
// every transaction in it what it means for one.
import { IllegalStateError } from '../../common/errors.js';
import type { ApplyResult, Proposer } from './memory.js';
import { varintSize, writeVarint } from '../../common/varint.js';

export interface BatchingOptions {
  /** The largest entry the log takes, in bytes (Raft's maxProposalBytes, etcd's request limit): 1.5 MiB. */
  maxEntryBytes?: number;
  /** The most transactions in one entry: 256. */
  maxRequests?: number;
  /**
   * Entries on their way through the log at once (proposed, not yet applied here): 4. Past that,
   * transactions wait and go together when an entry settles. The log pipelines the entries in
   * flight; the window only bounds how much a burst splits into.
   */
  maxInFlight?: number;
}

interface Waiting {
  data: Uint8Array;
  resolve: (r: ApplyResult) => void;
  reject: (err: unknown) => void;
}

/** Protobuf field 3 (StoreRequest.batch), length-delimited. */
const BATCH_TAG = (3 << 3) | 2;

/** The bytes one request adds to a batch entry: the tag, its length as a varint, the request. */
export function batchedSize(request: Uint8Array): number {
  return 1 + varintSize(request.length) + request.length;
}

/**
 * A StoreRequest whose `batch` holds these encoded requests, made by concatenation: each request
 * keeps the encoding its transaction made (nothing is decoded or encoded again).
 */
export function encodeBatch(requests: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const r of requests) size += batchedSize(r);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const r of requests) {
    out[at++] = BATCH_TAG;
    at = writeVarint(out, at, r.length);
    out.set(r, at);
    at += r.length;
  }
  return out;
}

/** Sends transactions to `log`, several to an entry when they are proposed together (see above). */
export class BatchingProposer implements Proposer {
  private readonly maxEntryBytes: number;
  private readonly maxRequests: number;
  private readonly maxInFlight: number;
  private queue: Waiting[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly log: Proposer,
    opts: BatchingOptions = {},
  ) {
    this.maxEntryBytes = opts.maxEntryBytes ?? 1536 << 10;
    this.maxRequests = opts.maxRequests ?? 256;
    this.maxInFlight = opts.maxInFlight ?? 4;
  }

  /** Resolves with this transaction's own verdict; rejects with the log's error for its entry. */
  propose(data: Uint8Array): Promise<ApplyResult> {
    return new Promise((resolve, reject) => {
      const idle = this.inFlight === 0 && this.queue.length === 0;
      this.queue.push({ data, resolve, reject });
      // On an idle log a proposal goes at once; others wait for the end of this turn, so that
      // everything proposed in it shares an entry.
      if (idle) this.flush();
      else this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Sends what waits, as few entries as the limits allow, while the window has room. */
  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      let bytes = 0;
      let n = 0;
      for (const w of this.queue) {
        if (n === this.maxRequests) break;
        const add = batchedSize(w.data);
        // The first always goes (alone, as it is, if nothing else fits: update() keeps a request within the limit).
        if (n > 0 && bytes + add > this.maxEntryBytes) break;
        bytes += add;
        n++;
      }
      this.send(this.queue.splice(0, n));
    }
  }

  private send(entry: Waiting[]): void {
    this.inFlight++;
    const data = entry.length === 1 ? entry[0]!.data : encodeBatch(entry.map((w) => w.data));
    // A log that throws instead of rejecting fails its entry all the same.
    new Promise<ApplyResult>((resolve) => resolve(this.log.propose(data)))
      .then(
        (result) => {
          if (entry.length === 1) return entry[0]!.resolve(result);
          // The entry itself was refused (it cannot be, as made here; every caller learns why).
          if (!result.ok) return entry.forEach((w) => w.resolve(result));
          const verdicts = result.batch;
          if (!verdicts || verdicts.length !== entry.length) {
            const err = new IllegalStateError(`store: a batch of ${entry.length} requests was applied with ${verdicts?.length ?? 'no'} verdicts`);
            return entry.forEach((w) => w.reject(err));
          }
          entry.forEach((w, i) => w.resolve(verdicts[i]!));
        },
        (err: unknown) => entry.forEach((w) => w.reject(err)),
      )
      .finally(() => {
        this.inFlight--;
        // Settled in a callback of the log: what waited meanwhile goes now, together.
        this.flush();
      })
      .catch(() => undefined);
  }
}

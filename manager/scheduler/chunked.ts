// Writing many tasks fast, for the allocator and the scheduler: transactions of at most
// maxPerTx tasks, several proposed at once. Raft pays a fixed cost per log entry (with three
// members, most of a placement's cost at 200 tasks per entry), so entries are large and several
// are in flight; a transaction whose request would exceed one log entry (large task specs) is
// split in two, down to one task, instead of failing.
import { InvalidArgumentError } from '../../common/errors.js';
import type { MemoryStore, Tx } from '../store/memory.js';

export interface ChunkedOptions {
  maxPerTx: number;
  maxInFlight: number;
  /** Checked before each proposal: once true, nothing more is proposed. */
  stopped: () => boolean;
}

export interface ChunkedResult {
  /** The ids of the transactions that failed, and of those never proposed (after a failure or a stop). */
  failed: string[];
  /** The first error (a transaction's verdict or the log's), if any. */
  failure?: { err: unknown };
  /** The transactions applied. */
  transactions: number;
  /** The sum of what `fill` returned for the transactions applied. */
  counted: number;
}

/** A request over the store's size limit for one log entry (thrown by update() before proposing). */
function tooLarge(err: unknown): boolean {
  return err instanceof InvalidArgumentError && err.field === 'transaction';
}

/**
 * Writes `ids` in chunks: `fill(tx, chunk)` makes one transaction's changes and returns a count
 * (e.g. the tasks it placed). Each transaction reads the store when it is proposed, without those
 * still in flight, so the chunks must touch disjoint objects (they do: each id is in one chunk).
 * After the first failure nothing more is proposed; the ones in flight are waited for.
 */
export async function writeChunked(store: MemoryStore, ids: readonly string[], opts: ChunkedOptions, fill: (tx: Tx, chunk: readonly string[]) => number): Promise<ChunkedResult> {
  const result: ChunkedResult = { failed: [], transactions: 0, counted: 0 };
  let failure: { err: unknown } | undefined;
  const inflight = new Set<Promise<void>>();
  const queue: (readonly string[])[] = [];
  for (let i = 0; i < ids.length; i += opts.maxPerTx) queue.push(ids.slice(i, i + opts.maxPerTx));

  const propose = (chunk: readonly string[]): void => {
    let n = 0;
    const p: Promise<void> = store
      .update((tx) => {
        n = fill(tx, chunk);
      })
      .then(
        () => {
          result.transactions += 1;
          result.counted += n;
        },
        (err: unknown) => {
          if (tooLarge(err) && chunk.length > 1) {
            // Nothing was proposed: write the two halves instead (first, to keep the order).
            const half = Math.ceil(chunk.length / 2);
            queue.unshift(chunk.slice(0, half), chunk.slice(half));
            return;
          }
          failure ??= { err };
          result.failed.push(...chunk);
        },
      )
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };

  while ((queue.length > 0 || inflight.size > 0) && !failure) {
    while (queue.length > 0 && inflight.size < opts.maxInFlight && !failure && !opts.stopped()) propose(queue.shift()!);
    if (inflight.size === 0) break;
    await Promise.race(inflight);
  }
  await Promise.all(inflight);
  for (const chunk of queue) result.failed.push(...chunk);
  if (failure) result.failure = failure;
  return result;
}

// Helpers for the storage tests (and for simulations that drive RaftDisk over MemFs).
import { type Entry, EntryType } from '../../../proto/gen/tswarm/raft.js';
import { seededRandom } from '../core/rand.js';

export { seededRandom };

/** An integer in [lo, hi]. */
export function randInt(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}

export function randomBytes(random: () => number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = Math.floor(random() * 256);
  return b;
}

/** A normal entry whose data names it, e.g. "e7t2". */
export function entry(index: number, term: number, data?: string | Uint8Array): Entry {
  const bytes = data === undefined ? Buffer.from(`e${index}t${term}`) : typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
  return { index, term, type: EntryType.ENTRY_TYPE_NORMAL, data: bytes };
}

/** Consecutive entries [from, to] of one term. */
export function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

/** A compact, comparable description of entries: "index/term/data-hex" each. */
export function describeEntries(list: readonly Entry[]): string[] {
  return list.map((e) => `${e.index}/${e.term}/${Buffer.from(e.data).toString('hex')}`);
}

// Maps and sets for the store's tables and indexes that never rehash more than a small part of
// themselves at once.
//
// A JavaScript Map or Set grows by rehashing all of its entries in one go, on the event loop, each
// time its size passes a power of two: measured here, 44 ms at 262,144 entries, 89 ms at 524,288,
// 188 ms at 1,048,576 in a quiet process (a WeakMap: 300 ms at 700,000). The store's table of
// secrets, its name index and its encodings cache passing such a size together held a loaded
// leader's loop for half a second and more: the steady benchmark lost its leader 49 times in
// 600 s once the store passed about 270,000 secrets. Split into SHARDS maps by a hash of the key,
// each rehash is of one shard, 1/256 of the whole.
//
// Order: ShardedMap and BigSet iterate in no particular order (shard by shard). OrderedShardedMap
// iterates in insertion order, as a Map does: the store's tables list objects in the order they
// were created (the log's order, the same on every manager).

const SHARDS = 256;

/** FNV-1a over the key's last 12 characters (ids are random at the end; names often differ there too). */
function shardOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = Math.max(0, key.length - 12); i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) & (SHARDS - 1);
}

/** A Map<string, V> in SHARDS parts; iterates shard by shard. */
export class ShardedMap<V> implements Iterable<[string, V]> {
  private readonly shards: Map<string, V>[] = Array.from({ length: SHARDS }, () => new Map<string, V>());
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(key: string): V | undefined {
    return this.shards[shardOf(key)]!.get(key);
  }

  has(key: string): boolean {
    return this.shards[shardOf(key)]!.has(key);
  }

  set(key: string, value: V): this {
    const shard = this.shards[shardOf(key)]!;
    const before = shard.size;
    shard.set(key, value);
    this.count += shard.size - before;
    return this;
  }

  delete(key: string): boolean {
    const gone = this.shards[shardOf(key)]!.delete(key);
    if (gone) this.count--;
    return gone;
  }

  clear(): void {
    for (const s of this.shards) s.clear();
    this.count = 0;
  }

  *entries(): IterableIterator<[string, V]> {
    for (const s of this.shards) yield* s.entries();
  }

  *keys(): IterableIterator<string> {
    for (const s of this.shards) yield* s.keys();
  }

  *values(): IterableIterator<V> {
    for (const s of this.shards) yield* s.values();
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }
}

/**
 * A ShardedMap that iterates in insertion order: keys and values in two arrays, in the order their
 * keys were set, and each key's position in a ShardedMap (a number: no object per entry, which the
 * GC would have to mark; see pieces.ts). Removals leave holes; the arrays are compacted when the
 * holes are more than half of them (one pass that renumbers the live keys, amortized over as many
 * removals).
 */
export class OrderedShardedMap<V> implements Iterable<[string, V]> {
  private readonly map = new ShardedMap<number>();
  private slotKeys: (string | undefined)[] = [];
  private slotValues: (V | undefined)[] = [];
  private dead = 0;

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const p = this.map.get(key);
    return p === undefined ? undefined : this.slotValues[p];
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  set(key: string, value: V): this {
    const p = this.map.get(key);
    if (p !== undefined) {
      this.slotValues[p] = value;
      return this;
    }
    this.map.set(key, this.slotValues.length);
    this.slotKeys.push(key);
    this.slotValues.push(value);
    return this;
  }

  delete(key: string): boolean {
    const p = this.map.get(key);
    if (p === undefined) return false;
    this.map.delete(key);
    this.slotKeys[p] = undefined;
    this.slotValues[p] = undefined;
    this.dead++;
    if (this.dead > 1024 && this.dead * 2 > this.slotValues.length) this.compact();
    return true;
  }

  /** New arrays without the holes (an iteration under way keeps the old ones). */
  private compact(): void {
    const keys: string[] = [];
    const values: V[] = [];
    for (let p = 0; p < this.slotValues.length; p++) {
      const key = this.slotKeys[p];
      if (key === undefined) continue;
      this.map.set(key, keys.length);
      keys.push(key);
      values.push(this.slotValues[p]!);
    }
    this.slotKeys = keys;
    this.slotValues = values;
    this.dead = 0;
  }

  clear(): void {
    this.map.clear();
    this.slotKeys = [];
    this.slotValues = [];
    this.dead = 0;
  }

  /**
   * The number of positions (live or removed) a scan by position goes over; with valueAt, for a
   * scan across turns of the event loop. A compaction renumbers the positions (a scan that spans
   * one may skip or revisit some values).
   */
  get positions(): number {
    return this.slotValues.length;
  }

  /** The value at a position, or undefined if its key was removed (or the position is past the end). */
  valueAt(position: number): V | undefined {
    return this.slotValues[position];
  }

  /**
   * The values by position as they are now, removed ones as holes (undefined): a copy of one
   * array, cheaper than valuesArray for a table of hundreds of thousands (no filtering, no growth).
   */
  positionsSnapshot(): readonly (V | undefined)[] {
    return this.slotValues.slice();
  }

  /** The values in insertion order, as an array (a scan: no lookup per value). */
  valuesArray(): V[] {
    const out: V[] = [];
    for (const v of this.slotValues) if (v !== undefined) out.push(v);
    return out;
  }

  /**
   * The entries in insertion order. An iteration goes over the arrays as they were when it began
   * (a compaction meanwhile replaces them) and skips the keys removed since; a value changed since
   * is seen as it is now.
   */
  *entries(): IterableIterator<[string, V]> {
    const keys = this.slotKeys;
    for (let p = 0; p < keys.length; p++) {
      const key = keys[p];
      if (key === undefined) continue;
      const v = this.get(key);
      if (v !== undefined) yield [key, v];
    }
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }
}

/** Past this size a BigSet moves into shards (a small set stays one Set: most index sets are small). */
const BIG = 8192;

/** A Set<string> that becomes sharded when it grows large; iterates in no particular order. */
export class BigSet implements Iterable<string> {
  private small: Set<string> | undefined = new Set();
  private big: ShardedMap<true> | undefined;

  get size(): number {
    return this.small ? this.small.size : this.big!.size;
  }

  has(key: string): boolean {
    return this.small ? this.small.has(key) : this.big!.has(key);
  }

  add(key: string): this {
    if (this.small) {
      this.small.add(key);
      if (this.small.size > BIG) {
        this.big = new ShardedMap<true>();
        for (const k of this.small) this.big.set(k, true);
        this.small = undefined;
      }
    } else {
      this.big!.set(key, true);
    }
    return this;
  }

  delete(key: string): boolean {
    return this.small ? this.small.delete(key) : this.big!.delete(key);
  }

  [Symbol.iterator](): IterableIterator<string> {
    return this.small ? this.small.values() : this.big!.keys();
  }
}

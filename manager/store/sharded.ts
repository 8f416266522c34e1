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

interface Slot<V> {
  readonly key: string;
  value: V;
  /** False once the key is removed (a key set again gets a new slot). */
  live: boolean;
}

/**
 * A ShardedMap that iterates in insertion order: the slots in an array beside it, in the order
 * their keys were set (a slot is shared by the map and the array, so an update is seen by both and
 * iteration is a scan of the array). Removals leave dead slots; the array is compacted when they
 * are more than half of it (one pass, amortized over as many removals).
 */
export class OrderedShardedMap<V> implements Iterable<[string, V]> {
  private readonly map = new ShardedMap<Slot<V>>();
  private slots: Slot<V>[] = [];
  private dead = 0;

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  set(key: string, value: V): this {
    const slot = this.map.get(key);
    if (slot) {
      slot.value = value;
      return this;
    }
    const fresh: Slot<V> = { key, value, live: true };
    this.map.set(key, fresh);
    this.slots.push(fresh);
    return this;
  }

  delete(key: string): boolean {
    const slot = this.map.get(key);
    if (!slot) return false;
    this.map.delete(key);
    slot.live = false;
    this.dead++;
    if (this.dead > 1024 && this.dead * 2 > this.slots.length) {
      this.slots = this.slots.filter((s) => s.live);
      this.dead = 0;
    }
    return true;
  }

  clear(): void {
    this.map.clear();
    for (const s of this.slots) s.live = false;
    this.slots = [];
    this.dead = 0;
  }

  /** The values in insertion order, as an array (a scan: no lookup per value). */
  valuesArray(): V[] {
    const out: V[] = [];
    for (const s of this.slots) if (s.live) out.push(s.value);
    return out;
  }

  *entries(): IterableIterator<[string, V]> {
    // The array as it is now: a compaction meanwhile replaces it, it does not change it.
    for (const s of this.slots) if (s.live) yield [s.key, s.value];
  }

  *values(): IterableIterator<V> {
    for (const s of this.slots) if (s.live) yield s.value;
  }

  *keys(): IterableIterator<string> {
    for (const s of this.slots) if (s.live) yield s.key;
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

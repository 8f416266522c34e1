import { describe, expect, it } from 'vitest';
import { BigSet, OrderedShardedMap, ShardedMap } from './sharded.js';
import { seededRandom } from '../raft/core/rand.js';

describe('ShardedMap', () => {
  it('behaves as a Map against random operations', () => {
    const rand = seededRandom(7);
    const m = new ShardedMap<number>();
    const ref = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const key = `k${Math.floor(rand() * 3_000)}`;
      const op = rand();
      if (op < 0.6) {
        m.set(key, i);
        ref.set(key, i);
      } else if (op < 0.9) {
        expect(m.delete(key)).toBe(ref.delete(key));
      } else {
        expect(m.get(key)).toBe(ref.get(key));
        expect(m.has(key)).toBe(ref.has(key));
      }
      expect(m.size).toBe(ref.size);
    }
    expect(new Map(m.entries())).toEqual(ref);
    expect(new Set(m.keys())).toEqual(new Set(ref.keys()));
    m.clear();
    expect(m.size).toBe(0);
    expect([...m]).toEqual([]);
  });
});

describe('OrderedShardedMap', () => {
  it('iterates in insertion order as a Map does, through updates, removals, compactions and keys set again', () => {
    const rand = seededRandom(11);
    const m = new OrderedShardedMap<number>();
    const ref = new Map<string, number>();
    for (let i = 0; i < 30_000; i++) {
      const key = `id${Math.floor(rand() * 5_000)}`;
      if (rand() < 0.55) {
        m.set(key, i);
        ref.set(key, i);
      } else {
        expect(m.delete(key)).toBe(ref.delete(key));
      }
      if (i % 997 === 0) {
        expect([...m.entries()]).toEqual([...ref.entries()]);
        expect(m.valuesArray()).toEqual([...ref.values()]);
      }
    }
    expect([...m.keys()]).toEqual([...ref.keys()]);
    expect([...m.values()]).toEqual([...ref.values()]);
    expect(m.size).toBe(ref.size);
  });

  it('keeps an iteration begun before a compaction going over the entries as they were', () => {
    const m = new OrderedShardedMap<number>();
    for (let i = 0; i < 5_000; i++) m.set(`k${i}`, i);
    const it = m.values();
    expect(it.next().value).toBe(0);
    // Removing most entries compacts the order; the iterator goes on, skipping the removed.
    for (let i = 0; i < 4_000; i++) m.delete(`k${i}`);
    const rest = [...it];
    expect(rest).toEqual(Array.from({ length: 1_000 }, (_, i) => 4_000 + i));
  });
});

describe('BigSet', () => {
  it('behaves as a Set below and above the size at which it shards', () => {
    const s = new BigSet();
    const ref = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      s.add(`t${i}`);
      ref.add(`t${i}`);
    }
    for (let i = 0; i < 20_000; i += 3) expect(s.delete(`t${i}`)).toBe(ref.delete(`t${i}`));
    expect(s.delete('absent')).toBe(false);
    expect(s.size).toBe(ref.size);
    expect(new Set(s)).toEqual(ref);
    expect(s.has('t1')).toBe(true);
    expect(s.has('t0')).toBe(false);
  });
});

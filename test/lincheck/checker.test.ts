// The linearizability checker against hand-made histories whose verdict is known, against a brute
// force enumeration on tiny random histories, and on random histories that are linearizable by
// construction (then corrupted so that they provably are not).
import { describe, expect, it } from 'vitest';
import { checkOperations, InvalidHistoryError, LinearizedSet, type CheckResult, type Model, type SetSnapshot } from './checker.js';
import { HistoryRecorder, kvModel, type KvInput, type KvOperation, type KvOutput, type KvState } from './kv.js';
import { seededRandom } from '../../manager/raft/core/rand.js';

// ---- building histories by hand ----------------------------------------------------------------
// Each helper takes [call, ret]; ret omitted means the outcome is unknown.

function put(client: number, key: string, value: string, call: number, ret?: number): KvOperation {
  const input: KvInput = { op: 'put', key, value };
  return ret === undefined ? { clientId: client, input, call } : { clientId: client, input, call, output: {}, ret };
}

function get(client: number, key: string, value: string | undefined, call: number, ret?: number): KvOperation {
  const input: KvInput = { op: 'get', key };
  return ret === undefined ? { clientId: client, input, call } : { clientId: client, input, call, output: { value }, ret };
}

function cas(client: number, key: string, expect: string | undefined, value: string, ok: boolean | undefined, call: number, ret?: number): KvOperation {
  const input: KvInput = { op: 'cas', key, expect, value };
  return ret === undefined || ok === undefined ? { clientId: client, input, call } : { clientId: client, input, call, output: { ok }, ret };
}

const unpartitioned: Model<KvState, KvInput, KvOutput> = { ...kvModel, partition: undefined };

function check(history: KvOperation[]): CheckResult {
  return checkOperations(kvModel, history);
}

function verdict(r: CheckResult): boolean | 'timeout' {
  return r.ok;
}

describe('hand-made histories', () => {
  it('accepts the empty history and sequential histories', () => {
    expect(check([])).toEqual({ ok: true });
    expect(check([get(1, 'x', undefined, 0, 1), put(1, 'x', '1', 2, 3), get(2, 'x', '1', 4, 5)])).toEqual({ ok: true });
  });

  it('rejects a stale read after a completed write, and explains it', () => {
    const r = check([put(1, 'x', '1', 0, 1), put(1, 'x', '2', 2, 3), get(2, 'x', '1', 4, 5)]);
    expect(r.ok).toBe(false);
    if (r.ok !== false) return;
    expect(r.partition).toBe(0);
    expect(r.explanation).toContain('Longest linearizable prefix found: 2 operation(s)');
    expect(r.explanation).toContain('State after it: x="2"');
    expect(r.explanation).toContain('Could not place next: [client 2, 4..5] get(x) → "1"');
    expect(r.explanation).toContain('not a legal result in this state');
  });

  it('rejects reading absent after a completed write, and a value never written', () => {
    expect(verdict(check([put(1, 'x', '1', 0, 1), get(2, 'x', undefined, 2, 3)]))).toBe(false);
    expect(verdict(check([put(1, 'x', '1', 0, 1), get(2, 'x', '7', 0.5, 3)]))).toBe(false);
  });

  it('accepts either value for a read overlapping a write', () => {
    for (const seen of [undefined, '1']) {
      expect(verdict(check([put(1, 'x', '1', 0, 10), get(2, 'x', seen, 5, 6)]))).toBe(true);
    }
    // Two overlapping writes may take effect in either order.
    for (const last of ['1', '2']) {
      expect(verdict(check([put(1, 'x', '1', 0, 10), put(2, 'x', '2', 1, 9), get(3, 'x', last, 11, 12)]))).toBe(true);
    }
  });

  it('treats intervals that merely touch as concurrent', () => {
    // The read is called at the instant the write returns: either order is possible.
    expect(verdict(check([put(1, 'x', '1', 0, 5), get(2, 'x', undefined, 5, 6)]))).toBe(true);
    expect(verdict(check([put(1, 'x', '1', 0, 5), get(2, 'x', undefined, 5.0001, 6)]))).toBe(false);
  });

  it('rejects two clients observing two concurrent writes in opposite orders', () => {
    const h = [
      put(1, 'x', '1', 0, 100),
      put(2, 'x', '2', 0, 100),
      get(3, 'x', '1', 10, 20),
      get(3, 'x', '2', 30, 40),
      get(4, 'x', '2', 10, 20),
      get(4, 'x', '1', 30, 40),
    ];
    expect(verdict(check(h))).toBe(false);
    // Each client on its own is fine.
    expect(verdict(check(h.slice(0, 4)))).toBe(true);
    expect(verdict(check([...h.slice(0, 2), ...h.slice(4)]))).toBe(true);
  });

  it('rejects a read that sees a new value followed by a read that sees the old one', () => {
    // Both reads overlap the write, but the second starts after the first ended.
    const h = [put(1, 'x', '1', 0, 100), get(2, 'x', '1', 10, 20), get(3, 'x', undefined, 30, 40)];
    expect(verdict(check(h))).toBe(false);
    expect(verdict(check([h[0]!, get(2, 'x', undefined, 10, 20), get(3, 'x', '1', 30, 40)]))).toBe(true);
  });

  it('checks compare-and-swap', () => {
    expect(verdict(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', true, 2, 3), get(1, 'x', 'b', 4, 5)]))).toBe(true);
    expect(verdict(check([cas(2, 'x', undefined, 'b', true, 0, 1), get(1, 'x', 'b', 2, 3)]))).toBe(true);
    expect(verdict(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'z', 'b', true, 2, 3)]))).toBe(false);
    expect(verdict(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', false, 2, 3)]))).toBe(false);
    // Two concurrent cas from the same expected value: exactly one may win.
    const race = (ok1: boolean, ok2: boolean): boolean | 'timeout' =>
      verdict(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', ok1, 2, 10), cas(3, 'x', 'a', 'c', ok2, 3, 9)]));
    expect(race(true, false)).toBe(true);
    expect(race(false, true)).toBe(true);
    expect(race(true, true)).toBe(false);
    expect(race(false, false)).toBe(false);
  });

  it('checks keys independently and names the failing partition', () => {
    const h = [
      put(1, 'x', '1', 0, 1),
      put(1, 'y', '1', 2, 3),
      get(2, 'x', '1', 4, 5),
      put(2, 'y', '2', 6, 7),
      get(3, 'y', '1', 8, 9), // stale
    ];
    const r = check(h);
    expect(r.ok).toBe(false);
    if (r.ok === false) {
      expect(r.partition).toBe(1); // partitions in order of first appearance: x, then y
      expect(r.explanation).toContain('get(y) → "1"');
    }
    expect(verdict(checkOperations(unpartitioned, h))).toBe(false);
  });
});

describe('unknown outcomes', () => {
  it('lets a later read see an unknown write or not', () => {
    for (const seen of [undefined, '1']) {
      expect(verdict(check([put(1, 'x', '1', 0), get(2, 'x', seen, 10, 11), get(2, 'x', seen, 20, 21)]))).toBe(true);
    }
    // ... including much later, after other operations: it may have been applied late.
    expect(verdict(check([put(1, 'x', '1', 0), put(2, 'x', '2', 5, 6), get(2, 'x', '2', 7, 8), get(3, 'x', '1', 20, 21)]))).toBe(true);
  });

  it('rejects a read of an unknown write followed by a read of the older value', () => {
    const h = [put(1, 'x', '0', 0, 1), put(1, 'x', '1', 2), get(2, 'x', '1', 10, 11), get(3, 'x', '0', 20, 21)];
    expect(verdict(check(h))).toBe(false);
  });

  it('rejects seeing an unknown write before it was called', () => {
    expect(verdict(check([get(2, 'x', '1', 0, 1), put(1, 'x', '1', 2)]))).toBe(false);
  });

  it('applies an unknown cas only if its expectation holds where it is placed', () => {
    expect(verdict(check([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', undefined, 2), get(3, 'x', 'b', 5, 6)]))).toBe(true);
    expect(verdict(check([put(1, 'x', 'z', 0, 1), cas(2, 'x', 'a', 'b', undefined, 2), get(3, 'x', 'b', 5, 6)]))).toBe(false);
  });

  it('ignores reads with unknown outcomes', () => {
    expect(verdict(check([put(1, 'x', '1', 0, 1), get(2, 'x', undefined, 2), get(3, 'x', '1', 3, 4)]))).toBe(true);
  });
});

describe('input validation', () => {
  it('rejects a return time not after the call, naming the operation', () => {
    expect(() => check([put(1, 'x', '1', 0, 1), get(2, 'x', '1', 5, 5)])).toThrow(
      new InvalidHistoryError('operation #1 (client 2, get(x) → "1"): return time 5 is not after call time 5'),
    );
    expect(() => check([put(1, 'x', '1', 3, 1)])).toThrow(/operation #0 \(client 1, put\(x, "1"\)\): return time 1 is not after call time 3/);
  });

  it('rejects non-finite times and an output without a return (or the reverse)', () => {
    expect(() => check([put(1, 'x', '1', NaN, 1)])).toThrow(/call time NaN is not a finite number/);
    expect(() => check([put(1, 'x', '1', 0, Infinity)])).toThrow(/leave ret undefined for an unknown outcome/);
    expect(() => check([{ clientId: 1, input: { op: 'get', key: 'x' }, call: 0, output: { value: '1' } }])).toThrow(/has an output but no return time/);
    expect(() => check([{ clientId: 1, input: { op: 'get', key: 'x' }, call: 0, ret: 1 }])).toThrow(/has a return time but no output/);
  });

  it('rejects an output of the wrong shape', () => {
    expect(() => check([{ clientId: 1, input: { op: 'get', key: 'x' }, call: 0, output: {}, ret: 1 }])).toThrow(/a get's output must be \{ value \}/);
  });

  it('rejects a partition function that loses or duplicates operations', () => {
    const h = [put(1, 'x', '1', 0, 1), get(2, 'x', '1', 2, 3)];
    expect(() => checkOperations({ ...kvModel, partition: (ops) => [ops.slice(1)] }, h)).toThrow(/dropped 1 of 2 operations/);
    expect(() => checkOperations({ ...kvModel, partition: (ops) => [[...ops], ops.slice(0, 1)] }, h)).toThrow(/twice/);
  });
});

describe('timeout', () => {
  it('gives up when the clock passes the deadline', () => {
    let now = 0;
    const clock = (): number => (now += 1000);
    const h = [put(1, 'x', '1', 0, 1), get(2, 'x', '1', 2, 3)];
    expect(checkOperations(kvModel, h, { timeoutMs: 10, clock })).toEqual({ ok: 'timeout' });
    expect(checkOperations(kvModel, h, { timeoutMs: 60_000 })).toEqual({ ok: true });
  });
});

describe('HistoryRecorder', () => {
  it('records with a logical clock, reporting unfinished operations as unknown', () => {
    const r = new HistoryRecorder();
    const a = r.invoke(1, { op: 'put', key: 'x', value: '1' });
    const b = r.invoke(2, { op: 'get', key: 'x' });
    r.complete(a, {});
    const c = r.invoke(3, { op: 'put', key: 'x', value: '2' });
    r.complete(b, { value: '1' });
    r.unknown(c);
    r.invoke(4, { op: 'get', key: 'x' });
    expect(r.operations()).toEqual([
      { clientId: 1, input: { op: 'put', key: 'x', value: '1' }, call: 1, output: {}, ret: 3 },
      { clientId: 2, input: { op: 'get', key: 'x' }, call: 2, output: { value: '1' }, ret: 5 },
      { clientId: 3, input: { op: 'put', key: 'x', value: '2' }, call: 4 },
      { clientId: 4, input: { op: 'get', key: 'x' }, call: 6 },
    ]);
    expect(check(r.operations())).toEqual({ ok: true });
  });

  it('refuses to settle an operation twice, to mix clocks, or a completion not after its call', () => {
    const r = new HistoryRecorder();
    const a = r.invoke(1, { op: 'get', key: 'x' });
    r.complete(a, { value: undefined });
    expect(() => r.complete(a, { value: undefined })).toThrow(/already completed/);
    expect(() => r.unknown(a)).toThrow(/already completed/);
    expect(() => r.invoke(1, { op: 'get', key: 'x' }, 10)).toThrow(/cannot be mixed/);

    const t = new HistoryRecorder();
    const b = t.invoke(1, { op: 'get', key: 'x' }, 10);
    expect(() => t.complete(b, { value: undefined }, 10)).toThrow(/completion time 10 is not after call time 10/);
    expect(() => new HistoryRecorder().complete(b, { value: undefined })).toThrow(/not returned by this recorder/);
  });
});

// ---- random histories --------------------------------------------------------------------------

const prng = seededRandom;

function pick<T>(rng: () => number, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from an empty list');
  return items[Math.floor(rng() * items.length)] as T;
}

/**
 * Reference decision by the definition, for tiny histories: is there an order of all known
 * operations plus any subset of the unknown ones, legal for the model, in which no operation comes
 * after one that was called after it returned? Enumerates every such order; no pruning.
 */
function bruteForce(model: Model<KvState, KvInput, KvOutput>, ops: readonly KvOperation[]): boolean {
  const placed: KvOperation[] = [];
  const search = (state: KvState): boolean => {
    if (ops.every((o) => o.ret === undefined || placed.includes(o))) return true;
    for (const o of ops) {
      if (placed.includes(o)) continue;
      if (placed.some((p) => o.ret !== undefined && o.ret < p.call)) continue; // o must precede p
      const [ok, next] = model.step(state, o.input, o.output);
      if (!ok) continue;
      placed.push(o);
      const found = search(next);
      placed.pop();
      if (found) return true;
    }
    return false;
  };
  return search(model.init());
}

/**
 * A second, independent reference for medium histories: a depth-first search that places next any
 * operation that no unplaced known operation returned before, remembering failed (placed set,
 * state) pairs by their full text. Shares no code with the checker's event list or bitsets.
 */
function reference(model: Model<KvState, KvInput, KvOutput>, ops: readonly KvOperation[]): boolean {
  const placed = new Set<number>();
  const failed = new Set<string>();
  const known = ops.filter((o) => o.ret !== undefined).length;
  let placedKnown = 0;
  const search = (state: KvState): boolean => {
    if (placedKnown === known) return true;
    const memo = `${[...placed].sort((a, b) => a - b).join(',')}|${model.hash(state)}`;
    if (failed.has(memo)) return false;
    for (const [i, o] of ops.entries()) {
      if (placed.has(i)) continue;
      if (ops.some((u, j) => j !== i && !placed.has(j) && u.ret !== undefined && u.ret < o.call)) continue;
      const [ok, next] = model.step(state, o.input, o.output);
      if (!ok) continue;
      placed.add(i);
      if (o.ret !== undefined) placedKnown++;
      const found = search(next);
      placed.delete(i);
      if (o.ret !== undefined) placedKnown--;
      if (found) return true;
    }
    failed.add(memo);
    return false;
  };
  return search(model.init());
}

/**
 * Changes a few results of a history at random (reads to another written value or absent, cas
 * results flipped); the outcome may or may not still be linearizable.
 */
function perturb(rng: () => number, ops: KvOperation[], changes: number): void {
  const written = ops.flatMap((o) => (o.input.op === 'get' ? [] : [o.input.value]));
  const completed = ops.filter((o) => o.ret !== undefined && o.input.op !== 'put');
  for (let k = 0; k < changes && completed.length > 0; k++) {
    const o = pick(rng, completed);
    if (o.input.op === 'get') o.output = { value: pick(rng, [undefined, ...written]) };
    else if (o.output !== undefined && 'ok' in o.output) o.output = { ok: !o.output.ok };
  }
}

/** A tiny history with small integer times (so ties happen) and arbitrary, often impossible, results. */
function tinyHistory(rng: () => number): KvOperation[] {
  const n = 1 + Math.floor(rng() * 6);
  const values = [undefined, 'a', 'b'];
  const ops: KvOperation[] = [];
  for (let i = 0; i < n; i++) {
    const key = pick(rng, ['x', 'x', 'y']);
    const call = Math.floor(rng() * 8);
    const ret = rng() < 0.2 ? undefined : call + 1 + Math.floor(rng() * 5);
    const kind = rng();
    if (kind < 0.4) ops.push(put(i, key, pick(rng, ['a', 'b']), call, ret));
    else if (kind < 0.8) ops.push(get(i, key, pick(rng, values), call, ret));
    else ops.push(cas(i, key, pick(rng, values), pick(rng, ['a', 'b']), rng() < 0.5, call, ret));
  }
  return ops;
}

interface GenOptions {
  clients: number;
  opsPerClient: number;
  keys: number;
  /** Probability that a client never learns the outcome (it then moves on to its next operation). */
  unknownRate: number;
}

/**
 * A history that is linearizable by construction: each client issues operations one after another
 * with random latencies and think times; every operation takes effect at a random instant inside
 * its interval (an unknown one: at a random instant after its call, possibly after the client gave
 * up, or never), and the results come from running a sequential map in order of those instants.
 * Written values are unique, which the corruptions below rely on.
 */
function linearizableHistory(rng: () => number, o: GenOptions): KvOperation[] {
  const planned: { op: KvOperation; at: number | undefined }[] = [];
  let serial = 0;
  for (let c = 0; c < o.clients; c++) {
    let t = rng() * 5;
    for (let j = 0; j < o.opsPerClient; j++) {
      const key = `k${Math.floor(rng() * o.keys)}`;
      const kind = rng();
      const input: KvInput =
        kind < 0.4
          ? { op: 'put', key, value: `v${serial++}` }
          : kind < 0.8
            ? { op: 'get', key }
            : { op: 'cas', key, expect: undefined, value: `v${serial++}` }; // expect chosen when applied
      const latency = 0.5 + rng() * 9.5;
      const unknown = rng() < o.unknownRate;
      const op: KvOperation = unknown ? { clientId: c, input, call: t } : { clientId: c, input, call: t, ret: t + latency };
      const at = unknown ? (rng() < 0.3 ? undefined : t + rng() * 3 * latency) : t + latency * (0.001 + 0.998 * rng());
      planned.push({ op, at });
      t += latency + rng() * 3;
    }
  }
  const state = new Map<string, string>();
  const inOrder = planned.filter((p) => p.at !== undefined).sort((a, b) => a.at! - b.at!);
  for (const { op } of inOrder) {
    const input = op.input;
    const current = state.get(input.key);
    let output: KvOutput;
    switch (input.op) {
      case 'put':
        state.set(input.key, input.value);
        output = {};
        break;
      case 'get':
        output = { value: current };
        break;
      case 'cas':
        if (rng() < 0.6) input.expect = current;
        else input.expect = pick(rng, [undefined, ...state.values()]);
        output = { ok: current === input.expect };
        if (current === input.expect) state.set(input.key, input.value);
        break;
    }
    if (op.ret !== undefined) op.output = output;
  }
  // An unknown cas that never took effect keeps the expectation it was created with (absent).
  return planned.map((p) => p.op);
}

/** Writes whose effect is certain: a completed put, or a completed cas that succeeded. */
function certainWrite(op: KvOperation): op is KvOperation & { ret: number; input: { value: string } } {
  if (op.ret === undefined) return false;
  return op.input.op === 'put' || (op.input.op === 'cas' && op.output !== undefined && 'ok' in op.output && op.output.ok);
}

/**
 * Changes one completed read's result to a value it provably cannot have returned, or returns false
 * if the history has no such read. Relies on unique written values and on there being no delete:
 *   - a value whose only writer was called after the read returned (from the future);
 *   - a value whose writer P was followed by another certain write Q to the key, with P before Q
 *     and Q before the read in real time (stale);
 *   - absent, after a certain write to the key completed before the read was called.
 */
function corruptOneRead(rng: () => number, ops: KvOperation[]): boolean {
  const byKey = new Map<string, KvOperation[]>();
  for (const op of ops) byKey.set(op.input.key, [...(byKey.get(op.input.key) ?? []), op]);
  const choices: { read: KvOperation; value: string | undefined }[] = [];
  for (const read of ops) {
    if (read.input.op !== 'get' || read.ret === undefined) continue;
    const writes = (byKey.get(read.input.key) ?? []).filter((w) => w.input.op !== 'get');
    // The latest call among certain writes that completed before the read was called: a certain
    // write that returned before that call was overwritten before the read.
    const before = writes.filter(certainWrite).filter((q) => q.ret < read.call);
    const lastCall = Math.max(-Infinity, ...before.map((q) => q.call));
    for (const w of writes) {
      if (w.input.op === 'get') continue;
      if (w.call > read.ret) choices.push({ read, value: w.input.value });
      if (certainWrite(w) && w.ret < lastCall) choices.push({ read, value: w.input.value });
    }
    if (before.length > 0) choices.push({ read, value: undefined });
  }
  if (choices.length === 0) return false;
  const { read, value } = pick(rng, choices);
  read.output = { value };
  return true;
}

describe('LinearizedSet (the memo key)', () => {
  // The memo looks sets up by hash first, so a wrong equality would only show on a hash collision;
  // test it directly against a plain Set.
  it('snapshots compare equal exactly when the sets are equal, and equal sets hash equally', () => {
    const rng = prng(3);
    const size = 150;
    const set = new LinearizedSet(size);
    const members = new Set<number>();
    const saved: { snap: SetSnapshot; members: string; hash: number }[] = [];
    const text = (m: Set<number>): string => [...m].sort((a, b) => a - b).join(',');
    const toggle = (i: number): void => {
      if (members.has(i)) {
        set.remove(i);
        members.delete(i);
      } else {
        set.add(i);
        members.add(i);
      }
    };
    for (let step = 0; step < 10_000; step++) {
      // Like the search: mostly extend a full prefix, toggle near its end, sometimes remove anywhere.
      let low = 0;
      while (members.has(low)) low++;
      const r = rng();
      if (r < 0.45 && low < size) toggle(low);
      else if (r < 0.85) toggle(Math.min(size - 1, low + Math.floor(rng() * 70)));
      else if (members.size > 0) toggle(pick(rng, [...members]));
      if (step % 7 === 0) saved.push({ snap: set.snapshot(), members: text(members), hash: set.hash });
      if (step % 13 === 0) {
        const now = text(members);
        for (const s of saved.slice(-40)) {
          expect(set.equals(s.snap), `${now} vs ${s.members}`).toBe(now === s.members);
          if (now === s.members) expect(set.hash).toBe(s.hash);
        }
      }
    }
    // Same window contents at different offsets: {0..63, 64} and {0..95, 96}.
    const a = new LinearizedSet(size);
    const b = new LinearizedSet(size);
    for (let i = 0; i <= 64; i++) a.add(i);
    for (let i = 0; i <= 96; i++) b.add(i);
    expect(a.equals(b.snapshot())).toBe(false);
    expect(b.equals(a.snapshot())).toBe(false);
    // Every member removed again: the empty set.
    for (const i of members) set.remove(i);
    const empty = new LinearizedSet(size);
    expect(set.equals(empty.snapshot())).toBe(true);
    expect(set.hash).toBe(empty.hash);
  });
});

describe('random histories', () => {
  it('agrees with brute force on tiny histories', () => {
    const rng = prng(1);
    const counts = { linearizable: 0, not: 0 };
    for (let i = 0; i < 1500; i++) {
      const h = tinyHistory(rng);
      const expected = bruteForce(kvModel, h);
      const context = JSON.stringify(h);
      expect(verdict(check(h)), context).toBe(expected);
      expect(verdict(checkOperations(unpartitioned, h)), context).toBe(expected);
      counts[expected ? 'linearizable' : 'not']++;
    }
    // Both verdicts must be well represented for the comparison to mean something.
    expect(counts.linearizable).toBeGreaterThan(300);
    expect(counts.not).toBeGreaterThan(300);
  });

  it('agrees with an independent reference on medium single-key histories', () => {
    // One key and up to ~100 operations: the linearized set spans several 32-bit words.
    const counts = { linearizable: 0, not: 0 };
    for (let seed = 1; seed <= 120; seed++) {
      const rng = prng(seed);
      const h = linearizableHistory(rng, { clients: 2 + (seed % 3), opsPerClient: 12 + (seed % 10), keys: 1, unknownRate: 0.05 });
      perturb(rng, h, seed % 3);
      const expected = reference(kvModel, h);
      expect(verdict(check(h)), `seed ${seed}`).toBe(expected);
      counts[expected ? 'linearizable' : 'not']++;
    }
    expect(counts.linearizable).toBeGreaterThan(30);
    expect(counts.not).toBeGreaterThan(30);
  });

  it('accepts histories linearizable by construction and rejects them once one read is corrupted', () => {
    let corrupted = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const rng = prng(seed);
      const h = linearizableHistory(rng, { clients: 5, opsPerClient: 30, keys: 3, unknownRate: 0.1 });
      expect(check(h), `seed ${seed}`).toEqual({ ok: true });
      if (corruptOneRead(rng, h)) {
        corrupted++;
        expect(verdict(check(h)), `seed ${seed}`).toBe(false);
      }
    }
    expect(corrupted).toBeGreaterThan(35);
  });

  it('gives the same verdicts with and without partitioning', () => {
    for (let seed = 100; seed < 120; seed++) {
      const rng = prng(seed);
      const h = linearizableHistory(rng, { clients: 3, opsPerClient: 8, keys: 2, unknownRate: 0.1 });
      expect(checkOperations(unpartitioned, h), `seed ${seed}`).toEqual({ ok: true });
      if (corruptOneRead(rng, h)) expect(verdict(checkOperations(unpartitioned, h)), `seed ${seed}`).toBe(false);
    }
  });

  it('checks 5,000 operations over 20 keys from 10 clients', () => {
    const rng = prng(42);
    const h = linearizableHistory(rng, { clients: 10, opsPerClient: 500, keys: 20, unknownRate: 0.01 });
    expect(h).toHaveLength(5000);
    // The deadline (under vitest's 60 s) turns a performance regression into a failure instead of
    // a hang: a synchronous search cannot be interrupted by the test timeout.
    const opts = { timeoutMs: 50_000 };
    expect(checkOperations(kvModel, h, opts)).toEqual({ ok: true });
    expect(corruptOneRead(rng, h)).toBe(true);
    expect(verdict(checkOperations(kvModel, h, opts))).toBe(false);
  });
});

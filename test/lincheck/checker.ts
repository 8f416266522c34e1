// A linearizability checker: given a concurrent history (operations with call and return times and
// their results) and a sequential model of the object, decides whether some total order of the
// operations (1) respects real time, i.e. an operation that returned before another was called is
// ordered before it, and (2) is a legal sequential execution of the model producing every recorded
// result.
//
// The search is Wing & Gong's backtracking algorithm with the refinements of Lowe and of Porcupine:
//   - the history is a doubly linked list of call and return events sorted by time; linearizing an
//     operation "lifts" its two events out of the list and backtracking "unlifts" them (dancing links),
//     so the candidates for the next linearization point are simply the calls before the first return;
//   - every (set of linearized operations, model state) pair reached is remembered: reaching it again
//     along another path cannot succeed where the first attempt failed, so that path is cut;
//   - the model may partition the history (by key, for a key-value store); linearizability is local,
//     so each partition is checked on its own, which turns one huge search into many small ones.
//
// Operations whose outcome is unknown (the client timed out, or lost its leader) have no return
// event; see `Operation.ret` and docs/lincheck.md.
//
// The checker is pure: no I/O, no randomness; the clock is consulted only to enforce `timeoutMs`.
import { performance } from 'node:perf_hooks';
import { TswarmError } from '../../common/errors.js';

/** One operation of a history, as a client saw it. */
export interface Operation<Input, Output> {
  /** Who issued it; only used in explanations (operations of one client need not be sequential). */
  clientId: number;
  input: Input;
  /** When the client invoked it. Any finite number on one clock shared by the whole history. */
  call: number;
  /** The result the client received; absent exactly when `ret` is. */
  output?: Output;
  /**
   * When the client received the result; must be greater than `call`. Absent: the outcome is
   * unknown, and the operation may have taken effect at any point after its call, or never.
   */
  ret?: number;
}

/**
 * A sequential specification. States are values: `step` must not mutate the state it is given
 * (the search keeps earlier states to backtrack to) and must be deterministic.
 */
export interface Model<State, Input, Output> {
  /** The state before any operation. */
  init(): State;
  /**
   * Applies `input` in `state`: returns whether `output` is what the object would answer, and the
   * state afterwards. `output` undefined means the outcome is unknown: answer whether the input can
   * take effect in `state` at all (for most objects, always) and the state it leads to.
   */
  step(state: State, input: Input, output: Output | undefined): [ok: boolean, next: State];
  /** State equality; must agree with `hash` (equal states have equal hashes). */
  equal(a: State, b: State): boolean;
  hash(state: State): string | number;
  /**
   * Splits a history into independent sub-histories (for example one per key) that are checked
   * separately. Must return every operation it is given exactly once; the checker verifies this.
   * Absent: the history is one partition.
   */
  partition?(ops: readonly Operation<Input, Output>[]): Operation<Input, Output>[][];
  /**
   * Whether the input never changes the state (a read). An operation with a read-only input and an
   * unknown outcome constrains nothing, so the checker drops it before searching.
   */
  readOnly?(input: Input): boolean;
  /** Human-readable operation, e.g. `get(x) → "1"`; `output` undefined means unknown. */
  describe?(input: Input, output: Output | undefined): string;
  /** Human-readable state, for explanations. */
  describeState?(state: State): string;
}

export type CheckResult =
  | { ok: true }
  /**
   * Partition `partition` (an index into the model's partition() result, 0 without one) has no
   * linearization. `explanation` lists the longest linearizable prefix the search found, the state
   * after it, and the operation that could not be placed next.
   */
  | { ok: false; partition: number; explanation: string }
  /** No violation was found before the deadline, but not every partition was fully checked. */
  | { ok: 'timeout' };

export interface CheckOptions {
  /** Give up (result `timeout`) after this many milliseconds of searching. Default: no limit. */
  timeoutMs?: number;
  /** The clock used for `timeoutMs`, in milliseconds. Default: performance.now. */
  clock?: () => number;
}

/** The history itself is malformed (bad times, output without return, a lossy partition function). */
export class InvalidHistoryError extends TswarmError {}

/** How many search steps run between two looks at the clock: reading it is not free. */
const CLOCK_EVERY = 1024;
/** How many operations of the longest prefix an explanation lists (the last ones). */
const EXPLAIN_PREFIX_OPS = 20;

/**
 * Checks that `history` is linearizable with respect to `model`. Throws InvalidHistoryError if the
 * history is malformed. Stops at the first partition found not linearizable.
 */
export function checkOperations<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], opts: CheckOptions = {}): CheckResult {
  history.forEach((op, i) => validate(model, op, i));

  // An unknown read may have happened at any point or never, and changes nothing either way.
  const kept = model.readOnly === undefined ? [...history] : history.filter((op) => op.ret !== undefined || !model.readOnly!(op.input));
  const partitions = model.partition === undefined ? [kept] : model.partition(kept);
  checkPartitioning(kept, partitions);

  let deadline = Infinity;
  const clock = opts.clock ?? (() => performance.now());
  if (opts.timeoutMs !== undefined) deadline = clock() + opts.timeoutMs;

  for (const [index, part] of partitions.entries()) {
    // Numbered in call order: see LinearizedSet.
    const ops = [...part].sort((a, b) => a.call - b.call);
    const r = checkPartition(model, ops, deadline, clock);
    if (r === 'timeout') return { ok: 'timeout' };
    if (r !== true) return { ok: false, partition: index, explanation: explain(model, ops, index, r) };
  }
  return { ok: true };
}

function validate<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>, index: number): void {
  const problem = ((): string | undefined => {
    if (!Number.isFinite(op.call)) return `call time ${op.call} is not a finite number`;
    if (op.ret === undefined) return op.output === undefined ? undefined : 'has an output but no return time (an unknown outcome has neither)';
    if (!Number.isFinite(op.ret)) return `return time ${op.ret} is not a finite number (leave ret undefined for an unknown outcome)`;
    if (op.ret <= op.call) return `return time ${op.ret} is not after call time ${op.call}`;
    if (op.output === undefined) return 'has a return time but no output (an unknown outcome has neither)';
    return undefined;
  })();
  if (problem !== undefined) throw new InvalidHistoryError(`operation #${index} (client ${op.clientId}, ${describeOp(model, op)}): ${problem}`);
}

function checkPartitioning<I, O>(ops: readonly Operation<I, O>[], partitions: readonly Operation<I, O>[][]): void {
  const given = new Set(ops);
  const seen = new Set<Operation<I, O>>();
  for (const part of partitions) {
    for (const op of part) {
      if (!given.has(op)) throw new InvalidHistoryError('partition() returned an operation it was not given');
      if (seen.has(op)) throw new InvalidHistoryError('partition() returned an operation twice');
      seen.add(op);
    }
  }
  if (seen.size !== given.size) throw new InvalidHistoryError(`partition() dropped ${given.size - seen.size} of ${given.size} operations`);
}

/** Where the search got stuck deepest: what it had linearized, and in which state. */
interface Stuck<S> {
  /** Indices (into the partition) of the linearized operations, in linearization order. */
  prefix: number[];
  state: S;
}

/**
 * The set of linearized operations, as a bitset over the partition's operations numbered in call
 * order. Two things keep the memo cheap:
 *   - a Zobrist hash (XOR of one fixed pseudo-random word per member), updated in O(1) per change;
 *   - snapshots that leave out the leading all-ones words and the trailing all-zeros words: the
 *     search linearizes roughly in call order, so what varies is a window around the concurrency
 *     frontier, and a snapshot costs that window rather than the whole history.
 * Exported for its unit test only; not part of the checker's API.
 */
export class LinearizedSet {
  private readonly words: Uint32Array;
  private readonly keys: Uint32Array;
  /** Zobrist hash of the members. */
  hash = 0;
  /** words[0, full) are all ones. */
  private full = 0;
  /** words (top, end) are all zeros. */
  private top = -1;

  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
    this.keys = new Uint32Array(size);
    for (let i = 0; i < size; i++) this.keys[i] = zobrist(i);
  }

  add(i: number): void {
    const w = i >>> 5;
    this.words[w]! |= 1 << (i & 31);
    this.hash = (this.hash ^ this.keys[i]!) >>> 0;
    while (this.full < this.words.length && this.words[this.full] === 0xffffffff) this.full++;
    if (w > this.top) this.top = w;
  }

  remove(i: number): void {
    const w = i >>> 5;
    this.words[w]! &= ~(1 << (i & 31));
    this.hash = (this.hash ^ this.keys[i]!) >>> 0;
    if (w < this.full) this.full = w;
    while (this.top >= 0 && this.words[this.top] === 0) this.top--;
  }

  snapshot(): SetSnapshot {
    return { from: this.full, words: this.words.slice(this.full, Math.max(this.full, this.top + 1)) };
  }

  equals(s: SetSnapshot): boolean {
    if (s.from !== this.full || s.words.length !== Math.max(0, this.top + 1 - this.full)) return false;
    for (let k = 0; k < s.words.length; k++) if (s.words[k] !== this.words[this.full + k]) return false;
    return true;
  }
}

export interface SetSnapshot {
  from: number;
  words: Uint32Array;
}

/**
 * Memo of visited (linearized set, state) pairs, keyed by a 32-bit mix of the set's and the
 * state's hashes. Collisions only cost comparisons: entries hold the exact set and state.
 */
class Visited<S, I, O> {
  private readonly buckets = new Map<number, { set: SetSnapshot; state: S }[]>();

  constructor(private readonly model: Model<S, I, O>) {}

  /** Records the pair; returns false if it was already there. */
  add(set: LinearizedSet, state: S): boolean {
    const key = (set.hash ^ Math.imul(hash32(this.model.hash(state)), 0x9e3779b1)) >>> 0;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = [];
      this.buckets.set(key, bucket);
    }
    for (const e of bucket) {
      if (set.equals(e.set) && this.model.equal(e.state, state)) return false;
    }
    bucket.push({ set: set.snapshot(), state });
    return true;
  }
}

/** A model's state hash as 32 bits: integers as they are, anything else by FNV-1a over its text. */
function hash32(h: string | number): number {
  if (typeof h === 'number' && Number.isSafeInteger(h)) return h | 0;
  const text = String(h);
  let x = 0x811c9dc5;
  for (let k = 0; k < text.length; k++) x = Math.imul(x ^ text.charCodeAt(k), 0x01000193);
  return x >>> 0;
}

/** A fixed, well-mixed 32-bit word per operation index (a splitmix32-style finaliser). */
function zobrist(i: number): number {
  let x = Math.imul(i + 1, 0x9e3779b9);
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The event list of one partition: node k < 2n is the k-th event in time order, node 2n is the
 * head sentinel. Ties in time put calls before returns, so intervals that merely touch count as
 * concurrent: a coarse clock can then never produce a false violation.
 */
interface Events {
  opOf: Int32Array;
  isCall: Uint8Array;
  /** The other event of the same operation. */
  match: Int32Array;
  prev: Int32Array;
  next: Int32Array;
  head: number;
}

function buildEvents<I, O>(ops: readonly Operation<I, O>[]): Events {
  const n = ops.length;
  const order: { time: number; call: boolean; op: number }[] = [];
  ops.forEach((op, i) => {
    order.push({ time: op.call, call: true, op: i });
    order.push({ time: op.ret ?? Infinity, call: false, op: i });
  });
  order.sort((a, b) => a.time - b.time || (a.call === b.call ? 0 : a.call ? -1 : 1) || a.op - b.op);

  const head = 2 * n;
  const ev: Events = {
    opOf: new Int32Array(2 * n),
    isCall: new Uint8Array(2 * n),
    match: new Int32Array(2 * n),
    prev: new Int32Array(2 * n + 1),
    next: new Int32Array(2 * n + 1),
    head,
  };
  const callNode = new Int32Array(n);
  order.forEach((e, k) => {
    ev.opOf[k] = e.op;
    ev.isCall[k] = e.call ? 1 : 0;
    if (e.call) callNode[e.op] = k;
    else {
      const c = callNode[e.op]!; // a call sorts before its return: call < ret is validated
      ev.match[k] = c;
      ev.match[c] = k;
    }
    ev.prev[k] = k === 0 ? head : k - 1;
    ev.next[k] = k === 2 * n - 1 ? -1 : k + 1;
  });
  ev.next[head] = n === 0 ? -1 : 0;
  ev.prev[head] = -1;
  return ev;
}

function unlink(ev: Events, k: number): void {
  const p = ev.prev[k]!;
  const nx = ev.next[k]!;
  ev.next[p] = nx;
  if (nx !== -1) ev.prev[nx] = p;
}

/** Reinserts a node removed by unlink; valid while removals are undone in reverse order. */
function relink(ev: Events, k: number): void {
  const p = ev.prev[k]!;
  const nx = ev.next[k]!;
  ev.next[p] = k;
  if (nx !== -1) ev.prev[nx] = k;
}

function lift(ev: Events, call: number): void {
  unlink(ev, call);
  unlink(ev, ev.match[call]!);
}

function unlift(ev: Events, call: number): void {
  relink(ev, ev.match[call]!);
  relink(ev, call);
}

/**
 * The WGL search over one partition. Returns true if linearizable, 'timeout', or the deepest point
 * where the search got stuck.
 *
 * Unknown outcomes: such an operation's return event has time +infinity, so it never forces
 * anything to be linearized before it, and it may be linearized after any point past its call.
 * "Never took effect" is covered by stopping as soon as every operation with a known outcome is
 * linearized: the unknown ones still pending are simply left out (equivalently, they took effect
 * after everything else, where nothing observes them).
 */
function checkPartition<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], deadline: number, clock: () => number): true | 'timeout' | Stuck<S> {
  const ev = buildEvents(ops);
  const visited = new Visited(model);
  const linearized = new LinearizedSet(ops.length);

  let knownLeft = ops.filter((op) => op.ret !== undefined).length;
  let state = model.init();
  // The linearization so far: the call node of each linearized operation and the state before it.
  const stackNodes: number[] = [];
  const stackStates: S[] = [];
  let deepest: Stuck<S> | undefined;

  let node = ev.next[ev.head]!;
  for (let steps = 0; ; steps++) {
    if (knownLeft === 0) return true;
    if (steps % CLOCK_EVERY === 0 && deadline !== Infinity && clock() > deadline) return 'timeout';
    // While an operation with a known outcome is pending, its return event is in the list and
    // comes before node becomes -1, so node is always a real event here.
    const opIndex = ev.opOf[node]!;
    const op = ops[opIndex]!;

    if (ev.isCall[node] === 1) {
      // A call before the first return in the list: this operation may be linearized next.
      const [ok, nextState] = model.step(state, op.input, op.output);
      if (ok) {
        linearized.add(opIndex);
        if (visited.add(linearized, nextState)) {
          stackNodes.push(node);
          stackStates.push(state);
          state = nextState;
          lift(ev, node);
          if (op.ret !== undefined) knownLeft--;
          node = ev.next[ev.head]!;
          continue;
        }
        linearized.remove(opIndex);
      }
      node = ev.next[node]!;
    } else {
      // The return of an operation not yet linearized: it had to be linearized before this point,
      // and no remaining candidate works. Undo the last choice and try the next candidate after it.
      if (deepest === undefined || stackNodes.length > deepest.prefix.length) {
        deepest = { prefix: stackNodes.map((k) => ev.opOf[k]!), state };
      }
      const last = stackNodes.pop();
      if (last === undefined) return deepest;
      state = stackStates.pop()!;
      const lastOp = ev.opOf[last]!;
      linearized.remove(lastOp);
      unlift(ev, last);
      if (ops[lastOp]!.ret !== undefined) knownLeft++;
      node = ev.next[last]!;
    }
  }
}

function describeOp<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>): string {
  if (model.describe !== undefined) return model.describe(op.input, op.output);
  return `${show(op.input)} → ${op.ret === undefined ? '?' : show(op.output)}`;
}

function describeTimed<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>): string {
  const ret = op.ret === undefined ? '∞ (outcome unknown)' : String(op.ret);
  return `[client ${op.clientId}, ${op.call}..${ret}] ${describeOp(model, op)}`;
}

function show(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Turns the deepest stuck point into text. The blocking operation is the pending one with the
 * earliest return (the first return event left in the list); the candidates are the pending
 * operations called before it returned, each of which the model rejected in that state or led only
 * to dead ends.
 */
function explain<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], index: number, stuck: Stuck<S>): string {
  const ev = buildEvents(ops);
  const done = new Set(stuck.prefix);
  let blocking = -1;
  const candidates: number[] = [];
  for (let k = 0; k < ev.opOf.length; k++) {
    const i = ev.opOf[k]!;
    if (done.has(i)) continue;
    if (ev.isCall[k] === 1) candidates.push(i);
    else {
      blocking = i;
      break;
    }
  }
  const state = model.describeState?.(stuck.state) ?? show(stuck.state);
  const lines = [`partition ${index} (${ops.length} operations) is not linearizable.`];
  lines.push(`Longest linearizable prefix found: ${stuck.prefix.length} operation(s)${stuck.prefix.length > EXPLAIN_PREFIX_OPS ? `, the last ${EXPLAIN_PREFIX_OPS} shown` : ''}:`);
  const shown = stuck.prefix.slice(-EXPLAIN_PREFIX_OPS);
  const first = stuck.prefix.length - shown.length;
  shown.forEach((i, j) => lines.push(`  ${first + j + 1}. ${describeTimed(model, ops[i]!)}`));
  lines.push(`State after it: ${state}`);
  const b = ops[blocking];
  if (b !== undefined) {
    lines.push(`Could not place next: ${describeTimed(model, b)}.`);
    lines.push(`It returned at ${b.ret}, so the next operation had to be one called by then, and none leads to a linearization:`);
  }
  for (const i of candidates) {
    const op = ops[i]!;
    const [ok] = model.step(stuck.state, op.input, op.output);
    lines.push(`  ${describeTimed(model, op)}: ${ok ? 'legal here, but no linearization continues from it' : 'not a legal result in this state'}`);
  }
  return lines.join('\n');
}

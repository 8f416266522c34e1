// A sequential key-value model for the linearizability checker, and a recorder that turns what
// test clients see into a history.
//
// The model is a map from string keys to string values with put, get and compare-and-swap; a key
// that was never written reads as absent (undefined). There is no delete. Histories are partitioned
// by key, so the map a search carries holds at most one key; the model is nevertheless correct
// without partitioning (for example to cross-check the partitioned result).
import { InvalidHistoryError, type Model, type Operation } from './checker.js';

export type KvInput =
  | { op: 'put'; key: string; value: string }
  | { op: 'get'; key: string }
  /** Sets `value` if the key currently holds `expect` (undefined: the key is absent). */
  | { op: 'cas'; key: string; expect: string | undefined; value: string };

export type PutOutput = Record<string, never>;
/** `value` undefined: the key is absent. The property must be present all the same. */
export interface GetOutput {
  value: string | undefined;
}
export interface CasOutput {
  ok: boolean;
}
export type KvOutput = PutOutput | GetOutput | CasOutput;

export type KvState = ReadonlyMap<string, string>;

export type KvOperation = Operation<KvInput, KvOutput>;

function withValue(state: KvState, key: string, value: string): KvState {
  const next = new Map(state);
  next.set(key, value);
  return next;
}

/** The recorded output of a get; a shape that is not a GetOutput is a bug in the test, so it throws. */
function getValue(input: KvInput, output: KvOutput): string | undefined {
  if (!('value' in output)) throw new InvalidHistoryError(`${describeKv(input, output)}: a get's output must be { value }`);
  return output.value;
}

function casOk(input: KvInput, output: KvOutput): boolean {
  if (!('ok' in output) || typeof output.ok !== 'boolean') throw new InvalidHistoryError(`${describeKv(input, output)}: a cas's output must be { ok: boolean }`);
  return output.ok;
}

function describeKv(input: KvInput, output: KvOutput | undefined): string {
  const v = (s: string | undefined): string => (s === undefined ? 'absent' : JSON.stringify(s));
  switch (input.op) {
    case 'put':
      return `put(${input.key}, ${v(input.value)})${output === undefined ? ' → ?' : ''}`;
    case 'get': {
      const result = output === undefined ? '?' : 'value' in output ? v(output.value) : JSON.stringify(output);
      return `get(${input.key}) → ${result}`;
    }
    case 'cas': {
      const result = output === undefined ? '?' : 'ok' in output ? (output.ok ? 'ok' : 'failed') : JSON.stringify(output);
      return `cas(${input.key}, ${v(input.expect)} → ${v(input.value)}) → ${result}`;
    }
  }
}

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => new Map<string, string>(),

  step(state, input, output) {
    const current = state.get(input.key);
    switch (input.op) {
      case 'put':
        return [true, withValue(state, input.key, input.value)];
      case 'get':
        return [output === undefined || getValue(input, output) === current, state];
      case 'cas': {
        // Whether a cas applies depends only on the state at its linearization point, so even with
        // an unknown outcome the next state is determined.
        const applies = current === input.expect;
        const next = applies ? withValue(state, input.key, input.value) : state;
        return [output === undefined || casOk(input, output) === applies, next];
      }
    }
  },

  equal(a, b) {
    if (a.size !== b.size) return false;
    for (const [k, v] of a) if (b.get(k) !== v) return false;
    return true;
  },

  hash(state) {
    // Partitioned by key, a state holds at most one key: keep that case free of sorting.
    let text = '';
    for (const key of state.size > 1 ? [...state.keys()].sort() : state.keys()) text += `${JSON.stringify(key)}=${JSON.stringify(state.get(key))},`;
    return text;
  },

  /** One partition per key, in order of first appearance. */
  partition(ops) {
    const byKey = new Map<string, KvOperation[]>();
    for (const op of ops) {
      const list = byKey.get(op.input.key);
      if (list === undefined) byKey.set(op.input.key, [op]);
      else list.push(op);
    }
    return [...byKey.values()];
  },

  readOnly: (input) => input.op === 'get',
  describe: describeKv,

  describeState(state) {
    if (state.size === 0) return 'every key absent';
    return [...state].map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ');
  },
};

/** What `HistoryRecorder.invoke` returns: pass it back to complete() or unknown(). */
export interface CallHandle {
  readonly clientId: number;
  readonly call: number;
}

/**
 * Records a history as test clients run: `invoke` when a client sends a request, then `complete`
 * when it gets an answer or `unknown` when it gives up without knowing whether the request took
 * effect (timeout, leadership lost, connection reset).
 *
 * Times: pass `now` on every call (one clock for the whole history, e.g. performance.now()), or on
 * none, in which case the recorder numbers events 1, 2, 3, ... in the order its methods are called.
 * In one process that order is the real-time order, and it never produces ties. A completion must
 * come strictly after its invocation.
 */
export class HistoryRecorder<I = KvInput, O = KvOutput> {
  private readonly records = new Map<CallHandle, Operation<I, O> & { settled: boolean }>();
  private tick = 0;
  private explicitTimes: boolean | undefined;

  invoke(clientId: number, input: I, now?: number): CallHandle {
    const call = this.time(now);
    const handle: CallHandle = Object.freeze({ clientId, call });
    this.records.set(handle, { clientId, input, call, settled: false });
    return handle;
  }

  complete(handle: CallHandle, output: O, now?: number): void {
    const rec = this.pending(handle, 'complete');
    const ret = this.time(now);
    if (!(ret > rec.call)) throw new InvalidHistoryError(`client ${rec.clientId}: completion time ${ret} is not after call time ${rec.call}`);
    rec.output = output;
    rec.ret = ret;
    rec.settled = true;
  }

  /** The outcome will never be known: the operation may or may not have taken effect. */
  unknown(handle: CallHandle): void {
    this.pending(handle, 'mark unknown').settled = true;
  }

  /**
   * The history so far, in invocation order. An operation neither completed nor marked unknown is
   * reported with an unknown outcome, which is what it is at this moment.
   */
  operations(): Operation<I, O>[] {
    return [...this.records.values()].map(({ clientId, input, call, output, ret }) =>
      ret === undefined ? { clientId, input, call } : { clientId, input, call, output, ret },
    );
  }

  private pending(handle: CallHandle, what: string): Operation<I, O> & { settled: boolean } {
    const rec = this.records.get(handle);
    if (rec === undefined) throw new InvalidHistoryError(`cannot ${what}: the handle was not returned by this recorder's invoke()`);
    if (rec.settled) throw new InvalidHistoryError(`cannot ${what}: client ${rec.clientId}'s operation invoked at ${rec.call} was already ${rec.ret === undefined ? 'marked unknown' : 'completed'}`);
    return rec;
  }

  private time(now: number | undefined): number {
    const explicit = now !== undefined;
    if (this.explicitTimes !== undefined && this.explicitTimes !== explicit) {
      throw new InvalidHistoryError('pass `now` to every HistoryRecorder call or to none: the logical clock and a caller clock cannot be mixed');
    }
    this.explicitTimes = explicit;
    if (now !== undefined) {
      if (!Number.isFinite(now)) throw new InvalidHistoryError(`time ${now} is not a finite number`);
      return now;
    }
    return ++this.tick;
  }
}

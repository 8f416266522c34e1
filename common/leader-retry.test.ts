// The client's side of "no leader": only an answer marked not-proposed is made again, with
// backoff, within the budget; everything else comes back at once, its gRPC code intact.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { backoffMs, isNotProposed, notProposed, retryWhileNotProposed, unavailableNotProposed } from './leader-retry.js';

/** A ServiceError as grpc-js makes it from a status. */
function serviceError(st: Partial<grpc.StatusObject>): grpc.ServiceError {
  return Object.assign(new Error(`${st.code} ${st.details}`), { code: st.code, details: st.details ?? '', metadata: st.metadata ?? new grpc.Metadata() }) as grpc.ServiceError;
}

/** A fake clock: sleeping advances it. */
function clock(): { now: () => number; sleep: (ms: number) => Promise<void>; slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return {
    now: () => t,
    sleep: (ms) => {
      slept.push(ms);
      t += ms;
      return Promise.resolve();
    },
    slept,
  };
}

describe('retryWhileNotProposed', () => {
  it('makes a marked call again until it succeeds', async () => {
    const c = clock();
    let n = 0;
    const r = await retryWhileNotProposed(() => (++n < 4 ? Promise.reject(serviceError(unavailableNotProposed('no leader'))) : Promise.resolve('done')), c);
    expect(r).toBe('done');
    expect(n).toBe(4);
    expect(c.slept).toEqual([25, 50, 100]);
  });

  it('does not make again an UNAVAILABLE without the mark (the write may have been applied), nor any other failure', async () => {
    for (const st of [{ code: grpc.status.UNAVAILABLE, details: 'outcome unknown' }, { code: grpc.status.ABORTED, details: 'out of sequence' }, notProposed({ code: grpc.status.INTERNAL, details: 'x' })]) {
      let n = 0;
      const err = serviceError(st);
      await expect(retryWhileNotProposed(() => (n++, Promise.reject(err)), clock())).rejects.toBe(err);
      expect(n).toBe(1);
    }
  });

  it('gives up once the budget is spent, with the last answer as it came', async () => {
    const c = clock();
    let n = 0;
    const err = serviceError(unavailableNotProposed('no manager leads the cluster right now'));
    await expect(retryWhileNotProposed(() => (n++, Promise.reject(err)), { ...c, budgetMs: 1_000 })).rejects.toBe(err);
    expect(c.now()).toBe(1_000);
    expect(c.slept.reduce((a, b) => a + b, 0)).toBe(1_000);
    expect(n).toBe(c.slept.length + 1);
    expect(isNotProposed(err)).toBe(true);
    expect(backoffMs(10)).toBe(250);
  });
});

// Retrying a call that found no leader. Every write of the managers' leader-only services runs on
// the Raft leader; while there is none (an election takes a few hundred milliseconds) a call is
// answered UNAVAILABLE. Such a call may be made again once a leader is elected, but only if it was
// certainly not proposed: a write that may have reached the log (the leader lost its leadership
// while the proposal was in flight, a connection that broke after the request left) may have been
// applied, and a blind retry could apply it twice (a second service, a second secret).
//
// How a caller knows: the managers say so. An answer whose trailers carry `x-tswarm-not-proposed`
// was given before anything of the call was proposed (no leader was known; the leader refused the
// proposal on the spot because it was no longer leading, or because a leadership transfer was
// under way; a new leader was still applying the log). Every other failure, UNAVAILABLE included,
// says nothing of the kind, and is not retried. A manager that relays a call to the leader relays
// the mark with the status (manager/forward.ts).
import * as grpc from '@grpc/grpc-js';

/** The trailer that marks an answer given before anything of the call was proposed. */
export const NOT_PROPOSED_KEY = 'x-tswarm-not-proposed';

/** How long a call waits for a leader, at most (an election takes about 0.2 s after a crash, 1–2 s after a silent failure; five is generous). */
export const LEADER_WAIT_MS = 5_000;

/** A gRPC status that carries the mark. */
export function notProposed(status: Partial<grpc.StatusObject>): Partial<grpc.StatusObject> {
  const metadata = status.metadata?.clone() ?? new grpc.Metadata();
  metadata.set(NOT_PROPOSED_KEY, '1');
  return { ...status, metadata };
}

/** UNAVAILABLE with the mark: nothing of the call was proposed; it may be made again. */
export function unavailableNotProposed(details: string): Partial<grpc.StatusObject> {
  return notProposed({ code: grpc.status.UNAVAILABLE, details });
}

/** Whether a failed call (a grpc-js ServiceError, or a status) was answered with the mark. */
export function isNotProposed(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, metadata } = err as { code?: unknown; metadata?: unknown };
  return code === grpc.status.UNAVAILABLE && metadata instanceof grpc.Metadata && metadata.get(NOT_PROPOSED_KEY)[0] === '1';
}

/** The pause before attempt `attempt + 1`: 25, 50, 100, 200, then 250 ms. */
export function backoffMs(attempt: number): number {
  return Math.min(250, 25 * 2 ** Math.min(attempt, 4));
}

export interface LeaderRetryOptions {
  /** Give up once this much time has passed since the first attempt (LEADER_WAIT_MS). */
  budgetMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/**
 * Makes the call; while it fails with the mark (nothing was proposed: no leader), waits a little
 * and makes it again, for at most `budgetMs`. Any other failure, or the last marked one once the
 * budget is spent, is thrown as it came (its gRPC code intact).
 */
export async function retryWhileNotProposed<T>(call: () => Promise<T>, opts: LeaderRetryOptions = {}): Promise<T> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const until = now() + (opts.budgetMs ?? LEADER_WAIT_MS);
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const left = until - now();
      if (!isNotProposed(err) || left <= 0) throw err;
      await sleep(Math.min(backoffMs(attempt), left));
    }
  }
}

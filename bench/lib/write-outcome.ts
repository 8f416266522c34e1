// What a failed write through the control API means for the store, read from its gRPC status: a
// write refused before it was proposed is a failure (it is not in the store); a write whose call
// broke off after it was sent may still commit, so its outcome is unknown. The benchmarks count
// the two apart because only the first may be counted out when the store is checked against the
// acknowledged writes.
import { status, type ServiceError } from '@grpc/grpc-js';

export type WriteOutcome = 'failed' | 'unknown';

/**
 * The UNAVAILABLE answers given before a proposal: a manager that knows of no leader or is still
 * catching up (manager/forward.ts), Raft's NotLeaderError (manager/raft/errors.ts), and grpc-js's
 * own when it has no connection to send the call on (picker.ts: the call never left).
 */
const REFUSED_BEFORE_PROPOSING = [/^no manager leads the cluster/, /still applying the log/, /is not the leader/, /No connection established/];

/** Raft's LeadershipLostError, which the control API maps to INTERNAL (manager/controlapi/control.ts). */
const LOST_AFTER_PROPOSING = /outcome is unknown/;

export function classifyWriteError(err: unknown): WriteOutcome {
  const e = err as Partial<ServiceError>;
  const details = e.details ?? e.message ?? '';
  switch (e.code) {
    case status.DEADLINE_EXCEEDED:
      return 'unknown';
    case status.UNAVAILABLE:
      return REFUSED_BEFORE_PROPOSING.some((re) => re.test(details)) ? 'failed' : 'unknown';
    default:
      return LOST_AFTER_PROPOSING.test(details) ? 'unknown' : 'failed';
  }
}

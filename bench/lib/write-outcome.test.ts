import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { classifyWriteError } from './write-outcome.js';

const err = (code: status, details: string): Error => Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details });

describe('classifyWriteError', () => {
  it('counts a write refused before it was proposed as failed', () => {
    expect(classifyWriteError(err(status.UNAVAILABLE, 'no manager leads the cluster right now (an election is under way, or the cluster lost its quorum of managers)'))).toBe('failed');
    expect(classifyWriteError(err(status.UNAVAILABLE, 'raft: node 2 is not the leader, and no leader is known'))).toBe('failed');
    expect(classifyWriteError(err(status.UNAVAILABLE, 'this manager was elected leader and is still applying the log after 5000 ms'))).toBe('failed');
    expect(classifyWriteError(err(status.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED'))).toBe('failed');
    expect(classifyWriteError(err(status.ALREADY_EXISTS, 'secret b-c0-1 already exists'))).toBe('failed');
  });

  it('counts a call broken off after it was sent, or a lost leadership, as of unknown outcome', () => {
    expect(classifyWriteError(err(status.DEADLINE_EXCEEDED, 'Deadline exceeded after 10.001s'))).toBe('unknown');
    expect(classifyWriteError(err(status.UNAVAILABLE, 'Connection dropped'))).toBe('unknown');
    expect(classifyWriteError(err(status.INTERNAL, 'raft: node 1 lost leadership before the proposal was applied; its outcome is unknown'))).toBe('unknown');
  });
});

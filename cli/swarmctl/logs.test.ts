// swarmctl's logs output and flags: Docker's prefixes, the --tail rule, and -f meaning --follow
// only after `service logs` / `task logs`.
import { describe, expect, it } from 'vitest';
import { LogStream, type LogMessage } from '../../proto/gen/tswarm/logs.js';
import { followFlag, formatLine, formatUnavailable, parseTail } from './logs.js';

const entry = (slot: number, data = 'line 1\n'): LogMessage => ({
  context: { taskId: 'abcdefghijklmnopqrstuvwxy', serviceId: 'svc', serviceName: 'web', slot, nodeId: 'node0123456789', nodeName: 'w1' },
  time: '2026-11-22T21:00:38.123456789Z',
  stream: LogStream.LOG_STREAM_STDOUT,
  data,
});
const fmt = { timestamps: false, taskIds: true, noTrunc: false };

describe('swarmctl logs', () => {
  it('prefixes lines as Docker does', () => {
    expect(formatLine(entry(1), fmt)).toBe('web.1.abcdefghijkl@w1 | line 1\n');
    expect(formatLine(entry(0, 'no newline'), fmt)).toBe('web.node0123456789.abcdefghijkl@w1 | no newline\n');
    expect(formatLine(entry(2), { ...fmt, taskIds: false })).toBe('web.2@w1 | line 1\n');
    expect(formatLine(entry(2), { ...fmt, noTrunc: true, timestamps: true })).toBe('web.2.abcdefghijklmnopqrstuvwxy@w1 | 2026-11-22T21:00:38.123456789Z line 1\n');
  });

  it('names the node and counts the tasks of an unavailable node', () => {
    expect(formatUnavailable({ nodeId: 'n2id', nodeName: 'w2', taskIds: ['a', 'b', 'c'], reason: 'is down' })).toBe('warning: node w2 (n2id) is down: logs of 3 tasks unavailable\n');
    expect(formatUnavailable({ nodeId: 'n2id', nodeName: '', taskIds: ['a'], reason: 'did not answer within 5 s' })).toBe('warning: node n2id (n2id) did not answer within 5 s: logs of 1 task unavailable\n');
  });

  it('takes --tail as "all" or a whole number', () => {
    expect(parseTail('all')).toBeUndefined();
    expect(parseTail(undefined)).toBeUndefined();
    expect(parseTail('0')).toBe(0);
    expect(parseTail('25')).toBe(25);
    expect(() => parseTail('-3')).toThrow('--tail: "-3" must be a whole number, 0 or more, or "all"');
    expect(() => parseTail('2.5')).toThrow(/--tail/);
  });

  it('reads -f as --follow after service logs and task logs only', () => {
    expect(followFlag(['service', 'logs', '-f', 'web'])).toEqual(['service', 'logs', '--follow', 'web']);
    expect(followFlag(['task', 'logs', 'web.1', '-ft'])).toEqual(['task', 'logs', 'web.1', '--follow', '-t']);
    expect(followFlag(['-f', 'json', 'service', 'ls'])).toEqual(['-f', 'json', 'service', 'ls']);
    expect(followFlag(['-f', 'json', 'service', 'logs', 'web', '--tail', '-3'])).toEqual(['-f', 'json', 'service', 'logs', 'web', '--tail', '-3']);
  });
});

import { describe, expect, it } from 'vitest';
import { lagLoggedThrough, leaderDuring, leaderships, parseSwarmdLog, termAt } from './swarmd-logs.js';

const T = Date.parse('2026-12-07T12:00:00.000Z');
const time = (s: number): string => new Date(T + s * 1000).toISOString();
const lag = (s: number, p99Ms: number, maxMs: number): string => JSON.stringify({ level: 30, time: time(s), p50Ms: 10, p99Ms, maxMs, windowMs: 10_000, msg: 'event loop lag' });
const led = (s: number, leader: number, role: string, term: number): string =>
  JSON.stringify({ level: 30, time: time(s), component: 'raft', leader, role, term, msg: 'raft: leader changed' });

// m1 leads in term 2 until it stalls at 25 s; m2 is elected in term 3 at 26 s.
const logs = [
  parseSwarmdLog('m1', [led(0, 1, 'leader', 2), lag(10, 20, 40), lag(20, 30, 60), 'not json', led(25, 0, 'follower', 3), led(26.5, 2, 'follower', 3), lag(30, 90, 900), lag(40, 11, 12)].join('\n')),
  parseSwarmdLog('m2', [led(1, 1, 'follower', 2), lag(11, 15, 20), led(25, 0, 'candidate', 3), led(26, 2, 'leader', 3), lag(31, 50, 70), lag(41, 40, 45)].join('\n')),
];

describe('swarmd logs', () => {
  it('reads who led when from the leader-changed lines', () => {
    expect(leaderships(logs)).toEqual([
      { host: 'm1', from: T, to: T + 25_000 },
      { host: 'm2', from: T + 26_000, to: Infinity },
    ]);
    expect(termAt(logs, T + 24_000)).toBe(2);
    expect(termAt(logs, T + 30_000)).toBe(3);
  });

  it("takes the lag of whichever manager led, from its windows overlapping the span while it led", () => {
    // Only m1 led in [12 s, 18 s]: its window (10, 20] overlaps it.
    expect(leaderDuring(logs, T + 12_000, T + 18_000)).toMatchObject({ leaders: ['m1'], windows: 1, p99Ms: 30, maxMs: 60, changes: 0, termFrom: 2, termTo: 2 });
    // [22 s, 35 s]: m1's window (20, 30], as it led until 25 s; m2's (21, 31] and (31, 41], as it
    // led from 26 s. One new leadership (term 3, first known at 26 s).
    expect(leaderDuring(logs, T + 22_000, T + 35_000)).toMatchObject({ leaders: ['m1', 'm2'], windows: 3, p99Ms: 90, maxMs: 900, changes: 1, termFrom: 2, termTo: 3 });
  });

  it('knows when the window that covers the end of a span has been logged', () => {
    expect(lagLoggedThrough(logs, T + 12_000, T + 18_000)).toBe(true);
    expect(lagLoggedThrough(logs, T + 30_000, T + 45_000)).toBe(false);
  });
});

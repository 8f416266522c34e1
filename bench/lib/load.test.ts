import { describe, expect, it } from 'vitest';
import { median, medians, runOps, type LoadResult } from './load.js';

describe('runOps', () => {
  it('reports each interval of the measured time, and classifies the errors', async () => {
    const reports: LoadResult[] = [];
    let n = 0;
    const op = async (): Promise<void> => {
      await new Promise((r) => setTimeout(r, 5));
      if (++n % 10 === 0) throw new Error(n % 20 === 0 ? 'lost' : 'refused');
    };
    const r = await runOps(op, 2, 1.1, () => Promise.resolve(), {
      classify: (err) => ((err as Error).message === 'lost' ? 'unknown' : 'failed'),
      report: { everyMs: 500, onReport: (x) => reports.push(x) },
    });
    expect(reports.length).toBe(2); // 0.5 s, then 0.6 s: the tick at 1 s leaves the rest to the last
    expect(reports.reduce((s, x) => s + x.ops, 0)).toBe(r.ops);
    expect(reports.reduce((s, x) => s + x.errors, 0)).toBe(r.errors);
    expect(r.errors).toBeGreaterThan(0);
    expect((r.errorsBy?.failed ?? 0) + (r.errorsBy?.unknown ?? 0)).toBe(r.errors);
    expect(reports[1]!.startedAt! - reports[0]!.startedAt!).toBeGreaterThanOrEqual(450);
    expect(r.startedAt).toBe(reports[0]!.startedAt);
  });
});

describe('medians', () => {
  it('takes each figure as the median of the runs, and adds up the counts', () => {
    const run = (opsPerSec: number, p99: number, errors: number): LoadResult => ({ ops: opsPerSec, opsPerSec, p50: 1, p99, errors, errorsBy: { failed: errors }, seconds: 1 });
    const m = medians([run(100, 9, 0), run(300, 5, 1), run(200, 7, 2), run(400, 1, 0)]);
    expect(m).toMatchObject({ ops: 1000, opsPerSec: 250, p99: 6, errors: 3, errorsBy: { failed: 3 }, seconds: 4 });
    expect(median([])).toBeNaN();
  });
});

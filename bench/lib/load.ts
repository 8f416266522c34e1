// The load generator every write benchmark shares: N concurrent writers, each sequential, for a
// fixed time; throughput and the client's latency percentiles.
import { readFileSync } from 'node:fs';

export interface LoadResult {
  ops: number;
  opsPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  /** The errors by class, when the load classifies them (RunOptions.classify). */
  errorsBy?: Record<string, number>;
  /** The first error seen, for the diagnosis of a run with errors. */
  firstError?: string;
  /** Measured time, s. */
  seconds: number;
  /** When the measured time began (epoch ms), to match a run with what servers logged meanwhile. */
  startedAt?: number;
  /** Every write's latency, ms, sorted (for pooling runs; left out of JSON output). */
  latencies?: number[];
}

export interface RunOptions {
  /** Names the class of a failed write (e.g. failed or unknown outcome); counted in errorsBy. */
  classify?: (err: unknown) => string;
  /** Told the figures of each `everyMs` of the measured time (and of the rest at the end). */
  report?: { everyMs: number; onReport: (interval: LoadResult) => void };
}

/**
 * `clients` concurrent writers, each sequential, for `seconds`; `op(client, n)` is one write (n
 * counts that writer's writes). `warmUp(i)` runs 50 times first, sequentially, unmeasured
 * (connections, JIT); its errors are ignored.
 */
export async function runOps(
  op: (client: number, n: number) => Promise<void>,
  clients: number,
  seconds: number,
  warmUp: (i: number) => Promise<void>,
  opts: RunOptions = {},
): Promise<LoadResult> {
  const lat: number[] = [];
  let errors = 0;
  const errorsBy: Record<string, number> = {};
  let firstError: string | undefined;
  for (let i = 0; i < 50; i++) await warmUp(i).catch(() => undefined);
  const startedAt = Date.now();
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const interval = opts.report && intervalReporter(opts.report.onReport, lat, () => errors, errorsBy, opts.classify !== undefined, t0, startedAt);
  // A tick near the end leaves the rest to the last report, so no report covers a sliver.
  const every = opts.report?.everyMs ?? 0;
  const timer = interval && setInterval(() => (performance.now() < end - every / 2 ? interval() : undefined), every);
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      let n = 0;
      while (performance.now() < end) {
        const s = performance.now();
        try {
          await op(c, n++);
          lat.push(performance.now() - s);
        } catch (err) {
          errors++;
          if (opts.classify) {
            const kind = opts.classify(err);
            errorsBy[kind] = (errorsBy[kind] ?? 0) + 1;
          }
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  clearInterval(timer);
  interval?.();
  lat.sort((a, b) => a - b);
  return { ...summarize(lat, elapsed, errors, firstError, opts.classify ? errorsBy : undefined), startedAt };
}

/** The reporter of RunOptions.report: each call reports the writes completed since the previous one. */
function intervalReporter(
  onReport: (r: LoadResult) => void,
  lat: readonly number[],
  errors: () => number,
  errorsBy: Readonly<Record<string, number>>,
  classified: boolean,
  startTime: number,
  startedAt: number,
): () => void {
  let mark = 0;
  let markErrors = 0;
  let markBy: Record<string, number> = {};
  // The first interval starts with the run, on the same clock readings, so its start is the run's.
  let markTime = startTime;
  let markAt = startedAt;
  return () => {
    const now = performance.now();
    // Latencies are pushed in completion order: the interval's are those after the mark.
    const slice = lat.slice(mark).sort((a, b) => a - b);
    const by = Object.fromEntries(Object.entries(errorsBy).map(([k, v]) => [k, v - (markBy[k] ?? 0)]));
    onReport({ ...summarize(slice, (now - markTime) / 1000, errors() - markErrors, undefined, classified ? by : undefined), startedAt: markAt, latencies: undefined });
    mark = lat.length;
    markErrors = errors();
    markBy = { ...errorsBy };
    markTime = now;
    markAt = Date.now();
  };
}

function summarize(sorted: number[], seconds: number, errors: number, firstError: string | undefined, errorsBy?: Record<string, number>): LoadResult {
  const pct = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return {
    ops: sorted.length,
    opsPerSec: sorted.length / seconds,
    p50: pct(0.5),
    p99: pct(0.99),
    errors,
    ...(errorsBy ? { errorsBy } : {}),
    ...(firstError !== undefined ? { firstError } : {}),
    seconds,
    latencies: sorted,
  };
}

/** Error counts by class added up (undefined when no run classified its errors). */
function addErrorsBy(runs: readonly LoadResult[]): Record<string, number> | undefined {
  if (!runs.some((r) => r.errorsBy)) return undefined;
  const by: Record<string, number> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.errorsBy ?? {})) by[k] = (by[k] ?? 0) + v;
  return by;
}

/** Several runs of the same load as one: their writes and time added, percentiles over all writes. */
export function pooled(runs: readonly LoadResult[]): LoadResult {
  const lat = runs.flatMap((r) => r.latencies ?? []).sort((a, b) => a - b);
  const seconds = runs.reduce((s, r) => s + r.seconds, 0);
  const errors = runs.reduce((s, r) => s + r.errors, 0);
  return summarize(lat, seconds, errors, runs.find((r) => r.firstError !== undefined)?.firstError, addErrorsBy(runs));
}

/**
 * Several runs of the same load summarized by their medians (throughput, p50, p99 each the median
 * of the runs'), writes, errors and time added: one round slowed by the machine (steal) moves a
 * median less than it moves a pool.
 */
export function medians(runs: readonly LoadResult[]): LoadResult {
  const errorsBy = addErrorsBy(runs);
  return {
    ops: runs.reduce((s, r) => s + r.ops, 0),
    opsPerSec: median(runs.map((r) => r.opsPerSec)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    errors: runs.reduce((s, r) => s + r.errors, 0),
    ...(errorsBy ? { errorsBy } : {}),
    seconds: runs.reduce((s, r) => s + r.seconds, 0),
  };
}

/** The median (the mean of the middle two for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  if (s.length === 0) return NaN;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The machine's CPU counters (/proc/stat, all CPUs), for cpuSince. */
export function cpuCounters(): number[] {
  return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
}

/**
 * The share of the machine's CPU time since `before` that was busy, and the share the hypervisor
 * gave to someone else (steal): on a shared virtual machine, steal is the noise no run controls.
 */
export function cpuSince(before: number[]): { busy: number; steal: number } {
  // user nice system idle iowait irq softirq steal (guest and guest_nice, which follow, are
  // already counted in user and nice).
  const d = cpuCounters()
    .slice(0, 8)
    .map((v, i) => v - (before[i] ?? 0));
  const total = d.reduce((a, b) => a + b, 0) || 1;
  return { busy: 1 - ((d[3] ?? 0) + (d[4] ?? 0) + (d[7] ?? 0)) / total, steal: (d[7] ?? 0) / total };
}

/** `clients` concurrent writers, each sequential, 1 KiB values over 1,000 keys, for `seconds`. */
export function runLoad(put: (key: string, value: Buffer) => Promise<void>, clients: number, seconds: number): Promise<LoadResult> {
  const value = Buffer.alloc(1024, 0x61);
  return runOps(
    (c, n) => put(`key${(c * 7919 + n) % 1000}`, value),
    clients,
    seconds,
    (i) => put(`warm${i}`, value),
  );
}

export function fmt(r: LoadResult): string {
  const by = r.errorsBy && r.errors > 0 ? `: ${Object.entries(r.errorsBy).map(([k, v]) => `${v} ${k}`).join(', ')}` : '';
  return `${r.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${r.p50.toFixed(2).padStart(6)} ms  p99 ${r.p99.toFixed(2).padStart(6)} ms  (${r.ops} ops, ${r.errors} errors${by})`;
}

export const percentile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

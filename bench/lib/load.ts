// The load generator every write benchmark shares: N concurrent writers, each sequential, for a
// fixed time; throughput and the client's latency percentiles.
import { readFileSync } from 'node:fs';

export interface LoadResult {
  ops: number;
  opsPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  /** The first error seen, for the diagnosis of a run with errors. */
  firstError?: string;
  /** Measured time, s. */
  seconds: number;
  /** Every write's latency, ms, sorted (for pooling runs; left out of JSON output). */
  latencies?: number[];
}

/**
 * `clients` concurrent writers, each sequential, for `seconds`; `op(client, n)` is one write (n
 * counts that writer's writes). `warmUp(i)` runs 50 times first, sequentially, unmeasured
 * (connections, JIT); its errors are ignored.
 */
export async function runOps(op: (client: number, n: number) => Promise<void>, clients: number, seconds: number, warmUp: (i: number) => Promise<void>): Promise<LoadResult> {
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  for (let i = 0; i < 50; i++) await warmUp(i).catch(() => undefined);
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
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
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return summarize(lat, elapsed, errors, firstError);
}

function summarize(sorted: number[], seconds: number, errors: number, firstError: string | undefined): LoadResult {
  const pct = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return {
    ops: sorted.length,
    opsPerSec: sorted.length / seconds,
    p50: pct(0.5),
    p99: pct(0.99),
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    seconds,
    latencies: sorted,
  };
}

/** Several runs of the same load as one: their writes and time added, percentiles over all writes. */
export function pooled(runs: readonly LoadResult[]): LoadResult {
  const lat = runs.flatMap((r) => r.latencies ?? []).sort((a, b) => a - b);
  const seconds = runs.reduce((s, r) => s + r.seconds, 0);
  const errors = runs.reduce((s, r) => s + r.errors, 0);
  return summarize(lat, seconds, errors, runs.find((r) => r.firstError !== undefined)?.firstError);
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
  return `${r.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${r.p50.toFixed(2).padStart(6)} ms  p99 ${r.p99.toFixed(2).padStart(6)} ms  (${r.ops} ops, ${r.errors} errors)`;
}

export const percentile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

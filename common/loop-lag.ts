// The event loop's lag, measured continuously (perf_hooks' histogram, 10 ms resolution) and
// logged once per window: a manager whose loop stalls misses its Raft ticks and heartbeats, so a
// stall is what costs a cluster its leader. The benchmarks read these lines from the logs.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from './logger.js';

export interface LoopLag {
  /** Milliseconds; the window's percentiles and maximum of the delay past the expected tick. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** The histogram's timer period: its samples are the time between two firings, so this much is no lag. */
const RESOLUTION_MS = 10;

export class LoopLagMonitor {
  private readonly histogram: IntervalHistogram;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly windowMs = 10_000,
  ) {
    this.histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  }

  start(): void {
    this.histogram.enable();
    this.timer = setInterval(() => this.report(), this.windowMs);
    this.timer.unref();
  }

  /** The window so far (and a new one started). */
  take(): LoopLag {
    // The histogram counts nanoseconds, the timer's period included in every sample.
    const ms = (ns: number): number => Math.max(0, Math.round(ns / 1e4) / 100 - RESOLUTION_MS);
    const lag = { p50Ms: ms(this.histogram.percentile(50)), p99Ms: ms(this.histogram.percentile(99)), maxMs: ms(this.histogram.max) };
    this.histogram.reset();
    return lag;
  }

  private report(): void {
    if (this.histogram.count === 0) return;
    this.log.info({ ...this.take(), windowMs: this.windowMs }, 'event loop lag');
  }

  stop(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}

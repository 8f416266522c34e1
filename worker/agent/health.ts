// A task's healthcheck, with Docker's semantics: the test runs in the container every interval
// (every start interval during the start period, when one is given); a failure in the start
// period does not count, unless a check already passed; `retries` failures in a row make the task
// unhealthy. A check that outlasts its timeout fails.
import type { HealthConfig } from '../../proto/gen/tswarm/types.js';
import type { ExecResult } from '../exec/executor.js';

/** Docker's defaults (interval, timeout: 30 s; retries: 3; start interval: 5 s). */
export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startIntervalMs: 5_000 } as const;

export interface Unhealthy {
  failures: number;
  last: string;
}

/** The command a healthcheck's test runs: CMD-SHELL through /bin/sh -c; undefined for none (NONE, empty). */
export function healthCommand(hc: HealthConfig | undefined): string[] | undefined {
  const test = hc?.test ?? [];
  if (test.length === 0 || test[0] === 'NONE') return undefined;
  if (test[0] === 'CMD-SHELL') return ['/bin/sh', '-c', test.slice(1).join(' ')];
  return test[0] === 'CMD' ? test.slice(1) : test;
}

/** The delay before the next check: the start interval (default 5 s) while in the start period, before a check passed. */
export function nextDelay(hc: HealthConfig, sinceStartMs: number, passedOnce: boolean): number {
  if (!passedOnce && sinceStartMs < Number(hc.startPeriodMs)) return Number(hc.startIntervalMs) || HEALTH_DEFAULTS.startIntervalMs;
  return Number(hc.intervalMs) || HEALTH_DEFAULTS.intervalMs;
}

/**
 * Runs the checks until the task is unhealthy (resolves) or `signal` aborts (never resolves then);
 * never resolves without a healthcheck. `exec` runs a command in the container.
 */
export function watchHealth(
  hc: HealthConfig | undefined,
  exec: (command: string[]) => Promise<ExecResult>,
  signal: AbortSignal,
  opts: { onPass?: () => void; passedOnce?: boolean } = {},
): Promise<Unhealthy> {
  const command = healthCommand(hc);
  if (!hc || command === undefined) return new Promise(() => undefined);
  const timeout = Number(hc.timeoutMs) || HEALTH_DEFAULTS.timeoutMs;
  const retries = hc.retries || HEALTH_DEFAULTS.retries;
  const startPeriod = Number(hc.startPeriodMs) || 0;
  const startedAt = Date.now();
  return new Promise((resolve) => {
    let failures = 0;
    let passedOnce = opts.passedOnce === true;
    let timer: NodeJS.Timeout | undefined;
    signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    const schedule = (): void => {
      if (!signal.aborted) timer = setTimeout(() => void probe(), nextDelay(hc, Date.now() - startedAt, passedOnce));
    };
    const probe = async (): Promise<void> => {
      if (signal.aborted) return;
      let ok = false;
      let last = '';
      let deadline: NodeJS.Timeout | undefined;
      try {
        const r = await Promise.race([exec(command), new Promise<never>((_, reject) => (deadline = setTimeout(() => reject(new Error(`timed out after ${timeout} ms`)), timeout)))]);
        ok = r.exitCode === 0;
        const out = r.stderr.trim() || r.stdout.trim();
        last = ok ? '' : `exit code ${r.exitCode}${out ? `: ${out.slice(0, 200)}` : ''}`;
      } catch (err) {
        last = (err as Error).message;
      } finally {
        clearTimeout(deadline);
      }
      if (signal.aborted) return;
      if (ok) {
        failures = 0;
        passedOnce = true;
        opts.onPass?.();
      } else if (passedOnce || Date.now() - startedAt >= startPeriod) failures++;
      if (failures >= retries) return resolve({ failures, last });
      schedule();
    };
    schedule();
  });
}

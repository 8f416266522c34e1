// What the benchmarks read from swarmd's JSON log lines: the event loop's lag, logged once per
// window (common/loop-lag.ts), and the Raft leader changes each manager saw (manager/raft/server.ts:
// "raft: leader changed" with the leader's Raft id, the logging node's own role, the term). From
// these: who led when, the leader's lag over a span of time, and the leader changes in it.

export interface LagWindow {
  /** When the window ended (epoch ms): it covers (at - windowMs, at]. */
  at: number;
  windowMs: number;
  p99Ms: number;
  maxMs: number;
}

export interface LeaderEvent {
  at: number;
  term: number;
  /** The leader's Raft id as the logging node knows it (0: none). */
  leader: number;
  /** The logging node's own role after the change. */
  role: string;
}

export interface SwarmdLog {
  host: string;
  lag: LagWindow[];
  leader: LeaderEvent[];
}

/** A span of time in which `host` led (`to` is Infinity while it still leads). */
export interface Leadership {
  host: string;
  from: number;
  to: number;
}

export interface LeaderFigures {
  /** The hosts that led during the span, in order (one re-elected after another's term counts again). */
  leaders: string[];
  /** The leader's lag windows overlapping the span (while it led). */
  windows: number;
  /** The highest p99 of those windows (a window's percentiles do not combine: an upper bound). */
  p99Ms: number;
  maxMs: number;
  /** Leaderships that began during the span. */
  changes: number;
  termFrom: number;
  termTo: number;
}

export function parseSwarmdLog(host: string, text: string): SwarmdLog {
  const log: SwarmdLog = { host, lag: [], leader: [] };
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a line cut by a crash, or not ours
    }
    const at = Date.parse(String(j.time));
    if (Number.isNaN(at)) continue;
    if (j.msg === 'event loop lag') {
      log.lag.push({ at, windowMs: Number(j.windowMs), p99Ms: Number(j.p99Ms), maxMs: Number(j.maxMs) });
    } else if (j.msg === 'raft: leader changed') {
      log.leader.push({ at, term: Number(j.term ?? 0), leader: Number(j.leader ?? 0), role: String(j.role) });
    }
  }
  return log;
}

/** Every host's spans of leadership: from the line where it logged itself leader to its next line. */
export function leaderships(logs: readonly SwarmdLog[]): Leadership[] {
  const spans: Leadership[] = [];
  for (const log of logs) {
    let from: number | undefined;
    for (const e of log.leader) {
      if (e.role === 'leader') from ??= e.at;
      else if (from !== undefined) {
        spans.push({ host: log.host, from, to: e.at });
        from = undefined;
      }
    }
    if (from !== undefined) spans.push({ host: log.host, from, to: Infinity });
  }
  return spans.sort((a, b) => a.from - b.from);
}

/** The spans of leadership overlapping [from, to], cut to it. */
export function leadersDuring(logs: readonly SwarmdLog[], from: number, to: number): Leadership[] {
  return leaderships(logs)
    .filter((s) => s.from < to && s.to > from)
    .map((s) => ({ host: s.host, from: Math.max(s.from, from), to: Math.min(s.to, to) }));
}

/** The highest term any manager had logged by `at` (0 before the first election). */
export function termAt(logs: readonly SwarmdLog[], at: number): number {
  let term = 0;
  for (const log of logs) for (const e of log.leader) if (e.at <= at) term = Math.max(term, e.term);
  return term;
}

/**
 * The leader's figures over [from, to]: the lag windows of whichever manager led, while it led, and
 * the leaderships that began in the span (a term whose first known leader was logged in it; a
 * leader re-elected in a new term counts, as it stopped serving meanwhile).
 */
export function leaderDuring(logs: readonly SwarmdLog[], from: number, to: number): LeaderFigures {
  const spans = leadersDuring(logs, from, to);
  let windows = 0;
  let p99Ms = 0;
  let maxMs = 0;
  for (const span of spans) {
    for (const w of logs.find((l) => l.host === span.host)?.lag ?? []) {
      if (w.at <= span.from || w.at - w.windowMs >= span.to) continue;
      windows++;
      p99Ms = Math.max(p99Ms, w.p99Ms);
      maxMs = Math.max(maxMs, w.maxMs);
    }
  }
  const firstLed = new Map<number, number>();
  for (const log of logs) {
    for (const e of log.leader) if (e.leader !== 0) firstLed.set(e.term, Math.min(firstLed.get(e.term) ?? Infinity, e.at));
  }
  const changes = [...firstLed.values()].filter((at) => at > from && at <= to).length;
  const leaders = spans.map((s) => s.host).filter((h, i, all) => h !== all[i - 1]);
  return { leaders, windows, p99Ms, maxMs, changes, termFrom: termAt(logs, from), termTo: termAt(logs, to) };
}

/** Whether every manager that led in [from, to] has logged the lag window that covers its end. */
export function lagLoggedThrough(logs: readonly SwarmdLog[], from: number, to: number): boolean {
  return leadersDuring(logs, from, to).every((s) => (logs.find((l) => l.host === s.host)?.lag ?? []).some((w) => w.at >= s.to));
}

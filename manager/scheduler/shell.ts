// The scheduler on the leader: watches nodes and the task events that can change a plan, and
// after a burst of them (once none came for debounceMs, or maxLatencyMs after the first, as
// SwarmKit does) reads the store, asks the pure core (scheduler.ts) for a plan, and writes it:
// placed tasks get their node and status ASSIGNED; unplaceable ones keep PENDING with
// status.pendingReason, written only when the reason changes (no churn). The debounce matters for
// throughput: while the allocator streams thousands of PENDING tasks, a pass per event would
// re-read every task and node each time. (20 ms, not SwarmKit's 50: it is latency on every scale.)
//
// The plan is written in large transactions, several in flight (chunked.ts). A transaction that
// loses a race (a task changed between the read and the apply: a version conflict) fails as a
// whole, the others of the pass may apply; nothing is lost, the next pass reads the store again
// and plans anew.
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import type { Logger } from '../../common/logger.js';
import type { LeaderComponent } from '../leader.js';
import { VersionConflictError, type MemoryStore, type StoreEvent, type Watch } from '../store/memory.js';
import { writeChunked } from './chunked.js';
import { isSchedulable, occupiesNode, schedule, type Plan } from './scheduler.js';

export interface SchedulerOptions {
  /** A pass runs once no event came for this long (a burst of events makes one pass). Default 20 ms. */
  debounceMs?: number;
  /** ...or this long after the first event it handles, whatever keeps coming. Default 1 s. */
  maxLatencyMs?: number;
  /** Delay before retrying after a failed write that was not a version conflict. Default 1 s. */
  retryMs?: number;
  /** Tasks per transaction (one that exceeds the size limit of a log entry is split). Default 1000. */
  maxTasksPerTransaction?: number;
  /** Transactions proposed at once (Raft commits them together). Default 8. */
  maxTransactionsInFlight?: number;
  /** Tie-break seed for the core; default: node id order. */
  seed?: number;
  now?: () => number;
}

/** Where the scheduler's time went since it was made (for benchmarks and logs). */
export interface SchedulerStats {
  passes: number;
  /** Reading the store and planning (synchronous CPU time on the event loop), ms. */
  planMs: number;
  /** From the first proposal of a pass until its last transaction was applied, ms. */
  writeMs: number;
  transactions: number;
  placed: number;
}

export class Scheduler implements LeaderComponent {
  readonly name = 'scheduler';
  readonly stats: SchedulerStats = { passes: 0, planMs: 0, writeMs: 0, transactions: 0, placed: 0 };
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly maxLatencyMs: number;
  private readonly retryMs: number;
  private readonly maxPerTx: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private watch: Watch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Events arrived (or a retry is due) since the last pass started. */
  private dirty = false;
  /** When the first and the last of those events came (performance.now(): the debounce needs a real clock). */
  private firstEventAt = 0;
  private lastEventAt = 0;
  private stopped = true;

  constructor(
    private readonly store: MemoryStore,
    log: Logger,
    private readonly opts: SchedulerOptions = {},
  ) {
    this.log = log.child({ component: 'scheduler' });
    this.debounceMs = opts.debounceMs ?? 20;
    this.maxLatencyMs = opts.maxLatencyMs ?? 1000;
    this.retryMs = opts.retryMs ?? 1000;
    this.maxPerTx = opts.maxTasksPerTransaction ?? 1000;
    this.maxInFlight = opts.maxTransactionsInFlight ?? 8;
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    // Watch first, then the first pass re-lists: nothing between the two can be missed.
    const watch = this.store.watch({ kinds: ['task', 'node'], filter: mayChangePlan });
    this.watch = watch;
    void this.follow(watch);
    this.dirty = true;
    this.arm(0, true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.close();
    this.watch = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async follow(watch: Watch): Promise<void> {
    for await (const _ of watch) {
      if (this.stopped || watch !== this.watch) break;
      const t = performance.now();
      if (!this.dirty) this.firstEventAt = t;
      this.dirty = true;
      this.lastEventAt = t;
      this.arm(this.debounceMs, false);
    }
  }

  /**
   * Sets the timer unless it is set or a pass runs (a pass re-arms when it ends). When it fires, a
   * forced pass runs at once; otherwise the pass waits for the debounce or the latency bound.
   */
  private arm(delayMs: number, force: boolean): void {
    if (this.stopped || this.timer || this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      const t = performance.now();
      const wait = Math.min(this.lastEventAt + this.debounceMs - t, this.firstEventAt + this.maxLatencyMs - t);
      if (!force && wait > 0) {
        this.arm(wait, false);
        return;
      }
      this.running = this.pass().then((retryIn) => {
        this.running = undefined;
        if (!this.dirty) return;
        if (retryIn > 0) this.arm(retryIn, true);
        else this.arm(Math.max(this.lastEventAt + this.debounceMs - performance.now(), 0), false);
      });
    }, delayMs);
  }

  /** Plans and writes once; resolves with the delay before the next pass (if one is due). */
  private async pass(): Promise<number> {
    if (this.stopped) return 0;
    this.dirty = false;
    const started = performance.now();
    const tasks = this.store.list('task');
    const pending = tasks.filter(isSchedulable);
    if (pending.length === 0) return 0;
    try {
      const plan = schedule({ pending, nodes: this.store.list('node'), placed: tasks.filter(occupiesNode), seed: this.opts.seed });
      const planned = performance.now();
      this.stats.passes += 1;
      this.stats.planMs += planned - started;
      try {
        await this.write(pending, plan);
      } finally {
        this.stats.writeMs += performance.now() - planned;
      }
      return 0;
    } catch (err) {
      if (this.stopped) return 0;
      this.dirty = true;
      if (err instanceof VersionConflictError) {
        this.log.debug({ err: err.message }, 'a task changed while it was scheduled; planning again');
        return 0;
      }
      this.log.warn({ err }, `writing the schedule failed; retrying in ${this.retryMs} ms`);
      return this.retryMs;
    }
  }

  /** Writes the plan, maxTasksPerTransaction tasks per transaction, skipping what is unchanged. */
  private async write(pending: readonly Task[], plan: Plan): Promise<void> {
    const read = new Map(pending.map((t) => [t.id, t]));
    // What each task gets: its node (placed) or a new pending reason (written only when it changed).
    const nodeOf = new Map<string, string>();
    const reasonOf = new Map<string, string>();
    const ids: string[] = [];
    const now = this.now();
    for (const { taskId, nodeId } of plan.placements) {
      ids.push(taskId);
      nodeOf.set(taskId, nodeId);
    }
    for (const { taskId, reason } of plan.unplaced) {
      if (read.get(taskId)?.status?.pendingReason === reason) continue;
      ids.push(taskId);
      reasonOf.set(taskId, reason);
    }
    const change = (t: Task): Task => {
      const status = t.status ?? emptyStatus();
      const nodeId = nodeOf.get(t.id);
      if (nodeId !== undefined) return { ...t, nodeId, status: { ...status, state: TaskState.TASK_STATE_ASSIGNED, message: 'assigned', timestampUnixMs: now, pendingReason: '' } };
      return { ...t, status: { ...status, pendingReason: reasonOf.get(t.id)! } };
    };
    const written = await writeChunked(this.store, ids, { maxPerTx: this.maxPerTx, maxInFlight: this.maxInFlight, stopped: () => this.stopped }, (tx, chunk) => {
      let placed = 0;
      for (const id of chunk) {
        const before = read.get(id)!;
        const current = tx.get('task', id);
        // Changed since the plan was made: leave it to the next pass (its event triggers one).
        if (!current || current.meta?.version !== before.meta?.version) continue;
        tx.update('task', change(current));
        if (nodeOf.has(id)) placed++;
      }
      return placed;
    });
    this.stats.transactions += written.transactions;
    this.stats.placed += written.counted;
    // The tasks of a failed transaction are planned again by the next pass.
    if (written.failure) throw written.failure.err;
    const assigned = written.counted;
    if (ids.length > 0) this.log.debug({ assigned, unplaced: plan.unplaced.length }, 'schedule written');
  }
}

/**
 * Whether an event can change what a pass would do: any node change; a task that is (or became)
 * schedulable; a task that starts or stops taking up room on a node. A running task's status
 * updates, the bulk of the events in a busy cluster, are none of these.
 */
export function mayChangePlan(e: StoreEvent): boolean {
  if (e.kind !== 'task') return true;
  const t = e.object as Task;
  if (e.action === 'remove') return occupiesNode(t);
  const old = e.old as Task | undefined;
  return isSchedulable(t) || occupiesNode(t) !== (old !== undefined && occupiesNode(old));
}

function emptyStatus(): NonNullable<Task['status']> {
  return { timestampUnixMs: 0, state: TaskState.TASK_STATE_PENDING, message: '', err: '', pendingReason: '' };
}

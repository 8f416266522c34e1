// The scheduler on the leader: watches tasks and nodes, and after a burst of events (on the next
// tick, at most one pass per minIntervalMs) reads the store, asks the pure core (scheduler.ts) for
// a plan, and writes it: placed tasks get their node and status ASSIGNED; unplaceable ones keep
// PENDING with status.pendingReason, written only when the reason changes (no churn).
//
// A write that loses a race (the task changed between the read and the apply: a version conflict)
// fails as a whole; nothing is lost, the next pass reads the store again and plans anew.
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import type { Logger } from '../../common/logger.js';
import type { LeaderComponent } from '../leader.js';
import { VersionConflictError, type MemoryStore, type Watch } from '../store/memory.js';
import { isSchedulable, occupiesNode, schedule, type Plan } from './scheduler.js';

export interface SchedulerOptions {
  /** Least time between two passes (a burst of events makes one pass). Default 50 ms. */
  minIntervalMs?: number;
  /** Delay before retrying after a failed write that was not a version conflict. Default 1 s. */
  retryMs?: number;
  /** Tasks per transaction (one log entry must stay under the store's size limit). Default 200. */
  maxTasksPerTransaction?: number;
  /** Tie-break seed for the core; default: node id order. */
  seed?: number;
  now?: () => number;
}

export class Scheduler implements LeaderComponent {
  readonly name = 'scheduler';
  private readonly log: Logger;
  private readonly minIntervalMs: number;
  private readonly retryMs: number;
  private readonly maxPerTx: number;
  private readonly now: () => number;
  private watch: Watch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Events arrived (or a retry is due) since the last pass started. */
  private dirty = false;
  private lastPassAt = -Infinity;
  private stopped = true;

  constructor(
    private readonly store: MemoryStore,
    log: Logger,
    private readonly opts: SchedulerOptions = {},
  ) {
    this.log = log.child({ component: 'scheduler' });
    this.minIntervalMs = opts.minIntervalMs ?? 50;
    this.retryMs = opts.retryMs ?? 1000;
    this.maxPerTx = opts.maxTasksPerTransaction ?? 200;
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    // Watch first, then the first pass re-lists: nothing between the two can be missed.
    const watch = this.store.watch({ kinds: ['task', 'node'] });
    this.watch = watch;
    void this.follow(watch);
    this.kick(0);
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
      this.kick(0);
    }
  }

  /** Asks for a pass no earlier than delayMs from now and minIntervalMs after the last one. */
  private kick(delayMs: number): void {
    this.dirty = true;
    if (this.stopped || this.timer || this.running) return;
    const wait = Math.max(delayMs, this.lastPassAt + this.minIntervalMs - this.now(), 0);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.pass().then((retryIn) => {
        this.running = undefined;
        if (this.dirty) this.kick(retryIn);
      });
    }, wait);
  }

  /** Plans and writes once; resolves with the delay before the next pass (if one is due). */
  private async pass(): Promise<number> {
    if (this.stopped) return 0;
    this.dirty = false;
    this.lastPassAt = this.now();
    const tasks = this.store.list('task');
    const pending = tasks.filter(isSchedulable);
    if (pending.length === 0) return 0;
    try {
      const plan = schedule({ pending, nodes: this.store.list('node'), placed: tasks.filter(occupiesNode), seed: this.opts.seed });
      await this.write(pending, plan);
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
    const changes: ((t: Task) => Task | undefined)[] = [];
    const ids: string[] = [];
    const now = this.now();
    for (const { taskId, nodeId } of plan.placements) {
      ids.push(taskId);
      changes.push((t) => ({ ...t, nodeId, status: { ...emptyStatus(), ...t.status, state: TaskState.TASK_STATE_ASSIGNED, message: 'assigned', timestampUnixMs: now, pendingReason: '' } }));
    }
    for (const { taskId, reason } of plan.unplaced) {
      if (read.get(taskId)?.status?.pendingReason === reason) continue;
      ids.push(taskId);
      changes.push((t) => ({ ...t, status: { ...emptyStatus(), ...t.status, pendingReason: reason } }));
    }
    const placed = new Set(plan.placements.map((p) => p.taskId));
    let assigned = 0;
    for (let i = 0; i < ids.length; i += this.maxPerTx) {
      if (this.stopped) return;
      const chunk = ids.slice(i, i + this.maxPerTx);
      await this.store.update((tx) => {
        chunk.forEach((id, j) => {
          const before = read.get(id)!;
          const current = tx.get('task', id);
          // Changed since the plan was made: leave it to the next pass (its event triggers one).
          if (!current || current.meta?.version !== before.meta?.version) return;
          const next = changes[i + j]!(current);
          if (next) tx.update('task', next);
        });
      });
      assigned += chunk.filter((id) => placed.has(id)).length;
    }
    if (ids.length > 0) this.log.debug({ assigned, unplaced: plan.unplaced.length }, 'schedule written');
  }
}

function emptyStatus(): NonNullable<Task['status']> {
  return { timestampUnixMs: 0, state: TaskState.TASK_STATE_PENDING, message: '', err: '', pendingReason: '' };
}

// The allocator on the leader: gives a new task what must be unique cluster-wide, then moves it
// NEW → PENDING for the scheduler.
//
// Today there is nothing to allocate: overlay networks (addresses, network ids) come with the
// overlay work, and host-mode published ports are unique per node, which the scheduler's host-port
// filter enforces when it picks the node. So this is a small loop: after a burst of task events
// (on the next tick), transactions of up to 1,000 tasks, several in flight (../scheduler/chunked.ts),
// move every NEW task that is still wanted (desired state at most RUNNING) to PENDING. Tasks
// already told to stop while NEW are left to the orchestrator.
// On start it re-lists, so tasks created while no leader ran are picked up.
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import { stateRank } from '../../common/task-state.js';
import type { Logger } from '../../common/logger.js';
import type { LeaderComponent } from '../leader.js';
import { VersionConflictError, type MemoryStore, type StoreEvent, type Watch } from '../store/memory.js';
import { writeChunked } from '../scheduler/chunked.js';

export interface AllocatorOptions {
  /** Delay before retrying after a failed write that was not a version conflict. Default 1 s. */
  retryMs?: number;
  /** Tasks per transaction (one that exceeds the size limit of a log entry is split). Default 1000. */
  maxTasksPerTransaction?: number;
  /** Transactions proposed at once (Raft commits them together). Default 8. */
  maxTransactionsInFlight?: number;
  now?: () => number;
}

const RUNNING = stateRank(TaskState.TASK_STATE_RUNNING);

/** Whether the allocator should move the task to PENDING. */
export function needsAllocation(t: Task): boolean {
  return (t.status?.state ?? TaskState.TASK_STATE_NEW) === TaskState.TASK_STATE_NEW && stateRank(t.desiredState) <= RUNNING;
}

export class Allocator implements LeaderComponent {
  readonly name = 'allocator';
  private readonly log: Logger;
  private readonly retryMs: number;
  private readonly maxPerTx: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private watch: Watch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Tasks seen NEW since the last pass. */
  private queued = new Set<string>();
  private stopped = true;

  constructor(
    private readonly store: MemoryStore,
    log: Logger,
    opts: AllocatorOptions = {},
  ) {
    this.log = log.child({ component: 'allocator' });
    this.retryMs = opts.retryMs ?? 1000;
    this.maxPerTx = opts.maxTasksPerTransaction ?? 1000;
    this.maxInFlight = opts.maxTransactionsInFlight ?? 8;
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const watch = this.store.watch({ kinds: ['task'], filter: (e: StoreEvent) => e.action !== 'remove' && needsAllocation(e.object as Task) });
    this.watch = watch;
    void this.follow(watch);
    for (const t of this.store.list('task')) if (needsAllocation(t)) this.queued.add(t.id);
    this.kick(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.close();
    this.watch = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    this.queued.clear();
  }

  private async follow(watch: Watch): Promise<void> {
    for await (const e of watch) {
      if (this.stopped || watch !== this.watch) break;
      this.queued.add(e.object.id);
      this.kick(0);
    }
  }

  private kick(delayMs: number): void {
    if (this.stopped || this.timer || this.running || this.queued.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.pass().then((retryIn) => {
        this.running = undefined;
        this.kick(retryIn);
      });
    }, delayMs);
  }

  /**
   * Transactions of the queued tasks (see writeChunked: up to maxTransactionsInFlight proposed at
   * once, so Raft commits them together); resolves with the delay before the next pass. The tasks
   * of a transaction that failed, and of those not proposed, are queued again.
   */
  private async pass(): Promise<number> {
    const ids = [...this.queued];
    this.queued.clear();
    const now = this.now();
    const written = await writeChunked(this.store, ids, { maxPerTx: this.maxPerTx, maxInFlight: this.maxInFlight, stopped: () => this.stopped }, (tx, chunk) => {
      for (const id of chunk) {
        const t = tx.get('task', id);
        if (!t || !needsAllocation(t)) continue;
        tx.update('task', {
          ...t,
          status: { err: '', pendingReason: '', ...t.status, state: TaskState.TASK_STATE_PENDING, message: 'pending task scheduling', timestampUnixMs: now },
        });
      }
      return 0;
    });
    if (this.stopped) return 0;
    for (const id of written.failed) this.queued.add(id);
    if (!written.failure) return 0;
    const { err } = written.failure;
    if (err instanceof VersionConflictError) {
      this.log.debug({ err: err.message }, 'a task changed while it was allocated; again');
      return 0;
    }
    this.log.warn({ err }, `allocating tasks failed; retrying in ${this.retryMs} ms`);
    return this.retryMs;
  }
}

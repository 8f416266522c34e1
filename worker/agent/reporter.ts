// The status reporter: task statuses queue here and go to the dispatcher in batches: a status
// queued while fewer than MAX_IN_FLIGHT calls are in flight goes at once (a task's RUNNING, just
// after its STARTING, is news the cluster waits for: its VIP's backends, a rolling update's next
// step); those queued meanwhile go together when a call returns. A task's later status replaces
// an earlier one still queued; the dispatcher keeps only what moves a task forward, so two calls
// in flight cannot move one back. What could not be sent (no session, a failed call) stays queued and goes with the next
// session.
import type { TaskStatusUpdate } from '../../proto/gen/tswarm/dispatcher.js';
import type { TaskStatus } from '../../proto/gen/tswarm/types.js';
import { stateRank } from '../../common/task-state.js';

const MAX_IN_FLIGHT = 2;
const RETRY_MS = 500;

/**
 * Sends one batch: 'sent'; 'failed' (tried again in RETRY_MS); 'no-session' (kept until the next
 * session flushes).
 */
export type SendStatus = (updates: TaskStatusUpdate[]) => Promise<'sent' | 'failed' | 'no-session'>;

export class StatusReporter {
  private pending = new Map<string, TaskStatus>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private inFlight = 0;

  constructor(private readonly send: SendStatus) {}

  /** Queues a status (a status earlier in the state machine than one queued is dropped). */
  queue(taskId: string, status: TaskStatus): void {
    const prev = this.pending.get(taskId);
    if (!prev || stateRank(status.state) >= stateRank(prev.state)) this.pending.set(taskId, status);
    this.schedule();
  }

  /** The next call, on the next turn of the loop (gathering what is queued in this one), unless MAX_IN_FLIGHT are out. */
  private schedule(): void {
    if (this.timer || this.stopped || this.inFlight >= MAX_IN_FLIGHT || this.pending.size === 0) return;
    this.timer = setTimeout(() => void this.flush(), 0);
  }

  /** A status of this task is waiting to be sent. */
  has(taskId: string): boolean {
    return this.pending.has(taskId);
  }

  /** Sends what is queued now (e.g. when a session was established). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0 || this.inFlight >= MAX_IN_FLIGHT) return;
    const batch = this.pending;
    this.pending = new Map();
    this.inFlight++;
    let result: Awaited<ReturnType<SendStatus>>;
    try {
      result = await this.send([...batch].map(([taskId, status]) => ({ taskId, status })));
    } finally {
      this.inFlight--;
    }
    if (result !== 'sent') for (const [id, st] of batch) if (!this.pending.has(id)) this.pending.set(id, st);
    if (result === 'failed' && !this.stopped && !this.timer) this.timer = setTimeout(() => void this.flush(), RETRY_MS);
    else if (result === 'sent') this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

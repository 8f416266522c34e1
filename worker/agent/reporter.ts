// The status reporter: task statuses queue here and go to the dispatcher in batches (one
// UpdateTaskStatus call per 25 ms at most); a task's later status replaces an earlier one still
// queued. What could not be sent (no session, a failed call) stays queued and goes with the next
// session.
import type { TaskStatusUpdate } from '../../proto/gen/tswarm/dispatcher.js';
import type { TaskStatus } from '../../proto/gen/tswarm/types.js';
import { stateRank } from '../../common/task-state.js';

const BATCH_MS = 25;
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

  constructor(private readonly send: SendStatus) {}

  /** Queues a status (a status earlier in the state machine than one queued is dropped). */
  queue(taskId: string, status: TaskStatus): void {
    const prev = this.pending.get(taskId);
    if (!prev || stateRank(status.state) >= stateRank(prev.state)) this.pending.set(taskId, status);
    if (!this.timer && !this.stopped) this.timer = setTimeout(() => void this.flush(), BATCH_MS);
  }

  /** A status of this task is waiting to be sent. */
  has(taskId: string): boolean {
    return this.pending.has(taskId);
  }

  /** Sends what is queued now (e.g. when a session was established). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const result = await this.send([...batch].map(([taskId, status]) => ({ taskId, status })));
    if (result === 'sent') return;
    for (const [id, st] of batch) if (!this.pending.has(id)) this.pending.set(id, st);
    if (result === 'failed' && !this.stopped && !this.timer) this.timer = setTimeout(() => void this.flush(), RETRY_MS);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

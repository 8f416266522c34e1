// One task's controller: the shell around step.ts. It observes the task's container, asks
// `decide` what to report and what to do next, reports, performs that one operation on the
// executor, and goes round again until the task is done on this node. The container id is the
// task id, so a controller made afresh after a restart picks up where the last one was.
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { TaskState, type TaskStatus } from '../../proto/gen/tswarm/types.js';
import { stateRank, wantsStop } from '../../common/task-state.js';
import type { Logger } from '../../common/logger.js';
import { NoSuchContainerError, type ContainerSpec, type Executor } from '../exec/executor.js';
import { hostPorts } from './container-spec.js';
import { healthCommand, watchHealth } from './health.js';
import type { Slots } from './slots.js';
import { decide, type Observation, type Operation, type StatusChange } from './step.js';

/** Docker's stop grace period when the spec gives none. */
export const DEFAULT_STOP_GRACE_MS = 10_000;

/** What a controller needs from its node. */
export interface ControllerDeps {
  executor: Executor;
  /** Bounds the prepares and starts in flight (see slots.ts). */
  slots: Slots;
  /** Pulls the image, writes the task's files and builds the executor's spec (throws to reject the task). */
  prepareSpec(task: Task): Promise<ContainerSpec>;
  /** Sends a status towards the managers. */
  report(taskId: string, status: TaskStatus): void;
  log: Logger;
}

/**
 * Stopping and removing must not be given up on after one failure (a busy machine can fail a
 * spawn): a container left running would run on unseen. Five attempts, a second apart; the
 * last error is logged and thrown. NoSuchContainerError is final at once.
 */
export async function retry<T>(log: Logger, what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof NoSuchContainerError) throw err;
      log.warn({ err: (err as Error).message, attempt }, `agent: ${what} failed`);
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

export class TaskController {
  done = false;
  private withdrawn = false;
  /** Woken whenever the desired state changes (or the task is withdrawn). */
  private changed: (() => void) | undefined;
  /** A healthcheck passed since this controller saw the container run (a task with one is RUNNING only then). */
  private healthy = false;

  constructor(
    public task: Task,
    private readonly deps: ControllerDeps,
  ) {}

  get state(): TaskState {
    return this.task.status?.state ?? TaskState.TASK_STATE_ASSIGNED;
  }

  private get desired(): TaskState {
    return this.withdrawn ? TaskState.TASK_STATE_REMOVE : this.task.desiredState;
  }

  /** A new version of the task from the managers: its desired state may have changed; its status only moves forward. */
  update(task: Task): void {
    this.task = { ...task, status: stateRank(task.status?.state) > stateRank(this.state) ? task.status : this.task.status };
    this.changed?.();
  }

  /** The task is no longer assigned here: stop it if it runs. */
  withdraw(): void {
    this.withdrawn = true;
    this.changed?.();
  }

  /** Resolves once `pred` holds for the desired state (at once if it does). */
  private async desiredUntil(pred: (d: TaskState) => boolean, signal?: AbortSignal): Promise<void> {
    while (!pred(this.desired) && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        this.changed = resolve;
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }

  private report(c: StatusChange): void {
    if (stateRank(c.state) <= stateRank(this.state)) return;
    const published = c.state === TaskState.TASK_STATE_RUNNING ? hostPorts(this.task) : [];
    const status: TaskStatus = {
      timestampUnixMs: Date.now(),
      state: c.state,
      message: c.message,
      err: c.err ?? '',
      pendingReason: '',
      ...(c.container ? { container: { containerId: this.task.id, ...c.container } } : {}),
      ...(published.length > 0 ? { portStatus: { ports: published.map((p) => p.config) } } : {}),
    };
    this.task = { ...this.task, status };
    this.deps.report(this.task.id, status);
  }

  private get graceMs(): number {
    const g = this.task.spec?.container?.stopGracePeriodMs;
    return g === undefined ? DEFAULT_STOP_GRACE_MS : Number(g);
  }

  async run(): Promise<void> {
    try {
      let obs = await this.observe();
      for (;;) {
        const step = decide({ state: this.state, desired: this.desired }, obs);
        if (step.unpublish) await this.unpublish();
        for (const r of step.reports) this.report(r);
        if (step.next === 'none') return;
        obs = await this.perform(step.next);
      }
    } finally {
      this.done = true;
    }
  }

  private async observe(): Promise<Observation> {
    const info = await this.deps.executor.inspect(this.task.id).catch(() => undefined);
    if (!info) return { kind: 'absent' };
    if (info.status === 'created') return { kind: 'created' };
    if (info.status === 'running') {
      // A task already RUNNING (a restarted agent's) does not go back; it is RUNNING at its next pass anyway.
      const waiting = healthCommand(this.task.spec?.container?.healthcheck) !== undefined && !this.healthy && this.state !== TaskState.TASK_STATE_RUNNING;
      return waiting ? { kind: 'starting', pid: info.pid } : { kind: 'running', pid: info.pid };
    }
    return { kind: 'exited', exit: info.exit ?? { exitCode: -1, oomKilled: false, finishedAt: '', error: 'exit status unknown' } };
  }

  private async perform(op: Exclude<Operation, 'none'>): Promise<Observation> {
    const { executor: ex, slots, log } = this.deps;
    const id = this.task.id;
    switch (op) {
      case 'prepare':
        try {
          const spec = await this.deps.prepareSpec(this.task);
          await slots.run(() => ex.prepare(spec));
          return { kind: 'created' };
        } catch (err) {
          return { kind: 'failed', op: 'prepare', error: (err as Error).message };
        }
      case 'hold':
        await this.desiredUntil((d) => d !== TaskState.TASK_STATE_READY);
        return this.observe();
      case 'start':
        try {
          await slots.run(() => ex.start(id), true);
        } catch (err) {
          return { kind: 'failed', op: 'start', error: (err as Error).message };
        }
        return this.observe();
      case 'watch':
        return this.watch();
      case 'stop': {
        const exit = await retry(log, `stop ${id}`, () => ex.stop(id, this.graceMs));
        return { kind: 'exited', exit };
      }
      case 'remove':
        await retry(log, `remove ${id}`, () => ex.remove(id, { force: true })).catch((err: unknown) => {
          if (!(err instanceof NoSuchContainerError)) throw err;
        });
        return { kind: 'absent' };
    }
  }

  /** Running: waits for the exit, a stop request or an unhealthy verdict, whichever comes first. */
  private async watch(): Promise<Observation> {
    const abort = new AbortController();
    try {
      const exited = this.deps.executor.wait(this.task.id, abort.signal).then((exit): Observation => ({ kind: 'exited', exit }));
      const stop = this.desiredUntil(wantsStop, abort.signal).then((): 'stop' => 'stop');
      // Its first passing check makes a starting task RUNNING (observed again, then watched again).
      let passed: (() => void) | undefined;
      const firstPass = new Promise<'passed'>((resolve) => (passed = () => resolve('passed')));
      const onPass = (): void => {
        if (this.healthy) return;
        this.healthy = true;
        passed?.();
      };
      const health = watchHealth(this.task.spec?.container?.healthcheck, (cmd) => this.deps.executor.exec(this.task.id, cmd), abort.signal, { onPass, passedOnce: this.healthy }).then(
        (u): Observation => ({ kind: 'unhealthy', pid: this.task.status?.container?.pid ?? 0, ...u }),
      );
      const first = await Promise.race([exited, stop, health, firstPass]);
      return first === 'stop' || first === 'passed' ? this.observe() : first;
    } finally {
      abort.abort();
    }
  }

  /**
   * The task's container ended: its published ports are withdrawn before the terminal state is
   * reported, since the scheduler frees them on that report and may place the next task of the
   * port here. A failure is logged; the ports go with the container at the latest.
   */
  private async unpublish(): Promise<void> {
    if (hostPorts(this.task).length === 0) return;
    await this.deps.executor.unpublish(this.task.id).catch((err: unknown) => this.deps.log.warn({ task: this.task.id }, `agent: could not withdraw the published ports: ${(err as Error).message}`));
  }
}

// The controller shell around step.ts, against a scripted executor (no containers): the operations
// it asks for, in order, the stop grace period it passes (absent: Docker's 10 s; 0: at once), a
// task held at READY until it is desired RUNNING, and a stop request that reaches a running task.
import { describe, expect, it } from 'vitest';
import { Task } from '../../proto/gen/tswarm/objects.js';
import { TaskState, type TaskStatus } from '../../proto/gen/tswarm/types.js';
import { createLogger } from '../../common/logger.js';
import type { ContainerInfo, ContainerSpec, Executor, ExitStatus } from '../exec/executor.js';
import { TaskController } from './controller.js';
import { Slots } from './slots.js';

const log = createLogger({ node: 'test', component: 'test', level: 'silent' });

/** An executor that records the calls and keeps one container's status. */
class ScriptedExecutor {
  calls: string[] = [];
  status: ContainerInfo['status'] | undefined;
  private exited: ((x: ExitStatus) => void) | undefined;
  private readonly exit = new Promise<ExitStatus>((r) => (this.exited = r));

  info(id: string): ContainerInfo {
    return { id, status: this.status!, image: 'i', runtime: 'r', pid: this.status === 'running' ? 42 : 0, monitorPid: 1, createdAt: '', bundle: '', logPath: '', ...(this.status === 'exited' ? { exit: { exitCode: 143, oomKilled: false, finishedAt: '' } } : {}) };
  }
  inspect(id: string): Promise<ContainerInfo> {
    if (this.status === undefined) return Promise.reject(new Error('no such container'));
    return Promise.resolve(this.info(id));
  }
  prepare(spec: ContainerSpec): Promise<ContainerInfo> {
    this.calls.push('prepare');
    this.status = 'created';
    return Promise.resolve(this.info(spec.id));
  }
  start(): Promise<void> {
    this.calls.push('start');
    this.status = 'running';
    return Promise.resolve();
  }
  wait(_id: string, signal?: AbortSignal): Promise<ExitStatus> {
    return new Promise((resolve, reject) => {
      void this.exit.then(resolve);
      signal?.addEventListener('abort', () => reject(new Error('aborted')));
    });
  }
  stop(_id: string, graceMs: number): Promise<ExitStatus> {
    this.calls.push(`stop ${graceMs}`);
    this.status = 'exited';
    const x = { exitCode: 143, oomKilled: false, finishedAt: '' };
    this.exited?.(x);
    return Promise.resolve(x);
  }
  remove(): Promise<void> {
    this.calls.push('remove');
    this.status = undefined;
    return Promise.resolve();
  }
  unpublish(): Promise<void> {
    return Promise.resolve();
  }
  /** The healthcheck's exit codes, in turn (the last repeats); none: no exec here. */
  checks: number[] = [];
  exec(): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    if (this.checks.length === 0) return Promise.reject(new Error('no exec here'));
    const exitCode = this.checks.length > 1 ? this.checks.shift()! : this.checks[0]!;
    return Promise.resolve({ exitCode, stdout: '', stderr: '' });
  }
}

function controller(container: Record<string, unknown>, desired: TaskState): { c: TaskController; ex: ScriptedExecutor; reported: TaskState[] } {
  const ex = new ScriptedExecutor();
  const reported: TaskState[] = [];
  const task = Task.fromPartial({ id: 't1', desiredState: desired, status: { state: TaskState.TASK_STATE_ASSIGNED }, spec: { container: { image: 'busybox', ...container } } });
  const c = new TaskController(task, {
    executor: ex as unknown as Executor,
    slots: new Slots(1),
    prepareSpec: (t) => Promise.resolve({ id: t.id } as ContainerSpec),
    report: (_id: string, s: TaskStatus) => reported.push(s.state),
    log,
  });
  return { c, ex, reported };
}

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('TaskController', () => {
  it.each<[string, Record<string, unknown>, number]>([
    ["absent: Docker's 10 s", {}, 10_000],
    ['2 s', { stopGracePeriodMs: 2000 }, 2000],
    ['0: at once', { stopGracePeriodMs: 0 }, 0],
  ])('stops a running task told to stop with the grace period given (%s)', async (_what, container, grace) => {
    const { c, ex, reported } = controller(container, TaskState.TASK_STATE_RUNNING);
    const done = c.run();
    await tick();
    expect(ex.calls).toEqual(['prepare', 'start']);
    c.update({ ...c.task, desiredState: TaskState.TASK_STATE_SHUTDOWN });
    await done;
    expect(ex.calls).toEqual(['prepare', 'start', `stop ${grace}`]);
    expect(reported).toEqual([TaskState.TASK_STATE_ACCEPTED, TaskState.TASK_STATE_PREPARING, TaskState.TASK_STATE_READY, TaskState.TASK_STATE_STARTING, TaskState.TASK_STATE_RUNNING, TaskState.TASK_STATE_SHUTDOWN]);
  });

  it('holds a task desired READY prepared, and starts it once desired RUNNING', async () => {
    const { c, ex, reported } = controller({}, TaskState.TASK_STATE_READY);
    const done = c.run();
    await tick();
    expect(ex.calls).toEqual(['prepare']);
    expect(reported.at(-1)).toBe(TaskState.TASK_STATE_READY);
    c.update({ ...c.task, desiredState: TaskState.TASK_STATE_RUNNING });
    await tick();
    expect(ex.calls).toEqual(['prepare', 'start']);
    expect(reported.at(-1)).toBe(TaskState.TASK_STATE_RUNNING);
    c.withdraw();
    await done;
    expect(ex.calls.at(-1)).toBe('stop 10000');
  });

  it('keeps a task with a healthcheck STARTING until a check passes, then RUNNING', async () => {
    const { c, ex, reported } = controller({ healthcheck: { test: ['CMD', 'check'], intervalMs: 30, timeoutMs: 1000, retries: 5, startPeriodMs: 0, startIntervalMs: 0 } }, TaskState.TASK_STATE_RUNNING);
    ex.checks = [1, 1, 0];
    const done = c.run();
    await tick(45);
    expect(ex.calls).toEqual(['prepare', 'start']);
    expect(reported.at(-1)).toBe(TaskState.TASK_STATE_STARTING);
    await tick(120);
    expect(reported.at(-1)).toBe(TaskState.TASK_STATE_RUNNING);
    c.withdraw();
    await done;
  });

  it('removes a held task that is told to stop, without starting it', async () => {
    const { c, ex, reported } = controller({}, TaskState.TASK_STATE_READY);
    const done = c.run();
    await tick();
    c.update({ ...c.task, desiredState: TaskState.TASK_STATE_SHUTDOWN });
    await done;
    expect(ex.calls).toEqual(['prepare', 'remove']);
    expect(reported.at(-1)).toBe(TaskState.TASK_STATE_SHUTDOWN);
  });
});

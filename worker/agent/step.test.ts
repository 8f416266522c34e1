// The task's progress as a pure function: every observation from every state, and whole runs of
// the step function against a scripted executor (no containers).
import { describe, expect, it } from 'vitest';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import { stateRank } from '../../common/task-state.js';
import { decide, type Observation, type Operation, type Progress } from './step.js';

const S = TaskState;
const exit = (exitCode: number, extra: Partial<{ signal: string; oomKilled: boolean; error: string }> = {}): Observation => ({
  kind: 'exited',
  exit: { exitCode, oomKilled: false, finishedAt: '2026-12-07T00:00:00Z', ...extra },
});

/** Steps from `start` through the scripted observations; returns the reported states and the operations asked for. */
function run(start: Progress, observations: Observation[]): { states: TaskState[]; ops: Operation[]; final: TaskState } {
  let p = { ...start };
  const states: TaskState[] = [];
  const ops: Operation[] = [];
  for (const o of observations) {
    const step = decide(p, o);
    for (const r of step.reports) {
      states.push(r.state);
      p = { ...p, state: r.state };
    }
    ops.push(step.next);
    if (step.next === 'none') break;
  }
  return { states, ops, final: p.state };
}

describe('decide', () => {
  it('runs a new task to RUNNING, then COMPLETE on exit 0', () => {
    const r = run({ state: S.TASK_STATE_ASSIGNED, desired: S.TASK_STATE_RUNNING }, [{ kind: 'absent' }, { kind: 'created' }, { kind: 'running', pid: 7 }, exit(0)]);
    expect(r.states).toEqual([S.TASK_STATE_ACCEPTED, S.TASK_STATE_PREPARING, S.TASK_STATE_READY, S.TASK_STATE_STARTING, S.TASK_STATE_RUNNING, S.TASK_STATE_COMPLETE]);
    expect(r.ops).toEqual(['prepare', 'start', 'watch', 'none']);
  });

  it('keeps a task whose healthcheck has not passed STARTING, watched; RUNNING once it passed; stops it when told', () => {
    const r = run({ state: S.TASK_STATE_ASSIGNED, desired: S.TASK_STATE_RUNNING }, [{ kind: 'absent' }, { kind: 'created' }, { kind: 'starting', pid: 7 }, { kind: 'running', pid: 7 }]);
    expect(r.states).toEqual([S.TASK_STATE_ACCEPTED, S.TASK_STATE_PREPARING, S.TASK_STATE_READY, S.TASK_STATE_STARTING, S.TASK_STATE_RUNNING]);
    expect(r.ops).toEqual(['prepare', 'start', 'watch', 'watch']);
    expect(decide({ state: S.TASK_STATE_STARTING, desired: S.TASK_STATE_SHUTDOWN }, { kind: 'starting', pid: 7 })).toEqual({ unpublish: false, reports: [], next: 'stop' });
    // Unhealthy before it ever passed: FAILED from STARTING.
    expect(decide({ state: S.TASK_STATE_STARTING, desired: S.TASK_STATE_RUNNING }, { kind: 'unhealthy', pid: 7, failures: 2, last: 'exit code 1' }).reports[0]).toMatchObject({ state: S.TASK_STATE_FAILED });
  });

  it('fails on a non-zero exit, naming the signal or the OOM kill', () => {
    const running = { state: S.TASK_STATE_RUNNING, desired: S.TASK_STATE_RUNNING };
    expect(decide(running, exit(3)).reports[0]).toMatchObject({ state: S.TASK_STATE_FAILED, message: 'exit code 3', err: 'task: non-zero exit (3)' });
    expect(decide(running, exit(137, { signal: 'SIGKILL' })).reports[0]).toMatchObject({ message: 'killed by SIGKILL' });
    expect(decide(running, exit(137, { oomKilled: true })).reports[0]).toMatchObject({ message: 'killed: out of memory' });
    expect(decide(running, exit(-1, { error: 'the monitor exited' })).reports[0]).toMatchObject({ err: 'the monitor exited' });
    expect(decide(running, exit(3)).unpublish).toBe(true);
  });

  it('rejects a task whose prepare or start failed, with the error', () => {
    expect(decide({ state: S.TASK_STATE_PREPARING, desired: S.TASK_STATE_RUNNING }, { kind: 'failed', op: 'prepare', error: 'no such image' })).toEqual({
      unpublish: false,
      reports: [{ state: S.TASK_STATE_REJECTED, message: 'preparing failed', err: 'no such image' }],
      next: 'none',
    });
    expect(decide({ state: S.TASK_STATE_STARTING, desired: S.TASK_STATE_RUNNING }, { kind: 'failed', op: 'start', error: 'exec: not found' }).reports[0]).toMatchObject({ state: S.TASK_STATE_REJECTED, message: 'starting failed' });
  });

  it('holds a task desired READY at READY, starts it once desired RUNNING, removes it when told to stop', () => {
    const held = decide({ state: S.TASK_STATE_PREPARING, desired: S.TASK_STATE_READY }, { kind: 'created' });
    expect(held.reports.map((r) => r.state)).toEqual([S.TASK_STATE_READY]);
    expect(held.next).toBe('hold');
    expect(decide({ state: S.TASK_STATE_READY, desired: S.TASK_STATE_RUNNING }, { kind: 'created' }).next).toBe('start');
    const r = run({ state: S.TASK_STATE_READY, desired: S.TASK_STATE_SHUTDOWN }, [{ kind: 'created' }, { kind: 'absent' }]);
    expect(r.ops).toEqual(['remove', 'none']);
    expect(r.states).toEqual([S.TASK_STATE_SHUTDOWN]);
  });

  it('stops a running task that is told to stop, and reports SHUTDOWN with the exit code', () => {
    const r = run({ state: S.TASK_STATE_RUNNING, desired: S.TASK_STATE_SHUTDOWN }, [{ kind: 'running', pid: 9 }, exit(143, { signal: 'SIGTERM' })]);
    expect(r.ops).toEqual(['stop', 'none']);
    expect(r.states).toEqual([S.TASK_STATE_SHUTDOWN]);
    expect(decide({ state: S.TASK_STATE_RUNNING, desired: S.TASK_STATE_REMOVE }, exit(143)).reports[0]).toMatchObject({ state: S.TASK_STATE_SHUTDOWN, container: { pid: 0, exitCode: 143 } });
  });

  it('fails an unhealthy task at once, then stops it without another report', () => {
    const r = run({ state: S.TASK_STATE_RUNNING, desired: S.TASK_STATE_RUNNING }, [{ kind: 'unhealthy', pid: 5, failures: 3, last: 'exit code 1' }, exit(143)]);
    expect(r.states).toEqual([S.TASK_STATE_FAILED]);
    expect(r.ops).toEqual(['stop', 'none']);
    expect(decide({ state: S.TASK_STATE_RUNNING, desired: S.TASK_STATE_RUNNING }, { kind: 'unhealthy', pid: 5, failures: 3, last: 'x' })).toMatchObject({ unpublish: true });
  });

  it('knows a container gone after start as FAILED, and before start as nothing to run when stopping', () => {
    expect(decide({ state: S.TASK_STATE_RUNNING, desired: S.TASK_STATE_RUNNING }, { kind: 'absent' }).reports[0]).toMatchObject({ state: S.TASK_STATE_FAILED, message: 'the container is gone' });
    expect(decide({ state: S.TASK_STATE_ASSIGNED, desired: S.TASK_STATE_SHUTDOWN }, { kind: 'absent' }).reports[0]).toMatchObject({ state: S.TASK_STATE_SHUTDOWN, message: 'shut down before it started' });
  });

  it('resumes a running task after a restart without reporting it again', () => {
    const step = decide({ state: S.TASK_STATE_RUNNING, desired: S.TASK_STATE_RUNNING }, { kind: 'running', pid: 4 });
    expect(step).toEqual({ unpublish: false, reports: [], next: 'watch' });
  });

  it('never reports a state at or below the present one, nor steps a terminal task', () => {
    const observations: Observation[] = [
      { kind: 'absent' },
      { kind: 'created' },
      { kind: 'running', pid: 1 },
      exit(0),
      exit(1),
      { kind: 'unhealthy', pid: 1, failures: 3, last: '' },
      { kind: 'failed', op: 'prepare', error: 'e' },
      { kind: 'failed', op: 'start', error: 'e' },
    ];
    const states = Object.values(TaskState).filter((s) => s !== TaskState.UNRECOGNIZED);
    for (const state of states)
      for (const desired of [S.TASK_STATE_READY, S.TASK_STATE_RUNNING, S.TASK_STATE_SHUTDOWN, S.TASK_STATE_REMOVE])
        for (const o of observations) {
          const step = decide({ state, desired }, o);
          let at = stateRank(state);
          for (const r of step.reports) {
            expect(stateRank(r.state), `${state} ${desired} ${o.kind}`).toBeGreaterThan(at);
            at = stateRank(r.state);
          }
          if (stateRank(state) >= stateRank(S.TASK_STATE_COMPLETE)) expect(step).toEqual({ unpublish: false, reports: [], next: 'none' });
        }
  });
});

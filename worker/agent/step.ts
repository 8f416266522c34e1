// A task's progress on its node as a pure step function, in the manner of SwarmKit's exec.Do:
// the state the agent last reported, the desired state, and what it last observed of the task's
// container go in; the statuses to report and the next operation on the executor come out. The
// controller (controller.ts) performs the operation, observes again and steps again until the
// function says `none`. Nothing here does I/O or reads a clock.
//
//   absent ─prepare─► created ─start─► running ─watch─► exited
//     │                 │ └hold (desired READY)  │ └stop (desired past RUNNING) ─► exited
//     └ FAILED/SHUTDOWN └remove ─► absent        └ unhealthy ─stop─► exited
//
// A task with a healthcheck is *starting* while its container runs and no check has passed yet
// (as Docker's swarm): it stays STARTING (so it serves no VIP, and an update waits for it) and is
// RUNNING once a check passes.
//
// States only move forward, and never past what the observation shows: a report at or below the
// present state is left out.
import { TaskState } from '../../proto/gen/tswarm/types.js';
import { isTerminalState, stateRank, wantsStop } from '../../common/task-state.js';
import type { ExitStatus } from '../exec/executor.js';

/** What the controller saw of the task's container, or of its last operation. */
export type Observation =
  | { kind: 'absent' }
  | { kind: 'created' }
  | { kind: 'running'; pid: number }
  /** Running, with a healthcheck that has not passed yet. */
  | { kind: 'starting'; pid: number }
  | { kind: 'exited'; exit: ExitStatus }
  | { kind: 'unhealthy'; pid: number; failures: number; last: string }
  /** prepare (pull, files, bundle, create) or start failed: the task never ran. */
  | { kind: 'failed'; op: 'prepare' | 'start'; error: string };

export interface Progress {
  /** The state last reported (ASSIGNED when the agent has reported nothing). */
  state: TaskState;
  desired: TaskState;
}

/** A status to report; the controller adds the container id, the time and the published ports. */
export interface StatusChange {
  state: TaskState;
  message: string;
  err?: string;
  container?: { pid: number; exitCode: number };
}

/**
 * prepare: pull, write the task's files, build the bundle, create (then observe `created` or
 * `failed`); hold: wait until the desired state leaves READY; start; watch: wait for the exit, a
 * stop request or an unhealthy verdict; stop: the stop signal, then SIGKILL after the grace period;
 * remove: delete the created container; none: the task is done on this node.
 */
export type Operation = 'prepare' | 'hold' | 'start' | 'watch' | 'stop' | 'remove' | 'none';

export interface Step {
  /** Withdraw the published ports before reporting: the scheduler frees them on a terminal report. */
  unpublish: boolean;
  reports: StatusChange[];
  next: Operation;
}

const S = TaskState;

/** The reports of `changes` that move past `from` (in order; the later ones past the earlier). */
function forward(from: TaskState, changes: StatusChange[]): StatusChange[] {
  let at = stateRank(from);
  const out: StatusChange[] = [];
  for (const c of changes) {
    if (stateRank(c.state) <= at) continue;
    out.push(c);
    at = stateRank(c.state);
  }
  return out;
}

function end(p: Progress, change: StatusChange, unpublish = false): Step {
  return { unpublish, reports: forward(p.state, [change]), next: 'none' };
}

/** Why a process ended, as the task's status message says it. */
export function exitMessage(exit: ExitStatus): string {
  if (exit.oomKilled) return 'killed: out of memory';
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.exitCode}`;
}

export function decide(p: Progress, o: Observation): Step {
  if (isTerminalState(p.state)) return { unpublish: false, reports: [], next: 'none' };
  const stop = wantsStop(p.desired);
  switch (o.kind) {
    case 'absent':
      // It had started on this node and its container is gone (e.g. the host restarted).
      if (stateRank(p.state) >= stateRank(S.TASK_STATE_STARTING)) return end(p, { state: S.TASK_STATE_FAILED, message: 'the container is gone', err: 'the container of this task no longer exists on the node' });
      if (stop) return end(p, { state: S.TASK_STATE_SHUTDOWN, message: 'shut down before it started' });
      return { unpublish: false, reports: forward(p.state, [{ state: S.TASK_STATE_ACCEPTED, message: 'accepted' }, { state: S.TASK_STATE_PREPARING, message: 'preparing' }]), next: 'prepare' };
    case 'failed':
      return end(p, { state: S.TASK_STATE_REJECTED, message: o.op === 'prepare' ? 'preparing failed' : 'starting failed', err: o.error });
    case 'created': {
      const ready: StatusChange = { state: S.TASK_STATE_READY, message: 'prepared' };
      // A stop-first update holds the new task at READY until the old one has stopped.
      if (stop) return { unpublish: false, reports: forward(p.state, [ready]), next: 'remove' };
      if (p.desired === S.TASK_STATE_READY) return { unpublish: false, reports: forward(p.state, [ready]), next: 'hold' };
      return { unpublish: false, reports: forward(p.state, [ready, { state: S.TASK_STATE_STARTING, message: 'starting' }]), next: 'start' };
    }
    case 'starting':
      return { unpublish: false, reports: [], next: stop ? 'stop' : 'watch' };
    case 'running':
      return { unpublish: false, reports: forward(p.state, [{ state: S.TASK_STATE_RUNNING, message: 'running', container: { pid: o.pid, exitCode: 0 } }]), next: stop ? 'stop' : 'watch' };
    case 'unhealthy':
      // Reported at once (an update's monitor counts it now, not after the grace period); then stopped.
      return {
        unpublish: true,
        reports: forward(p.state, [{ state: S.TASK_STATE_FAILED, message: 'unhealthy', err: `healthcheck failed ${o.failures} times in a row: ${o.last}`, container: { pid: o.pid, exitCode: 0 } }]),
        next: 'stop',
      };
    case 'exited': {
      const container = { pid: 0, exitCode: o.exit.exitCode };
      if (stop) return end(p, { state: S.TASK_STATE_SHUTDOWN, message: 'shut down', container }, true);
      if (o.exit.exitCode === 0) return end(p, { state: S.TASK_STATE_COMPLETE, message: 'finished', container }, true);
      return end(p, { state: S.TASK_STATE_FAILED, message: exitMessage(o.exit), err: o.exit.error ?? `task: non-zero exit (${o.exit.exitCode})`, container }, true);
    }
  }
}

// The restart supervisor's core: what to do with a task the orchestrator still wants running (or,
// for a job, completing) once it ended or lost its node. Pure: the unit's task history and `now`
// are inputs; a restart delay comes back as "wait until T" for the shell's timer.
//
// Policy (the task spec's RestartPolicy, SwarmKit's defaults when absent):
// - a task that ended (COMPLETE, FAILED, REJECTED, SHUTDOWN, ORPHANED) is replaced per condition:
//   any; on-failure (not after COMPLETE); none. At most max_attempts restarts within window_ms
//   (0: unbounded) counted from the unit's history of the same spec version (a spec change starts
//   afresh), each replacement made delay_ms after the task ended;
// - a task whose node is down, gone or drained did not fail: it is replaced at once, whatever the
//   condition (a drain must move tasks, not lose them).
// A decision not to restart is recorded on the task (status.message starts with GAVE_UP), which
// then stays the unit's live task: the slot is not refilled until the service's spec changes.
import type { Node, Task } from '../../proto/gen/tswarm/objects.js';
import { RestartPolicy_Condition, TaskState, type RestartPolicy } from '../../proto/gen/tswarm/types.js';
import { createdAt, isTerminal, nodeLoss, observed } from './tasks.js';
import { stateName } from '../../common/task-state.js';

export const GAVE_UP = 'not restarted: ';

export type RestartDecision =
  | { kind: 'keep' }
  | { kind: 'replace'; reason: string; nodeGone: boolean }
  | { kind: 'wait'; until: number; reason: string }
  | { kind: 'give-up'; reason: string; marked: boolean };

export function isGivenUp(t: Task): boolean {
  return t.status?.message.startsWith(GAVE_UP) === true;
}

/** A copy of the task with the supervisor's decision not to restart it in its status message. */
export function markGivenUp(t: Task, reason: string): Task {
  const was = t.status?.message ? ` (was: ${t.status.message})` : '';
  return { ...t, status: { ...t.status!, message: `${GAVE_UP}${reason}${was}` } };
}

/**
 * Decides for `task` (live: desired RUNNING, or COMPLETE for a job). `history` is every task of
 * the same unit (slot, or node for global services), `task` included. `job`: a COMPLETE task is
 * done, never restarted (the caller counts it as a completion).
 */
export function supervise(task: Task, history: readonly Task[], policy: RestartPolicy, nodes: ReadonlyMap<string, Node>, now: number): RestartDecision {
  if (!isTerminal(task)) {
    const lost = nodeLoss(task, nodes);
    return lost === undefined ? { kind: 'keep' } : { kind: 'replace', reason: lost, nodeGone: !nodes.has(task.nodeId) };
  }
  if (isGivenUp(task)) return { kind: 'give-up', reason: task.status!.message.slice(GAVE_UP.length), marked: true };
  const state = observed(task);
  const ended = task.status?.timestampUnixMs ?? 0;
  const what = `task ${task.id} ended ${stateName(state)}`;
  if (policy.condition === RestartPolicy_Condition.CONDITION_NONE) return { kind: 'give-up', reason: 'the restart condition is none', marked: false };
  if (policy.condition === RestartPolicy_Condition.CONDITION_ON_FAILURE && state === TaskState.TASK_STATE_COMPLETE) {
    return { kind: 'give-up', reason: 'it completed and the restart condition is on-failure', marked: false };
  }
  if (policy.maxAttempts > 0) {
    const restarts = restartsWithin(task, history, policy.windowMs, ended);
    if (restarts >= policy.maxAttempts) {
      const within = policy.windowMs > 0 ? ` within ${policy.windowMs} ms` : '';
      return { kind: 'give-up', reason: `${restarts} restarts${within} reached max attempts ${policy.maxAttempts}`, marked: false };
    }
  }
  const at = ended + policy.delayMs;
  if (now < at) return { kind: 'wait', until: at, reason: what };
  return { kind: 'replace', reason: what, nodeGone: false };
}

/**
 * Restarts already made in the unit for the task's spec version: every task of that version but
 * the first is a replacement; with a window, only those made in the window before `at` count.
 */
export function restartsWithin(task: Task, history: readonly Task[], windowMs: number, at: number): number {
  const same = history.filter((t) => t.specVersion === task.specVersion && t.jobIteration === task.jobIteration);
  if (same.length <= 1) return 0;
  const sorted = [...same].sort((a, b) => createdAt(a) - createdAt(b) || (a.id < b.id ? -1 : 1));
  return sorted.slice(1).filter((t) => windowMs === 0 || createdAt(t) >= at - windowMs).length;
}

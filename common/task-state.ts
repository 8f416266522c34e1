// The task state order, shared by cli/, manager/ and worker/: states only move forward, in the
// order of their numbers in proto/tswarm/types.proto (TaskState is a string enum in TypeScript,
// so states are compared by those numbers, never as strings). Nothing else may keep a copy.
import { TaskState, taskStateToJSON, taskStateToNumber } from '../proto/gen/tswarm/types.js';

/** A state's position in the state machine (its wire number); an absent state counts as NEW. */
export function stateRank(s: TaskState | undefined): number {
  return taskStateToNumber(s ?? TaskState.TASK_STATE_NEW);
}

/** `a` comes after `b` in the state machine. */
export function isAfter(a: TaskState | undefined, b: TaskState | undefined): boolean {
  return stateRank(a) > stateRank(b);
}

/** COMPLETE, SHUTDOWN, FAILED, REJECTED, ORPHANED (and REMOVE, a desired state only): never runs again. */
export function isTerminalState(s: TaskState | undefined): boolean {
  return stateRank(s) >= stateRank(TaskState.TASK_STATE_COMPLETE);
}

/** A desired state that asks the task to stop (SHUTDOWN, REMOVE): anything past RUNNING. */
export function wantsStop(desired: TaskState | undefined): boolean {
  return stateRank(desired) > stateRank(TaskState.TASK_STATE_RUNNING);
}

/** The short lower-case name users see: "running", "shutdown", "pending". */
export function stateName(s: TaskState | undefined): string {
  return taskStateToJSON(s ?? TaskState.TASK_STATE_NEW).replace('TASK_STATE_', '').toLowerCase();
}

// The rolling updater's core (replicated and global services; jobs start a new run instead). Like
// the other cores it keeps no state of its own: progress is read from the tasks and from
// service.update_status, which it writes.
//
// A unit (slot, or node) is dirty when its live task's spec differs from service.spec.task. While
// dirty units remain, batches of `parallelism` (0: all) are replaced: stop-first shuts the old task
// down and makes the new one desired READY, turned RUNNING once the old one stopped (superviseUnit);
// start-first makes the new one RUNNING at once and shuts the old one down once the new one runs.
// A replaced unit is in flight until its new task has run for `monitor_ms`; the next batch starts
// `delay_ms` after the last one left flight. New tasks of the update that FAILED or were REJECTED
// count as failures; more than max_failure_ratio of the units → failure_action: pause (PAUSED),
// continue, or rollback (the service's spec and previous_spec swap, ROLLBACK_STARTED, and the
// rollback runs with spec.rollback). A failing rollback pauses (ROLLBACK_PAUSED). A paused update
// resumes when the spec changes again. Messages name the spec version they concern, e.g.
// "update paused (spec version 4): 2 of 3 new tasks failed (max failure ratio 0)".
import type { Service, Task } from '../../proto/gen/tswarm/objects.js';
import { TaskSpec } from '../../proto/gen/tswarm/specs.js';
import {
  TaskState,
  UpdateConfig_FailureAction,
  UpdateConfig_Order,
  UpdateStatus_UpdateState,
  type UpdateConfig,
  type UpdateStatus,
} from '../../proto/gen/tswarm/types.js';
import { createdAt, isTerminal, observed } from './tasks.js';

const S = UpdateStatus_UpdateState;

/** SwarmKit's defaults when the spec has no update (or rollback) config. */
export const DEFAULT_UPDATE: UpdateConfig = {
  parallelism: 1,
  delayMs: 0,
  failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_PAUSE,
  monitorMs: 5000,
  maxFailureRatio: 0,
  order: UpdateConfig_Order.ORDER_STOP_FIRST,
};

/** Stored objects never change, so a spec's encoding is computed once per spec object. */
const encoded = new WeakMap<TaskSpec, string>();
const EMPTY = Buffer.from(TaskSpec.encode(TaskSpec.fromPartial({})).finish()).toString('base64');

function specBytes(spec: TaskSpec | undefined): string {
  if (!spec) return EMPTY;
  let e = encoded.get(spec);
  if (e === undefined) encoded.set(spec, (e = Buffer.from(TaskSpec.encode(spec).finish()).toString('base64')));
  return e;
}

/** Compares task specs by their encoding; memoises the service's side. */
export class SpecMatcher {
  private readonly target: string;
  constructor(spec: TaskSpec | undefined) {
    this.target = specBytes(spec);
  }
  clean(t: Task): boolean {
    return specBytes(t.spec) === this.target;
  }
}

/** One unit as the updater sees it: its live tasks and how to make its next task. */
export interface UpdateUnit {
  live: Task[];
  make: (desired: TaskState) => Task;
  /** This pass already decided about the unit (a restart, a start): count it, do not replace it. */
  busy: boolean;
}

export interface UpdateSink {
  desire(t: Task, state: TaskState): void;
  create(t: Task): void;
  wake(at: number): void;
  setService(s: Service): void;
}

const VERSION_RE = /\(spec version (\d+)\)/;

function taggedVersion(us: UpdateStatus | undefined): number {
  const m = us ? VERSION_RE.exec(us.message) : null;
  return m ? Number(m[1]) : 0;
}

function status(state: UpdateStatus_UpdateState, startedAt: number, message: string, completedAt = 0): UpdateStatus {
  return { state, startedAtUnixMs: startedAt, completedAtUnixMs: completedAt, message };
}

/**
 * Advances the service's rolling update. `units` are the service's units (with live tasks as read);
 * `tasks` all of the service's tasks.
 */
export function rollingUpdate(service: Service, units: readonly UpdateUnit[], tasks: readonly Task[], now: number, out: UpdateSink): void {
  const match = new SpecMatcher(service.spec?.task);
  const v = service.specVersion;
  let us = service.updateStatus;
  const rollingBack = us?.state === S.UPDATE_STATE_ROLLBACK_STARTED || us?.state === S.UPDATE_STATE_ROLLBACK_PAUSED;
  const dirty = units.filter((u) => u.live.length > 0 && u.live.every((t) => !match.clean(t)));
  const dirtyUnits = dirty.filter((u) => !u.busy);
  const current = (us?.state === S.UPDATE_STATE_UPDATING || us?.state === S.UPDATE_STATE_ROLLBACK_STARTED) && taggedVersion(us) === v;
  const paused = (us?.state === S.UPDATE_STATE_PAUSED || us?.state === S.UPDATE_STATE_ROLLBACK_PAUSED) && taggedVersion(us) === v;
  if (paused) return;
  const what = rollingBack && current ? 'rollback' : 'update';

  // In flight: units whose new task has not yet run for the monitor period.
  const cfg = (what === 'rollback' ? service.spec?.rollback : service.spec?.update) ?? DEFAULT_UPDATE;
  const since = current ? us!.startedAtUnixMs : now;
  let inflight = 0;
  let lastDone = 0;
  for (const u of units) {
    const fresh = u.live.filter((t) => match.clean(t) && createdAt(t) >= since && !isTerminal(t));
    if (fresh.length === 0) continue;
    const runningSince = fresh.filter((t) => observed(t) === TaskState.TASK_STATE_RUNNING).map((t) => t.status?.timestampUnixMs ?? 0);
    if (runningSince.length === 0) {
      inflight++;
      continue;
    }
    const done = Math.min(...runningSince) + cfg.monitorMs;
    lastDone = Math.max(lastDone, done);
    if (done > now) {
      inflight++;
      out.wake(done);
    }
  }

  if (dirty.length === 0 || dirtyUnits.length === 0) {
    if (dirty.length === 0 && current && inflight === 0) {
      const state = what === 'rollback' ? S.UPDATE_STATE_ROLLBACK_COMPLETED : S.UPDATE_STATE_COMPLETED;
      // A rollback keeps the reason the update failed, so `service inspect` still says why.
      const reason = what === 'rollback' ? /: (update failed: .*)$/.exec(us!.message)?.[1] : undefined;
      out.setService({ ...service, updateStatus: status(state, us!.startedAtUnixMs, `${what} completed (spec version ${v})${reason ? `: ${reason}` : ''}`, now) });
    }
    return;
  }
  let started = now;
  if (current) started = us!.startedAtUnixMs;
  else {
    // A new spec version with tasks to replace: a new update begins (or a user's rollback).
    us = status(S.UPDATE_STATE_UPDATING, now, `update in progress (spec version ${v})`);
    out.setService({ ...service, updateStatus: us });
  }

  // Failures among the update's new tasks.
  const failed = tasks.filter((t) => match.clean(t) && createdAt(t) >= started && (observed(t) === TaskState.TASK_STATE_FAILED || observed(t) === TaskState.TASK_STATE_REJECTED));
  const total = Math.max(1, units.length);
  if (cfg.failureAction !== UpdateConfig_FailureAction.FAILURE_ACTION_CONTINUE && failed.length / total > cfg.maxFailureRatio) {
    const last = failed.reduce((a, b) => ((b.status?.timestampUnixMs ?? 0) > (a.status?.timestampUnixMs ?? 0) ? b : a));
    const detail = last.status?.err ? `; task ${last.id}${last.slot ? ` (slot ${last.slot})` : ''}: ${last.status.err}` : '';
    const why = `${failed.length} of ${total} new tasks failed (max failure ratio ${cfg.maxFailureRatio})${detail}`;
    if (cfg.failureAction === UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK && what === 'update' && service.previousSpec) {
      out.setService({
        ...service,
        spec: service.previousSpec,
        previousSpec: service.spec,
        specVersion: v + 1,
        updateStatus: status(S.UPDATE_STATE_ROLLBACK_STARTED, now, `rollback started (spec version ${v + 1}): update failed: ${why}`),
      });
      return;
    }
    const state = what === 'rollback' ? S.UPDATE_STATE_ROLLBACK_PAUSED : S.UPDATE_STATE_PAUSED;
    out.setService({ ...service, updateStatus: status(state, started, `${what} paused (spec version ${v}): ${why}`) });
    return;
  }

  const room = cfg.parallelism === 0 ? dirtyUnits.length : cfg.parallelism - inflight;
  if (room <= 0) return;
  if (cfg.delayMs > 0 && lastDone > 0 && now < lastDone + cfg.delayMs) {
    out.wake(lastDone + cfg.delayMs);
    return;
  }
  const order = [...dirtyUnits].sort((a, b) => Number(runs(a)) - Number(runs(b)));
  for (const u of order.slice(0, room)) {
    if (cfg.order === UpdateConfig_Order.ORDER_START_FIRST) {
      out.create(u.make(TaskState.TASK_STATE_RUNNING));
      continue;
    }
    // Stop first: the new task waits (desired READY) until the old one stopped, unless nothing runs.
    const stopping = u.live.some((t) => !isTerminal(t) && t.nodeId !== '');
    for (const t of u.live) out.desire(t, TaskState.TASK_STATE_SHUTDOWN);
    out.create(u.make(stopping ? TaskState.TASK_STATE_READY : TaskState.TASK_STATE_RUNNING));
  }
}

function runs(u: UpdateUnit): boolean {
  return u.live.some((t) => observed(t) === TaskState.TASK_STATE_RUNNING);
}

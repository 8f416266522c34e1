// The orchestrator's pure cores: (service, its tasks, the nodes, now) → the tasks to create, the
// desired-state changes and the deletions. One core per service mode; the restart supervisor
// (restart.ts) decides per unit (a slot, or a node for global modes) and the reaper (reaper.ts)
// trims each unit's history. The cores never look at the clock or the store: the shell does.
import type { Node, Service, Task } from '../../proto/gen/tswarm/objects.js';
import { NodeAvailability, NodeState, TaskState } from '../../proto/gen/tswarm/types.js';
import { assertNever } from '../../common/errors.js';
import { markGivenUp, supervise } from './restart.js';
import { matchesAll } from '../constraint/constraint.js';
import { reap } from './reaper.js';
import { rollingUpdate, SpecMatcher, type UpdateUnit } from './update.js';
import {
  constraintsOf,
  createdAt,
  eligible,
  emptyPlan,
  isLive,
  isTerminal,
  modeOf,
  neverPlaced,
  newTask,
  nodeLoss,
  observed,
  restartPolicy,
  withDesired,
  type Plan,
  type ReconcileInput,
} from './tasks.js';
import { stateRank } from '../../common/task-state.js';

/** Collects a plan; several decisions about one task become one write. */
class PlanBuilder {
  private readonly creates: Task[] = [];
  private readonly updates = new Map<string, Task>();
  private readonly removes = new Map<string, Task>();
  private retryAt: number | undefined;
  private service: Service | undefined;

  create(t: Task): void {
    this.creates.push(t);
  }

  change(t: Task, f: (t: Task) => Task): void {
    this.updates.set(t.id, f(this.updates.get(t.id) ?? t));
  }

  desire(t: Task, state: TaskState): void {
    const cur = this.updates.get(t.id) ?? t;
    if (cur.desiredState !== state) this.change(t, (x) => withDesired(x, state));
  }

  remove(t: Task): void {
    this.updates.delete(t.id);
    this.removes.set(t.id, t);
  }

  wake(at: number): void {
    this.retryAt = this.retryAt === undefined ? at : Math.min(this.retryAt, at);
  }

  setService(s: Service): void {
    this.service = s;
  }

  touched(id: string): boolean {
    return this.updates.has(id) || this.removes.has(id);
  }

  build(): Plan {
    const plan: Plan = { create: this.creates, update: [...this.updates.values()], remove: [...this.removes.values()] };
    if (this.retryAt !== undefined) plan.retryAt = this.retryAt;
    if (this.service !== undefined) plan.service = this.service;
    return plan;
  }
}

export interface ServiceInput extends ReconcileInput {
  /** cluster.spec.taskHistoryRetentionLimit: ended tasks kept per slot (per node for global modes). */
  historyLimit: number;
}

/** The whole decision for one service: its mode's core, the restart supervisor and the reaper. */
export function reconcileService(input: ServiceInput): Plan {
  const { service } = input;
  if (!service || service.pendingDelete) return reconcileRemoved(input);
  const b = new PlanBuilder();
  deleteRemoved(input, b);
  const mode = modeOf(service);
  switch (mode) {
    case 'replicated':
      replicated(service, input, b);
      break;
    case 'global':
      global(service, input, b);
      break;
    case 'replicatedJob':
      replicatedJob(service, input, b);
      break;
    case 'globalJob':
      globalJob(service, input, b);
      break;
    default:
      assertNever(mode, 'service mode');
  }
  for (const t of reap(service, input.tasks, input.historyLimit)) if (!b.touched(t.id)) b.remove(t);
  return b.build();
}

/**
 * A removed service (gone from the store, or pending_delete): every task is desired REMOVE, and a
 * task that ended, never reached a node, or whose node is gone is deleted.
 */
export function reconcileRemoved(input: ReconcileInput): Plan {
  const nodes = new Set(input.nodes.map((n) => n.id));
  const plan = emptyPlan();
  for (const t of input.tasks) {
    if (isTerminal(t) || neverPlaced(t) || !nodes.has(t.nodeId)) plan.remove.push(t);
    else if (t.desiredState !== TaskState.TASK_STATE_REMOVE) plan.update.push(withDesired(t, TaskState.TASK_STATE_REMOVE));
  }
  return plan;
}

/**
 * Tasks someone marked REMOVE go once they can no longer run. A task shut down on a node that
 * left the cluster will never be reported again: the orchestrator marks it ORPHANED (so the
 * reaper can count it as ended).
 */
function deleteRemoved(input: ReconcileInput, b: PlanBuilder): void {
  const nodes = new Set(input.nodes.map((n) => n.id));
  for (const t of input.tasks) {
    const lost = !neverPlaced(t) && !nodes.has(t.nodeId);
    if (t.desiredState === TaskState.TASK_STATE_REMOVE && (isTerminal(t) || neverPlaced(t) || lost)) b.remove(t);
    else if (!isLive(t) && !isTerminal(t) && lost) b.change(t, (x) => orphaned(x, `node ${t.nodeId} left the cluster`, input.now));
  }
}

function orphaned(t: Task, message: string, now: number): Task {
  return { ...t, status: { ...t.status!, state: TaskState.TASK_STATE_ORPHANED, message, timestampUnixMs: now } };
}

function nodeMap(nodes: readonly Node[]): Map<string, Node> {
  return new Map(nodes.map((n) => [n.id, n]));
}

function groupBy(tasks: readonly Task[], key: (t: Task) => string | number): Map<string | number, Task[]> {
  const m = new Map<string | number, Task[]>();
  for (const t of tasks) {
    const k = key(t);
    const list = m.get(k);
    if (list) list.push(t);
    else m.set(k, [t]);
  }
  return m;
}

/** The unit's best live task first: still running, then furthest along, then newest. */
function preference(a: Task, b: Task): number {
  return (
    Number(isTerminal(a)) - Number(isTerminal(b)) ||
    stateRank(observed(b)) - stateRank(observed(a)) ||
    (b.meta?.createdAtUnixMs ?? 0) - (a.meta?.createdAtUnixMs ?? 0) ||
    (a.id < b.id ? -1 : 1)
  );
}

type UnitState = 'active' | 'done' | 'given-up';

/**
 * How long a drained node's task keeps serving while its replacement elsewhere does not run (it
 * cannot be placed, or fails): then it stops all the same, as a drain must empty the node.
 */
export const DRAIN_HANDOFF_MS = 30_000;

/** The task is on a node that is up and drained (its tasks move elsewhere). */
function onDrainedNode(t: Task, nodes: ReadonlyMap<string, Node>): boolean {
  const n = nodes.get(t.nodeId);
  return n !== undefined && n.status?.state !== NodeState.NODE_STATE_DOWN && n.spec?.availability === NodeAvailability.NODE_AVAILABILITY_DRAIN;
}

/**
 * One unit (slot or node) with at least one live task: keeps one, shuts down extras, and applies
 * the restart supervisor to the one kept. `replacement` makes the unit's next task.
 */
function superviseUnit(
  service: Service,
  live: Task[],
  history: readonly Task[],
  nodes: ReadonlyMap<string, Node>,
  now: number,
  b: PlanBuilder,
  replacement: () => Task,
  job: boolean,
  match?: SpecMatcher,
): UnitState {
  let candidates = live;
  if (match) {
    // A start-first update in flight: the old task goes once the new one runs.
    const clean = live.filter((t) => match.clean(t));
    const dirty = live.filter((t) => !match.clean(t));
    if (clean.length > 0 && dirty.length > 0) {
      if (clean.some((t) => observed(t) === TaskState.TASK_STATE_RUNNING)) for (const t of dirty) b.desire(t, TaskState.TASK_STATE_SHUTDOWN);
      candidates = clean;
    }
  }
  if (!job) {
    // A drained node's task hands over as a start-first update does: it keeps serving until its
    // replacement on another node runs (or DRAIN_HANDOFF_MS passed), so that a drain drops no
    // request to the service (its stop then waits for the nodes' load balancers: the dispatcher's
    // stop gate).
    const leaving = candidates.filter((t) => onDrainedNode(t, nodes) && !isTerminal(t));
    if (leaving.length > 0) {
      const staying = candidates.filter((t) => !leaving.includes(t));
      const handedOver = staying.some((t) => observed(t) === TaskState.TASK_STATE_RUNNING) || staying.some((t) => now - createdAt(t) >= DRAIN_HANDOFF_MS);
      if (handedOver) for (const t of leaving) b.desire(t, TaskState.TASK_STATE_SHUTDOWN);
      if (staying.length === 0) {
        b.create(replacement());
        b.wake(now + DRAIN_HANDOFF_MS);
        return 'active';
      }
      if (!handedOver) b.wake(Math.min(...staying.map(createdAt)) + DRAIN_HANDOFF_MS);
      candidates = staying;
    }
  }
  const sorted = [...candidates].sort(preference);
  if (job) {
    const completed = sorted.find((t) => observed(t) === TaskState.TASK_STATE_COMPLETE);
    if (completed) {
      for (const t of sorted) if (t !== completed) b.desire(t, TaskState.TASK_STATE_SHUTDOWN);
      return 'done';
    }
  }
  const [keep, ...extra] = sorted;
  for (const t of extra) b.desire(t, TaskState.TASK_STATE_SHUTDOWN);
  if (keep!.desiredState === TaskState.TASK_STATE_READY) {
    // A stop-first update's new task starts once the unit's old task stopped (or cannot report).
    const stopping = history.some((t) => t.id !== keep!.id && !isLive(t) && !isTerminal(t) && !neverPlaced(t) && nodeLoss(t, nodes) === undefined);
    if (!stopping) b.desire(keep!, TaskState.TASK_STATE_RUNNING);
  }
  const d = supervise(keep!, history, restartPolicy(service, keep!), nodes, now);
  switch (d.kind) {
    case 'keep':
      return 'active';
    case 'wait':
      b.wake(d.until);
      return 'active';
    case 'give-up':
      // A spec change since gives the unit a fresh start (as `service update --force` does).
      if (keep!.specVersion < service.specVersion) {
        b.desire(keep!, TaskState.TASK_STATE_SHUTDOWN);
        b.create(replacement());
        return 'active';
      }
      if (!d.marked) b.change(keep!, (t) => markGivenUp(t, d.reason));
      return 'given-up';
    case 'replace':
      b.desire(keep!, TaskState.TASK_STATE_SHUTDOWN);
      // The node is gone: nothing will ever report this task again; the orchestrator records it.
      if (d.nodeGone) b.change(keep!, (t) => orphaned(t, d.reason, now));
      b.create(replacement());
      return 'active';
    default:
      return assertNever(d, 'restart decision');
  }
}

/** Is the slot's live task running (scale-down prefers to stop the others)? */
function running(tasks: readonly Task[]): boolean {
  return tasks.some((t) => observed(t) === TaskState.TASK_STATE_RUNNING);
}

/**
 * Replicated: slots 1..replicas each keep one live task. Extra slots are shut down (those not
 * running first, then the highest); missing ones are made in the lowest free slot numbers.
 */
function replicated(service: Service, input: ReconcileInput, b: PlanBuilder): void {
  const replicas = service.spec?.mode?.$case === 'replicated' ? service.spec.mode.replicated.replicas : 0;
  const nodes = nodeMap(input.nodes);
  const history = groupBy(input.tasks, (t) => t.slot);
  const live = groupBy(input.tasks.filter(isLive), (t) => t.slot);
  const slots = [...live.keys()] as number[];
  slots.sort((x, y) => Number(running(live.get(x)!)) - Number(running(live.get(y)!)) || y - x);
  const drop = slots.slice(0, Math.max(0, slots.length - replicas));
  for (const slot of drop) for (const t of live.get(slot)!) b.desire(t, TaskState.TASK_STATE_SHUTDOWN);
  const kept = slots.slice(drop.length);
  const match = new SpecMatcher(service.spec?.task);
  for (const slot of kept) {
    superviseUnit(service, live.get(slot)!, history.get(slot)!, nodes, input.now, b, () => newTask(service, slot, '', input.now), false, match);
  }
  const used = new Set(kept);
  for (let slot = 1, need = replicas - kept.length; need > 0; slot++) {
    if (used.has(slot)) continue;
    b.create(newTask(service, slot, '', input.now));
    need--;
  }
  const units = kept.map((slot) => ({
    live: live.get(slot)!,
    make: (d: TaskState) => newTask(service, slot, '', input.now, d),
    busy: live.get(slot)!.some((t) => b.touched(t.id)),
  }));
  rollingUpdate(service, units, input.tasks, input.now, b);
}

/**
 * Global: one live task per eligible node (ready, active, matching the constraints). A node that
 * is gone, down or drained, or no longer matches, has its tasks shut down; a paused or
 * disconnected node keeps what it runs but gets nothing new.
 */
function global(service: Service, input: ReconcileInput, b: PlanBuilder): void {
  perNode(service, input, b, false);
}

function perNode(service: Service, input: ReconcileInput, b: PlanBuilder, job: boolean): void {
  const nodes = nodeMap(input.nodes);
  const constraints = constraintsOf(service);
  const current = job ? input.tasks.filter((t) => sameRun(service, t)) : input.tasks;
  if (job) for (const t of input.tasks) if (!sameRun(service, t) && isLive(t)) b.desire(t, TaskState.TASK_STATE_SHUTDOWN);
  const history = groupBy(current, (t) => t.nodeId);
  const live = groupBy(current.filter(isLive), (t) => t.nodeId);
  const match = job ? undefined : new SpecMatcher(service.spec?.task);
  const units: UpdateUnit[] = [];
  for (const [nodeId, tasks] of live) {
    const node = nodes.get(nodeId as string);
    const lost = tasks[0] ? nodeLoss(tasks[0], nodes) : undefined;
    const ok = node !== undefined && lost === undefined && matchesAll(constraints, node);
    if (!ok) {
      for (const t of tasks) {
        if (job && observed(t) === TaskState.TASK_STATE_COMPLETE) continue; // a finished run stays as it is
        b.desire(t, TaskState.TASK_STATE_SHUTDOWN);
        if (!node && !isTerminal(t)) {
          b.change(t, (x) => orphaned(x, `node ${nodeId} left the cluster`, input.now));
        }
      }
      continue;
    }
    // A task that ended on a node that takes nothing new (paused, not ready) waits for the node.
    if (!eligible(node, constraints) && tasks.every(isTerminal)) continue;
    superviseUnit(service, tasks, history.get(nodeId)!, nodes, input.now, b, () => newTask(service, 0, node.id, input.now), job, match);
    units.push({ live: tasks, make: (d: TaskState) => newTask(service, 0, node.id, input.now, d), busy: tasks.some((t) => b.touched(t.id)) });
  }
  for (const node of input.nodes) {
    if (live.has(node.id) || !eligible(node, constraints)) continue;
    // A job runs once per node and run: a node whose task was shut down (drained, then
    // reactivated) runs it again; one that completed it does not.
    if (job && (history.get(node.id) ?? []).some((t) => observed(t) === TaskState.TASK_STATE_COMPLETE)) continue;
    b.create(newTask(service, 0, node.id, input.now));
  }
  if (!job) rollingUpdate(service, units, input.tasks, input.now, b);
}

/** A job's current run: tasks made from the current spec and job iteration. */
function sameRun(service: Service, t: Task): boolean {
  return t.specVersion === service.specVersion && t.jobIteration === (service.jobStatus?.jobIteration ?? 0);
}

/**
 * Replicated job: slots 1..total_completions each need one COMPLETE task of the current run; at
 * most max_concurrent slots run at a time. Failed tasks are restarted per the restart policy
 * (default on-failure) in their slot; tasks of an earlier run are shut down.
 */
function replicatedJob(service: Service, input: ReconcileInput, b: PlanBuilder): void {
  const mode = service.spec?.mode?.$case === 'replicatedJob' ? service.spec.mode.replicatedJob : { maxConcurrent: 0, totalCompletions: 0 };
  const total = mode.totalCompletions || mode.maxConcurrent || 1;
  const concurrent = mode.maxConcurrent || total;
  const nodes = nodeMap(input.nodes);
  const current = input.tasks.filter((t) => sameRun(service, t));
  for (const t of input.tasks) if (!sameRun(service, t) && isLive(t) && !isTerminal(t)) b.desire(t, TaskState.TASK_STATE_SHUTDOWN);
  const history = groupBy(current, (t) => t.slot);
  const live = groupBy(current.filter(isLive), (t) => t.slot);
  let active = 0;
  const settled = new Set<number>();
  for (const [slot, tasks] of live) {
    if ((slot as number) > total) {
      for (const t of tasks) b.desire(t, TaskState.TASK_STATE_SHUTDOWN);
      continue;
    }
    const state = superviseUnit(service, tasks, history.get(slot)!, nodes, input.now, b, () => newTask(service, slot as number, '', input.now), true);
    settled.add(slot as number);
    if (state === 'active') active++;
  }
  for (let slot = 1; slot <= total && active < concurrent; slot++) {
    if (settled.has(slot)) continue;
    // A slot whose tasks were all shut down (not by the job's own end) is begun again.
    b.create(newTask(service, slot, '', input.now));
    active++;
  }
}

/** Global job: one COMPLETE task per eligible node for the current run, nodes that join included. */
function globalJob(service: Service, input: ReconcileInput, b: PlanBuilder): void {
  perNode(service, input, b, true);
}

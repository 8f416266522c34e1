// What the orchestrator cores share: the plan they return, the task states' order, how a task is
// made, and when a node can run a service's tasks. Everything here is pure: time is an argument.
import type { Node, Service, Task } from '../../proto/gen/tswarm/objects.js';
import { NodeAvailability, NodeState, RestartPolicy_Condition, TaskState, type RestartPolicy } from '../../proto/gen/tswarm/types.js';
import { newId } from '../../common/identity.js';
import { stateRank } from '../../common/task-state.js';
import { matchesAll, parseConstraints, type Constraint } from '../constraint/constraint.js';

/**
 * A core's decision for one service. `update` holds modified copies of stored tasks whose
 * `meta.version` is the version read, so a write based on a stale read is refused by the store
 * (and the service reconciled again). `retryAt`: reconcile again at this time (a restart delay).
 */
export interface Plan {
  create: Task[];
  update: Task[];
  remove: Task[];
  retryAt?: number;
  /** The service with a new update_status (or, for a rollback, spec), meta as read. */
  service?: Service;
}

export function emptyPlan(): Plan {
  return { create: [], update: [], remove: [] };
}

/** Everything a core looks at: the service (undefined once removed), all its tasks, the nodes. */
export interface ReconcileInput {
  serviceId: string;
  service: Service | undefined;
  tasks: readonly Task[];
  nodes: readonly Node[];
  now: number;
}


export function observed(t: Task): TaskState {
  return t.status?.state ?? TaskState.TASK_STATE_NEW;
}

/** COMPLETE, SHUTDOWN, FAILED, REJECTED, ORPHANED: the task will never run again. */
export function isTerminal(t: Task): boolean {
  return stateRank(observed(t)) >= stateRank(TaskState.TASK_STATE_COMPLETE);
}

/** The orchestrator still wants the task to run (desired RUNNING, or COMPLETE for a job). */
export function isLive(t: Task): boolean {
  return stateRank(t.desiredState) <= stateRank(TaskState.TASK_STATE_COMPLETE);
}

/** The task never reached a node: the scheduler had not placed it. */
export function neverPlaced(t: Task): boolean {
  return t.nodeId === '' || stateRank(observed(t)) < stateRank(TaskState.TASK_STATE_ASSIGNED);
}

/** When the task was made: the store's creation time, else its first status time. */
export function createdAt(t: Task): number {
  return t.meta?.createdAtUnixMs ?? t.status?.timestampUnixMs ?? 0;
}

/** Newest first (creation time, then id for a stable order). */
export function newestFirst(a: Task, b: Task): number {
  return createdAt(b) - createdAt(a) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

export function serviceName(s: Service): string {
  return s.spec?.annotations?.name ?? s.id;
}

export type ModeKind = 'replicated' | 'global' | 'replicatedJob' | 'globalJob';

export function modeOf(s: Service): ModeKind {
  return s.spec?.mode?.$case ?? 'replicated';
}

export function isJob(s: Service): boolean {
  const m = modeOf(s);
  return m === 'replicatedJob' || m === 'globalJob';
}

/**
 * A job's tasks run to completion. SwarmKit marks them desired COMPLETE; here they are desired
 * RUNNING like any task (the allocator, scheduler, dispatcher and agent place, send and run tasks
 * desired up to RUNNING, and an agent never runs a task desired past it), and a job is told apart
 * by its service's mode: its COMPLETE tasks count as completions.
 */
export const JOB_DESIRED_STATE = TaskState.TASK_STATE_RUNNING;

/** A new task of the service for a slot (replicated, jobs) or a node (global, slot 0). */
export function newTask(service: Service, slot: number, nodeId: string, now: number, desired?: TaskState): Task {
  const name = serviceName(service);
  return {
    id: newId(),
    serviceId: service.id,
    slot,
    nodeId,
    spec: service.spec?.task,
    specVersion: service.specVersion,
    desiredState: desired ?? (isJob(service) ? JOB_DESIRED_STATE : TaskState.TASK_STATE_RUNNING),
    status: { state: TaskState.TASK_STATE_NEW, message: 'created', timestampUnixMs: now, err: '', pendingReason: '' },
    annotations: { name: `${name}.${slot !== 0 ? slot : nodeId}`, labels: {} },
    serviceAnnotations: { name, labels: { ...(service.spec?.annotations?.labels ?? {}) } },
    networks: [],
    // The published ports go with the task (the scheduler's host-port filter and the agent read them).
    ...(service.spec?.endpoint ? { endpoint: { spec: service.spec.endpoint, ports: [], virtualIps: [] } } : {}),
    jobIteration: service.jobStatus?.jobIteration ?? 0,
  };
}

/** A copy of the stored task with another desired state (meta kept: the write names the version read). */
export function withDesired(t: Task, desiredState: TaskState): Task {
  return { ...t, desiredState };
}

/** SwarmKit's defaults when the spec carries no policy: any condition, 5 s delay, unlimited. */
export const DEFAULT_RESTART: RestartPolicy = { condition: RestartPolicy_Condition.CONDITION_ANY, delayMs: 5000, maxAttempts: 0, windowMs: 0 };
/** Jobs restart only on failure by default (a job's task that completes is done). */
export const DEFAULT_JOB_RESTART: RestartPolicy = { ...DEFAULT_RESTART, condition: RestartPolicy_Condition.CONDITION_ON_FAILURE };

export function restartPolicy(service: Service | undefined, task: Task): RestartPolicy {
  const job = service !== undefined && isJob(service);
  return task.spec?.restart ?? service?.spec?.task?.restart ?? (job ? DEFAULT_JOB_RESTART : DEFAULT_RESTART);
}

/** Why the node cannot keep the task running there, or undefined if it can. */
export function nodeLoss(t: Task, nodes: ReadonlyMap<string, Node>): string | undefined {
  if (t.nodeId === '') return undefined;
  const n = nodes.get(t.nodeId);
  if (!n) return `node ${t.nodeId} left the cluster`;
  if (n.status?.state === NodeState.NODE_STATE_DOWN) return `node ${t.nodeId} is down`;
  if (n.spec?.availability === NodeAvailability.NODE_AVAILABILITY_DRAIN) return `node ${t.nodeId} is drained`;
  return undefined;
}

/** The task's placement constraints, parsed (they were validated when the service was written). */
export function constraintsOf(service: Service): Constraint[] {
  try {
    return parseConstraints(service.spec?.task?.placement?.constraints ?? [], 'spec.task.placement.constraints');
  } catch {
    return [{ key: { kind: 'id' }, op: '==', value: '', text: 'invalid constraints' }]; // matches no node
  }
}

/** A node that may receive new tasks of the service: ready, active and matching its constraints. */
export function eligible(node: Node, constraints: readonly Constraint[]): boolean {
  return (
    node.status?.state === NodeState.NODE_STATE_READY &&
    (node.spec?.availability ?? NodeAvailability.NODE_AVAILABILITY_ACTIVE) === NodeAvailability.NODE_AVAILABILITY_ACTIVE &&
    matchesAll(constraints, node)
  );
}

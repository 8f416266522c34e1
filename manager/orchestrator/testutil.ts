// Builders for the orchestrator's tests: services, nodes and stored tasks in a few words.
import type { Node, Service, Task } from '../../proto/gen/tswarm/objects.js';
import { ContainerSpec, type ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { NodeAvailability, NodeRole, NodeState, RestartPolicy_Condition, TaskState, type RestartPolicy } from '../../proto/gen/tswarm/types.js';
import { newId } from '../../common/identity.js';

export interface ServiceOptions {
  name?: string;
  mode?: ServiceSpec['mode'];
  replicas?: number;
  restart?: Partial<RestartPolicy>;
  constraints?: string[];
  specVersion?: number;
}

export function service(o: ServiceOptions = {}): Service {
  const restart: RestartPolicy = { condition: RestartPolicy_Condition.CONDITION_ANY, delayMs: 0, maxAttempts: 0, windowMs: 0, ...o.restart };
  return {
    id: newId(),
    meta: { version: 1, createdAtUnixMs: 0, updatedAtUnixMs: 0 },
    spec: {
      annotations: { name: o.name ?? 'web', labels: { tier: 'front' } },
      task: { container: ContainerSpec.fromPartial({ image: 'busybox' }), restart, placement: { constraints: o.constraints ?? [], preferences: [], platforms: [], maxReplicasPerNode: 0 }, networks: [], forceUpdate: 0 },
      mode: o.mode ?? { $case: 'replicated', replicated: { replicas: o.replicas ?? 1 } },
    },
    specVersion: o.specVersion ?? 1,
    pendingDelete: false,
    registryAuth: Buffer.alloc(0),
  };
}

export interface NodeOptions {
  state?: NodeState;
  availability?: NodeAvailability;
  labels?: Record<string, string>;
}

export function node(id: string, o: NodeOptions = {}): Node {
  return {
    attachments: [],
    peerPaths: [],
    id,
    meta: { version: 1, createdAtUnixMs: 0, updatedAtUnixMs: 0 },
    spec: { annotations: { name: id, labels: o.labels ?? {} }, desiredRole: NodeRole.NODE_ROLE_WORKER, availability: o.availability ?? NodeAvailability.NODE_AVAILABILITY_ACTIVE },
    description: { hostname: id, engineVersion: '', dataPathAddr: '', hostPrefixes: [] },
    status: { state: o.state ?? NodeState.NODE_STATE_READY, message: '', addr: '' },
    role: NodeRole.NODE_ROLE_WORKER,
  };
}

export interface TaskOptions {
  slot?: number;
  nodeId?: string;
  state?: TaskState;
  desired?: TaskState;
  created?: number;
  /** When the status was last written (for a task that ended: when it ended). */
  at?: number;
  specVersion?: number;
  message?: string;
}

/** A task as the store would hold it (meta set). */
export function task(s: Service, o: TaskOptions = {}): Task {
  const created = o.created ?? 0;
  return {
    id: newId(),
    meta: { version: 7, createdAtUnixMs: created, updatedAtUnixMs: o.at ?? created },
    spec: s.spec?.task,
    specVersion: o.specVersion ?? s.specVersion,
    serviceId: s.id,
    slot: o.slot ?? 0,
    nodeId: o.nodeId ?? '',
    annotations: { name: 't', labels: {} },
    serviceAnnotations: { name: s.spec?.annotations?.name ?? '', labels: {} },
    status: { state: o.state ?? TaskState.TASK_STATE_RUNNING, message: o.message ?? '', timestampUnixMs: o.at ?? created, err: '', pendingReason: '' },
    desiredState: o.desired ?? TaskState.TASK_STATE_RUNNING,
    networks: [],
    jobIteration: 0,
  };
}

// The scheduler's pure core: from (pending tasks, nodes, tasks already placed, seed) to a plan:
// a node for each task that fits somewhere, a reason for each that does not. No store, no clock,
// no Math.random: the same input gives the same plan (the shell in shell.ts does the I/O).
//
// Pipeline per task: filters (a fixed order; the first one a node fails is the node's reason),
// then ranking of the nodes that pass: spread over the placement preferences first, then fewest
// tasks of the same service, then fewest tasks overall, then a deterministic tie-break. Identical
// tasks (same service and spec version) are placed as one batch with the counts updated after each
// placement, so 100 replicas over 3 equal nodes end up 34/33/33. A failure to place is a result
// (a pending reason), never an exception.
import type { Node, Task } from '../../proto/gen/tswarm/objects.js';
import type { Platform } from '../../proto/gen/tswarm/types.js';
import { stateRank } from '../../common/task-state.js';
import { NodeAvailability, NodeState, PortConfig_PublishMode, TaskState } from '../../proto/gen/tswarm/types.js';
import { matches, parseConstraints, type Constraint } from '../constraint/constraint.js';
import { TswarmError } from '../../common/errors.js';

export interface ScheduleInput {
  /** Tasks to place: status PENDING, desired RUNNING or READY (see isSchedulable). */
  pending: readonly Task[];
  nodes: readonly Node[];
  /** Tasks already on nodes and holding their resources (see occupiesNode); others are ignored. */
  placed: readonly Task[];
  /** Changes the tie-break between otherwise equal nodes; without it, node id order. */
  seed?: number;
}

export interface Placement {
  taskId: string;
  nodeId: string;
}

export interface Unplaced {
  taskId: string;
  /** For status.pendingReason, e.g. "no suitable node (2 nodes lack memory, 1 node is down)". */
  reason: string;
}

export interface Plan {
  placements: Placement[];
  unplaced: Unplaced[];
}

/** Whether the scheduler should place the task (the allocator made it PENDING; it is wanted). */
export function isSchedulable(t: Task): boolean {
  return t.status?.state === TaskState.TASK_STATE_PENDING && (t.desiredState === TaskState.TASK_STATE_RUNNING || t.desiredState === TaskState.TASK_STATE_READY);
}

const ASSIGNED = stateRank(TaskState.TASK_STATE_ASSIGNED);
const RUNNING = stateRank(TaskState.TASK_STATE_RUNNING);

/** Whether the task counts against its node: placed (ASSIGNED..RUNNING) and not being stopped. */
export function occupiesNode(t: Task): boolean {
  if (!t.nodeId) return false;
  const s = stateRank(t.status?.state);
  return s >= ASSIGNED && s <= RUNNING && stateRank(t.desiredState) <= RUNNING;
}

// ---------------------------------------------------------------- filters

/** Why a node cannot take a task, in the order the filters run (the first failure counts). */
export type FilterFailure = 'down' | 'not-ready' | 'drained' | 'paused' | 'platform' | 'constraints' | 'cpu' | 'memory' | 'host-port' | 'max-replicas';

const FAILURE_ORDER: readonly FilterFailure[] = ['down', 'not-ready', 'drained', 'paused', 'platform', 'constraints', 'cpu', 'memory', 'host-port', 'max-replicas'];

/** What a failure says about one node and about several. */
const EXPLAIN: Record<FilterFailure, [one: string, many: string]> = {
  down: ['is down', 'are down'],
  'not-ready': ['is not ready', 'are not ready'],
  drained: ['is drained', 'are drained'],
  paused: ['is paused', 'are paused'],
  platform: ['has an unsupported platform', 'have an unsupported platform'],
  constraints: ['does not satisfy the placement constraints', 'do not satisfy the placement constraints'],
  cpu: ['lacks CPU', 'lack CPU'],
  memory: ['lacks memory', 'lack memory'],
  'host-port': ['has a requested host port in use', 'have a requested host port in use'],
  'max-replicas': ['already runs the maximum replicas per node', 'already run the maximum replicas per node'],
};

/** "no suitable node (2 nodes lack memory, 1 node is down)": most frequent first, then filter order. */
export function summarize(counts: ReadonlyMap<FilterFailure, number>, nodeCount: number): string {
  if (nodeCount === 0) return 'no suitable node (the cluster has no nodes)';
  const parts = FAILURE_ORDER.filter((f) => (counts.get(f) ?? 0) > 0)
    .map((f, i) => ({ f, n: counts.get(f)!, i }))
    .sort((a, b) => b.n - a.n || a.i - b.i)
    .map(({ f, n }) => `${n} ${n === 1 ? 'node' : 'nodes'} ${EXPLAIN[f][n === 1 ? 0 : 1]}`);
  return `no suitable node (${parts.join(', ')})`;
}

/** What the scheduler tracks per node while it plans (updated after each placement). */
interface NodeInfo {
  node: Node;
  /** Tie-break rank: node id order, or a seeded order. */
  rank: number;
  freeCpu: number;
  freeMemory: number;
  total: number;
  byService: Map<string, number>;
  /** "tcp/8080" for host-mode published ports in use. */
  hostPorts: Set<string>;
  /** While a batch is placed: byService's count for the batch's service (read in every comparison). */
  ofBatch: number;
}

/** What is common to a batch of identical tasks, derived once. */
interface TaskShape {
  serviceId: string;
  cpu: number;
  memory: number;
  constraints: Constraint[];
  platforms: Platform[];
  maxPerNode: number;
  hostPorts: string[];
  /** Node-value getters of the spread preferences, outermost first. */
  spread: ((n: Node) => string)[];
}

/** A task whose spec cannot be evaluated (e.g. a constraint that does not parse). */
class UnschedulableError extends TswarmError {}

function reservationsOf(t: Task): { cpu: number; memory: number } {
  const r = t.spec?.resources?.reservations;
  return { cpu: r?.nanoCpus ?? 0, memory: r?.memoryBytes ?? 0 };
}

/** Host-mode published ports, from the allocated endpoint and the spec (either may be set). */
export function hostPortsOf(t: Task): string[] {
  const ports = [...(t.endpoint?.ports ?? []), ...(t.endpoint?.spec?.ports ?? [])];
  const out = new Set<string>();
  for (const p of ports) {
    if (p.publishMode === PortConfig_PublishMode.PUBLISH_MODE_HOST && p.publishedPort !== 0) out.add(`${p.protocol}/${p.publishedPort}`);
  }
  return [...out];
}

function shapeOf(t: Task): TaskShape {
  const placement = t.spec?.placement;
  let constraints: Constraint[];
  try {
    constraints = parseConstraints(placement?.constraints ?? [], 'spec.placement.constraints');
  } catch (err) {
    throw new UnschedulableError((err as Error).message);
  }
  const spread: ((n: Node) => string)[] = [];
  for (const pref of placement?.preferences ?? []) {
    const d = pref.spreadDescriptor;
    // Only node labels are spread descriptors (as in Swarm); the control API refuses others.
    if (!d.toLowerCase().startsWith('node.labels.')) throw new UnschedulableError(`spread descriptor "${d}" is not node.labels.NAME`);
    const label = d.slice('node.labels.'.length);
    // Nodes without the label form a group of their own (value "").
    spread.push((n) => n.spec?.annotations?.labels[label] ?? '');
  }
  const { cpu, memory } = reservationsOf(t);
  return {
    serviceId: t.serviceId,
    cpu,
    memory,
    constraints,
    platforms: placement?.platforms ?? [],
    maxPerNode: placement?.maxReplicasPerNode ?? 0,
    hostPorts: hostPortsOf(t),
    spread,
  };
}

const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', armhf: 'arm', armv7l: 'arm' };
const normArch = (a: string): string => ARCH_ALIASES[a.toLowerCase()] ?? a.toLowerCase();

function platformMatches(wanted: readonly Platform[], node: Node): boolean {
  if (wanted.length === 0) return true;
  const p = node.description?.platform;
  if (!p) return false;
  return wanted.some((w) => (!w.os || w.os.toLowerCase() === p.os.toLowerCase()) && (!w.architecture || normArch(w.architecture) === normArch(p.architecture)));
}

/** The filters that depend only on the node and the task's spec, not on what the plan adds. */
function staticFailure(shape: TaskShape, n: Node): FilterFailure | undefined {
  const state = n.status?.state ?? NodeState.NODE_STATE_UNKNOWN;
  if (state === NodeState.NODE_STATE_DOWN) return 'down';
  if (state !== NodeState.NODE_STATE_READY) return 'not-ready';
  const availability = n.spec?.availability ?? NodeAvailability.NODE_AVAILABILITY_ACTIVE;
  if (availability === NodeAvailability.NODE_AVAILABILITY_DRAIN) return 'drained';
  if (availability !== NodeAvailability.NODE_AVAILABILITY_ACTIVE) return 'paused';
  if (!platformMatches(shape.platforms, n)) return 'platform';
  if (!shape.constraints.every((c) => matches(c, n))) return 'constraints';
  return undefined;
}

/** The filters that depend on what is (or is planned to be) on the node. */
function dynamicFailure(shape: TaskShape, info: NodeInfo): FilterFailure | undefined {
  if (shape.cpu > info.freeCpu) return 'cpu';
  if (shape.memory > info.freeMemory) return 'memory';
  if (shape.hostPorts.some((p) => info.hostPorts.has(p))) return 'host-port';
  if (shape.maxPerNode > 0 && (info.byService.get(shape.serviceId) ?? 0) >= shape.maxPerNode) return 'max-replicas';
  return undefined;
}

function firstFailure(shape: TaskShape, info: NodeInfo): FilterFailure | undefined {
  return staticFailure(shape, info.node) ?? dynamicFailure(shape, info);
}

// ---------------------------------------------------------------- planning

/** FNV-1a over the seed and the id: a stable pseudo-random order of nodes for a given seed. */
function seededKey(seed: number, id: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function nodeInfos(nodes: readonly Node[], placed: readonly Task[], seed: number | undefined): Map<string, NodeInfo> {
  const ordered = [...nodes].sort((a, b) => {
    if (seed !== undefined) {
      const d = seededKey(seed, a.id) - seededKey(seed, b.id);
      if (d !== 0) return d;
    }
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  const infos = new Map<string, NodeInfo>();
  ordered.forEach((node, rank) => {
    const r = node.description?.resources;
    infos.set(node.id, { node, rank, freeCpu: r?.nanoCpus ?? 0, freeMemory: r?.memoryBytes ?? 0, total: 0, byService: new Map(), hostPorts: new Set(), ofBatch: 0 });
  });
  for (const t of placed) {
    if (!occupiesNode(t)) continue;
    const info = infos.get(t.nodeId);
    if (info) occupy(info, t.serviceId, reservationsOf(t), hostPortsOf(t));
  }
  return infos;
}

function occupy(info: NodeInfo, serviceId: string, res: { cpu: number; memory: number }, ports: readonly string[]): void {
  info.freeCpu -= res.cpu;
  info.freeMemory -= res.memory;
  info.total += 1;
  info.byService.set(serviceId, (info.byService.get(serviceId) ?? 0) + 1);
  for (const p of ports) info.hostPorts.add(p);
}

function countFailures(shape: TaskShape, infos: Iterable<NodeInfo>): Map<FilterFailure, number> {
  const counts = new Map<FilterFailure, number>();
  for (const info of infos) {
    const f = firstFailure(shape, info);
    if (f) counts.set(f, (counts.get(f) ?? 0) + 1);
  }
  return counts;
}

function nodeName(n: Node): string {
  return n.description?.hostname || n.id;
}

/** Tasks sorted into batches of identical ones (same service and spec version), in a stable order. */
function batches(tasks: readonly Task[]): Task[][] {
  const sorted = [...tasks].sort((a, b) => cmp(a.serviceId, b.serviceId) || a.specVersion - b.specVersion || a.slot - b.slot || cmp(a.id, b.id));
  const out: Task[][] = [];
  let key: string | undefined;
  for (const t of sorted) {
    const k = t.serviceId ? `${t.serviceId}\0${t.specVersion}` : `\0${t.id}`;
    if (k !== key) out.push([]);
    key = k;
    out[out.length - 1]!.push(t);
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Plans the pending tasks. Tasks with a node already set (global services: the orchestrator chose
 * the node) are checked against that node only and come first; the others are placed batch by
 * batch. Every task of the input appears once in the plan, as a placement or as unplaced.
 */
export function schedule(input: ScheduleInput): Plan {
  const infos = nodeInfos(input.nodes, input.placed, input.seed);
  const plan: Plan = { placements: [], unplaced: [] };
  const place = (t: Task, shape: TaskShape, info: NodeInfo): void => {
    occupy(info, shape.serviceId, shape, shape.hostPorts);
    plan.placements.push({ taskId: t.id, nodeId: info.node.id });
  };
  const shapeOrReason = (t: Task): TaskShape | string => {
    try {
      return shapeOf(t);
    } catch (err) {
      if (err instanceof UnschedulableError) return `cannot be scheduled: ${err.message}`;
      throw err;
    }
  };

  const preassigned = input.pending.filter((t) => t.nodeId);
  for (const t of [...preassigned].sort((a, b) => cmp(a.id, b.id))) {
    const shape = shapeOrReason(t);
    if (typeof shape === 'string') {
      plan.unplaced.push({ taskId: t.id, reason: shape });
      continue;
    }
    const info = infos.get(t.nodeId);
    if (!info) {
      plan.unplaced.push({ taskId: t.id, reason: `node ${t.nodeId} does not exist` });
      continue;
    }
    const f = firstFailure(shape, info);
    if (f) plan.unplaced.push({ taskId: t.id, reason: `node ${nodeName(info.node)} ${EXPLAIN[f][0]}` });
    else place(t, shape, info);
  }

  for (const batch of batches(input.pending.filter((t) => !t.nodeId))) {
    const shape = shapeOrReason(batch[0]!);
    if (typeof shape === 'string') {
      for (const t of batch) plan.unplaced.push({ taskId: t.id, reason: shape });
      continue;
    }
    placeBatch(batch, shape, infos, place, (t, reason) => plan.unplaced.push({ taskId: t.id, reason }));
  }
  return plan;
}

/**
 * A binary min-heap of the nodes of one spread group that can take the next task of the batch,
 * ordered by (tasks of this service, tasks in total, rank). Within a batch a node's key changes
 * only when it receives a task, and then only grows: the top is sifted down, or popped once the
 * node no longer passes the dynamic filters (nodes only fill up during a plan).
 */
class NodeHeap {
  readonly items: NodeInfo[] = [];
  constructor(private readonly less: (a: NodeInfo, b: NodeInfo) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  top(): NodeInfo | undefined {
    return this.items[0];
  }

  /** Makes a heap of the pushed items at once (O(n)). */
  heapify(): void {
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  popTop(): void {
    const last = this.items.pop()!;
    if (this.items.length === 0) return;
    this.items[0] = last;
    this.siftDown(0);
  }

  /** After the top's key grew. */
  siftDown(i: number): void {
    const a = this.items;
    const n = a.length;
    const x = a[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(a[r]!, a[l]!) ? r : l;
      if (!this.less(a[c]!, x)) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = x;
  }
}

/** A count of this service's tasks in a group of nodes at one spread level, shared by its subgroups. */
interface Counter {
  n: number;
}

/** The candidates with the same values at every spread level (one group when there is no spread). */
interface SpreadGroup {
  /** The counts of the groups it belongs to, outermost level first. */
  counters: Counter[];
  heap: NodeHeap;
}

/**
 * Places a batch of identical tasks. The order is lexicographic, smallest first: the tasks of this
 * service in the node's group at each spread level, then on the node, then the node's tasks in
 * total, then its rank. All nodes of a group share the group counts, so the best node is the top
 * of the best group's heap: each placement costs O(groups + log nodes), not O(nodes).
 */
function placeBatch(
  batch: readonly Task[],
  shape: TaskShape,
  infos: ReadonlyMap<string, NodeInfo>,
  place: (t: Task, shape: TaskShape, info: NodeInfo) => void,
  fail: (t: Task, reason: string) => void,
): void {
  const serviceId = shape.serviceId;
  const nodeLess = (a: NodeInfo, b: NodeInfo): boolean => {
    if (a.ofBatch !== b.ofBatch) return a.ofBatch < b.ofBatch;
    if (a.total !== b.total) return a.total < b.total;
    return a.rank < b.rank;
  };
  // Spread: per preference level, the tasks of this service in each group of nodes (a group is
  // the node's values at that level and the levels above), over the candidates (the nodes that
  // pass the static filters, full or not).
  const counters = shape.spread.map(() => new Map<string, Counter>());
  const groups = new Map<string, SpreadGroup>();
  for (const info of infos.values()) {
    if (staticFailure(shape, info.node)) continue;
    info.ofBatch = info.byService.get(serviceId) ?? 0;
    let prefix = '';
    const path: Counter[] = [];
    for (let level = 0; level < shape.spread.length; level++) {
      prefix += `${shape.spread[level]!(info.node)}\0`;
      const m = counters[level]!;
      let c = m.get(prefix);
      if (!c) m.set(prefix, (c = { n: 0 }));
      c.n += info.ofBatch;
      path.push(c);
    }
    let g = groups.get(prefix);
    if (!g) groups.set(prefix, (g = { counters: path, heap: new NodeHeap(nodeLess) }));
    if (!dynamicFailure(shape, info)) g.heap.items.push(info);
  }
  let live: SpreadGroup[] = [];
  for (const g of groups.values()) {
    g.heap.heapify();
    if (g.heap.size > 0) live.push(g);
  }
  const groupLess = (a: SpreadGroup, b: SpreadGroup): boolean => {
    for (let level = 0; level < a.counters.length; level++) {
      const d = a.counters[level]!.n - b.counters[level]!.n;
      if (d !== 0) return d < 0;
    }
    return nodeLess(a.heap.top()!, b.heap.top()!);
  };
  let reason: string | undefined;
  for (const t of batch) {
    // Identical tasks: once one does not fit, none of the rest will (nodes only fill up).
    if (reason !== undefined) {
      fail(t, reason);
      continue;
    }
    let best: SpreadGroup | undefined;
    for (const g of live) if (!best || groupLess(g, best)) best = g;
    if (!best) {
      reason = summarize(countFailures(shape, infos.values()), infos.size);
      fail(t, reason);
      continue;
    }
    const info = best.heap.top()!;
    place(t, shape, info);
    info.ofBatch++;
    for (const c of best.counters) c.n++;
    if (dynamicFailure(shape, info)) {
      best.heap.popTop();
      if (best.heap.size === 0) live = live.filter((g) => g !== best);
    } else {
      best.heap.siftDown(0);
    }
  }
}

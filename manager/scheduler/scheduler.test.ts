// The pure core over simulated nodes: each filter, the summary reason, spread, batches,
// preassigned tasks and determinism. No store, no timers.
import { describe, expect, it } from 'vitest';
import type { Node, Task } from '../../proto/gen/tswarm/objects.js';
import type { Placement as PlacementSpec, PortConfig } from '../../proto/gen/tswarm/types.js';
import { EndpointSpec_ResolutionMode, NodeAvailability, NodeRole, NodeState, PortConfig_Protocol, PortConfig_PublishMode, TaskState } from '../../proto/gen/tswarm/types.js';
import { schedule, summarize, type Plan, type ScheduleInput } from './scheduler.js';

const GB = 1024 ** 3;
const CPU = 1e9;

interface NodeOpts {
  state?: NodeState;
  availability?: NodeAvailability;
  cpus?: number;
  memory?: number;
  labels?: Record<string, string>;
  os?: string;
  arch?: string;
  role?: NodeRole;
}

function node(id: string, o: NodeOpts = {}): Node {
  return {
    id,
    spec: { annotations: { name: '', labels: o.labels ?? {} }, desiredRole: NodeRole.NODE_ROLE_WORKER, availability: o.availability ?? NodeAvailability.NODE_AVAILABILITY_ACTIVE },
    description: { hostname: id, platform: { os: o.os ?? 'linux', architecture: o.arch ?? 'amd64' }, resources: { nanoCpus: (o.cpus ?? 4) * CPU, memoryBytes: o.memory ?? 8 * GB, pids: 0 }, engineVersion: '' },
    status: { state: o.state ?? NodeState.NODE_STATE_READY, message: '', addr: '' },
    role: o.role ?? NodeRole.NODE_ROLE_WORKER,
  };
}

interface TaskOpts {
  service?: string;
  specVersion?: number;
  slot?: number;
  nodeId?: string;
  state?: TaskState;
  desired?: TaskState;
  cpus?: number;
  memory?: number;
  placement?: Partial<PlacementSpec>;
  hostPorts?: number[];
}

let seq = 0;
function task(o: TaskOpts = {}): Task {
  const id = `t${String(++seq).padStart(4, '0')}`;
  const ports: PortConfig[] = (o.hostPorts ?? []).map((p) => ({ name: '', protocol: PortConfig_Protocol.PROTOCOL_TCP, targetPort: 80, publishedPort: p, publishMode: PortConfig_PublishMode.PUBLISH_MODE_HOST }));
  return {
    id,
    serviceId: o.service ?? 'svc',
    specVersion: o.specVersion ?? 1,
    slot: o.slot ?? seq,
    nodeId: o.nodeId ?? '',
    spec: {
      resources: { reservations: { nanoCpus: (o.cpus ?? 0) * CPU, memoryBytes: o.memory ?? 0, pids: 0 } },
      placement: { constraints: [], preferences: [], platforms: [], maxReplicasPerNode: 0, ...o.placement },
      networks: [],
      forceUpdate: 0,
    },
    endpoint: { ports: [], virtualIps: [], spec: { mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, ports } },
    status: { state: o.state ?? TaskState.TASK_STATE_PENDING, timestampUnixMs: 0, message: '', err: '', pendingReason: '' },
    desiredState: o.desired ?? TaskState.TASK_STATE_RUNNING,
    networks: [],
    jobIteration: 0,
  };
}

/** A task already running on a node. */
function running(nodeId: string, o: TaskOpts = {}): Task {
  return task({ ...o, nodeId, state: TaskState.TASK_STATE_RUNNING });
}

function plan(input: Partial<ScheduleInput> & { pending: Task[]; nodes: Node[] }): Plan {
  return schedule({ placed: [], ...input });
}

function nodeOf(p: Plan, t: Task): string | undefined {
  return p.placements.find((x) => x.taskId === t.id)?.nodeId;
}

function reasonOf(p: Plan, t: Task): string | undefined {
  return p.unplaced.find((x) => x.taskId === t.id)?.reason;
}

function perNode(p: Plan): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { nodeId } of p.placements) out[nodeId] = (out[nodeId] ?? 0) + 1;
  return out;
}

describe('filters', () => {
  it('places only on READY, ACTIVE nodes', () => {
    const nodes = [
      node('a', { state: NodeState.NODE_STATE_DOWN }),
      node('b', { state: NodeState.NODE_STATE_UNKNOWN }),
      node('c', { availability: NodeAvailability.NODE_AVAILABILITY_DRAIN }),
      node('d', { availability: NodeAvailability.NODE_AVAILABILITY_PAUSE }),
      node('e'),
    ];
    const ts = [task(), task(), task()];
    const p = plan({ pending: ts, nodes });
    expect(perNode(p)).toEqual({ e: 3 });
  });

  it('explains an unplaceable task per filter, the first filter a node fails counting', () => {
    const nodes = [
      node('a', { state: NodeState.NODE_STATE_DOWN, memory: 1 * GB }), // down (not "lacks memory")
      node('b', { availability: NodeAvailability.NODE_AVAILABILITY_DRAIN }),
      node('c', { memory: 1 * GB }),
      node('d', { memory: 2 * GB }),
    ];
    const t = task({ memory: 4 * GB });
    expect(reasonOf(plan({ pending: [t], nodes }), t)).toBe('no suitable node (2 nodes lack memory, 1 node is down, 1 node is drained)');
  });

  it('subtracts the reservations of the tasks already on a node', () => {
    const nodes = [node('a', { cpus: 2, memory: 4 * GB }), node('b', { cpus: 2, memory: 4 * GB })];
    const placed = [running('a', { service: 'other', cpus: 1.5 }), running('b', { service: 'other', memory: 3.5 * GB })];
    const cpuTask = task({ service: 's1', cpus: 1 });
    const memTask = task({ service: 's2', memory: 1 * GB });
    const p = plan({ pending: [cpuTask, memTask], nodes, placed });
    expect(nodeOf(p, cpuTask)).toBe('b');
    expect(nodeOf(p, memTask)).toBe('a');
    const big = task({ service: 's3', cpus: 1, memory: 1 * GB });
    expect(reasonOf(plan({ pending: [big], nodes, placed }), big)).toBe('no suitable node (1 node lacks CPU, 1 node lacks memory)');
  });

  it('ignores finished tasks and tasks being stopped when it counts what a node holds', () => {
    const nodes = [node('a', { cpus: 1 })];
    const placed = [running('a', { cpus: 1, desired: TaskState.TASK_STATE_SHUTDOWN }), task({ nodeId: 'a', cpus: 1, state: TaskState.TASK_STATE_FAILED })];
    const t = task({ service: 'x', cpus: 1 });
    expect(nodeOf(plan({ pending: [t], nodes, placed }), t)).toBe('a');
  });

  it('applies placement constraints', () => {
    const nodes = [node('a', { labels: { zone: 'east' } }), node('b', { labels: { zone: 'west' } }), node('c')];
    const t = task({ placement: { constraints: ['node.labels.zone==west'] } });
    expect(nodeOf(plan({ pending: [t], nodes }), t)).toBe('b');
    const u = task({ placement: { constraints: ['node.labels.zone==north'] } });
    expect(reasonOf(plan({ pending: [u], nodes }), u)).toBe('no suitable node (3 nodes do not satisfy the placement constraints)');
  });

  it('refuses a task whose constraint does not parse, saying why', () => {
    const t = task({ placement: { constraints: ['node.color==red'] } });
    expect(reasonOf(plan({ pending: [t], nodes: [node('a')] }), t)).toMatch(/^cannot be scheduled: .*unknown key "node.color"/);
  });

  it('does not publish the same host port twice on a node', () => {
    const nodes = [node('a'), node('b')];
    const placed = [running('a', { service: 'other', hostPorts: [8080] })];
    const ts = [task({ hostPorts: [8080] }), task({ hostPorts: [8080] }), task({ hostPorts: [8080] })];
    const p = plan({ pending: ts, nodes, placed });
    expect(perNode(p)).toEqual({ b: 1 });
    expect(reasonOf(p, ts[1]!)).toBe('no suitable node (2 nodes have a requested host port in use)');
    // Another port, or a port of another protocol, is free.
    const other = task({ service: 'o2', hostPorts: [8081] });
    expect(nodeOf(plan({ pending: [other], nodes: [node('a')], placed }), other)).toBe('a');
  });

  it('limits replicas per node, counting the tasks of the same service only', () => {
    const nodes = [node('a'), node('b')];
    const placed = [running('a', { service: 'svc' }), running('b', { service: 'unrelated' }), running('b', { service: 'unrelated' })];
    const ts = Array.from({ length: 5 }, () => task({ placement: { maxReplicasPerNode: 2 } }));
    const p = plan({ pending: ts, nodes, placed });
    expect(perNode(p)).toEqual({ a: 1, b: 2 });
    expect(p.unplaced).toHaveLength(2);
    expect(p.unplaced[0]!.reason).toBe('no suitable node (2 nodes already run the maximum replicas per node)');
  });

  it('matches the platforms of the placement', () => {
    const nodes = [node('a', { arch: 'amd64' }), node('b', { arch: 'aarch64' }), node('c', { os: 'windows', arch: 'arm64' })];
    const t = task({ placement: { platforms: [{ os: 'linux', architecture: 'arm64' }] } });
    expect(nodeOf(plan({ pending: [t], nodes }), t)).toBe('b');
    const u = task({ placement: { platforms: [{ os: 'freebsd', architecture: '' }] } });
    expect(reasonOf(plan({ pending: [u], nodes }), u)).toBe('no suitable node (3 nodes have an unsupported platform)');
  });

  it('says so when there are no nodes', () => {
    const t = task();
    expect(reasonOf(plan({ pending: [t], nodes: [] }), t)).toBe('no suitable node (the cluster has no nodes)');
  });

  it('summarizes most frequent first, then in filter order', () => {
    const counts = new Map([
      ['memory', 1],
      ['down', 1],
      ['cpu', 3],
    ] as const);
    expect(summarize(counts, 5)).toBe('no suitable node (3 nodes lack CPU, 1 node is down, 1 node lacks memory)');
  });
});

describe('ranking', () => {
  it('spreads a batch of 100 replicas evenly over 3 nodes', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const ts = Array.from({ length: 100 }, () => task());
    const p = plan({ pending: ts, nodes });
    expect(p.unplaced).toEqual([]);
    expect(Object.values(perNode(p)).sort()).toEqual([33, 33, 34]);
  });

  it('prefers nodes with fewer tasks of the service, then fewer tasks overall', () => {
    const nodes = [node('a'), node('b'), node('c')];
    const placed = [running('a', { service: 'svc' }), running('b', { service: 'x' }), running('b', { service: 'x' }), running('c', { service: 'x' })];
    const ts = [task(), task()];
    const p = plan({ pending: ts, nodes, placed });
    // c has none of svc and fewer tasks than b; then b (none of svc) before a.
    expect(nodeOf(p, ts[0]!)).toBe('c');
    expect(nodeOf(p, ts[1]!)).toBe('b');
  });

  it('balances over the values of a spread preference first', () => {
    // Zone east has 3 nodes, west 1: a 4-task spread puts 2 in each zone.
    const nodes = [node('e1', { labels: { zone: 'east' } }), node('e2', { labels: { zone: 'east' } }), node('e3', { labels: { zone: 'east' } }), node('w1', { labels: { zone: 'west' } })];
    const ts = Array.from({ length: 4 }, () => task({ placement: { preferences: [{ spreadDescriptor: 'node.labels.zone' }] } }));
    const p = plan({ pending: ts, nodes });
    expect(perNode(p)).toEqual({ e1: 1, e2: 1, w1: 2 });
  });

  it('counts the tasks already in each spread group', () => {
    const nodes = [node('e1', { labels: { zone: 'east' } }), node('w1', { labels: { zone: 'west' } }), node('w2', { labels: { zone: 'west' } })];
    const placed = [running('w1'), running('w2')];
    const ts = Array.from({ length: 2 }, () => task({ placement: { preferences: [{ spreadDescriptor: 'node.labels.zone' }] } }));
    expect(perNode(plan({ pending: ts, nodes, placed }))).toEqual({ e1: 2 });
  });

  it('places batches of different services independently, and spreads the second around the first', () => {
    const nodes = [node('a'), node('b')];
    const s1 = [task({ service: 's1' })];
    const s2 = [task({ service: 's2' }), task({ service: 's2' }), task({ service: 's2' })];
    const p = plan({ pending: [...s2, ...s1], nodes });
    expect(nodeOf(p, s1[0]!)).toBe('a');
    // s2: one per node, then the node with fewer tasks overall (b).
    expect(s2.map((t) => nodeOf(p, t))).toEqual(['b', 'a', 'b']);
  });
});

describe('preassigned tasks', () => {
  it('checks a task with a node only against that node', () => {
    const nodes = [node('a', { memory: 1 * GB }), node('b')];
    const fits = task({ service: 'g', nodeId: 'b', memory: 2 * GB });
    const tooBig = task({ service: 'g', nodeId: 'a', memory: 2 * GB });
    const drained = task({ service: 'g', nodeId: 'c' });
    const p = plan({ pending: [fits, tooBig, drained], nodes: [...nodes, node('c', { availability: NodeAvailability.NODE_AVAILABILITY_DRAIN })] });
    expect(nodeOf(p, fits)).toBe('b');
    expect(reasonOf(p, tooBig)).toBe('node a lacks memory');
    expect(reasonOf(p, drained)).toBe('node c is drained');
    const gone = task({ service: 'g', nodeId: 'zzz' });
    expect(reasonOf(plan({ pending: [gone], nodes }), gone)).toBe('node zzz does not exist');
  });

  it('places preassigned tasks first: their reservations count for the others', () => {
    const nodes = [node('a', { cpus: 1 }), node('b', { cpus: 1 })];
    const replica = task({ service: 'r', cpus: 1 });
    const global = task({ service: 'g', nodeId: 'a', cpus: 1 });
    const p = plan({ pending: [replica, global], nodes });
    expect(nodeOf(p, global)).toBe('a');
    expect(nodeOf(p, replica)).toBe('b');
  });
});

describe('determinism', () => {
  it('gives the same plan for the same input, whatever the input order', () => {
    const nodes = Array.from({ length: 7 }, (_, i) => node(`n${i}`, { labels: { rack: String(i % 3) } }));
    const ts = Array.from({ length: 40 }, (_, i) => task({ service: `s${i % 4}`, placement: { preferences: [{ spreadDescriptor: 'node.labels.rack' }] } }));
    const p1 = plan({ pending: ts, nodes, seed: 7 });
    const p2 = plan({ pending: [...ts].reverse(), nodes: [...nodes].reverse(), seed: 7 });
    const byTask = (p: Plan): string[] => p.placements.map((x) => `${x.taskId}@${x.nodeId}`).sort();
    expect(byTask(p2)).toEqual(byTask(p1));
  });

  it('breaks ties by node id without a seed, and by a seeded order with one', () => {
    const nodes = Array.from({ length: 8 }, (_, i) => node(`n${i}`));
    const t = task();
    expect(nodeOf(plan({ pending: [t], nodes }), t)).toBe('n0');
    const firsts = new Set([1, 2, 3, 4, 5, 6, 7, 8].map((seed) => nodeOf(plan({ pending: [t], nodes, seed }), t)));
    expect(firsts.size).toBeGreaterThan(1);
    expect(nodeOf(plan({ pending: [t], nodes, seed: 3 }), t)).toBe(nodeOf(plan({ pending: [t], nodes, seed: 3 }), t));
  });
});

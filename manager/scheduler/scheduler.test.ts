// The pure core over simulated nodes: each filter, the summary reason, spread, batches,
// preassigned tasks and determinism. No store, no timers.
import { describe, expect, it } from 'vitest';
import type { Node, Task } from '../../proto/gen/tswarm/objects.js';
import type { Placement as PlacementSpec, PortConfig } from '../../proto/gen/tswarm/types.js';
import { EndpointSpec_ResolutionMode, NodeAvailability, NodeRole, NodeState, PortConfig_Protocol, PortConfig_PublishMode, TaskState } from '../../proto/gen/tswarm/types.js';
import { seededRandom } from '../raft/core/rand.js';
import { matchesAll, parseConstraints } from '../constraint/constraint.js';
import { hostPortsOf, occupiesNode, schedule, summarize, type Plan, type ScheduleInput } from './scheduler.js';

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
    attachments: [],
    peerPaths: [],
    id,
    spec: { annotations: { name: '', labels: o.labels ?? {} }, desiredRole: NodeRole.NODE_ROLE_WORKER, availability: o.availability ?? NodeAvailability.NODE_AVAILABILITY_ACTIVE },
    description: { hostname: id, platform: { os: o.os ?? 'linux', architecture: o.arch ?? 'amd64' }, resources: { nanoCpus: (o.cpus ?? 4) * CPU, memoryBytes: o.memory ?? 8 * GB, pids: 0 }, engineVersion: '', dataPathAddr: '', hostPrefixes: [] },
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

// The core ranks with a heap per spread group (O(groups + log nodes) per placement). This checks it
// against the rule written out plainly: for each task of each batch, in order, every node is
// filtered and the lexicographic minimum of (tasks of the service in the node's group at each
// spread level, over the nodes that pass the static filters; tasks of the service on the node;
// tasks on the node; node id) is chosen.
describe('equivalence with the plain O(nodes) rule', () => {
  function reference(input: ScheduleInput): Map<string, string | undefined> {
    const nodes = [...input.nodes].sort((a, b) => (a.id < b.id ? -1 : 1));
    const st = new Map(
      nodes.map((n) => [n.id, { cpu: n.description!.resources!.nanoCpus, mem: n.description!.resources!.memoryBytes, total: 0, svc: new Map<string, number>(), ports: new Set<string>() }]),
    );
    const add = (nodeId: string, t: Task): void => {
      const s = st.get(nodeId)!;
      s.cpu -= t.spec?.resources?.reservations?.nanoCpus ?? 0;
      s.mem -= t.spec?.resources?.reservations?.memoryBytes ?? 0;
      s.total++;
      s.svc.set(t.serviceId, (s.svc.get(t.serviceId) ?? 0) + 1);
      for (const p of hostPortsOf(t)) s.ports.add(p);
    };
    for (const t of input.placed) if (occupiesNode(t) && st.has(t.nodeId)) add(t.nodeId, t);
    const out = new Map<string, string | undefined>();
    const sorted = [...input.pending].sort((a, b) => (a.serviceId < b.serviceId ? -1 : a.serviceId > b.serviceId ? 1 : a.specVersion - b.specVersion || a.slot - b.slot || (a.id < b.id ? -1 : 1)));
    for (const t of sorted) {
      const pl = t.spec!.placement!;
      const cs = parseConstraints(pl.constraints, 'c');
      const labels = pl.preferences.map((p) => p.spreadDescriptor.slice('node.labels.'.length));
      const ok = (n: Node): boolean =>
        n.status?.state === NodeState.NODE_STATE_READY && n.spec?.availability === NodeAvailability.NODE_AVAILABILITY_ACTIVE && matchesAll(cs, n);
      const fits = (n: Node): boolean => {
        const s = st.get(n.id)!;
        const r = t.spec!.resources!.reservations!;
        return r.nanoCpus <= s.cpu && r.memoryBytes <= s.mem && !hostPortsOf(t).some((p) => s.ports.has(p)) && !(pl.maxReplicasPerNode > 0 && (s.svc.get(t.serviceId) ?? 0) >= pl.maxReplicasPerNode);
      };
      const group = (n: Node, level: number): string => labels.slice(0, level + 1).map((l) => n.spec!.annotations!.labels[l] ?? '').join('\0');
      const inGroup = (n: Node, level: number): number =>
        nodes.filter((m) => ok(m) && group(m, level) === group(n, level)).reduce((sum, m) => sum + (st.get(m.id)!.svc.get(t.serviceId) ?? 0), 0);
      const key = (n: Node): number[] => {
        const s = st.get(n.id)!;
        return [...labels.map((_, level) => inGroup(n, level)), s.svc.get(t.serviceId) ?? 0, s.total];
      };
      let best: Node | undefined;
      let bestKey: number[] = [];
      for (const n of nodes) {
        if (!ok(n) || !fits(n)) continue;
        const k = key(n);
        const d = k.findIndex((v, i) => v !== bestKey[i]);
        if (!best || (d >= 0 && k[d]! < bestKey[d]!)) [best, bestKey] = [n, k];
      }
      out.set(t.id, best?.id);
      if (best) add(best.id, t);
    }
    return out;
  }

  function randomInput(seed: number): ScheduleInput {
    const r = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const nodes = Array.from({ length: 5 + Math.floor(r() * 30) }, (_, i) => {
      const labels: Record<string, string> = {};
      if (r() < 0.9) labels.zone = pick(['z1', 'z2', 'z3']);
      if (r() < 0.9) labels.rack = pick(['r1', 'r2', 'r3', 'r4']);
      return node(`n${String(i).padStart(2, '0')}`, {
        labels,
        cpus: 1 + Math.floor(r() * 4),
        memory: (1 + Math.floor(r() * 8)) * GB,
        state: r() < 0.1 ? NodeState.NODE_STATE_DOWN : NodeState.NODE_STATE_READY,
        availability: r() < 0.1 ? NodeAvailability.NODE_AVAILABILITY_DRAIN : NodeAvailability.NODE_AVAILABILITY_ACTIVE,
      });
    });
    const spreads = [[], ['node.labels.zone'], ['node.labels.zone', 'node.labels.rack'], ['node.labels.rack']];
    const placed = Array.from({ length: Math.floor(r() * 20) }, () => running(pick(nodes).id, { service: pick(['a', 'b']), cpus: 0.5, memory: 0.5 * GB }));
    const pending: Task[] = [];
    for (const service of ['a', 'b', 'c', 'd']) {
      const placement: Partial<PlacementSpec> = {
        preferences: pick(spreads).map((spreadDescriptor) => ({ spreadDescriptor })),
        maxReplicasPerNode: pick([0, 0, 1, 2, 3]),
        constraints: r() < 0.3 ? ['node.labels.zone!=z1'] : [],
      };
      const o: TaskOpts = { service, cpus: pick([0, 0.25, 0.5, 1]), memory: pick([0, 0.5, 1, 2]) * GB, placement, hostPorts: r() < 0.15 ? [8080] : [] };
      for (let i = 0; i < Math.floor(r() * 40); i++) pending.push(task(o));
    }
    return { nodes, placed, pending };
  }

  it('places every task where the plain rule does, over 150 random clusters', () => {
    let placements = 0;
    let unplaced = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const input = randomInput(seed);
      const p = schedule(input);
      const got = new Map<string, string | undefined>([...p.placements.map((x) => [x.taskId, x.nodeId] as const), ...p.unplaced.map((x) => [x.taskId, undefined] as const)]);
      expect(got, `seed ${seed}`).toEqual(reference(input));
      placements += p.placements.length;
      unplaced += p.unplaced.length;
    }
    // The cases exercise both outcomes.
    expect(placements).toBeGreaterThan(1000);
    expect(unplaced).toBeGreaterThan(100);
  });
});

// The dispatcher over real gRPC with mutual TLS on loopback, on a store whose proposer can be
// held (a commit that has not happened yet), with a worker's certificate as the client:
// - not leading, it refuses with UNAVAILABLE and the leader's address, and the call ends (it
//   must not hang: grpc-js sends no status for a stream ended with destroy(err));
// - a removal in the assignments reaches the worker without breaking the stream;
// - a status report is answered only once the store has committed it;
// - a service's registry credential goes only to the nodes with a task of it to run.
// - a node is sent the overlay networks of its tasks and their endpoints on other nodes, and
//   changes to them; its heartbeats' path states are recorded when they change.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AssignmentChange_Action, AssignmentsMessage_Type, DispatcherClient, type AssignmentsMessage, type SessionMessage } from '../proto/gen/tswarm/dispatcher.js';
import { Network, Node, Service, Task, type Secret } from '../proto/gen/tswarm/objects.js';
import { NodeRole, NodeState, PeerPath_State, TaskState, type RegistryAuth } from '../proto/gen/tswarm/types.js';
import { NodeCertProvider, TLS_CHANNEL_OPTIONS } from '../common/certs.js';
import { createLogger } from '../common/logger.js';
import { createNodeKey, createRootCA, issueNodeCertificate, type RootCA } from '../manager/ca/ca.js';
import { Dispatcher, DispatcherService, STOP_GATE_MS } from '../manager/dispatcher/dispatcher.js';
import { MemoryStore, type ApplyResult, type Proposer, type Tx } from '../manager/store/memory.js';
import { sealRegistryAuth, Sealer } from '../manager/store/sealing.js';

const log = createLogger({ node: 'test', component: 'test', level: 'silent' });

async function certsFor(ca: RootCA, nodeId: string, role: 'manager' | 'worker'): Promise<NodeCertProvider> {
  const key = await createNodeKey();
  const certPem = await issueNodeCertificate(ca, key.csrPem, { nodeId, role, clusterId: 'c1' });
  return new NodeCertProvider({ caPem: ca.certPem, keyPem: key.keyPem, certPem });
}

/** Serves the dispatcher with a manager's certificate; a client with worker w1's. */
async function serve(dispatcher: Dispatcher): Promise<{ client: DispatcherClient; close: () => Promise<void> }> {
  const ca = await createRootCA();
  const mgr = await certsFor(ca, 'mgr', 'manager');
  const w1 = await certsFor(ca, 'w1', 'worker');
  const server = new grpc.Server();
  server.addService(DispatcherService, dispatcher.implementation());
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', mgr.serverCredentials(), (e, p) => (e ? reject(e) : resolve(p))));
  const client = new DispatcherClient(`127.0.0.1:${port}`, w1.channelCredentials(), TLS_CHANNEL_OPTIONS);
  return {
    client,
    close: async () => {
      client.close();
      await dispatcher.stop();
      server.forceShutdown();
    },
  };
}

/** Applies at once, unless held: then proposals wait until `release`. */
class HoldingProposer implements Proposer {
  private index = 0;
  held = false;
  private waiting: (() => void)[] = [];
  constructor(private readonly store: MemoryStore) {}
  async propose(data: Uint8Array): Promise<ApplyResult> {
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.store.apply(data, ++this.index);
  }
  release(): void {
    this.held = false;
    for (const w of this.waiting.splice(0)) w();
  }
}

/**
 * A dispatcher over a store holding what `seed` writes, served over
 * mutual TLS to the describe block that calls this: served in its beforeAll, closed in its afterAll.
 */
function servedDispatcher(opts: { leader?: string; heartbeatPeriodMs?: number; seed?: (tx: Tx) => void } = {}) {
  const store = new MemoryStore();
  const proposer = new HoldingProposer(store);
  store.setProposer(proposer);
  const sealer = Sealer.random();
  const dispatcher = new Dispatcher(store, sealer, log, () => opts.leader, { heartbeatPeriodMs: opts.heartbeatPeriodMs ?? 60_000, batchMs: 5 });
  const served = { store, proposer, sealer, dispatcher, client: undefined as unknown as DispatcherClient };
  let close: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const seed = opts.seed;
    if (seed) await store.update(seed);
    ({ client: served.client, close } = await serve(dispatcher));
  });
  afterAll(async () => {
    await close?.();
  });
  return served;
}

async function until(what: string, fn: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A session of worker w1 and its assignments stream, once the complete set has come; errors ignored. */
async function openAssignments(client: DispatcherClient): Promise<{ session: grpc.ClientReadableStream<SessionMessage>; assignments: grpc.ClientReadableStream<AssignmentsMessage>; msgs: AssignmentsMessage[] }> {
  const session = client.session({ sessionId: '' });
  session.on('error', () => undefined);
  const first = await new Promise<SessionMessage>((resolve) => session.once('data', resolve));
  const msgs: AssignmentsMessage[] = [];
  const assignments = client.assignments({ sessionId: first.sessionId });
  assignments.on('error', () => undefined);
  assignments.on('data', (m: AssignmentsMessage) => msgs.push(m));
  await until('the complete set', () => msgs.length >= 1);
  return { session, assignments, msgs };
}

const task = (id: string, state = TaskState.TASK_STATE_ASSIGNED): Task =>
  Task.fromPartial({ id, serviceId: 's1', slot: 1, nodeId: 'w1', desiredState: TaskState.TASK_STATE_RUNNING, status: { state, message: '', timestampUnixMs: 1 } });

describe('dispatcher over mutual TLS', () => {
  const d = servedDispatcher({
    leader: '10.0.0.9:4242',
    seed: (tx) => {
      tx.create('node', Node.fromPartial({ id: 'w1', role: NodeRole.NODE_ROLE_WORKER, status: { state: NodeState.NODE_STATE_READY, message: '', addr: '' } }));
      tx.create('task', task('t1'));
      tx.create('task', task('t2'));
    },
  });
  const { store, proposer, dispatcher } = d;

  it('not leading, refuses a session with UNAVAILABLE and the leader in the trailer, and the call ends', async () => {
    const call = d.client.session({ sessionId: '' });
    const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the refused call hangs')), 3_000);
      call.on('error', (e: grpc.ServiceError) => (clearTimeout(t), resolve(e)));
      call.on('data', () => reject(new Error('a session from a dispatcher that does not lead')));
    });
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.metadata.get('leader')).toEqual(['10.0.0.9:4242']);
  });

  it('sends the complete set, then a removal, on one stream; answers a status report once it is committed, and does not send it back', async () => {
    dispatcher.start();
    const session = d.client.session({ sessionId: '' });
    const sessionErrors: grpc.ServiceError[] = [];
    session.on('error', (e: grpc.ServiceError) => sessionErrors.push(e));
    const first = await new Promise<SessionMessage>((resolve) => session.once('data', resolve));
    const msgs: AssignmentsMessage[] = [];
    const assignments = d.client.assignments({ sessionId: first.sessionId });
    const streamErrors: grpc.ServiceError[] = [];
    assignments.on('data', (m: AssignmentsMessage) => msgs.push(m));
    assignments.on('error', (e: grpc.ServiceError) => streamErrors.push(e));
    await until('the complete set', () => msgs.length >= 1);
    expect(msgs[0]!.type).toBe(AssignmentsMessage_Type.TYPE_COMPLETE);
    expect(msgs[0]!.changes.map((c) => (c.assignment?.item?.$case === 'task' ? c.assignment.item.task.id : '')).sort()).toEqual(['t1', 't2']);

    // A task deleted from the store: an incremental removal (a whole message: it must encode).
    await store.update((tx) => tx.remove('task', 't2'));
    await until('the removal', () => msgs.some((m) => m.changes.some((c) => c.action === AssignmentChange_Action.ACTION_REMOVE)));
    const removal = msgs.find((m) => m.type === AssignmentsMessage_Type.TYPE_INCREMENTAL)!;
    expect(removal.changes.map((c) => [c.action, c.assignment?.item?.$case === 'task' ? c.assignment.item.task.id : ''])).toEqual([[AssignmentChange_Action.ACTION_REMOVE, 't2']]);
    expect(streamErrors).toEqual([]);

    // A report waits for its commit.
    proposer.held = true;
    let answered = false;
    const reply = new Promise<grpc.ServiceError | null>((resolve) =>
      d.client.updateTaskStatus(
        { sessionId: first.sessionId, updates: [{ taskId: 't1', status: { state: TaskState.TASK_STATE_RUNNING, message: 'running', err: '', pendingReason: '', timestampUnixMs: 2 } }] },
        (err) => {
          answered = true;
          resolve(err);
        },
      ),
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toBe(false);
    expect(store.get('task', 't1')!.status!.state).toBe(TaskState.TASK_STATE_ASSIGNED);
    proposer.release();
    expect(await reply).toBeNull();
    expect(store.get('task', 't1')!.status!.state).toBe(TaskState.TASK_STATE_RUNNING);

    // The node's own report is not sent back to it; a change of the desired state is.
    const seen = msgs.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(msgs.length).toBe(seen);
    await store.update((tx) => tx.update('task', { ...tx.get('task', 't1')!, desiredState: TaskState.TASK_STATE_SHUTDOWN }));
    await until('the desired state', () => msgs.length > seen);
    const change = msgs[seen]!.changes.map((c) => (c.assignment?.item?.$case === 'task' ? c.assignment.item.task : undefined));
    expect(change.map((t) => [t?.id, t?.desiredState, t?.status?.state])).toEqual([['t1', TaskState.TASK_STATE_SHUTDOWN, TaskState.TASK_STATE_RUNNING]]);
    expect(sessionErrors).toEqual([]);
    session.cancel();
    assignments.cancel();
  });
});

describe('dispatcher node liveness', () => {
  // 100 ms heartbeats: a node is down after 300 ms without one.
  const d = servedDispatcher({ heartbeatPeriodMs: 100 });
  const { store, dispatcher } = d;

  const ready = (id: string): Node => Node.fromPartial({ id, role: NodeRole.NODE_ROLE_WORKER, status: { state: NodeState.NODE_STATE_READY, message: 'joined', addr: '' } });
  const stateOf = (id: string): NodeState | undefined => store.get('node', id)?.status?.state;

  it('gives a node that joins after the dispatcher started its own grace, then marks it down', async () => {
    dispatcher.start();
    await new Promise((r) => setTimeout(r, 400)); // past the dispatcher's own grace
    await store.update((tx) => tx.create('node', ready('w9')));
    await new Promise((r) => setTimeout(r, 150));
    expect(stateOf('w9')).toBe(NodeState.NODE_STATE_READY); // joined 150 ms ago: still in its grace
    await until('w9 down', () => stateOf('w9') === NodeState.NODE_STATE_DOWN, 2_000);
  });

  it('marks a node with a live session ready again at its next heartbeat', async () => {
    await store.update((tx) => tx.create('node', ready('w1')));
    const session = d.client.session({ sessionId: '' });
    session.on('error', () => undefined);
    const first = await new Promise<SessionMessage>((resolve) => session.once('data', resolve));
    await until('w1 ready', () => stateOf('w1') === NodeState.NODE_STATE_READY);
    // A DOWN written over it (a check that raced the session's start, as seen in CI).
    await store.update((tx) => {
      const n = tx.get('node', 'w1')!;
      tx.update('node', { ...n, status: { state: NodeState.NODE_STATE_DOWN, message: 'stale', addr: '' } });
    });
    await new Promise<void>((resolve, reject) => d.client.heartbeat({ sessionId: first.sessionId, peerPaths: [], appliedSequence: 0 }, (err) => (err ? reject(err) : resolve())));
    await until('w1 ready again', () => stateOf('w1') === NodeState.NODE_STATE_READY);
    // And heartbeats keep it up past several grace periods.
    const beat = setInterval(() => d.client.heartbeat({ sessionId: first.sessionId, peerPaths: [], appliedSequence: 0 }, () => undefined), 50);
    await new Promise((r) => setTimeout(r, 700));
    clearInterval(beat);
    expect(stateOf('w1')).toBe(NodeState.NODE_STATE_READY);
    session.cancel();
  });
});

describe('dispatcher registry credentials', () => {
  const alice: RegistryAuth = { serverAddress: '10.0.0.1:5000', username: 'alice', password: 'wonderland', identityToken: '' };
  const bob: RegistryAuth = { ...alice, username: 'bob', password: 'builder' };
  const service = (id: string, auth: RegistryAuth | undefined, replicas = 1): Service =>
    Service.fromPartial({ id, spec: { annotations: { name: id, labels: {} }, mode: { $case: 'replicated', replicated: { replicas } } }, specVersion: 1, registryAuth: auth ? sealRegistryAuth(sealer, id, auth) : Buffer.alloc(0) });
  const taskOf = (id: string, serviceId: string, nodeId: string): Task =>
    Task.fromPartial({ id, serviceId, slot: 1, nodeId, desiredState: TaskState.TASK_STATE_RUNNING, status: { state: TaskState.TASK_STATE_ASSIGNED, message: '', timestampUnixMs: 1 } });
  const credentials = (m: AssignmentsMessage): [AssignmentChange_Action, string, string | undefined][] =>
    m.changes.flatMap((c) => (c.assignment?.item?.$case === 'registryCredential' ? [[c.action, c.assignment.item.registryCredential.serviceId, c.assignment.item.registryCredential.auth?.username]] : []));

  const d = servedDispatcher({
    seed: (tx) => {
      tx.create('node', Node.fromPartial({ id: 'w1', role: NodeRole.NODE_ROLE_WORKER, status: { state: NodeState.NODE_STATE_READY, message: '', addr: '' } }));
      tx.create('service', service('private', alice));
      tx.create('service', service('public', undefined));
      tx.create('service', service('elsewhere', bob));
      tx.create('task', taskOf('t1', 'private', 'w1'));
      tx.create('task', taskOf('t2', 'public', 'w1'));
      tx.create('task', taskOf('t3', 'elsewhere', 'w2'));
    },
  });
  const { store, sealer, dispatcher } = d;

  it("sends a service's credential only to nodes with a task of it to run, opened; again only when replaced; withdraws it when they have none", async () => {
    dispatcher.start();
    const { session, assignments, msgs } = await openAssignments(d.client);
    // Only the credential of the service with a task here; in clear (over mutual TLS), whole.
    expect(credentials(msgs[0]!)).toEqual([[AssignmentChange_Action.ACTION_UPDATE, 'private', 'alice']]);
    const item = msgs[0]!.changes.find((c) => c.assignment?.item?.$case === 'registryCredential')!.assignment!.item!;
    expect(item.$case === 'registryCredential' && item.registryCredential.auth).toEqual(alice);

    // A spec change of the service (its version moves, the credential does not): nothing sent.
    await store.update((tx) => tx.update('service', { ...tx.get('service', 'private')!, specVersion: 2 }));
    await new Promise((r) => setTimeout(r, 200));
    expect(msgs.flatMap(credentials)).toHaveLength(1);

    // Replaced: sent again.
    await store.update((tx) => tx.update('service', { ...tx.get('service', 'private')!, registryAuth: sealRegistryAuth(sealer, 'private', bob) }));
    await until('the new credential', () => msgs.flatMap(credentials).length === 2);
    expect(msgs.flatMap(credentials)[1]).toEqual([AssignmentChange_Action.ACTION_UPDATE, 'private', 'bob']);

    // Its task told to stop: withdrawn (a removal carrying the service id).
    await store.update((tx) => tx.update('task', { ...tx.get('task', 't1')!, desiredState: TaskState.TASK_STATE_SHUTDOWN }));
    await until('the withdrawal', () => msgs.flatMap(credentials).length === 3);
    expect(msgs.flatMap(credentials)[2]).toEqual([AssignmentChange_Action.ACTION_REMOVE, 'private', undefined]);
    // Never the credential of a service whose tasks are on other nodes.
    expect(msgs.flatMap(credentials).map(([, id]) => id)).not.toContain('elsewhere');
    session.cancel();
    assignments.cancel();
  });
});

describe('dispatcher secrets', () => {
  const secret = (id: string, text: string): Secret => ({ id, spec: { annotations: { name: id, labels: {} }, data: sealer.seal(Buffer.from(text), `secret:${id}`) } });
  const secretsIn = (m: AssignmentsMessage): [AssignmentChange_Action, string, string][] =>
    m.changes.flatMap((c) => (c.assignment?.item?.$case === 'secret' ? [[c.action, c.assignment.item.secret.id, Buffer.from(c.assignment.item.secret.spec?.data ?? []).toString()]] : []));

  const d = servedDispatcher({
    seed: (tx) => {
      tx.create('node', Node.fromPartial({ id: 'w1', role: NodeRole.NODE_ROLE_WORKER, status: { state: NodeState.NODE_STATE_READY, message: '', addr: '' } }));
      tx.create('secret', secret('db-password', 'hunter2'));
      tx.create(
        'task',
        Task.fromPartial({
          id: 't1',
          serviceId: 's1',
          slot: 1,
          nodeId: 'w1',
          desiredState: TaskState.TASK_STATE_RUNNING,
          status: { state: TaskState.TASK_STATE_ASSIGNED, message: '', timestampUnixMs: 1 },
          spec: { container: { secrets: [{ secretId: 'db-password' }, { secretId: 'api-key' }] } },
        }),
      );
    },
  });
  const { store, sealer, dispatcher } = d;

  it('sends a node the secrets its tasks use, opened; an unrelated secret is no news to it, a missing one is when it comes; a sync opens only what it sends', async () => {
    dispatcher.start();
    const opened = vi.spyOn(sealer, 'open');
    const { session, assignments, msgs } = await openAssignments(d.client);
    expect(secretsIn(msgs[0]!)).toEqual([[AssignmentChange_Action.ACTION_UPDATE, 'db-password', 'hunter2']]);
    expect(opened).toHaveBeenCalledTimes(1);

    // The task's status moves (a new version, nothing new for the node): the secret is not opened again.
    await store.update((tx) => tx.update('task', { ...tx.get('task', 't1')!, status: { ...tx.get('task', 't1')!.status!, state: TaskState.TASK_STATE_RUNNING, timestampUnixMs: 2 } }));
    // Secrets no task of the node uses: nothing is sent, nothing opened.
    await store.update((tx) => {
      for (let i = 0; i < 50; i++) tx.create('secret', secret(`other-${i}`, 'x'));
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(msgs).toHaveLength(1);
    expect(opened).toHaveBeenCalledTimes(1);

    // The secret the task waited for: sent once it exists.
    await store.update((tx) => tx.create('secret', secret('api-key', 'sesame')));
    await until('the missing secret', () => msgs.flatMap(secretsIn).length === 2);
    expect(msgs.flatMap(secretsIn)[1]).toEqual([AssignmentChange_Action.ACTION_UPDATE, 'api-key', 'sesame']);
    expect(opened).toHaveBeenCalledTimes(2);
    session.cancel();
    assignments.cancel();
  });
});

describe('dispatcher overlay networks', () => {
  const onFront = (id: string, nodeId: string, address: string, state = TaskState.TASK_STATE_RUNNING): Task =>
    Task.fromPartial({ id, serviceId: 's1', slot: 1, nodeId, desiredState: TaskState.TASK_STATE_RUNNING, status: { state, message: '', timestampUnixMs: 1 }, networks: [{ networkId: 'front', addresses: [`${address}/24`], aliases: [] }] });
  const node = (id: string, dataPathAddr: string, nodeAddress: string): Node =>
    Node.fromPartial({
      id,
      role: NodeRole.NODE_ROLE_WORKER,
      status: { state: NodeState.NODE_STATE_READY, message: '', addr: '' },
      description: { hostname: id, dataPathAddr },
      attachments: [{ networkId: 'front', addresses: [`${nodeAddress}/24`], aliases: [] }],
    });
  /** The network and peer items of a message: [action, what, detail]. */
  const netItems = (m: AssignmentsMessage): [AssignmentChange_Action, string, string][] =>
    m.changes.flatMap((c): [AssignmentChange_Action, string, string][] => {
      const item = c.assignment?.item;
      if (item?.$case === 'network') return [[c.action, `network ${item.network.network?.id ?? ''}`, item.network.nodeAddress]];
      if (item?.$case === 'peer') return [[c.action, `peer ${item.peer.id}`, c.action === AssignmentChange_Action.ACTION_REMOVE ? '' : `${item.peer.address} via ${item.peer.vtep}${item.peer.nodeAddress ? ' (node)' : ''}`]];
      return [];
    });

  const d = servedDispatcher({
    seed: (tx) => {
      tx.create('network', Network.fromPartial({ id: 'front', vni: 4096, spec: { annotations: { name: 'front', labels: {} }, driver: 'overlay' }, ipam: [{ subnet: '10.0.0.0/24', gateway: '10.0.0.1', range: '' }] }));
      tx.create('node', node('w1', '10.77.0.12', '10.0.0.201'));
      tx.create('node', node('w2', '10.77.0.13', '10.0.0.202'));
      tx.create('task', onFront('t1', 'w1', '10.0.0.2'));
      tx.create('task', onFront('t2', 'w2', '10.0.0.3'));
    },
  });
  const { store, dispatcher } = d;

  it("sends a node its tasks' networks with its own address, and the endpoints on other nodes; then only what changes", async () => {
    dispatcher.start();
    const { session, assignments, msgs } = await openAssignments(d.client);
    const U = AssignmentChange_Action.ACTION_UPDATE;
    expect(netItems(msgs[0]!).sort()).toEqual(
      [
        [U, 'network front', '10.0.0.201/24'],
        [U, 'peer front:t2', '10.0.0.3 via 10.77.0.13'],
        [U, 'peer front:node:w2', '10.0.0.202 via 10.77.0.13 (node)'],
      ].sort(),
    );
    // Another task lands on w2: one peer more, nothing else.
    await store.update((tx) => tx.create('task', onFront('t3', 'w2', '10.0.0.4', TaskState.TASK_STATE_ASSIGNED)));
    await until('the new peer', () => msgs.length === 2);
    expect(netItems(msgs[1]!)).toEqual([[U, 'peer front:t3', '10.0.0.4 via 10.77.0.13']]);
    // t2 ends: its peer is withdrawn. w2's data path moves: its endpoints' VTEP changes.
    await store.update((tx) => tx.update('task', { ...tx.get('task', 't2')!, status: { ...tx.get('task', 't2')!.status!, state: TaskState.TASK_STATE_SHUTDOWN } }));
    await until('the removal', () => msgs.flatMap(netItems).some(([a]) => a === AssignmentChange_Action.ACTION_REMOVE));
    expect(msgs.flatMap(netItems).filter(([a]) => a === AssignmentChange_Action.ACTION_REMOVE)).toEqual([[AssignmentChange_Action.ACTION_REMOVE, 'peer front:t2', '']]);
    const before = msgs.length;
    await store.update((tx) => tx.update('node', { ...tx.get('node', 'w2')!, description: { ...tx.get('node', 'w2')!.description!, dataPathAddr: '10.77.0.99' } }));
    await until('the new VTEP', () => msgs.slice(before).flatMap(netItems).length === 2);
    expect(msgs.slice(before).flatMap(netItems).sort()).toEqual(
      [
        [U, 'peer front:t3', '10.0.0.4 via 10.77.0.99'],
        [U, 'peer front:node:w2', '10.0.0.202 via 10.77.0.99 (node)'],
      ].sort(),
    );
    // Its own task ends: the network and every peer go.
    await store.update((tx) => tx.update('task', { ...tx.get('task', 't1')!, status: { ...tx.get('task', 't1')!.status!, state: TaskState.TASK_STATE_COMPLETE } }));
    await until('the network withdrawn', () => msgs.flatMap(netItems).some(([a, what]) => a === AssignmentChange_Action.ACTION_REMOVE && what === 'network front'));
    session.cancel();
    assignments.cancel();
  });

  it('records the path states a heartbeat carries, only when they change', async () => {
    dispatcher.start();
    const { session, assignments } = await openAssignments(d.client);
    const first = await new Promise<SessionMessage>((resolve) => {
      const s = d.client.session({ sessionId: '' });
      s.on('error', () => undefined);
      s.once('data', (m: SessionMessage) => {
        resolve(m);
        s.cancel();
      });
    });
    const path = { nodeId: 'w2', networkId: 'front', state: PeerPath_State.STATE_UNREACHABLE, sinceUnixMs: 5, lastError: 'no answer from 10.0.0.202 within 1 s' };
    const beat = (): Promise<void> => new Promise((resolve, reject) => d.client.heartbeat({ sessionId: first.sessionId, peerPaths: [path], appliedSequence: 0 }, (err) => (err ? reject(err) : resolve())));
    await beat();
    await until('the paths recorded', () => store.get('node', 'w1')!.peerPaths.length === 1);
    expect(store.get('node', 'w1')!.peerPaths).toEqual([path]);
    const version = store.get('node', 'w1')!.meta!.version;
    await beat();
    await beat();
    expect(store.get('node', 'w1')!.meta!.version).toBe(version);
    session.cancel();
    assignments.cancel();
  });
});

describe('dispatcher service endpoints and the stop gate', () => {
  const onFront = (id: string, address: string, slot: number): Task =>
    Task.fromPartial({ id, serviceId: 'web', slot, nodeId: 'w1', desiredState: TaskState.TASK_STATE_RUNNING, status: { state: TaskState.TASK_STATE_RUNNING, message: '', timestampUnixMs: 1 }, networks: [{ networkId: 'front', addresses: [`${address}/24`], aliases: [] }] });
  const d = servedDispatcher({
    seed: (tx) => {
      tx.create('network', Network.fromPartial({ id: 'front', vni: 4096, spec: { annotations: { name: 'front', labels: {} }, driver: 'overlay' }, ipam: [{ subnet: '10.0.0.0/24', gateway: '10.0.0.1', range: '' }] }));
      tx.create('node', Node.fromPartial({ id: 'w1', role: NodeRole.NODE_ROLE_WORKER, status: { state: NodeState.NODE_STATE_READY, message: '', addr: '' }, description: { hostname: 'w1', dataPathAddr: '10.77.0.12' } }));
      tx.create(
        'service',
        Service.fromPartial({ id: 'web', spec: { annotations: { name: 'web', labels: {} }, task: { networks: [{ target: 'front', aliases: ['www'] }] } }, endpoint: { virtualIps: [{ networkId: 'front', addr: '10.0.0.2/24' }], ports: [] } }),
      );
      tx.create('task', onFront('t1', '10.0.0.5', 1));
      tx.create('task', onFront('t2', '10.0.0.6', 2));
    },
  });
  const { store, dispatcher } = d;
  /** The backends of the last service-endpoints item among the messages, and the desired state last sent for a task. */
  const backends = (msgs: AssignmentsMessage[]): string[] | undefined =>
    msgs
      .flatMap((m) => m.changes.map((c) => c.assignment?.item))
      .filter((i) => i?.$case === 'serviceEndpoints')
      .map((i) => (i?.$case === 'serviceEndpoints' ? i.serviceEndpoints.backends.map((b) => b.taskId) : []))
      .pop();
  const desired = (msgs: AssignmentsMessage[], id: string): TaskState | undefined =>
    msgs
      .flatMap((m) => m.changes.map((c) => c.assignment?.item))
      .filter((i) => i?.$case === 'task' && i.task.id === id)
      .map((i) => (i?.$case === 'task' ? i.task.desiredState : undefined))
      .pop();
  const stop = async (id: string): Promise<void> => {
    await store.update((tx) => tx.update('task', { ...tx.get('task', id)!, desiredState: TaskState.TASK_STATE_SHUTDOWN }));
  };

  it('sends the services of a node\'s networks with their VIP and serving tasks; holds a stop until the node acknowledged the backend\'s removal, or for STOP_GATE_MS at most', async () => {
    dispatcher.start();
    const session = d.client.session({ sessionId: '' });
    session.on('error', () => undefined);
    const { sessionId } = await new Promise<SessionMessage>((resolve) => session.once('data', resolve));
    const msgs: AssignmentsMessage[] = [];
    const assignments = d.client.assignments({ sessionId });
    assignments.on('error', () => undefined);
    assignments.on('data', (m: AssignmentsMessage) => msgs.push(m));
    await until('the complete set', () => msgs.length >= 1);
    const item = msgs[0]!.changes.map((c) => c.assignment?.item).find((i) => i?.$case === 'serviceEndpoints');
    expect(item?.$case === 'serviceEndpoints' && item.serviceEndpoints).toMatchObject({ id: 'front:web', name: 'web', vip: '10.0.0.2', aliases: ['www'] });
    expect(backends(msgs)).toEqual(['t1', 't2']);
    expect(msgs.map((m) => m.sequence)).toEqual([1]);
    const beat = (applied: number): Promise<void> => new Promise((resolve, reject) => d.client.heartbeat({ sessionId, peerPaths: [], appliedSequence: applied }, (err) => (err ? reject(err) : resolve())));

    // t1 told to stop: out of the backends at once, its stop held until the node acknowledges that.
    await stop('t1');
    await until('t1 withdrawn from the backends', () => backends(msgs)?.join() === 't2');
    const withdrawnIn = msgs.at(-1)!.sequence;
    await new Promise((r) => setTimeout(r, 300));
    expect(desired(msgs, 't1')).toBe(TaskState.TASK_STATE_RUNNING);
    await beat(withdrawnIn - 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(desired(msgs, 't1')).toBe(TaskState.TASK_STATE_RUNNING);
    await beat(withdrawnIn);
    await until('t1\'s stop sent', () => desired(msgs, 't1') === TaskState.TASK_STATE_SHUTDOWN, 1_000);

    // t2 told to stop with no acknowledgement: sent after the gate's limit, not before.
    const told = Date.now();
    await stop('t2');
    await until('t2 withdrawn', () => backends(msgs)?.length === 0);
    await until('t2\'s stop sent', () => desired(msgs, 't2') === TaskState.TASK_STATE_SHUTDOWN, 5_000);
    expect(Date.now() - told).toBeGreaterThanOrEqual(STOP_GATE_MS - 50);
    expect(msgs.map((m) => m.sequence)).toEqual(msgs.map((_, i) => i + 1));

    // Its services changed and it acknowledges nothing: behind in the store after a second; caught up once it does.
    await store.update((tx) => tx.create('task', onFront('t3', '10.0.0.7', 3)));
    await until('t3 a backend', () => backends(msgs)?.join() === 't3');
    await until('w1 behind', () => store.get('node', 'w1')!.discovery?.behind === true, 3_000);
    const behind = store.get('node', 'w1')!.discovery!;
    expect(behind.appliedSequence).toBeLessThan(behind.sentSequence);
    await beat(msgs.at(-1)!.sequence);
    await until('w1 caught up', () => store.get('node', 'w1')!.discovery?.behind === false, 3_000);
    session.cancel();
    assignments.cancel();
  });
});

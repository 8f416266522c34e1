// The log broker and the nodes' log agents over real gRPC with mutual TLS on loopback, on a store
// with the local proposer and a fake executor (no containers): entries are relayed with their
// context and the stream ends when every node is done; a node without a session is reported
// within the deadline; a worker may not publish another node's task, nor subscribe; following
// takes in a task that starts later.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogBrokerClient, LogsClient, LogStream, type SubscribeLogsMessage, type SubscribeLogsRequest, type SubscriptionMessage } from '../proto/gen/tswarm/logs.js';
import { Node, Service, Task } from '../proto/gen/tswarm/objects.js';
import { NodeRole, NodeState, TaskState } from '../proto/gen/tswarm/types.js';
import { NodeCertProvider, TLS_CHANNEL_OPTIONS } from '../common/certs.js';
import { createLogger } from '../common/logger.js';
import { createNodeKey, createRootCA, issueNodeCertificate, type RootCA } from '../manager/ca/ca.js';
import { ControlApi } from '../manager/controlapi/control.js';
import { LogBroker, LogBrokerService, LogsService } from '../manager/logbroker/broker.js';
import { LocalProposer } from '../manager/store/local.js';
import { MemoryStore } from '../manager/store/memory.js';
import type { LogEntry, LogOptions } from '../worker/exec/executor.js';
import { NoSuchContainerError } from '../worker/exec/executor.js';
import { LogAgent } from '../worker/agent/logs.js';

const log = createLogger({ node: 'test', component: 'test', level: 'silent' });

async function certsFor(ca: RootCA, nodeId: string, role: 'manager' | 'worker'): Promise<NodeCertProvider> {
  const key = await createNodeKey();
  const certPem = await issueNodeCertificate(ca, key.csrPem, { nodeId, role, clusterId: 'c1' });
  return new NodeCertProvider({ caPem: ca.certPem, keyPem: key.keyPem, certPem });
}

/** A fake executor: fixed logs per container; following, a task's `more` entries come later. */
class FakeLogs {
  readonly entries = new Map<string, LogEntry[]>();
  async *logs(id: string, opts: LogOptions = {}): AsyncGenerator<LogEntry> {
    const all = this.entries.get(id);
    if (!all) throw new NoSuchContainerError(id);
    yield* opts.tail === undefined ? all : all.slice(all.length - opts.tail);
    if (opts.follow) await new Promise((resolve) => opts.signal?.addEventListener('abort', resolve));
  }
}

const entry = (log: string, stream: 'stdout' | 'stderr' = 'stdout'): LogEntry => ({ time: '2026-11-22T21:00:38.000000001Z', stream, log: `${log}\n` });

function node(id: string, state = NodeState.NODE_STATE_READY): Node {
  return Node.fromPartial({ id, role: NodeRole.NODE_ROLE_WORKER, description: { hostname: `host-${id}` }, status: { state, message: '', addr: '' } });
}

function task(id: string, nodeId: string, slot: number, state = TaskState.TASK_STATE_RUNNING): Task {
  return Task.fromPartial({ id, serviceId: 'svc1', slot, nodeId, serviceAnnotations: { name: 'web', labels: {} }, desiredState: TaskState.TASK_STATE_RUNNING, status: { state } });
}

/** Collects a subscription to its end (or error). */
function collect(client: LogsClient, req: SubscribeLogsRequest): { msgs: SubscribeLogsMessage[]; done: Promise<grpc.ServiceError | undefined>; call: grpc.ClientReadableStream<SubscribeLogsMessage> } {
  const msgs: SubscribeLogsMessage[] = [];
  const call = client.subscribeLogs(req);
  call.on('data', (m: SubscribeLogsMessage) => msgs.push(m));
  const done = new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on('error', (e: grpc.ServiceError) => resolve(e));
    call.on('end', () => resolve(undefined));
  });
  return { msgs, done, call };
}

const lines = (msgs: SubscribeLogsMessage[]): string[] => msgs.flatMap((m) => m.messages.map((e) => `${e.context!.serviceName}.${e.context!.slot}.${e.context!.taskId}@${e.context!.nodeName} ${e.stream} ${e.data.trim()}`));

async function until(what: string, fn: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('log broker and agents over mutual TLS', () => {
  const store = new MemoryStore();
  store.setProposer(new LocalProposer(store));
  const server = new grpc.Server();
  let addr = '';
  let broker: LogBroker;
  let admin: LogsClient;
  let ca: RootCA;
  const agents: LogAgent[] = [];
  const fakes = { w1: new FakeLogs(), w2: new FakeLogs() };

  beforeAll(async () => {
    ca = await createRootCA();
    const mgr = await certsFor(ca, 'mgr', 'manager');
    await store.update((tx) => {
      for (const n of [node('w1'), node('w2'), node('w3')]) tx.create('node', n);
      tx.create('service', Service.fromPartial({ id: 'svc1', spec: { annotations: { name: 'web', labels: {} } }, specVersion: 1 }));
      tx.create('task', task('t1', 'w1', 1));
      tx.create('task', task('t2', 'w2', 2));
      tx.create('task', task('t3', 'w1', 3, TaskState.TASK_STATE_PREPARING)); // no container yet
    });
    fakes.w1.entries.set('t1', [entry('a1'), entry('a2', 'stderr'), entry('a3')]);
    fakes.w2.entries.set('t2', [entry('b1'), entry('b2')]);
    const control = new ControlApi(store);
    broker = new LogBroker({
      store,
      resolve: (kind, ref) => control.resolve(kind, ref),
      locator: { isLeader: () => true, leaderAddr: () => addr, credentials: () => mgr.channelCredentials() },
      log,
      timeoutMs: 600,
      tickMs: 50,
    });
    server.addService(LogsService, broker.logsService(false));
    server.addService(LogBrokerService, broker.brokerService());
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', mgr.serverCredentials(), (e, p) => (e ? reject(e) : resolve(p))));
    addr = `127.0.0.1:${port}`;
    broker.start();
    for (const w of ['w1', 'w2'] as const) {
      const certs = await certsFor(ca, w, 'worker');
      const a = new LogAgent({ executor: fakes[w], credentials: () => certs.channelCredentials(), channelOptions: TLS_CHANNEL_OPTIONS, log, retryMs: 100 });
      a.attach(addr);
      agents.push(a);
    }
    admin = new LogsClient(addr, mgr.channelCredentials(), TLS_CHANNEL_OPTIONS);
    // The agents listen.
    await until('both agents listening', () => (broker as unknown as { listeners: Map<string, unknown> }).listeners.size === 2);
  });

  afterAll(async () => {
    for (const a of agents) a.detach();
    admin?.close();
    await broker.stop();
    server.forceShutdown();
  });

  it('relays every task\'s entries with their context, and ends when both nodes are done', async () => {
    const s = collect(admin, { selector: { serviceIds: ['web'], taskIds: [] }, options: { follow: false } });
    expect(await s.done).toBeUndefined();
    expect(lines(s.msgs).sort()).toEqual(
      ['web.1.t1@host-w1 LOG_STREAM_STDOUT a1', 'web.1.t1@host-w1 LOG_STREAM_STDERR a2', 'web.1.t1@host-w1 LOG_STREAM_STDOUT a3', 'web.2.t2@host-w2 LOG_STREAM_STDOUT b1', 'web.2.t2@host-w2 LOG_STREAM_STDOUT b2'].sort(),
    );
    // In order within a task.
    expect(lines(s.msgs).filter((l) => l.includes('t1@'))).toEqual(['web.1.t1@host-w1 LOG_STREAM_STDOUT a1', 'web.1.t1@host-w1 LOG_STREAM_STDERR a2', 'web.1.t1@host-w1 LOG_STREAM_STDOUT a3']);
    expect(s.msgs.flatMap((m) => m.unavailable)).toEqual([]);
  });

  it('applies the tail per task, and task references', async () => {
    const s = collect(admin, { selector: { serviceIds: [], taskIds: ['t1'] }, options: { follow: false, tail: 1 } });
    expect(await s.done).toBeUndefined();
    expect(lines(s.msgs)).toEqual(['web.1.t1@host-w1 LOG_STREAM_STDOUT a3']);
  });

  it('refuses an unknown service and a negative tail, naming them', async () => {
    const a = collect(admin, { selector: { serviceIds: ['nosuch'], taskIds: [] }, options: { follow: false } });
    expect(await a.done).toMatchObject({ code: grpc.status.NOT_FOUND, details: 'service nosuch not found' });
    const b = collect(admin, { selector: { serviceIds: ['web'], taskIds: [] }, options: { follow: false, tail: -3 } });
    expect(await b.done).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'options.tail: -3 must be a whole number, 0 or more (unset: every entry)' });
  });

  it('reports a node without a session after the deadline instead of waiting for it', async () => {
    await store.update((tx) => tx.create('task', task('t4', 'w3', 4)));
    try {
      const started = Date.now();
      const s = collect(admin, { selector: { serviceIds: ['web'], taskIds: [] }, options: { follow: false } });
      expect(await s.done).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(s.msgs.flatMap((m) => m.unavailable)).toEqual([{ nodeId: 'w3', nodeName: 'host-w3', taskIds: ['t4'], reason: 'is down (no session with the leader for 0.6 s)' }]);
      expect(lines(s.msgs).length).toBe(5);
    } finally {
      await store.update((tx) => tx.remove('task', 't4'));
    }
  });

  it('refuses a worker that subscribes, and one that publishes a task of another node', async () => {
    const w1 = await certsFor(ca, 'w1', 'worker');
    const asWorker = new LogsClient(addr, w1.channelCredentials(), TLS_CHANNEL_OPTIONS);
    const refused = collect(asWorker, { selector: { serviceIds: ['web'], taskIds: [] }, options: { follow: false } });
    expect(await refused.done).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'node w1 is a worker; only managers may call the control API' });
    asWorker.close();

    // A rogue w1 (instead of its agent) answers with t2, which runs on w2.
    agents[0]!.detach();
    await until('the agent of w1 gone', () => !(broker as unknown as { listeners: Map<string, unknown> }).listeners.has('w1'));
    const rogue = new LogBrokerClient(addr, w1.channelCredentials(), TLS_CHANNEL_OPTIONS);
    const listen = rogue.listenSubscriptions({});
    const got: SubscriptionMessage[] = [];
    listen.on('data', (m: SubscriptionMessage) => got.push(m));
    listen.on('error', () => undefined);
    await until('the rogue listening', () => (broker as unknown as { listeners: Map<string, unknown> }).listeners.has('w1'));
    const s = collect(admin, { selector: { serviceIds: ['web'], taskIds: [] }, options: { follow: false } });
    await until('the subscription', () => got.length > 0);
    const answer = new Promise<grpc.ServiceError | null>((resolve) => {
      const pub = rogue.publishLogs((err) => resolve(err));
      pub.write({ subscriptionId: got[0]!.id, messages: [{ context: { taskId: 't2', serviceId: '', serviceName: '', slot: 0, nodeId: '', nodeName: '' }, time: '', stream: LogStream.LOG_STREAM_STDOUT, data: 'forged\n' }], close: false });
    });
    expect(await answer).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: `task t2 is not one of node w1's tasks in subscription ${got[0]!.id}` });
    expect(await s.done).toBeUndefined();
    expect(lines(s.msgs).some((l) => l.includes('forged'))).toBe(false);
    expect(s.msgs.flatMap((m) => m.unavailable).map((u) => [u.nodeId, u.reason.split(':')[0]])).toEqual([['w1', 'was refused']]);
    listen.cancel();
    rogue.close();
    // The agent of w1 listens again.
    agents[0]!.attach(addr);
    await until('w1 listening again', () => (broker as unknown as { listeners: Map<string, unknown> }).listeners.size === 2);
  });

  it('following, takes in a task that starts later, and stops the nodes when the client goes', async () => {
    const s = collect(admin, { selector: { serviceIds: ['web'], taskIds: [] }, options: { follow: true, tail: 0 } });
    await new Promise((r) => setTimeout(r, 300));
    expect(lines(s.msgs)).toEqual([]);
    fakes.w2.entries.set('t5', [entry('c1')]);
    await store.update((tx) => tx.create('task', task('t5', 'w2', 5)));
    await until('the new task\'s line', () => lines(s.msgs).length === 1);
    expect(lines(s.msgs)).toEqual(['web.5.t5@host-w2 LOG_STREAM_STDOUT c1']);
    s.call.cancel();
    expect(await s.done).toMatchObject({ code: grpc.status.CANCELLED });
    // The nodes' publications end.
    await until('publications ended', () => agents.every((a) => (a as unknown as { pubs: Map<string, unknown> }).pubs.size === 0));
    expect(s.msgs.flatMap((m) => m.unavailable)).toEqual([]);
  });
});

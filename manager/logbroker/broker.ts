// The log broker, on the leader (a LeaderComponent): the gRPC shell around subscription.ts.
//
//   Logs.SubscribeLogs            swarmctl (manager certificates, the local socket); on a follower
//                                 the stream is proxied to the leader
//   LogBroker.ListenSubscriptions every node's agent, while it holds a session: the subscriptions
//                                 that concern the node, and their ends
//   LogBroker.PublishLogs         a node's entries for one subscription; only for the tasks the
//                                 subscription gave it (which are tasks assigned to it)
//
// The broker keeps nothing in the store: subscriptions live as long as their client stream, and
// end (UNAVAILABLE) when this manager stops leading. Entries are relayed as they come, stamped with
// their task's context (service name, slot, node hostname); a slow client pauses the nodes'
// streams (gRPC flow control) rather than filling the leader's memory.
import * as grpc from '@grpc/grpc-js';
import { LogBrokerService, LogsClient, LogsService, type LogMessage, type PublishLogsMessage, type SubscribeLogsMessage, type SubscribeLogsRequest, type SubscriptionMessage } from '../../proto/gen/tswarm/logs.js';
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { NodeState, TaskState } from '../../proto/gen/tswarm/types.js';
import { stateRank } from '../../common/task-state.js';
import { TLS_CHANNEL_OPTIONS } from '../../common/certs.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { newId } from '../../common/identity.js';
import type { Logger } from '../../common/logger.js';
import { toGrpcError } from '../controlapi/control.js';
import { callerOf, endStream, managersOnly, type LeaderLocator } from '../forward.js';
import type { LeaderComponent } from '../leader.js';
import type { MemoryStore } from '../store/memory.js';
import { Subscription, type Action, type ClusterView, type TaskInfo } from './subscription.js';

/** Hop count of a proxied subscription (as manager/forward.ts counts forwarded calls). */
const HOPS = 'x-tswarm-hops';
const MAX_HOPS = 3;

export interface LogBrokerOptions {
  store: MemoryStore;
  /** Resolves a service or task reference (id, name, unique id prefix) as the control API does; throws NotFoundError. */
  resolve: (kind: 'service' | 'task', ref: string) => { id: string };
  locator: LeaderLocator;
  log: Logger;
  /** How long a node may take to answer a subscription (and, not following, between two messages). */
  timeoutMs?: number;
  /** How often deadlines are checked. */
  tickMs?: number;
}

/** A task has a log once its container exists: from READY on (the agent reports READY after prepare). */
export function hasLog(t: Task): boolean {
  return t.nodeId !== '' && stateRank(t.status?.state) >= stateRank(TaskState.TASK_STATE_READY);
}

interface Client {
  sub: Subscription;
  serviceIds: Set<string>;
  taskIds: Set<string>;
  call: grpc.ServerWritableStream<SubscribeLogsRequest, SubscribeLogsMessage>;
}

type Listener = grpc.ServerWritableStream<unknown, SubscriptionMessage>;

export class LogBroker implements LeaderComponent {
  readonly name = 'logbroker';
  private running = false;
  private readonly clients = new Map<string, Client>();
  private readonly listeners = new Map<string, Listener>();
  private timer: NodeJS.Timeout | undefined;
  private stopWatch: (() => void) | undefined;
  private watchLoop: Promise<void> | undefined;
  private readonly upstreams = new Map<string, LogsClient>();
  private readonly timeoutMs: number;
  private readonly view: ClusterView;

  constructor(private readonly opts: LogBrokerOptions) {
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.view = {
      nodeDown: (id) => {
        const n = opts.store.get('node', id);
        return !n || n.status?.state === NodeState.NODE_STATE_DOWN;
      },
      listening: (id) => this.listeners.has(id),
      nodeName: (id) => opts.store.get('node', id)?.description?.hostname ?? '',
    };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const c of [...this.clients.values()]) this.apply(c, c.sub.tick(now));
    }, this.opts.tickMs ?? 250);
    const watch = this.opts.store.watch({ kinds: ['task', 'node'] });
    this.stopWatch = () => watch.close();
    this.watchLoop = (async () => {
      for await (const e of watch) {
        if (e.action === 'remove') continue;
        if (e.kind === 'task') {
          const t = e.object as Task;
          if (!hasLog(t)) continue;
          for (const c of [...this.clients.values()]) {
            if (c.sub.follow && (c.serviceIds.has(t.serviceId) || c.taskIds.has(t.id))) this.apply(c, c.sub.addTask(this.info(t), this.view, Date.now()));
          }
        } else if (this.view.nodeDown(e.object.id)) {
          for (const c of [...this.clients.values()]) this.apply(c, c.sub.nodeDown(e.object.id));
        }
      }
    })();
    this.opts.log.info('logbroker: started');
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.stopWatch?.();
    await this.watchLoop;
    for (const c of this.clients.values()) endStream(c.call, { code: grpc.status.UNAVAILABLE, details: 'the leader stepped down while streaming logs; run the command again' });
    this.clients.clear();
    for (const l of this.listeners.values()) endStream(l, { code: grpc.status.UNAVAILABLE, details: 'the log broker stopped (leadership moved)' });
    this.listeners.clear();
    for (const u of this.upstreams.values()) u.close();
    this.upstreams.clear();
  }

  // ---------------------------------------------------------------- subscriptions

  private info(t: Task): TaskInfo {
    const node = this.opts.store.get('node', t.nodeId);
    const serviceName = t.serviceAnnotations?.name || this.opts.store.get('service', t.serviceId)?.spec?.annotations?.name || '';
    return {
      id: t.id,
      nodeId: t.nodeId,
      context: { taskId: t.id, serviceId: t.serviceId, serviceName, slot: t.slot, nodeId: t.nodeId, nodeName: node?.description?.hostname ?? '' },
    };
  }

  /** Carries out a subscription's actions. */
  private apply(c: Client, actions: Action[]): void {
    for (const a of actions) {
      if (a.type === 'send') {
        this.listeners.get(a.nodeId)?.write(a.message);
      } else if (a.type === 'unavailable') {
        c.call.write({ messages: [], unavailable: [a.unavailable] });
        // If it is still connected but too slow, it should stop.
        this.listeners.get(a.unavailable.nodeId)?.write({ id: c.sub.id, taskIds: [], close: true });
        this.opts.log.warn({ subscription: c.sub.id, node: a.unavailable.nodeId, reason: a.unavailable.reason }, 'logbroker: a node\'s logs are unavailable');
      } else {
        this.clients.delete(c.sub.id);
        c.call.end();
      }
    }
  }

  private subscribe(call: grpc.ServerWritableStream<SubscribeLogsRequest, SubscribeLogsMessage>): void {
    const { selector, options } = call.request;
    const tail = options?.tail;
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new InvalidArgumentError('options.tail', `${tail} must be a whole number, 0 or more (unset: every entry)`);
    if (!selector || selector.serviceIds.length + selector.taskIds.length === 0) throw new InvalidArgumentError('selector', 'name at least one service or task');
    const serviceIds = new Set(selector.serviceIds.map((r) => this.opts.resolve('service', r).id));
    const taskIds = new Set(selector.taskIds.map((r) => this.opts.resolve('task', r).id));
    const tasks = new Map<string, Task>();
    for (const id of serviceIds) for (const t of this.opts.store.findTasks({ serviceId: id })) tasks.set(t.id, t);
    for (const id of taskIds) {
      const t = this.opts.store.get('task', id);
      if (t) tasks.set(t.id, t);
    }
    const sub = new Subscription(newId(), options?.follow === true, tail, this.timeoutMs);
    const c: Client = { sub, serviceIds, taskIds, call };
    this.clients.set(sub.id, c);
    call.on('cancelled', () => {
      if (this.clients.get(sub.id) !== c) return;
      this.clients.delete(sub.id);
      this.apply(c, sub.cancel());
    });
    const infos = [...tasks.values()].filter(hasLog).map((t) => this.info(t));
    this.opts.log.debug({ subscription: sub.id, tasks: infos.length, follow: sub.follow }, 'logbroker: subscription');
    this.apply(c, sub.begin(infos, this.view, Date.now()));
  }

  /** On a follower: the same call to the leader, relayed both ways (with flow control). */
  private proxy(call: grpc.ServerWritableStream<SubscribeLogsRequest, SubscribeLogsMessage>): void {
    const addr = this.opts.locator.leaderAddr();
    const hops = Number(call.metadata.get(HOPS)[0] ?? 0);
    if (!addr || hops >= MAX_HOPS) {
      endStream(call, { code: grpc.status.UNAVAILABLE, details: 'no manager leads the cluster right now (an election is under way, or the cluster lost its quorum of managers)' });
      return;
    }
    let client = this.upstreams.get(addr);
    if (!client) {
      client = new LogsClient(addr, this.opts.locator.credentials(), TLS_CHANNEL_OPTIONS);
      this.upstreams.set(addr, client);
    }
    const md = new grpc.Metadata();
    md.set(HOPS, String(hops + 1));
    const up = client.subscribeLogs(call.request, md);
    let finished = false;
    up.on('data', (m: SubscribeLogsMessage) => {
      if (!call.write(m)) {
        up.pause();
        call.once('drain', () => up.resume());
      }
    });
    up.on('error', (err: grpc.ServiceError) => {
      if (finished) return;
      finished = true;
      endStream(call, { code: err.code, details: err.details || err.message });
    });
    up.on('end', () => {
      if (finished) return;
      finished = true;
      call.end();
    });
    call.on('cancelled', () => {
      finished = true;
      up.cancel();
    });
  }

  /** The Logs service; `local`: served on the local socket (callers are root on this host). */
  logsService(local: boolean): grpc.UntypedServiceImplementation {
    return {
      subscribeLogs: (call: grpc.ServerWritableStream<SubscribeLogsRequest, SubscribeLogsMessage>) => {
        const refused = managersOnly('subscribeLogs', callerOf(call, local));
        if (refused) return endStream(call, { code: grpc.status.PERMISSION_DENIED, details: refused });
        if (!this.opts.locator.isLeader()) return this.proxy(call);
        if (!this.running) return endStream(call, { code: grpc.status.UNAVAILABLE, details: 'this manager has just become the leader and is starting; try again' });
        try {
          this.subscribe(call);
        } catch (err) {
          endStream(call, toGrpcError(err));
        }
      },
    };
  }

  // ---------------------------------------------------------------- the nodes' side

  private refuse(): Partial<grpc.StatusObject> {
    const md = new grpc.Metadata();
    const leader = this.opts.locator.leaderAddr();
    if (leader) md.set('leader', leader);
    return { code: grpc.status.UNAVAILABLE, details: `not the leader${leader ? `; the leader is at ${leader}` : ''}`, metadata: md };
  }

  /** The calling node's id, or the reason to refuse it. */
  private nodeOf(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>): string | { nodeId: string } {
    const who = callerOf(call as never, false);
    if (!who) return 'the log broker needs a node certificate';
    if (!this.opts.store.get('node', who.nodeId)) return `node ${who.nodeId} is not a member of the cluster (it was removed)`;
    return { nodeId: who.nodeId };
  }

  /** The LogBroker service (TCP only: node certificates). */
  brokerService(): grpc.UntypedServiceImplementation {
    return {
      listenSubscriptions: (call: Listener) => {
        if (!this.running) return endStream(call, this.refuse());
        const n = this.nodeOf(call);
        if (typeof n === 'string') return endStream(call, { code: grpc.status.PERMISSION_DENIED, details: n });
        const old = this.listeners.get(n.nodeId);
        if (old) {
          // What was sent on the old stream is lost with it (the node dropped those subscriptions).
          this.listeners.delete(n.nodeId);
          endStream(old, { code: grpc.status.UNAVAILABLE, details: 'replaced by a new stream of the same node' });
          for (const c of [...this.clients.values()]) this.apply(c, c.sub.listenerDown(n.nodeId));
        }
        this.listeners.set(n.nodeId, call);
        call.on('cancelled', () => {
          if (this.listeners.get(n.nodeId) !== call) return;
          this.listeners.delete(n.nodeId);
          for (const c of [...this.clients.values()]) this.apply(c, c.sub.listenerDown(n.nodeId));
        });
        const now = Date.now();
        for (const c of [...this.clients.values()]) this.apply(c, c.sub.listenerUp(n.nodeId, now));
      },
      publishLogs: (call: grpc.ServerReadableStream<PublishLogsMessage, object>, cb: grpc.sendUnaryData<object>) => {
        if (!this.running) return cb(this.refuse());
        const n = this.nodeOf(call);
        if (typeof n === 'string') return cb({ code: grpc.status.PERMISSION_DENIED, details: n });
        let answered = false;
        let subscription = '';
        const answer = (err: Partial<grpc.StatusObject> | null, why = 'stopped sending its logs'): void => {
          if (answered) return;
          answered = true;
          if (err) cb(err);
          else cb(null, {});
          // A stream that ends before its `close` (the node's session ended, or it was refused).
          const c = this.clients.get(subscription);
          if (c) this.apply(c, c.sub.publisherGone(n.nodeId, why));
        };
        call.on('data', (m: PublishLogsMessage) => {
          subscription ||= m.subscriptionId;
          const c = this.clients.get(m.subscriptionId);
          // A subscription that ended (or this node's part of it): the node is told to stop.
          if (!c || !c.sub.relays(n.nodeId)) return;
          const { refused } = c.sub.published(n.nodeId, m.messages.map((x) => x.context?.taskId ?? ''), Date.now());
          if (refused !== undefined) {
            this.opts.log.warn({ node: n.nodeId, task: refused }, 'logbroker: a node published logs of a task that is not its own in this subscription');
            const details = `task ${refused || '(none)'} is not one of node ${n.nodeId}'s tasks in subscription ${m.subscriptionId}`;
            return answer({ code: grpc.status.PERMISSION_DENIED, details }, `was refused: ${details}`);
          }
          if (m.messages.length > 0) {
            const messages: LogMessage[] = m.messages.map((x) => ({ ...x, context: c.sub.task(x.context!.taskId)!.context }));
            if (!c.call.write({ messages, unavailable: [] })) {
              // Flow control: read this node's stream again once the client has taken what is
              // buffered, or is gone (so that the node's stream can end).
              call.pause();
              const resume = (): void => {
                c.call.off('drain', resume);
                c.call.off('cancelled', resume);
                call.resume();
              };
              c.call.on('drain', resume);
              c.call.on('cancelled', resume);
            }
          }
          if (m.close) this.apply(c, c.sub.closed(n.nodeId));
        });
        call.on('end', () => answer(null));
        call.on('error', () => answer(null));
      },
    };
  }
}

export { LogBrokerService, LogsService };

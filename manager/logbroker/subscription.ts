// One log subscription on the leader, as a pure state machine: what to send to which node, which
// nodes to report as unavailable, and when the subscription is complete. No timers, sockets or
// clocks inside: the broker (broker.ts) feeds it events with `now` and carries out the actions.
//
// Per node involved (a node that ran a matching task):
//
//   waiting ──listener up──► sent ──first PublishLogs message (the ack)──► streaming ──close──► done
//      │                      │                                              │
//      └──── deadline ────────┴──── deadline / listener down / node down ────┴──► unavailable
//
// `waiting`: the node has no ListenSubscriptions stream yet (e.g. its agent is reconnecting);
// `sent`: the subscription went out and the node has not answered. Both end `timeoutMs` after they
// began, so that a node that is down, or whose session is gone, is reported instead of waited
// for. Not following, a streaming node that sends nothing for `timeoutMs` is reported too (it
// sends as fast as it reads, then closes). A subscription that does not follow is complete once
// every node involved is done or unavailable; one that follows never completes by itself (the
// client cancels it) and takes in matching tasks as they start, on any node.
import type { LogContext, LogsUnavailable, SubscriptionMessage } from '../../proto/gen/tswarm/logs.js';

/** A task whose container (and so its log) exists on a node. */
export interface TaskInfo {
  id: string;
  nodeId: string;
  /** The complete context the broker stamps on the task's entries. */
  context: LogContext;
}

/** What the subscription needs to know of the cluster, read when an event is fed in. */
export interface ClusterView {
  /** The store says the node is down, or it is no longer a member. */
  nodeDown(nodeId: string): boolean;
  /** The node holds a ListenSubscriptions stream with this broker. */
  listening(nodeId: string): boolean;
  /** For messages: the node's hostname ('' when unknown). */
  nodeName(nodeId: string): string;
}

export type Action =
  /** Send this message on the node's ListenSubscriptions stream. */
  | { type: 'send'; nodeId: string; message: SubscriptionMessage }
  /** Tell the client that these logs cannot be had. */
  | { type: 'unavailable'; unavailable: LogsUnavailable }
  /** The subscription is complete: end the client's stream. */
  | { type: 'end' };

type Phase = 'waiting' | 'sent' | 'streaming' | 'done' | 'unavailable';

interface NodeState {
  phase: Phase;
  /** The node's matching tasks (all of them, sent or not). */
  tasks: Set<string>;
  /** Tasks to send once the node listens, in groups that share a tail (the first group takes the subscription's). */
  unsent: { taskIds: string[]; tail: number | undefined }[];
  /** waiting/sent: when to give up; streaming (not following): when the node last sent something. */
  since: number;
}

export class Subscription {
  private readonly nodes = new Map<string, NodeState>();
  private readonly tasks = new Map<string, TaskInfo>();
  private ended = false;

  constructor(
    readonly id: string,
    readonly follow: boolean,
    readonly tail: number | undefined,
    private readonly timeoutMs: number,
  ) {}

  get complete(): boolean {
    return this.ended;
  }

  /** The nodes involved so far. */
  nodeIds(): string[] {
    return [...this.nodes.keys()];
  }

  /** A matching task by id, if this subscription has it (for stamping entries). */
  task(id: string): TaskInfo | undefined {
    return this.tasks.get(id);
  }

  /** The tasks that matched when the client subscribed. */
  begin(tasks: TaskInfo[], view: ClusterView, now: number): Action[] {
    const byNode = new Map<string, string[]>();
    for (const t of tasks) {
      if (this.tasks.has(t.id) || !t.nodeId) continue;
      this.tasks.set(t.id, t);
      byNode.set(t.nodeId, [...(byNode.get(t.nodeId) ?? []), t.id]);
    }
    const out: Action[] = [];
    for (const [nodeId, ids] of byNode) out.push(...this.involve(nodeId, ids, this.tail, view, now));
    return [...out, ...this.checkEnd()];
  }

  /** Following: a matching task now has a container on a node (its whole log is wanted). */
  addTask(t: TaskInfo, view: ClusterView, now: number): Action[] {
    if (!this.follow || this.ended || this.tasks.has(t.id) || !t.nodeId) return [];
    this.tasks.set(t.id, t);
    const n = this.nodes.get(t.nodeId);
    if (!n) return this.involve(t.nodeId, [t.id], undefined, view, now); // following: never ends by itself
    n.tasks.add(t.id);
    switch (n.phase) {
      case 'waiting':
        n.unsent.push({ taskIds: [t.id], tail: undefined });
        return [];
      case 'sent':
      case 'streaming':
        return [this.send(t.nodeId, [t.id], undefined)];
      case 'unavailable':
        // Reported already; if its listener comes back the task is sent with the rest.
        return [];
      case 'done':
        return [];
    }
  }

  /** The node opened its ListenSubscriptions stream. */
  listenerUp(nodeId: string, now: number): Action[] {
    const n = this.nodes.get(nodeId);
    if (!n || this.ended) return [];
    if (n.phase === 'waiting') {
      n.phase = 'sent';
      n.since = now;
      const out = n.unsent.map((g) => this.send(nodeId, g.taskIds, g.tail));
      n.unsent = [];
      return out;
    }
    if (n.phase === 'unavailable' && this.follow) {
      // Back (e.g. its agent reconnected after a leader change): new entries only, as the
      // client was already told that the earlier ones are missing.
      n.phase = 'sent';
      n.since = now;
      return [this.send(nodeId, [...n.tasks], 0)];
    }
    return [];
  }

  /** The node's ListenSubscriptions stream ended (its swarmd died, or its session moved). */
  listenerDown(nodeId: string): Action[] {
    const n = this.nodes.get(nodeId);
    if (!n || (n.phase !== 'sent' && n.phase !== 'streaming')) return [];
    return [...this.unavailable(nodeId, n, 'is down (its connection to the leader ended)'), ...this.checkEnd()];
  }

  /** The node's PublishLogs stream for this subscription ended before it closed (or was refused). */
  publisherGone(nodeId: string, reason: string): Action[] {
    const n = this.nodes.get(nodeId);
    if (!n || (n.phase !== 'sent' && n.phase !== 'streaming')) return [];
    return [...this.unavailable(nodeId, n, reason), ...this.checkEnd()];
  }

  /** The store marked the node down. */
  nodeDown(nodeId: string): Action[] {
    const n = this.nodes.get(nodeId);
    if (!n || n.phase === 'done' || n.phase === 'unavailable') return [];
    return [...this.unavailable(nodeId, n, 'is down'), ...this.checkEnd()];
  }

  /**
   * A PublishLogs message from the node (`taskIds`: the tasks of its entries). Returns the task
   * it may not publish (not one of its matching tasks), if any; otherwise the message counts as
   * the node's answer.
   */
  published(nodeId: string, taskIds: string[], now: number): { refused?: string } {
    const n = this.nodes.get(nodeId);
    for (const id of taskIds) if (!n?.tasks.has(id)) return { refused: id };
    if (!n) return {};
    if (n.phase === 'sent' || n.phase === 'streaming') {
      n.phase = 'streaming';
      n.since = now;
    }
    return {};
  }

  /** Whether entries from this node are still relayed (it did not end or get reported). */
  relays(nodeId: string): boolean {
    const p = this.nodes.get(nodeId)?.phase;
    return !this.ended && (p === 'sent' || p === 'streaming');
  }

  /** The node has sent everything it has. */
  closed(nodeId: string): Action[] {
    const n = this.nodes.get(nodeId);
    if (!n || (n.phase !== 'sent' && n.phase !== 'streaming')) return [];
    n.phase = 'done';
    return this.checkEnd();
  }

  /** Deadlines. */
  tick(now: number): Action[] {
    const out: Action[] = [];
    const secs = `${Math.round(this.timeoutMs / 100) / 10} s`;
    for (const [nodeId, n] of this.nodes) {
      if (this.ended) break;
      if (now - n.since < this.timeoutMs) continue;
      if (n.phase === 'waiting') out.push(...this.unavailable(nodeId, n, `is down (no session with the leader for ${secs})`));
      else if (n.phase === 'sent') out.push(...this.unavailable(nodeId, n, `did not answer within ${secs}`));
      else if (n.phase === 'streaming' && !this.follow) out.push(...this.unavailable(nodeId, n, `stopped answering for ${secs}`));
    }
    return [...out, ...this.checkEnd()];
  }

  /** Close messages for the nodes that still stream (when the client goes away). */
  cancel(): Action[] {
    this.ended = true;
    const out: Action[] = [];
    for (const [nodeId, n] of this.nodes) {
      if (n.phase === 'sent' || n.phase === 'streaming') out.push({ type: 'send', nodeId, message: { id: this.id, taskIds: [], close: true } });
      if (n.phase !== 'done') n.phase = 'unavailable';
    }
    return out;
  }

  // ---------------------------------------------------------------- internals

  private involve(nodeId: string, ids: string[], tail: number | undefined, view: ClusterView, now: number): Action[] {
    const n: NodeState = { phase: 'waiting', tasks: new Set(ids), unsent: [], since: now };
    this.nodes.set(nodeId, n);
    if (view.nodeDown(nodeId)) return this.unavailable(nodeId, n, 'is down', view.nodeName(nodeId));
    if (!view.listening(nodeId)) {
      n.unsent.push({ taskIds: ids, tail });
      return [];
    }
    n.phase = 'sent';
    return [this.send(nodeId, ids, tail)];
  }

  private send(nodeId: string, taskIds: string[], tail: number | undefined): Action {
    return { type: 'send', nodeId, message: { id: this.id, taskIds, options: { follow: this.follow, tail }, close: false } };
  }

  private unavailable(nodeId: string, n: NodeState, reason: string, nodeName?: string): Action[] {
    n.phase = 'unavailable';
    n.unsent = [];
    const taskIds = [...n.tasks];
    const name = nodeName ?? this.tasks.get(taskIds[0] ?? '')?.context.nodeName ?? '';
    return [{ type: 'unavailable', unavailable: { nodeId, nodeName: name, taskIds, reason } }];
  }

  private checkEnd(): Action[] {
    if (this.ended || this.follow) return [];
    for (const n of this.nodes.values()) if (n.phase !== 'done' && n.phase !== 'unavailable') return [];
    this.ended = true;
    return [{ type: 'end' }];
  }
}

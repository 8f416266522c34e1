// The allocator on the leader: gives a new task what must be unique cluster-wide, then moves it
// NEW → PENDING for the scheduler.
//
// What it gives: an address on every overlay network the task joins (networks.ts: AddressPool),
// recorded in the task's `networks`; and every node an address of its own on each network it has
// tasks on (`Node.attachments`; its sandbox's, for probes and, later, load balancing), released
// when the node's last task there ends; and every service in endpoint mode vip a virtual IP on each
// overlay network it joins (`Service.endpoint.virtualIps`), released when it leaves the network,
// turns to dnsrr or is removed. A task's address is held until the task ends (a state
// past RUNNING); everything lives in the store, so a new leader rebuilds the pools from it
// (rebuild) and gives out no address twice. Host-mode published ports are unique per node, which
// the scheduler's host-port filter enforces when it picks the node.
//
// A task whose network is missing, or full, stays NEW with the reason in `pendingReason` and is
// tried again when an address is released or a network is created.
//
// The loop: after a burst of task events (on the next tick), transactions of up to 1,000 tasks,
// several in flight (../scheduler/chunked.ts). Tasks already told to stop while NEW are left to
// the orchestrator. On start it re-lists, so tasks created while no leader ran are picked up.
import type { Network, Node, Service, Task } from '../../proto/gen/tswarm/objects.js';
import { EndpointSpec_ResolutionMode, TaskState, type NetworkAttachment, type VirtualIP } from '../../proto/gen/tswarm/types.js';
import { isTerminalState, stateRank } from '../../common/task-state.js';
import type { Logger } from '../../common/logger.js';
import type { LeaderComponent } from '../leader.js';
import { VersionConflictError, type MemoryStore, type StoreEvent, type Tx, type Watch } from '../store/memory.js';
import { writeChunked } from '../scheduler/chunked.js';
import { AddressPool, addressingOf } from './networks.js';
import { ingressNetworkIn, ingressPorts } from './ports.js';

export interface AllocatorOptions {
  /** Delay before retrying after a failed write that was not a version conflict. Default 1 s. */
  retryMs?: number;
  /** Tasks per transaction (one that exceeds the size limit of a log entry is split). Default 1000. */
  maxTasksPerTransaction?: number;
  /** Transactions proposed at once (Raft commits them together). Default 8. */
  maxTransactionsInFlight?: number;
  now?: () => number;
}

const RUNNING = stateRank(TaskState.TASK_STATE_RUNNING);

/** Whether the allocator should move the task to PENDING. */
export function needsAllocation(t: Task): boolean {
  return (t.status?.state ?? TaskState.TASK_STATE_NEW) === TaskState.TASK_STATE_NEW && stateRank(t.desiredState) <= RUNNING;
}

/** Whether a task holds the addresses of its attachments: it has not ended. */
function holdsAddresses(t: Task): boolean {
  return t.networks.length > 0 && !isTerminalState(t.status?.state);
}

/** The networks a service wants a VIP on: those of its spec, in endpoint mode vip. */
function vipNetworks(s: Service | undefined): string[] {
  if (!s || s.spec?.endpoint?.mode === EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR) return [];
  return (s.spec?.task?.networks ?? []).map((n) => n.target);
}

/** A service's VIPs as attachments (what the pools hold and release). */
function vipAttachments(s: Service | undefined): NetworkAttachment[] {
  return (s?.endpoint?.virtualIps ?? []).map((v) => ({ networkId: v.networkId, addresses: [v.addr], aliases: [] }));
}

function networkName(n: Network): string {
  return n.spec?.annotations?.name || n.id;
}

export class Allocator implements LeaderComponent {
  readonly name = 'allocator';
  private readonly log: Logger;
  private readonly retryMs: number;
  private readonly maxPerTx: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private watch: Watch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Tasks seen NEW since the last pass. */
  private queued = new Set<string>();
  /** Tasks left NEW for want of a network or an address: tried again when one is freed or made. */
  private blocked = new Set<string>();
  /** Nodes whose own attachments may be stale (a task of theirs joined or left a network). */
  private nodesQueued = new Set<string>();
  /** Services whose VIPs may be stale (created, or their networks or endpoint mode changed). */
  private servicesQueued = new Set<string>();
  /** Network id → its addresses, as the store holds them plus what this leader gave since. */
  private pools = new Map<string, AddressPool>();
  private stopped = true;

  constructor(
    private readonly store: MemoryStore,
    log: Logger,
    opts: AllocatorOptions = {},
  ) {
    this.log = log.child({ component: 'allocator' });
    this.retryMs = opts.retryMs ?? 1000;
    this.maxPerTx = opts.maxTasksPerTransaction ?? 1000;
    this.maxInFlight = opts.maxTransactionsInFlight ?? 8;
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const watch = this.store.watch({ kinds: ['task', 'network', 'node', 'service'], filter: (e: StoreEvent) => this.interesting(e) });
    this.watch = watch;
    void this.follow(watch);
    this.rebuild();
    for (const t of this.store.list('task')) {
      if (needsAllocation(t)) this.queued.add(t.id);
      if (t.nodeId && t.networks.length > 0) this.nodesQueued.add(t.nodeId);
    }
    for (const n of this.store.list('node')) if (n.attachments.length > 0) this.nodesQueued.add(n.id);
    for (const svc of this.store.list('service')) this.servicesQueued.add(svc.id);
    this.kick(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.close();
    this.watch = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    this.queued.clear();
    this.blocked.clear();
    this.nodesQueued.clear();
    this.servicesQueued.clear();
    this.pools.clear();
  }

  /** The pools from the store: every network's, with the addresses tasks that have not ended and nodes hold. */
  private rebuild(): void {
    this.pools.clear();
    for (const n of this.store.list('network')) this.poolOf(n);
    for (const t of this.store.list('task')) if (holdsAddresses(t)) this.hold(t.networks);
    for (const n of this.store.list('node')) this.hold(n.attachments);
    for (const svc of this.store.list('service')) this.hold(vipAttachments(svc));
  }

  private poolOf(n: Network): AddressPool | undefined {
    let pool = this.pools.get(n.id);
    if (!pool && n.ipam.length > 0) {
      pool = new AddressPool(addressingOf(n));
      this.pools.set(n.id, pool);
    }
    return pool;
  }

  private hold(attachments: readonly NetworkAttachment[]): void {
    for (const a of attachments) for (const addr of a.addresses) this.pools.get(a.networkId)?.hold(addr);
  }

  /** Frees the addresses; with `retry`, the blocked tasks are tried again (one may fit now). */
  private release(attachments: readonly NetworkAttachment[], retry = true): void {
    if (attachments.length === 0) return;
    for (const a of attachments) for (const addr of a.addresses) this.pools.get(a.networkId)?.release(addr);
    if (!retry) return;
    for (const id of this.blocked) this.queued.add(id);
    this.blocked.clear();
  }

  private interesting(e: StoreEvent): boolean {
    if (e.kind === 'service') {
      const [svc, old] = [e.object as Service, e.old as Service | undefined];
      if (e.action === 'remove') return vipAttachments(svc).length > 0;
      return e.action === 'create' || JSON.stringify(vipNetworks(svc)) !== JSON.stringify(vipNetworks(old)) || JSON.stringify(svc.endpoint?.virtualIps) !== JSON.stringify(old?.endpoint?.virtualIps);
    }
    if (e.kind === 'network' || e.kind === 'node') return e.kind === 'network' || e.action === 'create' || (e.action === 'remove' && (e.object as Node).attachments.length > 0);
    const t = e.object as Task;
    const old = e.old as Task | undefined;
    if (e.action !== 'remove' && needsAllocation(t)) return true;
    return t.networks.length > 0 || (old?.networks.length ?? 0) > 0;
  }

  private async follow(watch: Watch): Promise<void> {
    for await (const e of watch) {
      if (this.stopped || watch !== this.watch) break;
      if (e.kind === 'network') this.networkEvent(e);
      else if (e.kind === 'node' && e.action === 'create') this.nodesQueued.add(e.object.id);
      else if (e.kind === 'node') this.release((e.object as Node).attachments);
      else if (e.kind === 'service') this.serviceEvent(e);
      else this.taskEvent(e);
      this.kick(0);
    }
  }

  private networkEvent(e: StoreEvent): void {
    const n = e.object as Network;
    if (e.action === 'remove') {
      this.pools.delete(n.id);
      return;
    }
    if (e.action === 'create' && this.poolOf(n)) {
      for (const id of this.blocked) this.queued.add(id);
      this.blocked.clear();
      // The routing mesh's network is on every node.
      if (n.spec?.ingress) for (const node of this.store.list('node')) this.nodesQueued.add(node.id);
    }
  }

  private serviceEvent(e: StoreEvent): void {
    const svc = e.object as Service;
    if (e.action === 'remove') this.release(vipAttachments(svc));
    else this.servicesQueued.add(svc.id);
  }

  private taskEvent(e: StoreEvent): void {
    const t = e.object as Task;
    const old = e.old as Task | undefined;
    if (e.action !== 'remove' && needsAllocation(t)) this.queued.add(t.id);
    const held = e.action !== 'remove' && holdsAddresses(t);
    const heldBefore = old !== undefined ? holdsAddresses(old) : e.action === 'remove' && holdsAddresses(t);
    // Ended (or removed before it ended): its addresses are free, its node may leave the network.
    if (heldBefore && !held) {
      this.release((old ?? t).networks);
      if ((old ?? t).nodeId) this.nodesQueued.add((old ?? t).nodeId);
    }
    // Placed, moved, or given its addresses on a node already chosen (a global service's task):
    // the node joins the task's networks.
    if (held && t.nodeId && (t.nodeId !== old?.nodeId || !heldBefore)) {
      this.nodesQueued.add(t.nodeId);
      if (old?.nodeId) this.nodesQueued.add(old.nodeId);
    }
  }

  private kick(delayMs: number): void {
    if (this.stopped || this.timer || this.running || (this.queued.size === 0 && this.nodesQueued.size === 0 && this.servicesQueued.size === 0)) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.pass().then((retryIn) => {
        this.running = undefined;
        this.kick(retryIn);
      });
    }, delayMs);
  }

  /**
   * Transactions of the queued tasks (see writeChunked: up to maxTransactionsInFlight proposed at
   * once, so Raft commits them together), then one of the queued nodes' attachments; resolves
   * with the delay before the next pass. The tasks of a transaction that failed, and of those not
   * proposed, are queued again, and the pools rebuilt from the store (what the failed ones took
   * is not held).
   */
  private async pass(): Promise<number> {
    const ids = [...this.queued];
    this.queued.clear();
    const now = this.now();
    const written = await writeChunked(this.store, ids, { maxPerTx: this.maxPerTx, maxInFlight: this.maxInFlight, stopped: () => this.stopped }, (tx, chunk) => {
      for (const id of chunk) {
        const t = tx.get('task', id);
        if (!t || !needsAllocation(t)) continue;
        this.allocateTask(tx, t, now);
      }
      return 0;
    });
    if (this.stopped) return 0;
    let failure = written.failure;
    if (!failure && (this.nodesQueued.size > 0 || this.servicesQueued.size > 0)) {
      const nodes = [...this.nodesQueued];
      const services = [...this.servicesQueued];
      this.nodesQueued.clear();
      this.servicesQueued.clear();
      try {
        await this.store.update((tx) => {
          services.forEach((id) => this.reconcileService(tx, id));
          nodes.forEach((id) => this.reconcileNode(tx, id));
        });
      } catch (err) {
        failure = { err };
        for (const id of nodes) this.nodesQueued.add(id);
        for (const id of services) this.servicesQueued.add(id);
      }
    }
    if (this.stopped) return 0;
    for (const id of written.failed) this.queued.add(id);
    if (!failure) return 0;
    this.rebuild();
    const { err } = failure;
    if (err instanceof VersionConflictError) {
      this.log.debug({ err: err.message }, 'a task or node changed while it was allocated; again');
      return 0;
    }
    this.log.warn({ err }, `allocating failed; retrying in ${this.retryMs} ms`);
    return this.retryMs;
  }

  /**
   * Gives the task an address on each network of its spec and moves it to PENDING; or, when a
   * network is missing or full, leaves it NEW with the reason (written only when it changes, so
   * that a blocked task does not write at every pass).
   */
  private allocateTask(tx: Tx, t: Task, now: number): void {
    const attachments: NetworkAttachment[] = [];
    let reason = '';
    for (const want of t.spec?.networks ?? []) {
      const n = tx.get('network', want.target) ?? tx.byName('network', want.target);
      const pool = n && this.poolOf(n);
      if (!n || !pool) {
        reason = `network "${want.target}" not found`;
        break;
      }
      const address = pool.take();
      if (address === undefined) {
        reason = `no free address on network ${networkName(n)} (${n.ipam[0]?.subnet ?? ''}: all ${pool.capacity} held)`;
        break;
      }
      attachments.push({ networkId: n.id, addresses: [address], aliases: want.aliases });
    }
    // A task of a service publishing in ingress mode is on the ingress network too (last: its
    // spec's networks keep their interface order), where the routing mesh reaches it.
    if (!reason && ingressPorts(t.endpoint?.spec).length > 0) {
      const ingress = ingressNetworkIn(tx.list('network'));
      const pool = ingress && this.poolOf(ingress);
      const address = pool?.take();
      if (!ingress || !pool) reason = 'the ingress network (the routing mesh\'s) not found';
      else if (address === undefined) reason = `no free address on network ${networkName(ingress)} (${ingress.ipam[0]?.subnet ?? ''}: all ${pool.capacity} held)`;
      else attachments.push({ networkId: ingress.id, addresses: [address], aliases: [] });
    }
    if (reason) {
      this.release(attachments, false); // what this attempt took
      this.blocked.add(t.id);
      if (t.status?.pendingReason === reason) return;
      tx.update('task', { ...t, status: { err: '', message: 'pending task allocation', timestampUnixMs: now, ...t.status, state: TaskState.TASK_STATE_NEW, pendingReason: reason } });
      return;
    }
    tx.update('task', {
      ...t,
      networks: attachments,
      status: { err: '', ...t.status, pendingReason: '', state: TaskState.TASK_STATE_PENDING, message: 'pending task scheduling', timestampUnixMs: now },
    });
  }

  /**
   * A service's VIPs made to match its networks: one on each overlay network of its spec in
   * endpoint mode vip, none in dnsrr. A network without a free address leaves the service without
   * a VIP there (its name then answers nothing on that network, as with no running task) and is
   * logged; tried again at the service's next change or the allocator's next start.
   */
  private reconcileService(tx: Tx, id: string): void {
    const svc = tx.get('service', id);
    if (!svc) return;
    const wanted = vipNetworks(svc).filter((n) => this.pools.has(n));
    const had = svc.endpoint?.virtualIps ?? [];
    const kept = had.filter((v) => wanted.includes(v.networkId));
    const gone = had.filter((v) => !kept.includes(v));
    const virtualIps: VirtualIP[] = [];
    for (const networkId of wanted) {
      const have = kept.find((v) => v.networkId === networkId);
      if (have) {
        virtualIps.push(have);
        continue;
      }
      const addr = this.pools.get(networkId)!.take();
      if (addr === undefined) {
        this.log.warn({ service: id, network: networkId }, 'no free address for the service\'s virtual IP on the network; its name answers nothing there');
        continue;
      }
      virtualIps.push({ networkId, addr });
    }
    if (gone.length === 0 && virtualIps.length === had.length) return;
    const spec = svc.spec?.endpoint ?? { mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, ports: [] };
    tx.update('service', { ...svc, endpoint: { ports: [], ...svc.endpoint, spec, virtualIps } });
    this.release(vipAttachments({ ...svc, endpoint: { spec, ports: [], virtualIps: gone } }));
  }

  /** A node's own attachments made to match the networks of its tasks that have not ended. */
  private reconcileNode(tx: Tx, id: string): void {
    const node = tx.get('node', id);
    if (!node) return;
    const wanted = new Set<string>();
    for (const t of this.store.findTasks({ nodeId: id })) if (holdsAddresses(t)) for (const a of t.networks) wanted.add(a.networkId);
    // Every node is on the routing mesh's network, with or without tasks there: it forwards the
    // published ports it receives to the tasks through it.
    const ingress = ingressNetworkIn(tx.list('network'));
    if (ingress) wanted.add(ingress.id);
    const kept = node.attachments.filter((a) => wanted.has(a.networkId) && this.pools.has(a.networkId));
    const gone = node.attachments.filter((a) => !kept.includes(a));
    const added: NetworkAttachment[] = [];
    for (const networkId of wanted) {
      if (kept.some((a) => a.networkId === networkId)) continue;
      const address = this.pools.get(networkId)?.take();
      if (address === undefined) {
        this.log.warn({ node: id, network: networkId }, 'no free address for the node on the network; its sandbox has none (probes and load balancing there wait)');
        continue;
      }
      added.push({ networkId, addresses: [address], aliases: [] });
    }
    if (gone.length === 0 && added.length === 0) return;
    tx.update('node', { ...node, attachments: [...kept, ...added] });
    this.release(gone);
  }
}

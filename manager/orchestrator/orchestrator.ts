// The orchestrator's shell: a LeaderComponent that follows the store and writes the cores'
// decisions. It watches services, tasks, nodes and the cluster; every change marks the services it
// concerns dirty; at most every `coalesceMs` a pass reconciles the dirty services from a fresh read
// of the store (reconcile.ts) and writes their plans with store.batch(). A write refused because
// the store moved (version conflict, a task gone) marks its services dirty again: the next pass
// decides anew from what is stored, so nothing is lost and nothing is written twice. Restart
// delays come back from the cores as a time; the shell keeps one timer per service for them.
//
// Started again after a leadership change, it re-lists everything: the store is the only state.
import type { Logger } from '../../common/logger.js';
import { IllegalStateError } from '../../common/errors.js';
import type { Task } from '../../proto/gen/tswarm/objects.js';
import type { LeaderComponent } from '../leader.js';
import type { MemoryStore, StoreEvent, Tx, Watch } from '../store/memory.js';
import { reconcileService } from './reconcile.js';
import { modeOf, serviceName, type Plan } from './tasks.js';

/** Ended tasks kept per slot when the cluster object says nothing (SwarmKit's default). */
export const DEFAULT_HISTORY_LIMIT = 5;
/** Actions written in one transaction for one service; a larger plan is split. */
const MAX_ACTIONS_PER_TX = 100;

export interface OrchestratorOptions {
  store: MemoryStore;
  log: Logger;
  /** The clock (ms since the epoch); the cores take its value as data. Default Date.now. */
  now?: () => number;
  /**
   * Changes are gathered this long before a pass. Default 20 ms: it is latency on every scale and
   * update, and a pass over a service of a hundred tasks costs well under a millisecond.
   */
  coalesceMs?: number;
  /** Wait after a failed write that was not a conflict (e.g. leadership lost). Default 1000 ms. */
  retryMs?: number;
}

export class Orchestrator implements LeaderComponent {
  readonly name = 'orchestrator';
  private readonly store: MemoryStore;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly coalesceMs: number;
  private readonly retryMs: number;
  private watch: Watch | undefined;
  private running = false;
  private readonly dirty = new Set<string>();
  private passTimer: NodeJS.Timeout | undefined;
  private readonly wakeups = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private chain: Promise<void> = Promise.resolve();
  private consuming: Promise<void> = Promise.resolve();
  /** Passes run so far (for tests and logs). */
  passes = 0;

  constructor(opts: OrchestratorOptions) {
    this.store = opts.store;
    this.log = opts.log.child({ component: 'orchestrator' });
    this.now = opts.now ?? Date.now;
    this.coalesceMs = opts.coalesceMs ?? 20;
    this.retryMs = opts.retryMs ?? 1000;
  }

  start(): void {
    if (this.running) throw new IllegalStateError('orchestrator: already started');
    this.running = true;
    // Watch first, then list: both happen in this synchronous step, so no change falls between.
    const watch = this.store.watch({ kinds: ['service', 'task', 'node', 'cluster'] });
    this.watch = watch;
    for (const s of this.store.list('service')) this.dirty.add(s.id);
    for (const t of this.store.list('task')) this.dirty.add(t.serviceId);
    this.consuming = this.consume(watch);
    this.log.info({ services: this.dirty.size }, 'orchestrator started');
    this.schedule(0);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.watch?.close();
    this.watch = undefined;
    clearTimeout(this.passTimer);
    this.passTimer = undefined;
    for (const w of this.wakeups.values()) clearTimeout(w.timer);
    this.wakeups.clear();
    this.dirty.clear();
    await this.consuming;
    await this.chain;
  }

  /** Resolves once no service is dirty and no pass runs or is due (restart timers may remain). */
  async settled(): Promise<void> {
    for (;;) {
      await this.chain;
      if (this.passTimer === undefined && this.dirty.size === 0) return;
      await new Promise((r) => setTimeout(r, this.coalesceMs));
    }
  }

  private async consume(watch: Watch): Promise<void> {
    for await (const e of watch) {
      this.onEvent(e);
      this.schedule(this.coalesceMs);
    }
  }

  private onEvent(e: StoreEvent): void {
    switch (e.kind) {
      case 'service':
        this.dirty.add(e.object.id);
        break;
      case 'task':
        this.dirty.add((e.object as Task).serviceId);
        break;
      case 'node': {
        if (e.action === 'update' && !nodeChanged(e)) break;
        // Global modes follow every node; others care about the tasks on this node.
        for (const s of this.store.list('service')) {
          const m = modeOf(s);
          if (m === 'global' || m === 'globalJob') this.dirty.add(s.id);
        }
        for (const t of this.store.findTasks({ nodeId: e.object.id })) this.dirty.add(t.serviceId);
        break;
      }
      case 'cluster':
        if (e.action !== 'update' || historyLimitOf(e.object) !== historyLimitOf(e.old)) {
          for (const s of this.store.list('service')) this.dirty.add(s.id);
        }
        break;
      default:
        break;
    }
  }

  /** Runs a pass in `delayMs` unless one is already due. */
  private schedule(delayMs: number): void {
    if (!this.running || this.passTimer !== undefined || this.dirty.size === 0) return;
    this.passTimer = setTimeout(() => {
      this.passTimer = undefined;
      this.chain = this.chain
        .then(() => this.pass())
        .catch((err: unknown) => {
          this.log.error({ err }, 'orchestrator pass failed');
          this.schedule(this.retryMs);
        });
    }, delayMs);
  }

  private wakeAt(serviceId: string, at: number): void {
    const cur = this.wakeups.get(serviceId);
    if (cur && cur.at <= at) return;
    if (cur) clearTimeout(cur.timer);
    const timer = setTimeout(
      () => {
        this.wakeups.delete(serviceId);
        this.dirty.add(serviceId);
        this.schedule(0);
      },
      Math.max(0, at - this.now()),
    );
    this.wakeups.set(serviceId, { at, timer });
  }

  private async pass(): Promise<void> {
    if (!this.running || this.dirty.size === 0) return;
    this.passes++;
    const ids = [...this.dirty];
    this.dirty.clear();
    const now = this.now();
    const nodes = this.store.list('node');
    const historyLimit = historyLimitOf(this.store.list('cluster')[0]);
    const fns: ((tx: Tx) => void)[] = [];
    const written: string[] = [];
    for (const id of ids) {
      const service = this.store.get('service', id);
      let plan: Plan;
      try {
        plan = reconcileService({ serviceId: id, service, tasks: this.store.findTasks({ serviceId: id }), nodes, now, historyLimit });
      } catch (err) {
        // A bug in a core must not stop the others: this service is tried again later.
        this.log.error({ err, service: id }, 'reconciling the service failed');
        this.wakeAt(id, now + this.retryMs);
        continue;
      }
      if (plan.retryAt !== undefined) this.wakeAt(id, plan.retryAt);
      const n = plan.create.length + plan.update.length + plan.remove.length + (plan.service ? 1 : 0);
      if (n === 0) continue;
      written.push(id);
      this.log.debug(
        { service: service ? serviceName(service) : id, create: plan.create.length, update: plan.update.length, remove: plan.remove.length },
        'reconciled',
      );
      fns.push(...transactions(plan));
    }
    if (fns.length === 0) return;
    try {
      // Up to 1,000 actions per log entry (within the size limit): with three managers, Raft's
      // cost is mostly per entry, and a scale-up of thousands of tasks is one burst.
      const errors = await this.store.batch(fns, 1000);
      if (errors.length > 0) {
        this.log.debug({ errors: errors.length, first: errors[0]!.message }, 'writes refused; reconciling again');
        for (const id of written) this.dirty.add(id);
      }
      this.schedule(this.coalesceMs);
    } catch (err) {
      // Not a verdict on the writes (e.g. this manager lost leadership): try again later.
      this.log.warn({ err }, 'orchestrator writes failed; retrying');
      for (const id of written) this.dirty.add(id);
      this.schedule(this.retryMs);
    }
  }
}

/** A plan as transactions: one for a small plan (a restart's shutdown and replacement together). */
function transactions(plan: Plan): ((tx: Tx) => void)[] {
  const service = plan.service;
  const actions: ((tx: Tx) => void)[] = [
    ...(service ? [(tx: Tx) => tx.update('service', service)] : []),
    ...plan.update.map((t) => (tx: Tx) => tx.update('task', t)),
    ...plan.create.map((t) => (tx: Tx) => tx.create('task', t)),
    ...plan.remove.map((t) => (tx: Tx) => tx.remove('task', t.id)),
  ];
  const out: ((tx: Tx) => void)[] = [];
  for (let i = 0; i < actions.length; i += MAX_ACTIONS_PER_TX) {
    const chunk = actions.slice(i, i + MAX_ACTIONS_PER_TX);
    out.push((tx) => {
      for (const a of chunk) a(tx);
    });
  }
  return out;
}

function historyLimitOf(c: unknown): number {
  const spec = (c as { spec?: { taskHistoryRetentionLimit?: number } } | undefined)?.spec;
  return spec ? spec.taskHistoryRetentionLimit ?? DEFAULT_HISTORY_LIMIT : DEFAULT_HISTORY_LIMIT;
}

/** Does the node update matter to placement: state, availability, labels, role, description? */
function nodeChanged(e: StoreEvent): boolean {
  const a = e.old as StoreEvent['object'] & { status?: { state?: string }; spec?: unknown; role?: string; description?: unknown };
  const b = e.object as typeof a;
  if (!a) return true;
  return (
    a.status?.state !== b.status?.state ||
    a.role !== b.role ||
    JSON.stringify(a.spec) !== JSON.stringify(b.spec) ||
    JSON.stringify(a.description) !== JSON.stringify(b.description)
  );
}

// Manager membership, run by the leader: it keeps the Raft group in line with the nodes' roles in
// the store. A node's `spec.desiredRole` is what the user asked (promote, demote); `role` is what
// its certificate carries; the Raft configuration is who votes.
//
// - Promotion: role := manager; the node renews its certificate, asks to join (RaftMembership.Join),
//   enters as a learner, and is promoted to voter here once it has caught up.
// - Demotion: refused up front when it would cost the quorum (`demoteRefusal`); otherwise the
//   leader removes the member from Raft, then sets role := worker. A leader asked to demote itself
//   first hands leadership to a caught-up voter; the new leader finishes the job.
// - managerStatus (raft id, address, leader, reachability) is kept current for `node ls`.
import { NodeRole, ReachabilityState } from '../proto/gen/tswarm/types.js';
import type { Node } from '../proto/gen/tswarm/objects.js';
import type { Logger } from '../common/logger.js';
import type { RaftServer } from './raft/server.js';
import type { ApplyResult, MemoryStore } from './store/memory.js';

const MANAGER = NodeRole.NODE_ROLE_MANAGER;
const WORKER = NodeRole.NODE_ROLE_WORKER;

export class Membership {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** When the leader last heard from each member (recentActive is reset at every election timeout). */
  private readonly lastHeard = new Map<number, number>();

  constructor(
    private readonly store: MemoryStore,
    private readonly raft: () => RaftServer<ApplyResult> | undefined,
    private readonly log: Logger,
    /** Whether this manager leads (used when the store is in etcd and there is no Raft). */
    private readonly isLeader: () => boolean = () => false,
    private readonly periodMs = 250,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = true;
      this.reconcile()
        .catch((err: unknown) => this.log.debug({ err: (err as Error).message }, 'membership: reconcile step failed; retrying'))
        .finally(() => (this.running = false));
    }, this.periodMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The node of a Raft member, by raft id. */
  private nodeOfRaftId(id: number): Node | undefined {
    return this.store.list('node').find((n) => n.managerStatus?.raftId === id);
  }

  /**
   * Why demoting (or removing) this manager would be unsafe, or undefined if it is safe: the
   * voters left must still reach a majority of the new, smaller group.
   */
  demoteRefusal(node: Node): string | undefined {
    const raft = this.raft();
    const id = node.managerStatus?.raftId;
    if (!raft) {
      const managers = this.store.list('node').filter((n) => n.role === MANAGER);
      return managers.length <= 1 ? `node ${node.id} is the only manager; a cluster needs at least one` : undefined;
    }
    if (!id) return undefined;
    const s = raft.status();
    const voters = s.confState.voters;
    if (!voters.includes(id)) return undefined;
    if (voters.length === 1) return `node ${node.id} is the only manager; a cluster needs at least one`;
    const reachable = voters.filter((v) => v !== id && (v === s.id || s.progress?.get(v)?.recentActive === true)).length;
    const quorum = Math.floor((voters.length - 1) / 2) + 1;
    if (reachable < quorum) {
      return `demoting node ${node.id} would lose the quorum: ${reachable} of the other ${voters.length - 1} managers are reachable and ${quorum} are needed`;
    }
    return undefined;
  }

  /** One pass; acts only on the leader. */
  async reconcile(): Promise<void> {
    const raft = this.raft();
    if (!raft) return this.reconcileWithoutRaft();
    if (raft.isStopped) return;
    const s = raft.status();
    if (s.role !== 'leader' || !s.progress) {
      this.lastHeard.clear();
      return;
    }
    const now = Date.now();
    for (const [id, pr] of s.progress) if (pr.recentActive || !this.lastHeard.has(id)) this.lastHeard.set(id, now);

    // 1. Learners that have caught up become voters (one change at a time).
    for (const id of s.confState.learners) {
      const pr = s.progress.get(id);
      if (pr && pr.recentActive && pr.match >= s.commit) {
        this.log.info({ raftId: id }, 'membership: a joining manager has caught up; promoting it to voter');
        await raft.promote(id);
        return;
      }
    }

    // 2. Roles asked for.
    for (const n of this.store.list('node')) {
      const desired = n.spec?.desiredRole ?? WORKER;
      if (desired === MANAGER && n.role !== MANAGER) {
        this.log.info({ node: n.id }, 'membership: promoting a worker to manager');
        await this.store.update((tx) => tx.update('node', { ...n, role: MANAGER }));
        return;
      }
      if (desired === WORKER && n.role === MANAGER) {
        const id = n.managerStatus?.raftId ?? 0;
        if (id === s.id) {
          const to = s.confState.voters.find((v) => v !== s.id && (s.progress!.get(v)?.match ?? 0) >= s.lastIndex);
          if (to && s.leadTransferee === 0) {
            this.log.info({ to }, 'membership: this manager is being demoted; handing leadership over first');
            raft.transferLeadership(to);
          }
          return;
        }
        if (id && (s.confState.voters.includes(id) || s.confState.learners.includes(id))) {
          if (s.confState.voters.includes(id) && this.demoteRefusal(n)) return; // wait until it is safe
          this.log.info({ node: n.id, raftId: id }, 'membership: removing a demoted manager from the Raft group');
          await raft.remove(id);
          return;
        }
        await this.store.update((tx) => tx.update('node', { ...n, role: WORKER, managerStatus: undefined }));
        return;
      }
    }

    // 3. managerStatus as Raft sees it.
    const updates: Node[] = [];
    for (const id of [...s.confState.voters, ...s.confState.learners]) {
      const n = this.nodeOfRaftId(id);
      if (!n?.managerStatus) continue;
      const leader = id === s.id;
      const reachable = leader || now - (this.lastHeard.get(id) ?? 0) < 2_000;
      const reachability = reachable ? ReachabilityState.REACHABILITY_REACHABLE : ReachabilityState.REACHABILITY_UNREACHABLE;
      if (n.managerStatus.leader !== leader || n.managerStatus.reachability !== reachability) {
        updates.push({ ...n, managerStatus: { ...n.managerStatus, leader, reachability } });
      }
    }
    if (updates.length > 0) {
      await this.store.update((tx) => {
        for (const n of updates) tx.update('node', n);
      });
    }
  }

  /** With the store in etcd, roles are all there is: no Raft seats to give or take. */
  private async reconcileWithoutRaft(): Promise<void> {
    if (!this.isLeader()) return;
    for (const n of this.store.list('node')) {
      const desired = n.spec?.desiredRole ?? WORKER;
      if (desired === MANAGER && n.role !== MANAGER) {
        await this.store.update((tx) => tx.update('node', { ...n, role: MANAGER }));
        return;
      }
      if (desired === WORKER && n.role === MANAGER) {
        await this.store.update((tx) => tx.update('node', { ...n, role: WORKER, managerStatus: undefined }));
        return;
      }
    }
  }
}

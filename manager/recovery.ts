// `swarmd init --force-new-cluster`: after the quorum is lost for good, rebuild a one-manager
// cluster from this manager's data, keeping everything that was committed (services, secrets,
// networks, nodes...). What was appended but not known to be committed is dropped, as etcd does.
//
// The rewrite, before the manager starts:
//   1. read the Raft state (snapshot + WAL) and rebuild the store up to the commit index;
//   2. in the store: the other managers become workers that are down (their Raft seats are gone;
//      `swarmctl node rm` removes them, a `swarmd join` brings a machine back);
//   3. write a fresh Raft directory whose snapshot holds that store and whose membership is this
//      manager alone, then swap it in; the old directory is kept beside it
//      (`raft.before-force-new-cluster`) until the next force.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EntryType } from '../proto/gen/tswarm/raft.js';
import { NodeRole, NodeState } from '../proto/gen/tswarm/types.js';
import type { Logger } from '../common/logger.js';
import { RaftDisk } from './raft/storage/disk.js';
import { NodeFs } from './raft/storage/fs.js';
import { MemoryStore, type ApplyResult, type Proposer } from './store/memory.js';

export interface ForceNewClusterResult {
  /** The index the new log starts after (the old commit index + 1 for the membership rewrite). */
  index: number;
  /** Managers that lost their seat. */
  demoted: string[];
}

export async function forceNewCluster(dataDir: string, raftId: number, advertiseAddr: string, log: Logger): Promise<ForceNewClusterResult> {
  const dir = join(dataDir, 'raft');
  const fresh = join(dataDir, 'raft.force-new-cluster');
  const backup = join(dataDir, 'raft.before-force-new-cluster');
  rmSync(fresh, { recursive: true, force: true });
  const fs = new NodeFs();

  // 1. The committed state.
  const { disk, state } = RaftDisk.open(fs, dir, { onTruncate: (path, offset) => log.warn({ path, offset }, 'force-new-cluster: cut a torn write at the end of the log') });
  disk.close();
  const store = new MemoryStore();
  let index = 0;
  if (state.snapshot) {
    store.restore(state.snapshot.data);
    index = state.snapshot.metadata.index;
  }
  const commit = state.hardState.commit;
  for (const e of state.entries) {
    if (e.index > commit) break;
    if (e.type === EntryType.ENTRY_TYPE_NORMAL && e.data.length > 0) store.apply(e.data, e.index);
    index = e.index;
  }
  const dropped = state.entries.filter((e) => e.index > commit).length;
  if (dropped > 0) log.warn({ dropped }, 'force-new-cluster: dropping log entries that were never known to be committed');

  // 2. The membership rewrite, as one more entry at index + 1.
  const next = index + 1;
  const proposer: Proposer = { propose: (data: Uint8Array): Promise<ApplyResult> => Promise.resolve(store.apply(data, next)) };
  store.setProposer(proposer);
  const others = store.list('node').filter((n) => n.role === NodeRole.NODE_ROLE_MANAGER && n.managerStatus?.raftId !== raftId);
  const self = store.list('node').find((n) => n.managerStatus?.raftId === raftId);
  await store.update((tx) => {
    for (const n of others) {
      tx.update('node', {
        ...n,
        role: NodeRole.NODE_ROLE_WORKER,
        spec: n.spec ? { ...n.spec, desiredRole: NodeRole.NODE_ROLE_WORKER } : undefined,
        managerStatus: undefined,
        status: { state: NodeState.NODE_STATE_DOWN, message: 'lost its manager seat: the cluster was rebuilt with --force-new-cluster', addr: n.status?.addr ?? '' },
      });
    }
    if (self?.managerStatus) tx.update('node', { ...self, managerStatus: { ...self.managerStatus, addr: advertiseAddr, leader: true } });
  });

  // 3. A new Raft directory: one snapshot, this manager as the only voter.
  const term = Math.max(state.hardState.term, state.snapshot?.metadata.term ?? 0, 1);
  const out = RaftDisk.open(fs, fresh).disk;
  try {
    out.saveSnapshot({ index: next, term, confState: { voters: [raftId], learners: [], addresses: { [String(raftId)]: advertiseAddr } } }, store.snapshot());
    out.append([], { term, vote: 0, commit: next });
    out.sync();
  } finally {
    out.close();
  }
  rmSync(backup, { recursive: true, force: true });
  renameSync(dir, backup);
  renameSync(fresh, dir);
  if (!existsSync(join(dir, 'wal'))) throw new Error(`force-new-cluster: ${dir} was not rebuilt`);
  log.warn({ index: next, demoted: others.map((n) => n.id) }, 'force-new-cluster: this manager is now the only member; the old Raft directory is kept as raft.before-force-new-cluster');
  return { index: next, demoted: others.map((n) => n.id) };
}

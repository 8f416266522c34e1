// The endpoints of each overlay network, for the dispatcher's peer tables: every placed task that
// holds an address there (it has a node and has not ended) and every node's own address on it.
// Kept from the store's events so that a node's peer table is read from an index, not from a
// scan of every task at every sync. Pure: objects in, the networks whose endpoints changed out.
import type { Node, Task } from '../../proto/gen/tswarm/objects.js';
import { TaskState } from '../../proto/gen/tswarm/types.js';
import { isTerminalState, stateRank } from '../../common/task-state.js';

export interface Endpoint {
  nodeId: string;
  /** IPv4, no prefix length. */
  address: string;
}

/** The id of a node's own endpoint on a network (a task's is its id). */
export function nodeEndpointId(nodeId: string): string {
  return `node:${nodeId}`;
}

/** A task's endpoints: it is placed, and has not ended. */
function taskEndpoints(t: Task | undefined): Map<string, Endpoint> {
  const out = new Map<string, Endpoint>();
  if (!t || !t.nodeId || isTerminalState(t.status?.state) || stateRank(t.status?.state) < stateRank(TaskState.TASK_STATE_ASSIGNED)) return out;
  for (const a of t.networks) {
    const address = a.addresses[0]?.split('/')[0];
    if (address) out.set(a.networkId, { nodeId: t.nodeId, address });
  }
  return out;
}

function nodeEndpoints(n: Node | undefined): Map<string, Endpoint> {
  const out = new Map<string, Endpoint>();
  for (const a of n?.attachments ?? []) {
    const address = a.addresses[0]?.split('/')[0];
    if (address) out.set(a.networkId, { nodeId: n!.id, address });
  }
  return out;
}

export class NetworkEndpoints {
  /** Network id → endpoint id → endpoint. */
  private readonly byNetwork = new Map<string, Map<string, Endpoint>>();
  /** Endpoint id → its endpoints by network (what to take out when it changes). */
  private readonly byOwner = new Map<string, Map<string, Endpoint>>();

  /** A task as it is now (undefined: removed); the networks whose endpoints changed. */
  setTask(id: string, t: Task | undefined): string[] {
    return this.set(id, taskEndpoints(t));
  }

  setNode(id: string, n: Node | undefined): string[] {
    return this.set(nodeEndpointId(id), nodeEndpoints(n));
  }

  /** The endpoints of a network: endpoint id → endpoint. */
  of(networkId: string): ReadonlyMap<string, Endpoint> {
    return this.byNetwork.get(networkId) ?? new Map();
  }

  clear(): void {
    this.byNetwork.clear();
    this.byOwner.clear();
  }

  private set(owner: string, now: Map<string, Endpoint>): string[] {
    const before = this.byOwner.get(owner) ?? new Map<string, Endpoint>();
    const changed: string[] = [];
    for (const [networkId, e] of before) {
      const next = now.get(networkId);
      if (next && next.address === e.address && next.nodeId === e.nodeId) continue;
      const eps = this.byNetwork.get(networkId);
      eps?.delete(owner);
      if (eps?.size === 0) this.byNetwork.delete(networkId);
      changed.push(networkId);
    }
    for (const [networkId, e] of now) {
      const prev = before.get(networkId);
      if (prev && prev.address === e.address && prev.nodeId === e.nodeId) continue;
      let eps = this.byNetwork.get(networkId);
      if (!eps) this.byNetwork.set(networkId, (eps = new Map<string, Endpoint>()));
      eps.set(owner, e);
      if (!changed.includes(networkId)) changed.push(networkId);
    }
    if (now.size === 0) this.byOwner.delete(owner);
    else this.byOwner.set(owner, now);
    return changed;
  }
}

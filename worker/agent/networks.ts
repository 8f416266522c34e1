// The node's overlay sandboxes kept to its assignments: for every network its tasks are on, the
// sandbox made (with the node's own address) and its static peer entries set to exactly the
// peers the managers sent; a sandbox whose network is no longer assigned removed once its last
// endpoint is gone. The managers' store is the only truth (no gossip, no learning), so a
// reconcile after any message, or after a restart of swarmd with its containers kept, converges
// to it. One reconcile runs at a time; asks meanwhile fold into one more.
import type { NetworkAssignment, NetworkPeer } from '../../proto/gen/tswarm/dispatcher.js';
import type { Logger } from '../../common/logger.js';
import type { OverlayDriver, OverlayNetwork, OverlayPeer } from '../network/overlay.js';
import { overlayNetworkOf } from './container-spec.js';

/** The peers of each network, from the assignment's peer items. */
export function peersByNetwork(peers: Iterable<NetworkPeer>): Map<string, OverlayPeer[]> {
  const out = new Map<string, OverlayPeer[]>();
  for (const p of peers) {
    let list = out.get(p.networkId);
    if (!list) out.set(p.networkId, (list = []));
    list.push({ address: p.address, vtep: p.vtep });
  }
  return out;
}

export interface SandboxesOptions {
  driver: OverlayDriver;
  log: Logger;
}

export class NetworkSandboxes {
  private running: Promise<void> | undefined;
  private again = false;
  /** Set once a complete assignment set arrived: before it, nothing present is stale. */
  private complete = false;
  private networks: ReadonlyMap<string, NetworkAssignment> = new Map();
  private peers: NetworkPeer[] = [];
  /**
   * Network id → what the last pass programmed (the network and its peers, as JSON): a network
   * whose assignment and peers did not change is not read back and written again at every message
   * (four processes per network), only after a complete set (a new session: the kernel's state is
   * checked against it all).
   */
  private readonly applied = new Map<string, string>();
  private force = false;
  /** Whether a sandbox may have gone stale: a network left the set, containers went, a complete set came. */
  private staleCheck = false;

  constructor(private readonly opts: SandboxesOptions) {}

  /** What the node must hold now; `complete` when it came from (or since) a complete set. */
  want(networks: ReadonlyMap<string, NetworkAssignment>, peers: Iterable<NetworkPeer>, complete: boolean): void {
    if ([...this.networks.keys()].some((id) => !networks.has(id))) this.staleCheck = true;
    this.networks = new Map(networks);
    this.peers = [...peers];
    if (complete) this.complete = this.force = this.staleCheck = true;
    this.schedule();
  }

  /** Asks for a check of the sandboxes present (e.g. after containers went: one may now be empty). */
  reconcile(): void {
    this.staleCheck = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: Error) => {
        this.staleCheck = true;
        this.opts.log.warn({ err: err.message }, 'network: reconciling the overlay sandboxes failed; again at the next change');
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
  }

  /** Resolves once no reconcile is running (tests, and stop). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async pass(): Promise<void> {
    const { driver, log } = this.opts;
    const [force, check] = [this.force, this.staleCheck];
    this.force = this.staleCheck = false;
    const peers = peersByNetwork(this.peers);
    for (const id of [...this.applied.keys()]) if (!this.networks.has(id)) this.applied.delete(id);
    for (const a of this.networks.values()) {
      const id = a.network?.id ?? '';
      try {
        const net: OverlayNetwork = overlayNetworkOf(a);
        const own = peers.get(net.id) ?? [];
        const key = JSON.stringify([net, own]);
        if (!force && this.applied.get(id) === key) continue;
        this.applied.delete(id);
        await driver.ensure(net);
        await driver.setPeers(net.id, own);
        this.applied.set(id, key);
      } catch (err) {
        // One network's failure (e.g. an MTU this node's underlay cannot carry) is its tasks' to
        // report (their prepare fails with it); the others are still programmed.
        log.warn({ network: id, err: (err as Error).message }, 'network: an overlay sandbox could not be programmed');
      }
    }
    if (!this.complete || !check) return;
    for (const present of await driver.list()) {
      if (this.networks.has(present.networkId)) continue;
      if (present.hostVeths.length > 0) continue; // containers still on it; removed when they are
      await driver.remove(present.networkId);
      log.info({ network: present.networkId }, 'network: overlay sandbox removed (no task of this node is on the network)');
    }
  }
}

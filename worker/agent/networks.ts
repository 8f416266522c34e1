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

  constructor(private readonly opts: SandboxesOptions) {}

  /** What the node must hold now; `complete` when it came from (or since) a complete set. */
  want(networks: ReadonlyMap<string, NetworkAssignment>, peers: Iterable<NetworkPeer>, complete: boolean): void {
    this.networks = new Map(networks);
    this.peers = [...peers];
    if (complete) this.complete = true;
    this.reconcile();
  }

  /** Asks for a reconcile (e.g. after containers went: a sandbox may now be empty). */
  reconcile(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: Error) => this.opts.log.warn({ err: err.message }, 'network: reconciling the overlay sandboxes failed; again at the next change'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.reconcile();
        }
      });
  }

  /** Resolves once no reconcile is running (tests, and stop). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async pass(): Promise<void> {
    const { driver, log } = this.opts;
    const peers = peersByNetwork(this.peers);
    for (const a of this.networks.values()) {
      let net: OverlayNetwork;
      try {
        net = overlayNetworkOf(a);
        await driver.ensure(net);
        await driver.setPeers(net.id, peers.get(net.id) ?? []);
      } catch (err) {
        // One network's failure (e.g. an MTU this node's underlay cannot carry) is its tasks' to
        // report (their prepare fails with it); the others are still programmed.
        log.warn({ network: a.network?.id, err: (err as Error).message }, 'network: an overlay sandbox could not be programmed');
      }
    }
    if (!this.complete) return;
    for (const present of await driver.list()) {
      if (this.networks.has(present.networkId)) continue;
      if (present.hostVeths.length > 0) continue; // containers still on it; removed when they are
      await driver.remove(present.networkId);
      log.info({ network: present.networkId }, 'network: overlay sandbox removed (no task of this node is on the network)');
    }
  }
}

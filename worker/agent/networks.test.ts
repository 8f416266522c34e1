// The agent's sandboxes kept to its assignments, over a fake driver: every assigned network made
// and given exactly its peers; a sandbox no longer assigned removed once empty, and only after a
// complete set arrived (a restarted swarmd removes nothing it has not heard about).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { NetworkAssignment, NetworkPeer } from '../../proto/gen/tswarm/dispatcher.js';
import { Network } from '../../proto/gen/tswarm/objects.js';
import type { OverlayDriver, OverlayNetwork, OverlayPeer } from '../network/overlay.js';
import { NetworkSandboxes } from './networks.js';

function fakeDriver(present: { networkId: string; hostVeths: string[] }[]) {
  const calls: string[] = [];
  const driver = {
    ensure: (n: OverlayNetwork) => {
      calls.push(`ensure ${n.id} vni ${n.vni} node ${n.nodeAddress ?? '-'} port ${n.dataPathPort ?? '-'}`);
      return Promise.resolve({ mtu: 1450 });
    },
    setPeers: (id: string, peers: readonly OverlayPeer[]) => {
      calls.push(`peers ${id}: ${peers.map((p) => `${p.address}@${p.vtep}`).join(' ')}`);
      return Promise.resolve();
    },
    list: () => Promise.resolve(present),
    remove: (id: string) => {
      calls.push(`remove ${id}`);
      return Promise.resolve();
    },
  };
  return { driver: driver as unknown as OverlayDriver, calls };
}

const assignment = (id: string, vni: number): NetworkAssignment => ({
  network: Network.fromPartial({ id, vni, spec: { annotations: { name: id, labels: {} }, driverOptions: {} }, ipam: [{ subnet: '10.0.0.0/24', gateway: '10.0.0.1', range: '' }] }),
  nodeAddress: '10.0.0.200/24',
  dataPathPort: 4789,
});
const peer = (networkId: string, address: string, vtep: string): NetworkPeer => ({ id: `${networkId}:${address}`, networkId, address, vtep, nodeId: 'w2', nodeAddress: false });

describe('NetworkSandboxes', () => {
  it('makes each assigned network with exactly its peers; removes stale sandboxes once empty, and only after a complete set', async () => {
    const { driver, calls } = fakeDriver([
      { networkId: 'front', hostVeths: ['tso1'] },
      { networkId: 'old', hostVeths: [] },
      { networkId: 'busy', hostVeths: ['tso2'] },
    ]);
    const s = new NetworkSandboxes({ driver, log: pino({ level: 'silent' }) });
    const networks = new Map([['front', assignment('front', 4096)]]);
    s.want(networks, [peer('front', '10.0.0.3', '10.77.0.13'), peer('back', '10.0.1.3', '10.77.0.13')], false);
    await s.idle();
    expect(calls).toEqual(['ensure front vni 4096 node 10.0.0.200/24 port 4789', 'peers front: 10.0.0.3@10.77.0.13']);
    calls.length = 0;
    s.want(networks, [], true);
    await s.idle();
    // old: gone; busy: a container is still on it (removed with its last container, at a later reconcile).
    expect(calls).toEqual(['ensure front vni 4096 node 10.0.0.200/24 port 4789', 'peers front: ', 'remove old']);
  });

  it('folds the asks that come while a reconcile runs into one more', async () => {
    const { driver, calls } = fakeDriver([]);
    const s = new NetworkSandboxes({ driver, log: pino({ level: 'silent' }) });
    const networks = new Map([['front', assignment('front', 4096)]]);
    for (let i = 0; i < 5; i++) s.want(networks, [], true);
    await s.idle();
    expect(calls.filter((c) => c.startsWith('ensure'))).toHaveLength(2);
  });
});

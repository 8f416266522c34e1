// Path health, pure: a path's state after each probe, the targets from the assignments, and the
// prober's rounds with a fake probe.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Network } from '../../proto/gen/tswarm/objects.js';
import { PeerPath_State } from '../../proto/gen/tswarm/types.js';
import { afterProbe, PathProber, pathTargets, type PathTarget, type Tracked } from './paths.js';

const target: PathTarget = { networkId: 'n1', nodeId: 'w2', from: '10.0.0.200', to: '10.0.0.201' };

describe('afterProbe', () => {
  it('is reachable from the first answer, unreachable after two failures in a row, with since when and the last error', () => {
    let t: Tracked = afterProbe(undefined, target, undefined, 1000);
    expect(t.path).toEqual({ nodeId: 'w2', networkId: 'n1', state: PeerPath_State.STATE_REACHABLE, sinceUnixMs: 1000, lastError: '' });
    t = afterProbe(t, target, 'no answer', 3000); // one lost packet is not a cut
    expect([t.path.state, t.path.sinceUnixMs, t.failures]).toEqual([PeerPath_State.STATE_REACHABLE, 1000, 1]);
    t = afterProbe(t, target, 'no answer from 10.0.0.201 within 1 s', 5000);
    expect(t.path).toMatchObject({ state: PeerPath_State.STATE_UNREACHABLE, sinceUnixMs: 5000, lastError: 'no answer from 10.0.0.201 within 1 s' });
    t = afterProbe(t, target, 'still nothing', 7000);
    expect(t.path).toMatchObject({ state: PeerPath_State.STATE_UNREACHABLE, sinceUnixMs: 5000, lastError: 'still nothing' });
    t = afterProbe(t, target, undefined, 9000);
    expect(t.path).toMatchObject({ state: PeerPath_State.STATE_REACHABLE, sinceUnixMs: 9000, lastError: '' });
  });

  it('stays unknown, with the error, until a path has answered once or failed twice', () => {
    const t = afterProbe(undefined, target, 'no answer', 1000);
    expect(t.path).toMatchObject({ state: PeerPath_State.STATE_UNKNOWN, lastError: 'no answer' });
    expect(afterProbe(t, target, 'no answer', 3000).path.state).toBe(PeerPath_State.STATE_UNREACHABLE);
  });
});

describe('pathTargets', () => {
  it('probes other nodes\' own addresses on the networks where this node has one', () => {
    const net = (id: string, nodeAddress: string) => ({ network: Network.fromPartial({ id }), nodeAddress, dataPathPort: 4789 });
    const networks = new Map([['n1', net('n1', '10.0.0.200/24')], ['n2', net('n2', '')]]);
    const peers = [
      { id: 'n1:node:w2', networkId: 'n1', address: '10.0.0.201', vtep: '10.77.0.13', nodeId: 'w2', nodeAddress: true },
      { id: 'n1:t9', networkId: 'n1', address: '10.0.0.9', vtep: '10.77.0.13', nodeId: 'w2', nodeAddress: false },
      { id: 'n2:node:w3', networkId: 'n2', address: '10.0.1.201', vtep: '10.77.0.14', nodeId: 'w3', nodeAddress: true },
    ];
    expect(pathTargets(networks, peers)).toEqual([target]);
  });
});

describe('PathProber', () => {
  it('probes every target each round and forgets the ones taken away', async () => {
    const answering = new Set(['10.0.0.201']);
    const probed: string[] = [];
    let now = 0;
    const prober = new PathProber({
      probe: (_net, _from, to) => {
        probed.push(to);
        return answering.has(to) ? Promise.resolve() : Promise.reject(new Error(`no answer from ${to}`));
      },
      log: pino({ level: 'silent' }),
      now: () => now,
    });
    const other: PathTarget = { ...target, nodeId: 'w3', to: '10.0.0.202' };
    prober.setTargets([target, other]);
    for (now = 1; now <= 2; now++) await prober.probeAll();
    expect(probed.sort()).toEqual(['10.0.0.201', '10.0.0.201', '10.0.0.202', '10.0.0.202']);
    expect(prober.paths().map((p) => [p.nodeId, p.state, p.lastError])).toEqual([
      ['w2', PeerPath_State.STATE_REACHABLE, ''],
      ['w3', PeerPath_State.STATE_UNREACHABLE, 'no answer from 10.0.0.202'],
    ]);
    prober.setTargets([target]);
    expect(prober.paths().map((p) => p.nodeId)).toEqual(['w2']);
  });
});

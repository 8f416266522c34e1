// Overlay networks' allocation, pure: subnets from the pool (passing over what other networks and
// the nodes hold), VNIs, the ipam checks and one network's addresses.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../common/errors.js';
import { Network, Node } from '../../proto/gen/tswarm/objects.js';
import { NetworkSpec } from '../../proto/gen/tswarm/specs.js';
import { AddressPool, addressingOf, allocateNetwork, checkAddressPoolSpec, checkIpam, nextVni } from './networks.js';

const spec = (ipam: { subnet: string; gateway?: string; range?: string }[] = []): NetworkSpec =>
  NetworkSpec.fromPartial({ annotations: { name: 'n', labels: {} }, driver: 'overlay', ipam: ipam.map((c) => ({ gateway: '', range: '', ...c })) });
const network = (name: string, subnet: string, vni: number): Network => Network.fromPartial({ id: name, vni, spec: { annotations: { name, labels: {} } }, ipam: [{ subnet, gateway: '', range: '' }] });
const node = (hostname: string, hostPrefixes: string[]): Node => Node.fromPartial({ id: hostname, description: { hostname, hostPrefixes } });
const pool = { pools: ['10.0.0.0/8'], subnetSize: 24 };

function refusal(f: () => unknown): InvalidArgumentError {
  try {
    f();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('not refused');
}

describe('allocateNetwork', () => {
  it('takes the pool\'s first free subnet, its first address as gateway, and the first free VNI from 4096', () => {
    expect(allocateNetwork(spec(), [], [], pool)).toEqual({ ipam: { subnet: '10.0.0.0/24', gateway: '10.0.0.1', range: '' }, vni: 4096, skippedSubnets: [] });
    const held = [network('a', '10.0.0.0/24', 4096), network('b', '10.0.2.0/23', 4098)];
    const next = allocateNetwork(spec(), held, [], pool);
    expect(next.ipam.subnet).toBe('10.0.1.0/24');
    expect(next.vni).toBe(4097);
    expect(allocateNetwork(spec(), [...held, network('c', '10.0.1.0/24', 4097)], [], pool).ipam.subnet).toBe('10.0.4.0/24'); // past b's /23
  });

  it('passes over subnets that overlap a node\'s address or route, and records why', () => {
    const nodes = [node('w1', ['10.0.0.0/23', '192.0.2.0/24']), node('w2', ['10.0.2.7/32'])];
    const a = allocateNetwork(spec(), [], nodes, pool);
    expect(a.ipam.subnet).toBe('10.0.3.0/24');
    expect(a.skippedSubnets).toEqual([
      { subnet: '10.0.0.0/24', reason: 'overlaps 10.0.0.0/23, an address or route of node w1' }, // and the rest of the /23 with it
      { subnet: '10.0.2.0/24', reason: 'overlaps 10.0.2.7/32, an address or route of node w2' },
    ]);
  });

  it('keeps a given subnet, gateway and range; refuses one that overlaps a network or a node, naming the field', () => {
    expect(allocateNetwork(spec([{ subnet: '172.20.0.0/16', gateway: '172.20.0.254', range: '172.20.1.0/24' }]), [], [], pool).ipam).toEqual({ subnet: '172.20.0.0/16', gateway: '172.20.0.254', range: '172.20.1.0/24' });
    const e = refusal(() => allocateNetwork(spec([{ subnet: '10.0.0.128/25' }]), [network('a', '10.0.0.0/24', 4096)], [], pool));
    expect([e.field, e.rule]).toEqual(['spec.ipam[0].subnet', "10.0.0.128/25 overlaps network a's 10.0.0.0/24"]);
    expect(refusal(() => allocateNetwork(spec([{ subnet: '192.0.0.0/16' }]), [], [node('w1', ['192.0.2.0/24'])], pool)).rule).toBe('192.0.0.0/16 overlaps 192.0.2.0/24, an address or route of node w1');
  });

  it('says when the pool is exhausted', () => {
    const small = { pools: ['10.9.0.0/23'], subnetSize: 24 };
    const e = refusal(() => allocateNetwork(spec(), [network('a', '10.9.0.0/24', 4096), network('b', '10.9.1.0/24', 4097)], [], small));
    expect(e.field).toBe('spec.ipam');
    expect(e.rule).toMatch(/10\.9\.0\.0\/23 in \/24s\) has no free subnet left/);
  });

  it('gives VNIs from 4096 up, filling gaps', () => {
    expect(nextVni([])).toBe(4096);
    expect(nextVni([network('a', '10.0.0.0/24', 4096), network('b', '10.0.1.0/24', 4098)])).toBe(4097);
  });
});

describe('checks', () => {
  it.each([
    [{ subnet: '10.0.0.1/24', gateway: '', range: '' }, 'x.subnet', /host bits must be zero.*10\.0\.0\.0\/24/],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.1.1', range: '' }, 'x.gateway', /outside the subnet/],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.0.255', range: '' }, 'x.gateway', /broadcast address/],
    [{ subnet: '10.0.0.0/24', gateway: '10.0.0.0', range: '' }, 'x.gateway', /network address/],
    [{ subnet: '10.0.0.0/24', gateway: '', range: '10.0.1.0/25' }, 'x.range', /not inside the subnet/],
    [{ subnet: '10.0.0.0/31', gateway: '', range: '' }, 'x.subnet', /prefix length must be 8 to 29/],
  ])('refuses ipam %j, naming %s', (ipam, field, rule) => {
    const e = refusal(() => checkIpam(ipam, 'x'));
    expect(e.field).toBe(field);
    expect(e.rule).toMatch(rule);
  });

  it('checks the pool flags', () => {
    expect(() => checkAddressPoolSpec({ pools: ['10.0.0.0/8', '172.16.0.0/12'], subnetSize: 24 })).not.toThrow();
    expect(refusal(() => checkAddressPoolSpec({ pools: ['10.0.0.0/8', '10.1.0.0/16'], subnetSize: 24 })).rule).toBe('10.1.0.0/16 overlaps 10.0.0.0/8');
    expect(refusal(() => checkAddressPoolSpec({ pools: ['10.0.0.0/26'], subnetSize: 24 })).rule).toMatch(/prefix length must be 1 to 29|smaller than one subnet/);
    expect(refusal(() => checkAddressPoolSpec({ pools: ['10.0.0.0/8'], subnetSize: 31 })).field).toBe('--default-addr-pool-mask-length');
  });
});

describe('AddressPool', () => {
  const n = (subnet: string, gateway: string, range = ''): Network => Network.fromPartial({ id: 'n', ipam: [{ subnet, gateway, range }] });

  it('gives neither the network, the gateway nor the broadcast address, moves on from the last one given, and wraps', () => {
    const p = new AddressPool(addressingOf(n('10.0.0.0/29', '10.0.0.1')));
    expect(p.capacity).toBe(5);
    const got = [p.take(), p.take(), p.take(), p.take(), p.take(), p.take()];
    expect(got).toEqual(['10.0.0.2/29', '10.0.0.3/29', '10.0.0.4/29', '10.0.0.5/29', '10.0.0.6/29', undefined]);
    p.release('10.0.0.3/29');
    p.release('10.0.0.5');
    expect(p.take()).toBe('10.0.0.3/29'); // the cursor wrapped: the first free one after it
    expect(p.take()).toBe('10.0.0.5/29');
  });

  it('takes addresses from the range, and holds what the store says is held', () => {
    const p = new AddressPool(addressingOf(n('10.0.0.0/24', '10.0.0.1', '10.0.0.64/30')));
    expect(p.hold('10.0.0.64/24')).toBe(true);
    expect(p.hold('10.9.9.9/24')).toBe(false);
    expect([p.take(), p.take(), p.take(), p.take()]).toEqual(['10.0.0.65/24', '10.0.0.66/24', '10.0.0.67/24', undefined]);
  });
});

// The overlay driver's pure part, without root: checks, names, the MTU rule, parsing of ip/bridge
// JSON (fixtures trimmed from iproute2 6.1's output) and the plans.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../common/errors.js';
import { macOf } from './ipam.js';
import {
  checkNetwork,
  checkPeers,
  checkSandboxPrefix,
  endpointLines,
  hostVethName,
  networkIdOf,
  overlayMtu,
  parseFdb,
  parseLinks,
  parseNeigh,
  parseUnderlay,
  peerPlan,
  sandboxName,
  sandboxPlan,
  vxlanName,
  type OverlayNetwork,
  type SandboxLink,
  type SandboxWant,
} from './overlay-plan.js';

const NET: OverlayNetwork = { id: 'n1', vni: 4097, subnet: '10.9.0.0/24', gateway: '10.9.0.1', mtu: 0 };

function refusal(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('not refused');
}

describe('checks', () => {
  it('accepts a network and derives the bridge MAC from the node address', () => {
    expect(checkNetwork({ ...NET, nodeAddress: '10.9.0.250/24' })).toEqual({
      id: 'n1',
      vni: 4097,
      subnet: { network: 0x0a090000, prefixLength: 24, cidr: '10.9.0.0/24' },
      gateway: '10.9.0.1',
      mtu: 0,
      node: { address: '10.9.0.250', mac: '02:42:0a:09:00:fa' },
    });
  });

  it.each<[Partial<OverlayNetwork>, string, RegExp]>([
    [{ vni: 0 }, 'vni', /^must be an integer from 1 to 16777215, got 0$/],
    [{ vni: 16777216 }, 'vni', /got 16777216/],
    [{ vni: 1.5 }, 'vni', /got 1.5/],
    [{ id: 'a/b' }, 'network id', /got "a\/b"/],
    [{ subnet: '10.9.0.1/24' }, 'subnet', /host bits must be zero/],
    [{ gateway: '10.8.0.1' }, 'gateway', /^10.8.0.1 is not a host address of the subnet 10.9.0.0\/24$/],
    [{ gateway: '10.9.0.255' }, 'gateway', /not a host address/],
    [{ gateway: 'x' }, 'gateway', /must be an IPv4 address/],
    [{ mtu: -1 }, 'mtu', /must be 0 \(auto\)/],
    [{ nodeAddress: '10.9.0.250' }, 'nodeAddress', /with prefix length/],
    [{ nodeAddress: '10.9.0.250/16' }, 'nodeAddress', /^prefix length must be the subnet's, \/24/],
    [{ nodeAddress: '10.8.0.250/24' }, 'nodeAddress', /not in the subnet/],
    [{ nodeAddress: '10.9.0.1/24' }, 'nodeAddress', /is the network's gateway/],
    [{ nodeAddress: '10.9.0.255/24' }, 'nodeAddress', /network or broadcast/],
  ])('refuses %o, naming %s', (change, field, rule) => {
    const err = refusal(() => checkNetwork({ ...NET, ...change }));
    expect(err.field).toBe(field);
    expect(err.rule).toMatch(rule);
  });

  it('checks peers: addresses, one VTEP per address; duplicates are dropped', () => {
    expect(checkPeers([{ address: '10.9.0.2', vtep: '192.168.1.2' }, { address: '10.9.0.2', vtep: '192.168.1.2' }])).toEqual([{ address: '10.9.0.2', vtep: '192.168.1.2' }]);
    expect(refusal(() => checkPeers([{ address: '10.9.0.2', vtep: 'b' }])).field).toBe('peers[0].vtep');
    expect(refusal(() => checkPeers([{ address: '10.9.0.2', vtep: '192.168.1.2' }, { address: '10.9.0.2', vtep: '192.168.1.3' }])).message).toBe(
      'peers[1].vtep: 10.9.0.2 is given two VTEPs, 192.168.1.2 and 192.168.1.3',
    );
  });

  it('wants a sandbox prefix without "-", so that the network id reads back', () => {
    expect(checkSandboxPrefix('tswov')).toBe('tswov');
    expect(refusal(() => checkSandboxPrefix('tsw-ov')).field).toBe('sandboxPrefix');
    expect(sandboxName('tswov', 'net-1.a')).toBe('tswov-net-1.a');
    expect(networkIdOf('tswov', 'tswov-net-1.a')).toBe('net-1.a');
    expect(networkIdOf('tswov', 'tswovx-net')).toBeUndefined();
    expect(networkIdOf('tswov', 'other')).toBeUndefined();
  });
});

describe('names', () => {
  it('fit IFNAMSIZ and are stable', () => {
    expect(vxlanName(16777215)).toBe('vx-16777215');
    const h = hostVethName('n1', 'task-1');
    expect(h).toMatch(/^tso[0-9a-f]{12}$/);
    expect(hostVethName('n1', 'task-1')).toBe(h);
    expect(hostVethName('n2', 'task-1')).not.toBe(h);
  });
});

describe('MTU', () => {
  const eth0 = { ifname: 'eth0', mtu: 1500 };
  it('is the underlay less 50 when auto, the given one within bounds', () => {
    expect(overlayMtu(0, eth0)).toBe(1450);
    expect(overlayMtu(0, { ifname: 'jumbo', mtu: 9000 })).toBe(8950);
    expect(overlayMtu(1450, eth0)).toBe(1450);
    expect(overlayMtu(1280, eth0)).toBe(1280);
  });

  it.each([1451, 1279, 9000])('refuses %i naming mtu and the reason', (mtu) => {
    const err = refusal(() => overlayMtu(mtu, eth0));
    expect(err.field).toBe('mtu');
    expect(err.rule).toBe(`must be 1280 to 1450 (the MTU of eth0, 1500, less 50 for the VXLAN encapsulation), got ${mtu}`);
  });

  it('refuses an auto MTU below 576', () => {
    expect(refusal(() => overlayMtu(0, { ifname: 'tiny', mtu: 600 })).rule).toMatch(/^auto would be 550/);
  });
});

const HOST_ADDRS = JSON.stringify([
  { ifindex: 1, ifname: 'lo', mtu: 65536, addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
  { ifindex: 2, ifname: 'ul', mtu: 1480, addr_info: [{ family: 'inet', local: '192.168.5.1', prefixlen: 24 }, { family: 'inet', local: '192.168.5.11', prefixlen: 24 }, { family: 'inet6', local: 'fe80::1', prefixlen: 64 }] },
]);

describe('parsing', () => {
  it('finds the underlay by the data-path address', () => {
    expect(parseUnderlay(HOST_ADDRS, '192.168.5.11')).toEqual({ ifname: 'ul', mtu: 1480 });
    expect(parseUnderlay(HOST_ADDRS, '192.168.5.99')).toBeUndefined();
  });

  it('reads the links of a sandbox', () => {
    const json = JSON.stringify([
      { ifname: 'lo', flags: ['LOOPBACK'], mtu: 65536, address: '00:00:00:00:00:00', addr_info: [] },
      {
        ifname: 'vx-5',
        flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
        mtu: 1450,
        master: 'br0',
        address: 'c6:b2:13:16:7d:6d',
        link_netnsid: 0,
        linkinfo: { info_kind: 'vxlan', info_data: { id: 5, local: '192.168.77.1', port: 4789, learning: false, proxy: true }, info_slave_kind: 'bridge' },
        addr_info: [{ family: 'inet6', local: 'fe80::c4b2:13ff:fe16:7d6d', prefixlen: 64 }],
      },
      {
        ifname: 'br0',
        flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
        mtu: 1450,
        address: '02:42:0a:00:00:05',
        linkinfo: { info_kind: 'bridge', info_data: {} },
        addr_info: [{ family: 'inet', local: '10.9.0.1', prefixlen: 24 }, { family: 'inet', local: '10.9.0.5', prefixlen: 24 }],
      },
    ]);
    expect(parseLinks(json)).toEqual([
      { ifname: 'lo', kind: undefined, mtu: 65536, up: false, master: undefined, mac: '00:00:00:00:00:00', addresses: [] },
      { ifname: 'vx-5', kind: 'vxlan', mtu: 1450, up: true, master: 'br0', mac: 'c6:b2:13:16:7d:6d', addresses: [], vxlan: { id: 5, local: '192.168.77.1', port: 4789, learning: false, proxy: true } },
      { ifname: 'br0', kind: 'bridge', mtu: 1450, up: true, master: undefined, mac: '02:42:0a:00:00:05', addresses: ['10.9.0.1/24', '10.9.0.5/24'] },
    ]);
    expect(parseLinks('')).toEqual([]);
    expect(() => parseLinks('{}')).toThrow(SyntaxError);
  });

  it("reads the vxlan device's own FDB entries, not the bridge's", () => {
    const json = JSON.stringify([
      { mac: 'c6:b2:13:16:7d:6d', flags: [], master: 'br0', state: 'permanent' },
      { mac: '02:42:0a:09:00:07', flags: [], master: 'br0', state: '' },
      { mac: '02:42:0a:09:00:07', dst: '192.168.77.2', linkNetNsId: 0, flags: ['self'], state: 'permanent' },
      { mac: '00:00:00:00:00:00', dst: '192.168.77.3', flags: ['self'], state: 'permanent' },
      { mac: '02:42:0a:09:00:08', dst: '192.168.77.3', flags: ['self'], state: '' },
    ]);
    expect(parseFdb(json)).toEqual([
      { mac: '02:42:0a:09:00:07', dst: '192.168.77.2', permanent: true },
      { mac: '00:00:00:00:00:00', dst: '192.168.77.3', permanent: true },
      { mac: '02:42:0a:09:00:08', dst: '192.168.77.3', permanent: false },
    ]);
  });

  it('reads neighbour entries', () => {
    const json = JSON.stringify([
      { dst: '10.9.0.7', lladdr: '02:42:0a:09:00:07', state: ['PERMANENT'] },
      { dst: '10.9.0.8', state: ['FAILED'] },
    ]);
    expect(parseNeigh(json)).toEqual([
      { address: '10.9.0.7', mac: '02:42:0a:09:00:07', permanent: true },
      { address: '10.9.0.8', mac: undefined, permanent: false },
    ]);
  });
});

describe('the sandbox plan', () => {
  const want: SandboxWant = { net: checkNetwork(NET), mtu: 1450, sandboxPath: '/run/netns/tswov-n1', dataPathAddr: '192.168.5.11', dataPathPort: 4789 };
  const VXLAN = 'link add name vx-4097 mtu 1450 netns /run/netns/tswov-n1 type vxlan id 4097 local 192.168.5.11 dstport 4789 nolearning proxy';
  const br = (over: Partial<SandboxLink> = {}): SandboxLink => ({ ifname: 'br0', kind: 'bridge', mtu: 1450, up: true, master: undefined, mac: 'aa:bb:cc:dd:ee:ff', addresses: ['10.9.0.1/24'], ...over });
  const vx = (over: Partial<NonNullable<SandboxLink['vxlan']>> = {}, link: Partial<SandboxLink> = {}): SandboxLink => ({
    ifname: 'vx-4097',
    kind: 'vxlan',
    mtu: 1450,
    up: true,
    master: 'br0',
    mac: '11:22:33:44:55:66',
    addresses: [],
    vxlan: { id: 4097, local: '192.168.5.11', port: 4789, learning: false, proxy: true, ...over },
    ...link,
  });

  it('makes everything in a new namespace: the vxlan device from the host, then the bridge', () => {
    expect(sandboxPlan(want)).toEqual({
      before: [],
      vxlan: VXLAN,
      after: ['link add name br0 mtu 1450 type bridge', 'addr add 10.9.0.1/24 dev br0', 'link set dev br0 mtu 1450 up', 'link set dev vx-4097 mtu 1450 master br0 up'],
    });
  });

  it('does nothing to a sandbox that is right', () => {
    expect(sandboxPlan(want, [br(), vx()])).toEqual({ before: [], vxlan: undefined, after: [] });
  });

  it('re-makes a sandbox of another VNI or subnet', () => {
    expect(sandboxPlan(want, [br(), vx({ id: 4098 }, { ifname: 'vx-4098' })]).remake).toBe('it holds vx-4098, VNI 4098, not 4097');
    expect(sandboxPlan(want, [br({ addresses: ['10.8.0.1/24'] }), vx()]).remake).toBe('its bridge holds 10.8.0.1/24, outside 10.9.0.0/24');
    expect(sandboxPlan(want, [br({ addresses: ['10.9.0.1/16'] }), vx()]).remake).toMatch(/outside/);
  });

  it('replaces a vxlan device of another data path, and repairs what differs', () => {
    expect(sandboxPlan(want, [br({ up: false, mtu: 1500 }), vx({ local: '192.168.5.1', learning: true })])).toEqual({
      before: ['link del dev vx-4097'],
      vxlan: VXLAN,
      after: ['link set dev br0 mtu 1450 up', 'link set dev vx-4097 mtu 1450 master br0 up'],
    });
    expect(sandboxPlan(want, [br(), vx({}, { master: undefined })]).after).toEqual(['link set dev vx-4097 mtu 1450 master br0 up']);
  });

  it("puts the node's address and MAC on the bridge, and takes an old one off", () => {
    const withNode = { ...want, net: checkNetwork({ ...NET, nodeAddress: '10.9.0.250/24' }) };
    expect(sandboxPlan(withNode, [br(), vx()]).after).toEqual(['addr add 10.9.0.250/24 dev br0', `link set dev br0 mtu 1450 address ${macOf('10.9.0.250')} up`]);
    expect(sandboxPlan(want, [br({ addresses: ['10.9.0.1/24', '10.9.0.250/24'] }), vx()]).after).toEqual(['addr del 10.9.0.250/24 dev br0']);
  });
});

describe('endpoints', () => {
  const e = { hostVeth: 'tso0123456789ab', containerNetns: '/proc/42/ns/net', ifname: 'eth1', address: '10.9.0.7', prefixLength: 24, mac: '02:42:0a:09:00:07', mtu: 1450 };
  it('makes the pair from the sandbox with the container end in its namespace; no default route', () => {
    expect(endpointLines(e)).toEqual({
      sandbox: ['link add name tso0123456789ab mtu 1450 type veth peer name eth1 mtu 1450 address 02:42:0a:09:00:07 netns /proc/42/ns/net', 'link set dev tso0123456789ab master br0 up'],
      container: ['addr add 10.9.0.7/24 dev eth1', 'link set dev eth1 up', 'link set dev lo up'],
    });
  });

  it('adopts without making or withdrawing anything', () => {
    expect(endpointLines(e, true)).toEqual({
      sandbox: ['link set dev tso0123456789ab mtu 1450 master br0 up'],
      container: ['link set dev eth1 mtu 1450 address 02:42:0a:09:00:07', 'addr replace 10.9.0.7/24 dev eth1', 'link set dev eth1 up', 'link set dev lo up'],
    });
  });
});

describe('the peer plan', () => {
  const A = '192.168.5.11'; // this node
  const B = '192.168.5.2';
  const C = '192.168.5.3';
  const peers = [
    { address: '10.9.0.2', vtep: A },
    { address: '10.9.0.3', vtep: B },
    { address: '10.9.0.4', vtep: C },
  ];

  it('programs every remote peer, permanent, and skips this node', () => {
    expect(peerPlan('vx-1', A, peers, [], [])).toEqual({
      fdb: ['fdb replace 02:42:0a:09:00:03 dev vx-1 dst 192.168.5.2 self permanent', 'fdb replace 02:42:0a:09:00:04 dev vx-1 dst 192.168.5.3 self permanent'],
      neigh: ['neigh replace 10.9.0.3 lladdr 02:42:0a:09:00:03 dev vx-1 nud permanent', 'neigh replace 10.9.0.4 lladdr 02:42:0a:09:00:04 dev vx-1 nud permanent'],
    });
  });

  it('leaves what is right alone', () => {
    const fdb = [
      { mac: '02:42:0a:09:00:03', dst: B, permanent: true },
      { mac: '02:42:0a:09:00:04', dst: C, permanent: true },
    ];
    const neigh = [
      { address: '10.9.0.3', mac: '02:42:0a:09:00:03', permanent: true },
      { address: '10.9.0.4', mac: '02:42:0a:09:00:04', permanent: true },
    ];
    expect(peerPlan('vx-1', A, peers, fdb, neigh)).toEqual({ fdb: [], neigh: [] });
  });

  it('deletes what is not wanted (a flood entry too), deletions first; fixes moved and non-permanent entries', () => {
    const fdb = [
      { mac: '00:00:00:00:00:00', dst: B, permanent: true },
      { mac: '02:42:0a:09:00:03', dst: C, permanent: true }, // moved to B
      { mac: '02:42:0a:09:00:04', dst: C, permanent: false },
      { mac: '02:42:0a:09:00:09', dst: C, permanent: true }, // gone
      { mac: '02:42:0a:09:00:0a', dst: undefined, permanent: true },
    ];
    const neigh = [
      { address: '10.9.0.3', mac: '02:42:0a:09:00:03', permanent: true },
      { address: '10.9.0.4', mac: '02:42:0a:09:00:99', permanent: true },
      { address: '10.9.0.9', mac: '02:42:0a:09:00:09', permanent: true },
    ];
    expect(peerPlan('vx-1', A, peers, fdb, neigh)).toEqual({
      fdb: [
        'fdb del 00:00:00:00:00:00 dev vx-1 dst 192.168.5.2 self',
        'fdb del 02:42:0a:09:00:03 dev vx-1 dst 192.168.5.3 self',
        'fdb del 02:42:0a:09:00:04 dev vx-1 dst 192.168.5.3 self',
        'fdb del 02:42:0a:09:00:09 dev vx-1 dst 192.168.5.3 self',
        'fdb del 02:42:0a:09:00:0a dev vx-1 self',
        'fdb replace 02:42:0a:09:00:03 dev vx-1 dst 192.168.5.2 self permanent',
        'fdb replace 02:42:0a:09:00:04 dev vx-1 dst 192.168.5.3 self permanent',
      ],
      neigh: ['neigh del 10.9.0.9 dev vx-1', 'neigh replace 10.9.0.4 lladdr 02:42:0a:09:00:04 dev vx-1 nud permanent'],
    });
  });

  it('keeps one destination of a MAC that has two', () => {
    const fdb = [
      { mac: '02:42:0a:09:00:03', dst: B, permanent: true },
      { mac: '02:42:0a:09:00:03', dst: C, permanent: true },
    ];
    expect(peerPlan('vx-1', A, [peers[1]!], fdb, []).fdb).toEqual(['fdb del 02:42:0a:09:00:03 dev vx-1 dst 192.168.5.3 self']);
  });
});

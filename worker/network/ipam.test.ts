// Address management and the driver's pure parts, without root.
import { describe, expect, it } from 'vitest';
import { CorruptFileError, InvalidArgumentError } from '../../common/errors.js';
import { BridgeDriver, natRuleset, vethNames } from './bridge.js';
import { allocate, emptyState, firstFree, gatewayOf, parseState, parseSubnet, release, SubnetFullError } from './ipam.js';

describe('subnets', () => {
  it('parses a subnet and names its gateway', () => {
    const s = parseSubnet('subnet', '172.31.0.0/16');
    expect(s).toEqual({ network: 0xac1f0000, prefixLength: 16, cidr: '172.31.0.0/16' });
    expect(gatewayOf(s)).toBe('172.31.0.1');
  });

  it.each([
    ['10.0.0.1/24', /^subnet: host bits must be zero: 10.0.0.1\/24 \(did you mean 10.0.0.0\/24\?\)$/],
    ['10.0.0.0/31', /^subnet: prefix length must be 8 to 30, got \/31$/],
    ['10.0.0.0/7', /^subnet: prefix length must be 8 to 30/],
    ['10.0.0.256/24', /^subnet: must be an IPv4 subnet a.b.c.d\/len, got "10.0.0.256\/24"$/],
    ['fd00::/64', /^subnet: must be an IPv4 subnet/],
    ['10.0.0.0', /^subnet: must be an IPv4 subnet/],
  ])('refuses %s, naming the field and the rule', (cidr, message) => {
    expect(() => parseSubnet('subnet', cidr)).toThrow(InvalidArgumentError);
    expect(() => parseSubnet('subnet', cidr)).toThrow(message);
  });
});

describe('allocation', () => {
  const subnet = parseSubnet('subnet', '10.9.0.0/29'); // .1 gateway, .2-.6 endpoints, .7 broadcast

  it('hands out the lowest free address, never the network, gateway or broadcast address', () => {
    let st = emptyState('br', subnet);
    const got: string[] = [];
    for (const id of ['a', 'b', 'c', 'd', 'e']) {
      const r = allocate(st, id, `v${id}`, `/run/netns/${id}`);
      st = r.state;
      got.push(r.address);
    }
    expect(got).toEqual(['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
    expect(() => allocate(st, 'f', 'vf', '/x')).toThrow(SubnetFullError);
    expect(() => allocate(st, 'f', 'vf', '/x')).toThrow(/^subnet: 10.9.0.0\/29 has no free address \(5 endpoints attached\)$/);
    st = release(st, 'b');
    expect(st.endpoints.b).toBeUndefined();
    expect(allocate(st, 'f', 'vf', '/x').address).toBe('10.9.0.3');
    expect(firstFree(subnet, [])).toBe('10.9.0.2');
  });

  it('does not change the state it is given', () => {
    const st = emptyState('br', subnet);
    allocate(st, 'a', 'va', '/x');
    expect(st.endpoints).toEqual({});
  });
});

describe('the state file', () => {
  const p = '/var/lib/tswarm/network/bridge-br.json';
  const good = { version: 1, bridge: 'br', subnet: '10.9.0.0/24', gateway: '10.9.0.1', endpoints: { a: { address: '10.9.0.2', hostVeth: 'v', netns: '/n' } } };

  it('reads what was written', () => {
    expect(parseState(p, JSON.stringify(good))).toEqual(good);
    const published = { ...good, endpoints: { a: { ...good.endpoints.a, ports: [{ protocol: 'udp', published: 53, target: 53 }] } } };
    expect(parseState(p, JSON.stringify(published))).toEqual(published);
  });

  it.each([
    ['{"version":1,', /^\/var\/lib\/tswarm\/network\/bridge-br.json: not JSON/],
    ['[]', /: unknown version undefined$/],
    [JSON.stringify({ ...good, subnet: '10.9.0.1/24' }), /: subnet: host bits must be zero/],
    [JSON.stringify({ ...good, endpoints: { a: { address: '10.8.0.2', hostVeth: 'v', netns: '/n' } } }), /: endpoint "a": address 10.8.0.2 is not in 10.9.0.0\/24$/],
    [
      JSON.stringify({ ...good, endpoints: { a: good.endpoints.a, b: good.endpoints.a } }),
      /: address 10.9.0.2 is given to both "a" and "b"$/,
    ],
    [JSON.stringify({ ...good, endpoints: { a: { address: '10.9.0.2' } } }), /: endpoint "a": address, hostVeth and netns must be strings$/],
    [JSON.stringify({ ...good, endpoints: { a: { ...good.endpoints.a, ports: [{ protocol: 'tcp', published: 0, target: 80 }] } } }), /: endpoint "a": ports: .* is not \{protocol, published, target\}$/],
    [
      JSON.stringify({
        ...good,
        endpoints: {
          a: { ...good.endpoints.a, ports: [{ protocol: 'tcp', published: 8080, target: 80 }] },
          b: { address: '10.9.0.3', hostVeth: 'w', netns: '/m', ports: [{ protocol: 'tcp', published: 8080, target: 81 }] },
        },
      }),
      /: port 8080\/tcp is published by both "a" and "b"$/,
    ],
  ])('refuses a corrupt file %s, naming the path', (text, message) => {
    const err = (() => {
      try {
        parseState(p, text);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CorruptFileError);
    expect((err as CorruptFileError).path).toBe(p);
    expect((err as Error).message).toMatch(message);
  });
});

describe('driver options and commands', () => {
  it('checks the options, naming the field', () => {
    expect(() => new BridgeDriver({ stateDir: '/tmp/x', name: 'a-very-long-bridge-name' })).toThrow(/^bridge name: must be 1-15 characters/);
    expect(() => new BridgeDriver({ stateDir: '/tmp/x', name: 'br;rm' })).toThrow(InvalidArgumentError);
    expect(() => new BridgeDriver({ stateDir: '/tmp/x', subnet: '10.0.0.0/33' })).toThrow(/^subnet: /);
    expect(() => new BridgeDriver({ stateDir: '/tmp/x', mtu: 100 })).toThrow(/^mtu: must be an integer from 576 to 65535/);
    const d = new BridgeDriver({ stateDir: '/tmp/x' });
    expect([d.name, d.subnet.cidr, d.gateway, d.statePath]).toEqual(['tsw0', '172.31.0.0/16', '172.31.0.1', '/tmp/x/bridge-tsw0.json']);
  });

  it('masquerades what leaves the subnet other than through the bridge, and DNATs published ports, in a table of its own', () => {
    const rules = (elements: string[]): string =>
      [
        'table ip tswarm-tsw0',
        'delete table ip tswarm-tsw0',
        'table ip tswarm-tsw0 {',
        '  map published {',
        '    type inet_proto . inet_service : ipv4_addr . inet_service',
        ...elements,
        '  }',
        '  chain prerouting {',
        '    type nat hook prerouting priority dstnat; policy accept;',
        '    fib daddr type local dnat ip to meta l4proto . th dport map @published',
        '  }',
        '  chain output {',
        '    type nat hook output priority -100; policy accept;',
        '    fib daddr type local dnat ip to meta l4proto . th dport map @published',
        '  }',
        '  chain postrouting {',
        '    type nat hook postrouting priority srcnat; policy accept;',
        '    ip saddr 172.31.0.0/16 oifname != "tsw0" masquerade',
        '    oifname "tsw0" ct status dnat ip saddr 172.31.0.0/16 masquerade',
        '    oifname "tsw0" ip saddr 127.0.0.0/8 masquerade',
        '  }',
        '  chain guard {',
        '    type filter hook prerouting priority raw; policy accept;',
        '    iifname "tsw0" ip daddr 127.0.0.0/8 drop',
        '  }',
        '}',
        '',
      ].join('\n');
    expect(natRuleset('tsw0', '172.31.0.0/16')).toBe(rules([]));
    // A restarted worker's table keeps what its endpoints publish.
    const endpoints = {
      a: { address: '172.31.0.2', hostVeth: 'tsv1', netns: '/proc/1/ns/net', ports: [{ protocol: 'tcp' as const, published: 8080, target: 80 }, { protocol: 'udp' as const, published: 53, target: 5353 }] },
      b: { address: '172.31.0.3', hostVeth: 'tsv2', netns: '/proc/2/ns/net' },
      c: { address: '172.31.0.4', hostVeth: 'tsv3', netns: '/proc/3/ns/net', ports: [{ protocol: 'tcp' as const, published: 8081, target: 80 }] },
    };
    expect(natRuleset('tsw0', '172.31.0.0/16', endpoints)).toBe(rules(['    elements = { tcp . 8080 : 172.31.0.2 . 80, udp . 53 : 172.31.0.2 . 5353, tcp . 8081 : 172.31.0.4 . 80 }']));
  });

  it('names veth ends stably within IFNAMSIZ', () => {
    const a = vethNames('tsw0', 'task-1');
    expect(a).toEqual(vethNames('tsw0', 'task-1'));
    expect(a.host).toMatch(/^tsv[0-9a-f]{12}$/);
    expect(a.peer).toBe(`tsc${a.host.slice(3)}`);
    expect(vethNames('tsw1', 'task-1').host).not.toBe(a.host);
  });
});
